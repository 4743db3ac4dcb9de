"""The Codec panel's "Tokens" tab: train a tiny tokenizer live (VQ, VQ + rotation trick, FSQ, BSQ,
IBQ) as a pausable, cancellable job; plots of codebook utilisation, perplexity, PSNR and dead codes
over training; original vs reconstruction; the tokens range-coded to a real ``.sstk`` file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout, QWidget

from panels.codec.widgets import make_view
from panels.flow_row import flow_row
from panels.live_plot import LiveView, StableRange, Throttle, cache_axes

__all__ = ["TokensTab", "tokens_train_job"]

QUANTIZER_LABELS = {"vq": "VQ (straight-through)", "vq-rotation": "VQ + rotation trick", "fsq": "FSQ", "bsq": "BSQ", "ibq": "IBQ (index backprop)"}
EVAL_SIDE = 256  # live evaluation on a centre crop of at most this size
SERIES = (("utilisation", "codebook utilisation", "% of codes used"), ("perplexity", "perplexity", "exp H"),
          ("psnr", "reconstruction PSNR", "dB"), ("ssim", "reconstruction SSIM", "SSIM"),
          ("dead_codes", "dead codes", "codes"), ("coded_bits_per_token", "range-coded size", "bits per token"))


def centre_crop(image: np.ndarray, side: int = EVAL_SIDE) -> np.ndarray:
    """The centre ``side × side`` (at most) of an RGB image, cropped to a multiple of 4."""
    h, w = image.shape[:2]
    ch, cw = min(h, side) // 4 * 4, min(w, side) // 4 * 4
    y, x = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(image[y : y + ch, x : x + cw, :3])


def tokens_train_job(image: np.ndarray | None, quantizer: str, bits: int, steps: int, patch: int = 64, batch: int = 8):
    """Job: train on the bundled photos, evaluate live on the centre crop of ``image`` (or the
    held-out astronaut); returns a dict with the model, history, reconstruction, tokens and the
    ``.sstk`` bytes."""
    from engines.codec.learned import default_training_images
    from engines.codec.token_file import write_model_tokens
    from engines.codec.token_lab import reconstruct, train_tokenizer_job
    from engines.jobs import Progress

    yield Progress(0, steps, "loading the training photos")
    if image is None:
        from engines.codec.images import sample_image

        image = sample_image("astronaut")
    target = centre_crop(np.asarray(image))
    if min(target.shape[:2]) < 8:
        raise ValueError("the image is too small for a tokenizer (needs at least 8×8 pixels)")
    model, out = yield from train_tokenizer_job(default_training_images(), quantizer, bits, steps=steps, patch=patch, batch=batch,
                                                eval_images=[target], eval_every=max(steps // 25, 1))
    rec, idx, _ = reconstruct(model, target)
    data = write_model_tokens(model, idx, rec.shape)
    params = {"quantizer": quantizer, "bits": bits, "steps": steps, "patch": patch, "batch": batch}
    return {"model": model, "params": params, "original": target[: rec.shape[0], : rec.shape[1]], "reconstruction": rec,
            "indices": idx, "data": data, **out}


PLOTS_PER_TURN = 2  # curve plots added per idle step (six in all)


class TokensTab(QWidget):
    """See module docstring. ``submit(key, name, factory, on_result, on_event=None, on_done=None)``
    runs a job and returns its handle; ``image()`` returns the panel's current image (or None)."""

    KEEP_TOKENIZERS = 4  # trained tokenizers kept to decode the token files exported from them

    def __init__(self, submit, image, notify, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._submit, self._image, self._notify = submit, image, notify
        self._plot_throttle = Throttle(self._plot_history, parent=self)  # live curves: see panels/live_plot.py
        self.result: dict | None = None
        self._trained: list = []  # tokenizers trained in this session, newest first
        self.history: list[dict] = []
        self.handle = None
        outer = QVBoxLayout(self)
        self.quantizer = QComboBox()
        for key, label in QUANTIZER_LABELS.items():
            self.quantizer.addItem(label, key)
        self.bits = QSpinBox()
        self.bits.setRange(8, 16)
        self.bits.setSingleStep(2)
        self.bits.setValue(10)
        self.bits.setSuffix(" bits/token")
        self.steps = QSpinBox()
        self.steps.setRange(10, 100000)
        self.steps.setSingleStep(100)
        self.steps.setValue(400)
        self.steps.setSuffix(" steps")
        self.train_btn = QPushButton("Train")
        self.pause_btn = QPushButton("Pause")
        self.cancel_btn = QPushButton("Cancel")
        self.export_btn = QPushButton("Export tokens…")
        for b in (self.pause_btn, self.cancel_btn, self.export_btn):
            b.setEnabled(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)  # a long status wraps: a line as wide as it moved the workspace's edge
        outer.addLayout(flow_row(("Quantizer:", self.quantizer), self.bits, self.steps, self.train_btn, self.pause_btn,
                                 self.cancel_btn, self.export_btn))
        outer.addWidget(self.status)
        body = QHBoxLayout()
        self.plots = pg.GraphicsLayoutWidget()
        self.curves, self.live_views = {}, {}
        self._plots_to_add = list(enumerate(SERIES))  # the rest come from pending_builds() or first use
        self._add_plots(PLOTS_PER_TURN)
        body.addWidget(self.plots, 3)
        self.views = pg.GraphicsLayoutWidget()
        self.views.setBackground("#202020")
        self.view_orig, self.item_orig = make_view(self.views.ci, "original (centre crop)", row=0, col=0)
        self.view_rec, self.item_rec = make_view(self.views.ci, "reconstruction from the tokens", row=2, col=0)
        body.addWidget(self.views, 2)
        outer.addLayout(body, 1)
        self.text = QLabel("Choose a quantizer and press Train: a tiny conv tokenizer (one token per 4×4 pixels) learns on the "
                           "bundled photos and is evaluated live on the centre of the panel's image. VQ and IBQ restart unused codes "
                           "every 20 steps (the jumps in the curves).")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.text)
        self.quantizer.currentIndexChanged.connect(self._on_quantizer)
        self.train_btn.clicked.connect(self.train)
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.cancel_btn.clicked.connect(self.cancel)
        self.export_btn.clicked.connect(self._export_dialog)

    def _add_plots(self, count: int) -> None:
        """Add the next ``count`` of the six curve plots (~10 ms each)."""
        for i, (key, title, unit) in self._plots_to_add[:count]:
            plot = self.plots.addPlot(row=i // 2, col=i % 2, title=title)
            plot.setLabel("bottom", "step")
            plot.setLabel("left", unit)
            plot.showGrid(x=True, y=True, alpha=0.25)
            plot.getAxis("left").enableAutoSIPrefix(False)
            self.curves[key] = plot.plot([], [], pen=pg.mkPen((90, 170, 250), width=2), symbol="o", symbolSize=4)
            cache_axes(plot, ("left", "bottom"))
            self.live_views[key] = LiveView(plot.getViewBox(), x=StableRange())
        del self._plots_to_add[:count]

    def pending_builds(self) -> list:
        """The plots not added yet, a few per call (the studio runs these while idle)."""
        turns = -(-len(self._plots_to_add) // PLOTS_PER_TURN)
        return [lambda: self._add_plots(PLOTS_PER_TURN)] * turns

    def _ensure_plots(self) -> None:
        if self._plots_to_add:
            self._add_plots(len(self._plots_to_add))

    def showEvent(self, event) -> None:  # Qt override: shown before the idle steps added every plot
        self._ensure_plots()
        super().showEvent(event)

    def _on_quantizer(self) -> None:
        fsq = self.quantizer.currentData() == "fsq"  # FSQ level tables exist for even bit counts only
        self.bits.setSingleStep(2 if fsq else 1)
        if fsq and self.bits.value() % 2:
            self.bits.setValue(self.bits.value() + 1)

    def train(self) -> None:
        """Start training with the chosen quantizer, bits per token and steps (a job)."""
        quantizer, bits, steps = self.quantizer.currentData(), self.bits.value(), self.steps.value()
        self.start(quantizer, bits, steps)

    def start(self, quantizer: str, bits: int, steps: int, patch: int = 64, batch: int = 8):
        """Run :func:`tokens_train_job` (returns the job handle)."""
        image = self._image()
        if image is not None:  # the evaluation crop is shown at once; the reconstruction comes with the result
            self.item_orig.setImage(centre_crop(np.asarray(image)), autoLevels=False, levels=(0, 255))
            self.view_orig.autoRange(padding=0.02)
        self.item_rec.clear()
        self.history = []
        self.result = None
        self._ensure_plots()
        for key, c in self.curves.items():
            c.setData([], [])
            self.live_views[key].reset(x_fixed=(0, steps))
        self.status.setText("starting…")
        self.train_btn.setEnabled(False)
        self.export_btn.setEnabled(False)
        self.pause_btn.setEnabled(True)
        self.cancel_btn.setEnabled(True)
        self.pause_btn.setText("Pause")
        label = QUANTIZER_LABELS.get(quantizer, quantizer)
        self.handle = self._submit("tokens-train", f"train tokenizer {quantizer} {bits} bits ({steps} steps)",
                                   lambda: tokens_train_job(image, quantizer, bits, steps, patch, batch), self._on_result, self._on_event, self._on_done)
        self.text.setText(f"Training {label} at {bits} bits per token (codebook 2^{bits} = {2**bits:,} codes)…")
        return self.handle

    def toggle_pause(self) -> None:
        """Pause a running training job, or resume a paused one."""
        h = self.handle
        if h is None:
            return
        if h.state == "paused":
            h.resume()
            self.pause_btn.setText("Pause")
            self.status.setText("resumed")
        elif h.state == "running":
            h.pause()
            self.pause_btn.setText("Resume")
            self.status.setText("paused")

    def cancel(self) -> None:
        """Cancel the training job."""
        if self.handle is not None:
            self.handle.cancel()
            self.status.setText("cancelled")

    def _on_event(self, event) -> None:
        from engines.jobs import Preview, Progress

        if isinstance(event, Progress) and event.total:
            if self.pause_btn.text() != "Resume":
                self.status.setText(f"step {event.step}/{event.total}")
        elif isinstance(event, Preview) and "utilisation" in event.data:
            self.history.append(event.data)
            self._plot_throttle.request()

    def _plot_history(self) -> None:
        self._ensure_plots()
        steps = [h["step"] for h in self.history]
        for key, curve in self.curves.items():
            values = [h[key] * (100.0 if key == "utilisation" else 1.0) for h in self.history]
            curve.setData(steps, values)
            self.live_views[key].show(steps, values)

    def _on_done(self) -> None:
        self.train_btn.setEnabled(True)
        self.pause_btn.setEnabled(False)
        self.cancel_btn.setEnabled(False)
        self.pause_btn.setText("Pause")

    def trained_tokenizers(self) -> list:
        """The tokenizers trained in this session, newest first (the last few; they decode the
        ``.sstk`` files exported from them)."""
        return list(self._trained)

    def _on_result(self, r: dict) -> None:
        self.result = r
        self._trained = [r["model"], *self._trained[: self.KEEP_TOKENIZERS - 1]]
        # the job queue throttles live events (the last one is always kept), so the plots may have
        # missed an evaluation: the result's history is the complete one
        self.history = list(r["history"])
        self._plot_history()
        self.item_orig.setImage(r["original"], autoLevels=False, levels=(0, 255))
        self.item_rec.setImage(r["reconstruction"], autoLevels=False, levels=(0, 255))
        self.view_orig.autoRange(padding=0.02)
        self.view_rec.autoRange(padding=0.02)
        self.export_btn.setEnabled(True)
        f, p = r["final"], r["params"]
        n = r["indices"].size
        self.status.setText("done")
        self.text.setText(
            f"<b>{QUANTIZER_LABELS.get(p['quantizer'], p['quantizer'])}</b>, {p['bits']} bits/token nominal, {p['steps']} steps · "
            f"PSNR <b>{f['psnr']:.2f} dB</b> · SSIM {f['ssim']:.3f} · utilisation {f['utilisation']:.3f} ({2 ** p['bits'] - f['dead_codes']:,} of {2 ** p['bits']:,} codes) · "
            f"perplexity {f['perplexity']:.1f} · dead codes {f['dead_codes']:,}<br>"
            f"tokens file: {len(r['data']):,} bytes for {n:,} tokens = <b>{8 * len(r['data']) / n:.2f} bits/token</b> "
            f"({8 * len(r['data']) / (16 * n):.3f} bpp; entropy of the token histogram {f['entropy_bits']:.2f} bits)"
        )

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the tokens", "tokens.sstk", "Token file (*.sstk)")
        if path:
            self.export(path)

    def export(self, path: str) -> Path | None:
        """Write the last run's range-coded tokens to ``path`` (atomic, with a provenance sidecar)."""
        from studio.export import make_provenance, save_with_sidecar

        if self.result is None:
            self._notify("Train a tokenizer first", "warning")
            return None
        data = self.result["data"]
        prov = make_provenance("codec", "codec.tokens.train", self.result["params"])
        try:
            written = save_with_sidecar(path, lambda tmp: Path(tmp).write_bytes(data), prov, force=True)
        except OSError as exc:
            self._notify(f"Could not write {path}: {exc.strerror or exc}", "error")
            return None
        self.status.setText(f"saved {Path(written).name} ({len(data):,} bytes)")
        return Path(written)
