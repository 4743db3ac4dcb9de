"""What the Codec panel shows of an encode result is prepared by the encode job (engines.codec.result_view),
equals an independent computation (picture, bits heat map, costliest block, its numbers), and a slow
preparation never stalls the GUI thread (neither after an encode nor after a channel switch)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PIL import Image

from engines.codec.blockcodec import BlockCodecParams, encode
from engines.codec.result_view import costliest_block, overlay_bits, result_view

#: JPEG (BT.601 full range) luma and chroma weights, written out here (not the engine's matrix)
_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def _photo(h: int, w: int, grey: bool = False) -> np.ndarray:
    from engines.codec.images import sample_image

    image = sample_image("coffee")[:h, :w].copy()  # 400×600
    if grey:
        image = np.repeat(image[..., 1:2], 3, axis=-1)
    return image


def _grey_view(image: np.ndarray, channel: str) -> np.ndarray:
    """The picture of ``channel`` computed here: one weighted sum per pixel, rounded, as grey RGB."""
    if channel == "RGB":
        return image
    i = {"Y": 0, "Cb": 1, "Cr": 2}[channel]
    plane = image.astype(np.float64) @ _YCC[i] + (0.0 if i == 0 else 128.0)
    return np.repeat(np.clip(np.rint(plane), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


def _bits_reference(result) -> np.ndarray:
    """Bits per luma block with every 4:2:0 chroma block's bits spread over the 2×2 luma blocks it
    covers (parts past the luma grid of an odd size on its last row / column): a loop per block."""
    luma = result.planes[0].bits
    want = luma.astype(np.float64).copy()
    h, w = luma.shape
    for plane in result.planes[1:]:
        for (y, x), value in np.ndenumerate(plane.bits):
            for dy in (0, 1):
                for dx in (0, 1):
                    want[min(2 * y + dy, h - 1), min(2 * x + dx, w - 1)] += value / 4.0
    return want


def _first_max(bits: np.ndarray) -> tuple[int, int]:
    best, where = -np.inf, None
    for (y, x), value in np.ndenumerate(bits):
        if value > best:
            best, where = value, (y, x)
    return where


def _luma_coefficients(image: np.ndarray, by: int, bx: int, n: int) -> np.ndarray:
    """DCT-II (orthonormal, scipy) of luma block (by, bx) of ``image``, edge-padded, level-shifted."""
    from scipy.fft import dctn

    luma = image.astype(np.float64) @ _YCC[0]
    h, w = luma.shape
    padded = np.pad(luma, ((0, -h % n), (0, -w % n)), mode="edge")
    return dctn(padded[by * n : (by + 1) * n, bx * n : (bx + 1) * n] - 128.0, norm="ortho")


@pytest.mark.parametrize("grey", [False, True])
def test_result_view_equals_an_independent_computation_on_an_odd_size(grey):
    image = _photo(389, 517, grey)
    result = encode(image, BlockCodecParams(quality=60, subsampling="4:2:0"))
    recon = result.reconstruction
    for channel in ("RGB", "Y", "Cb", "Cr"):
        view = result_view(result, recon, channel)
        want_picture = _grey_view(recon, channel)
        assert view.image.shape == recon.shape and view.image.dtype == np.uint8
        assert np.abs(view.image.astype(int) - want_picture).max() <= 1  # rounding of x.5 may differ
        assert np.mean(view.image != want_picture) < 1e-3
        want_bits = {"RGB": _bits_reference(result), "Y": result.planes[0].bits, "Cb": result.planes[1].bits,
                     "Cr": result.planes[2].bits}[channel]
        np.testing.assert_allclose(view.bits, want_bits, rtol=1e-12)
        assert view.heat.dtype == np.float32 and np.allclose(view.heat, want_bits, rtol=1e-6)
        assert view.block == ((8, 8) if channel in ("RGB", "Y") else (16, 16))  # a 4:2:0 chroma block: 16 px
        assert view.peak == pytest.approx(float(np.max(want_bits)))
        assert view.bits.shape == ((389 + 7) // 8, (517 + 7) // 8) if channel in ("RGB", "Y") else True
        by, bx = _first_max(result.planes[0].bits)
        assert view.costliest == (0, by, bx)
        d = view.details
        assert d["block"] == (by, bx) and d["bits"] == pytest.approx(float(result.planes[0].bits[by, bx]))
        np.testing.assert_allclose(d["coeffs"], _luma_coefficients(image, by, bx, 8), atol=1e-6)
        np.testing.assert_array_equal(d["q"], np.rint(d["coeffs"] / result.planes[0].Q))
    if grey:  # no chroma detail: the chroma planes cost (nearly) nothing
        assert result.planes[1].bits.max() <= result.planes[0].bits.max()


def test_result_view_of_the_original_picture_and_without_blocks():
    image = _photo(37, 29)
    result = encode(image, BlockCodecParams(N=16, subsampling="4:4:4"))
    view = result_view(result, image, "Y")
    np.testing.assert_array_equal(view.image, result_view(None, image, "Y").image)
    assert np.abs(view.image.astype(int) - _grey_view(image, "Y")).max() <= 1
    assert view.block == (16, 16) and view.bits.shape == (3, 2)
    assert overlay_bits(result, "Cb")[1] == (16, 16)  # 4:4:4: chroma blocks as large as luma blocks
    bare = result_view(None, image, "RGB")
    assert bare.image is image and bare.bits is None and bare.costliest is None and bare.details is None
    assert costliest_block(result) == (0, *_first_max(result.planes[0].bits))


def test_a_grayscale_jpeg_has_no_chroma_overlay(tmp_path):
    from engines.codec.jpeg_internals import read_jpeg_internals

    path = tmp_path / "grey.jpg"
    Image.fromarray(_photo(40, 56)[..., 0]).save(path, quality=70)
    internals = read_jpeg_internals(str(path))
    picture = np.zeros((40, 56, 3), np.uint8)
    view = result_view(internals, picture, "Cb")
    assert view.bits is None and view.heat is None and view.peak == 0.0
    luma = result_view(internals, picture, "Y")
    np.testing.assert_array_equal(luma.bits, internals.planes[0].bits)
    assert luma.costliest == (0, *_first_max(internals.planes[0].bits))


# -- in the real panel ------------------------------------------------------------------------------
pytest.importorskip("pytestqt")

from tests.test_codec_gui import panel  # noqa: F401  (the Codec panel fixture)


def _table_numbers(table) -> np.ndarray:
    return np.array([[float(table.item(i, j).text()) for j in range(table.columnCount())]
                     for i in range(table.rowCount())])


def test_the_panel_shows_the_encode_jobs_view_matching_an_independent_computation(panel, qtbot, tmp_path,  # noqa: F811
                                                                                  monkeypatch):
    import engines.codec.result_view as result_view_module
    from tests.gui_helpers import open_and_wait

    threads = []
    real = result_view_module.result_view

    def recording(*args):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*args)

    monkeypatch.setattr(result_view_module, "result_view", recording)
    image = _photo(389, 517)
    path = tmp_path / "coffee.png"
    Image.fromarray(image).save(path)
    open_and_wait(panel, path)  # opened, then encoded by a job (with the view prepared on its worker)
    qtbot.waitUntil(lambda: panel.result is not None and panel.services.jobs.wait_all(1), timeout=60000)
    assert threads == [False]  # made once, by the encode job's worker
    result = panel.result
    recon = result.reconstruction
    np.testing.assert_array_equal(panel.canvas.image_item.image, recon)  # RGB, decoded: the reconstruction
    want_bits = _bits_reference(result)
    np.testing.assert_allclose(panel.canvas.heat.image, want_bits, rtol=1e-6)
    assert tuple(panel.canvas.heat.levels) == pytest.approx((0.0, want_bits.max()))
    by, bx = _first_max(result.planes[0].bits)
    assert panel.selected == (0, by, bx)
    assert panel.canvas.selection.rect().getRect() == (bx * 8, by * 8, 8, 8)
    assert f"({by}, {bx})" in panel.block_text.text()
    assert panel.block_numbers_kind.currentText() == "coefficients"
    np.testing.assert_allclose(_table_numbers(panel.block_numbers), _luma_coefficients(image, by, bx, 8), atol=0.051)
    panel.block_numbers_kind.setCurrentText("quantized levels")
    levels = np.rint(_luma_coefficients(image, by, bx, 8) / result.planes[0].Q)
    np.testing.assert_array_equal(_table_numbers(panel.block_numbers), levels)
    from qtpy.QtCore import Qt

    marked = [[panel.block_numbers.item(i, j).background().style() != Qt.BrushStyle.NoBrush for j in range(8)]
              for i in range(8)]
    np.testing.assert_array_equal(marked, levels != 0)  # non-zero levels marked, the rest not (items reused)
    # another channel of this small image: made at once on the GUI thread (≤ 1 Mpx), equal to the reference
    panel.channel.setCurrentText("Cr")
    assert threads == [False, True]
    assert np.abs(panel.canvas.image_item.image.astype(int) - _grey_view(recon, "Cr")).max() <= 1
    np.testing.assert_allclose(panel.canvas.heat.image, result.planes[2].bits, rtol=1e-6)
    panel.overlay.setChecked(False)  # the same view: nothing made again
    assert threads == [False, True] and not panel.canvas.heat.isVisible()
    # a new image while Cr is picked: its Cr picture at once, no heat map until its own encode
    panel.overlay.setChecked(True)
    other = _photo(120, 90)
    panel.set_image(other, "other", None)
    assert threads == [False, True, True]
    assert np.abs(panel.canvas.image_item.image.astype(int) - _grey_view(other, "Cr")).max() <= 1
    assert not panel.canvas.heat.isVisible() and not panel.canvas.selection.isVisible()


def _longest_gap_ms(qtbot, start, until, timeout_ms=60000) -> float:
    """Run ``start()`` and the event loop until ``until()``; the longest gap between 5 ms timer ticks."""
    from qtpy.QtCore import QElapsedTimer, QTimer

    from studio.gc_guard import collections_paused

    ticks, clock = [], QElapsedTimer()
    clock.start()
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(clock.elapsed()))
    with collections_paused():  # a collection on the GUI thread is not the preparation
        timer.start(5)
        qtbot.wait(30)
        began = clock.elapsed()
        start()
        qtbot.waitUntil(until, timeout=timeout_ms)
        qtbot.wait(30)
        timer.stop()
    return float(np.diff([began, *[t for t in ticks if t >= began]]).max())


SLOW_S = 0.3


def test_a_slow_view_preparation_does_not_stall_the_gui_thread(panel, qtbot, monkeypatch):  # noqa: F811
    """Preparing the view takes 0.3 s (patched): the encode job's result is shown, and the event loop
    runs through a channel switch of a large image (> 1 Mpx: its view made by a job), in less than half
    of that. (Not the event loop over the whole encode: the encoder itself holds the GIL at times.)"""
    import engines.codec.result_view as result_view_module

    real, made_on = result_view_module.result_view, []

    def slow(*args):
        made_on.append(threading.current_thread() is threading.main_thread())
        time.sleep(SLOW_S)
        return real(*args)

    monkeypatch.setattr(result_view_module, "result_view", slow)
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (1030, 1100, 3), dtype=np.uint8)  # 1.13 Mpx: over the GUI-thread limit
    panel.show()
    handled, on_encoded = [], panel._on_encoded

    def timed(encoded):  # the job's result callback, on the GUI thread
        start = time.perf_counter()
        on_encoded(encoded)
        handled.append(1000 * (time.perf_counter() - start))

    monkeypatch.setattr(panel, "_on_encoded", timed)
    panel.set_image(image, "noise", None)  # shows the image, starts the encode job
    qtbot.waitUntil(lambda: panel.result is not None, timeout=60000)
    assert len(handled) == 1 and handled[0] < SLOW_S * 1000 / 2, f"showing the result took {handled[0]:.0f} ms"
    assert made_on == [False] and panel.selected is not None
    recon = panel.result.reconstruction
    gap = _longest_gap_ms(qtbot, lambda: panel.channel.setCurrentText("Y"),
                          lambda: panel._view is not None and panel._view.channel == "Y" and panel.services.jobs.wait_all(0.01))
    assert gap < SLOW_S * 1000 / 2, f"the event loop stalled {gap:.0f} ms on a channel switch"
    assert made_on == [False, False]
    assert np.abs(panel.canvas.image_item.image.astype(int) - _grey_view(recon, "Y")).max() <= 1
    np.testing.assert_allclose(panel.canvas.heat.image, panel.result.planes[0].bits, rtol=1e-6)


def test_a_jpegs_facts_and_tables_are_shown_in_a_text_view_hidden_while_empty(panel, tmp_path):  # noqa: F811
    from qtpy.QtWidgets import QTextBrowser

    from tests.gui_helpers import open_and_wait

    panel.show()
    assert isinstance(panel.file_info, QTextBrowser) and not panel.file_info.isVisible()
    path = tmp_path / "coffee.jpg"
    Image.fromarray(_photo(64, 80)).save(path, quality=80)
    open_and_wait(panel, path)
    assert panel.services.jobs.wait_all(60)  # the encode and the JPEG's blocks
    shown = panel.file_info.toPlainText()
    assert panel.file_info.isVisible() and "coffee.jpg: " in shown and "exact IJG tables, quality 80" in shown
    luma_table = Image.open(path).quantization[0]  # Pillow's reading of the file's DQT (natural order)
    assert " ".join(map(str, luma_table[:8])) in " ".join(shown.split())  # its first row
    assert "our entropy decoder" in shown  # completed once the blocks were decoded
    panel.receive("image", _photo(16, 16))  # not from a file: no facts, nothing shown
    assert panel.file_info.text() == "" and not panel.file_info.isVisible()


def test_the_decoded_png_is_written_by_a_job_after_the_target_is_checked(panel, qtbot, tmp_path, monkeypatch):  # noqa: F811
    import studio.export
    from panels.base import OpenError
    from studio.export import PendingExport, read_provenance

    real, threads = studio.export.save_png, []

    def recording(*args, **kwargs):
        threads.append(threading.current_thread() is threading.main_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(studio.export, "save_png", recording)
    panel.receive("image", _photo(33, 47))
    qtbot.waitUntil(lambda: panel.result is not None, timeout=60000)
    out = panel.export(str(tmp_path / "decoded.png"))
    assert isinstance(out, PendingExport) and panel.services.jobs.wait_all(60)
    assert threads == [False]  # compressed and written on a worker
    np.testing.assert_array_equal(np.asarray(Image.open(out)), panel.result.reconstruction)
    assert read_provenance(out)["parameters"]["transform"] == panel.result.params.transform
    with pytest.raises(OpenError, match="exists"):  # no overwrite without force: refused at once, no job
        panel.export(str(out))
    assert threads == [False]
