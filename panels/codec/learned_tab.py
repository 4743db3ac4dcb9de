"""The Codec panel's "Learned codec" tab: encode the image with a learned model (real
``.sslc`` bitstream), the bits map per latent position, latent histograms and the
Gaussianization statistics, and training a model in the studio. Every computation is a job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from panels.codec.widgets import heat_lut, make_view

__all__ = ["LearnedTab", "learned_encode_job"]


def learned_encode_job(image: np.ndarray, model: str, quality: float):
    """Job: learned-codec encode, decode check, PSNR and latent readouts (a dict)."""
    from engines.codec.learned import compress, decompress
    from engines.codec.metrics import psnr_channels
    from engines.jobs import Progress, wait_in_thread

    # each call is one uninterruptible network pass: on a helper thread, so a cancel stops the job at once
    res = yield from wait_in_thread(compress, image, model, quality, readouts=True,
                                    announce=Progress(0, 2, "encoding and latent readouts"))
    decoded = yield from wait_in_thread(decompress, res["data"], announce=Progress(1, 2, "decoding"))
    out = res["readouts"]
    out.update(data=res["data"], decoded=decoded, exact=bool(np.array_equal(decoded, res["decoded"])),
               psnr=psnr_channels(image, decoded), bpp=8.0 * len(res["data"]) / (image.shape[0] * image.shape[1]),
               model=model, quality=quality, step=res["step"])
    yield Progress(2, 2, "done")
    return out


class LearnedTab(QWidget):
    """See module docstring. ``submit(key, name, factory, on_result, on_event=None)`` runs a job;
    ``image()`` returns the panel's current image (or None)."""

    def __init__(self, submit, image, notify, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._submit, self._image, self._notify = submit, image, notify
        self.result: dict | None = None
        self.trained: tuple | None = None
        outer = QVBoxLayout(self)
        bar = QHBoxLayout()
        self.model = QComboBox()
        self.refresh_models()
        self.browse = QPushButton("Model file…")
        self.quality = QSlider(Qt.Orientation.Horizontal)
        self.quality.setRange(1, 100)
        self.quality.setValue(75)
        self.quality.setMaximumWidth(160)
        self.quality_label = QLabel("q 75")
        self.run = QPushButton("Encode")
        for w in (QLabel("Model:"), self.model, self.browse, QLabel("Quality:"), self.quality, self.quality_label, self.run):
            bar.addWidget(w)
        bar.addStretch(1)
        outer.addLayout(bar)
        train = QHBoxLayout()
        self.steps = QSpinBox()
        self.steps.setRange(1, 100000)
        self.steps.setValue(300)
        self.kind = QComboBox()
        self.kind.addItems(["dct", "hyperprior", "factorized"])
        self.kind.setToolTip("dct: starts as JPEG (YCbCr, 8×8 DCT, learned steps, GDN) with a mean-scale hyperprior, "
                             "one model for every quality; hyperprior / factorized: Ballé et al.")
        self.train_btn = QPushButton("Train on the bundled photos…")
        self.train_status = QLabel("")
        for w in (QLabel("Train:"), self.kind, QLabel("steps"), self.steps, self.train_btn, self.train_status):
            train.addWidget(w)
        train.addStretch(1)
        outer.addLayout(train)
        split = QSplitter(Qt.Orientation.Horizontal)
        self.views = pg.GraphicsLayoutWidget()
        self.views.setBackground("#202020")
        self.view_dec, self.item_dec = make_view(self.views.ci, "decoded", row=0, col=0)
        self.view_bits, self.item_bits = make_view(self.views.ci, "bits per latent position (−log₂ p, all channels)", row=0, col=1)
        self.item_bits.setLookupTable(heat_lut("inferno"))
        split.addWidget(self.views)
        self.hist = pg.PlotWidget(title="histogram of the costliest latent channel (quantised)")
        self.hist.setLabel("bottom", "level")
        self.hist.setLabel("left", "count")
        split.addWidget(self.hist)
        split.setSizes([800, 300])
        outer.addWidget(split, 1)
        self.text = QLabel("Pick a model and press Encode.")
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.text)
        self.quality.valueChanged.connect(self._on_quality)
        self.run.clicked.connect(self.encode)
        self.browse.clicked.connect(self._browse)
        self.train_btn.clicked.connect(self._train_dialog)

    def refresh_models(self) -> None:
        """Fill the model list with the shipped models (keeps files picked before)."""
        from engines.codec.learned import available_models

        known = {self.model.itemData(i) for i in range(self.model.count())}
        for name in available_models():
            if name not in known:
                self.model.addItem(name, name)
        if self.model.count() == 0:
            self.model.addItem("(no model: train one or pick a file)", None)

    def add_model_file(self, path: str) -> None:
        """Add a model file to the list and select it."""
        idx = self.model.findData(path)
        if idx < 0:
            self.model.addItem(Path(path).name, path)
            idx = self.model.count() - 1
        self.model.setCurrentIndex(idx)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Learned-codec model", "", "Model (*.pt)")
        if path:
            self.add_model_file(path)

    def _on_quality(self, q: int) -> None:
        self.quality_label.setText(f"q {q}")  # the latent step depends on the model kind: shown after encoding

    def encode(self) -> None:
        """Encode the panel's image with the chosen model and quality (a job)."""
        image, model = self._image(), self.model.currentData()
        if image is None or model is None:
            self._notify("Load an image and pick a model first", "warning")
            return
        q = float(self.quality.value())
        self.text.setText("encoding…")
        self._submit("learned", f"learned codec q{q:g}", lambda: learned_encode_job(image, model, q), self._on_result)

    def _on_result(self, r: dict) -> None:
        self.result = r
        self.item_dec.setImage(r["decoded"], autoLevels=False, levels=(0, 255))
        self.view_dec.autoRange(padding=0.02)
        bits = r["bits_map"]
        h, w = r["decoded"].shape[:2]
        self.item_bits.setImage(bits.astype(np.float32), autoLevels=False, levels=(0.0, float(max(bits.max(), 1e-9))))
        cell = h / max(bits.shape[0], 1)
        self.item_bits.setRect(0, 0, bits.shape[1] * cell, bits.shape[0] * cell)
        self.view_bits.autoRange(padding=0.02)
        self.hist.clear()
        if r["histograms"]:
            c, hst = next(iter(r["histograms"].items()))
            self.hist.plot(hst["edges"], hst["counts"], stepMode="center", fillLevel=0, brush=(80, 140, 220, 150))
            self.hist.setTitle(f"latent channel {c} (the costliest), quantised levels")
        ps = r["psnr"]
        y, n = r["y"], r["y_over_sigma"]
        self.text.setText(
            f"<b>{r['bpp']:.3f} bpp</b> from the .sslc bitstream ({len(r['data']):,} bytes; model estimate {r['bpp_estimate']:.3f} bpp) · "
            f"PSNR RGB <b>{ps['rgb']:.2f} dB</b> · Y {ps['Y']:.2f} · decode {'bit-exact ✓' if r['exact'] else 'MISMATCH'} · step {r['step']:.2f}<br>"
            f"Gaussianization: latents y — mean |channel correlation| {y['mean_abs_channel_correlation']:.3f}, excess kurtosis {y['mean_excess_kurtosis']:.2f}; "
            f"y/σ (hyperprior-normalised) — {n['mean_abs_channel_correlation']:.3f}, {n['mean_excess_kurtosis']:.2f} "
            "(a Gaussian has 0 and 0)"
        )

    def _train_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the trained model", "learned.pt", "Model (*.pt)")
        if path:
            self.train(path, self.steps.value(), self.kind.currentText())

    def train(self, path: str, steps: int, kind: str = "hyperprior", N: int = 32, M: int = 48, patch: int = 128, batch: int = 4):
        """Train on the bundled photos (a job with progress), save to ``path`` (atomic, with
        provenance) and select the new model."""
        from engines.codec.learned import default_lambda, default_training_images, save_model, train_job

        lam = default_lambda(kind)

        def factory():
            return train_job(default_training_images(), kind=kind, N=N, M=M, lam=lam, steps=steps, patch=patch, batch=batch, lr=1e-3)

        def on_event(event):
            from engines.jobs import Progress

            if isinstance(event, Progress):
                self.train_status.setText(event.message)

        def done(result):
            from studio.export import make_provenance, save_with_sidecar

            model, config = result
            params = {"kind": kind, "N": N, "M": M, "lam": lam, "steps": steps, "patch": patch, "batch": batch}
            prov = make_provenance("codec", "codec.learned.train", params)
            written = save_with_sidecar(path, lambda tmp: save_model(model, tmp, config), prov, force=True)
            self.trained = (str(written), config)
            self.train_status.setText(f"saved {Path(written).name} ({config['train_seconds']:.0f} s)")
            self.add_model_file(str(written))

        return self._submit("learned-train", f"train learned codec ({steps} steps)", factory, done, on_event)
