"""Codec panel GUI flows (offscreen Qt): load, encode, click a block, quant edit + undo,
explorer, compare, RD job with cancel, export, receive, parameters round trip, the Tokens tab."""

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("pytestqt")

from engines.codec.blockcodec import decode
from panels.base import OpenError
from panels.codec import CodecPanel
from studio.export import PendingExport, read_provenance
from tests.gui_helpers import open_and_wait


@pytest.fixture()
def panel(make_panel):
    p = make_panel(CodecPanel)
    p.resize(1200, 800)
    p.p_auto.setChecked(False)
    return p


def _small(seed=0):
    from engines.codec.images import sample_image

    return sample_image("astronaut")[100:228, 150:310].copy()  # 128x160


def _wait(qtbot, cond, timeout=60000):
    qtbot.waitUntil(cond, timeout=timeout)


def test_panel_contract(panel):
    assert panel.name == "codec" and panel.title == "Codec" and panel.icon == "codec.svg"
    for s in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".avif", ".jp2", ".gif", ".sstk"):
        assert s in panel.file_types
    assert panel.can_open("x.JPG") and not panel.can_open("x.ply")
    assert not panel.can_export()


def test_sample_on_first_show_and_encode(panel, qtbot):
    panel.on_shown()  # the sample is decoded by a job
    _wait(qtbot, lambda: panel.image is not None)
    assert panel.image.shape == (512, 512, 3) and not panel.loading
    _wait(qtbot, lambda: panel.result is not None)
    r = panel.result
    assert r.stats["bit_exact"] is True
    assert "bpp" in panel.p_status.text()
    np.testing.assert_array_equal(decode(r.bitstream).image, r.reconstruction)


def test_open_file_encode_click_block(panel, qtbot, tmp_path):
    path = tmp_path / "img.jpg"
    Image.fromarray(_small()).save(path, quality=80)
    open_and_wait(panel, path)
    assert "exact IJG tables, quality 80" in panel.file_info.text()
    _wait(qtbot, lambda: panel.result is not None)
    # a click on the canvas at pixel (x=37, y=21) selects luma block (2, 4)
    panel._on_canvas_click(37.0, 21.0)
    assert panel.selected == (0, 2, 4)
    d = panel.select_block(0, 2, 4)
    assert d["q"].shape == (8, 8)
    assert "bits" in panel.block_text.text()
    panel.block_numbers_kind.setCurrentText("quantized levels")
    assert panel.block_numbers.rowCount() == 8
    assert int(panel.block_numbers.item(0, 0).text()) == int(d["q"][0, 0])
    panel.block_numbers_kind.setCurrentText("coefficients")
    assert float(panel.block_numbers.item(0, 1).text()) == pytest.approx(d["coeffs"][0, 1], abs=0.05)
    assert panel.bi_basis.image is not None and panel.bi_coef.image is not None
    # Cb view with 4:2:0: a click maps to the chroma block grid (16 px per block)
    panel.channel.setCurrentText("Cb")
    panel._on_canvas_click(37.0, 21.0)
    assert panel.selected == (1, 1, 2)


def test_open_gif_shows_its_first_frame(panel, tmp_path):
    y, x = np.mgrid[0:24, 0:32]
    grey = (x * 7 + y * 3).astype(np.uint8)  # < 256 levels: the palette holds every one, the frame is exact
    path = tmp_path / "anim.gif"
    Image.fromarray(grey).save(path, save_all=True, append_images=[Image.fromarray(255 - grey)], duration=80)
    open_and_wait(panel, path)
    np.testing.assert_array_equal(panel.image, np.stack([grey] * 3, -1))
    assert panel.image_name == "anim.gif"


def test_open_bad_file_leaves_panel_unchanged(panel, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(OpenError, match="not a readable image"):
        open_and_wait(panel, bad)
    assert panel.image is None
    with pytest.raises(OpenError):
        panel.receive("volume", np.zeros((2, 2, 2)))
    with pytest.raises(OpenError, match="shape"):
        panel.receive("image", np.zeros((4, 4, 5), np.uint8))


def test_transform_change_and_quant_edit_undo(panel, qtbot):
    panel.receive("image", _small())
    _wait(qtbot, lambda: panel.result is not None)
    base_bpp = panel.result.bpp
    panel.p_n.setCurrentText("16")
    panel.p_transform.setCurrentText("minangle")
    panel.p_alphabet.setCurrentIndex(2)
    panel.result = None
    panel.encode()
    _wait(qtbot, lambda: panel.result is not None)
    assert panel.result.params.transform == "minangle" and panel.result.params.N == 16 and panel.result.params.alphabet == 3
    # rdct is 8-point only: it is disabled at N = 16
    idx = [panel.p_transform.itemText(i) for i in range(panel.p_transform.count())].index("rdct")
    assert not panel.p_transform.model().item(idx).isEnabled()
    # edit a cell of the luma table -> custom preset, undo restores
    panel.p_n.setCurrentText("8")
    panel.p_transform.setCurrentText("dct")
    item = panel.quant_editor.table.item(0, 0)
    item.setText("99")
    assert panel.p_preset.currentText() == "custom"
    assert panel.codec_params().luma_matrix[0, 0] == 99
    panel.undo_stack.undo()
    assert panel.p_preset.currentText() == "jpeg"
    panel.undo_stack.redo()
    panel.result = None
    panel.encode()
    _wait(qtbot, lambda: panel.result is not None)
    assert panel.result.planes[0].Q[0, 0] == 99
    assert panel.result.bpp != base_bpp
    # the quality slider in the editor drives the dock
    panel.quant_editor.quality.setValue(30)
    assert panel.p_quality.value() == 30


def test_explorer_fom_and_compaction(panel, qtbot):
    panel.receive("image", _small())
    panel.tabs.setCurrentIndex(1)
    _wait(qtbot, lambda: bool(panel.fom_rows) and bool(panel.compaction))
    names = [r["transform"] for r in panel.fom_rows]
    assert "rdct" in names and panel.fom_table.rowCount() == len(names)
    dct = next(r for r in panel.fom_rows if r["transform"] == "dct")
    assert dct["coding_gain_db"] == pytest.approx(8.8259, abs=1e-4)
    assert set(panel.compaction) >= {"dct", "wht", "rdct"}
    assert panel.basis_item.image is not None


def test_compare_modes(panel, qtbot):
    img = _small()
    panel.receive("image", img)
    panel.cmp_codec.setCurrentText("jpeg")
    panel.cmp_quality.setValue(30)
    panel.run_compare()
    _wait(qtbot, lambda: panel.compare_result is not None)
    cv = panel.compare
    assert "PSNR RGB" in cv.stats.text() and "Cb" in cv.stats.text()
    b = panel.compare_result["decoded"]
    cv.mode.setCurrentText("Split")
    cv.divider.setValue(40)
    comp = cv.composite()
    np.testing.assert_array_equal(comp[:, :40], img[:, :40])
    np.testing.assert_array_equal(comp[:, 40:], b[:, 40:])
    cv.mode.setCurrentText("Difference")
    cv.gain.setValue(8)
    diff = cv.composite()
    np.testing.assert_array_equal(diff, np.clip(np.abs(img.astype(int) - b.astype(int)) * 8, 0, 255).astype(np.uint8))
    panel.tabs.setCurrentIndex(3)
    panel.show()
    qtbot.waitExposed(panel)
    cv.mode.setCurrentText("Side by side")
    assert cv.view_b.isVisible()
    qtbot.wait(50)
    cv.view_a.setRange(xRange=(10, 30), yRange=(10, 30), padding=0)
    qtbot.wait(50)
    # linked zoom/pan: both views show the same centre at the same zoom
    ra, rb = cv.view_a.viewRect(), cv.view_b.viewRect()
    assert rb.center().x() == pytest.approx(ra.center().x(), abs=0.5)
    assert rb.center().y() == pytest.approx(ra.center().y(), abs=0.5)
    # same zoom: image units per screen pixel
    assert rb.width() / cv.view_b.width() == pytest.approx(ra.width() / cv.view_a.width(), rel=0.02)
    cv.view_b.translateBy(x=5)
    qtbot.wait(20)
    assert cv.view_a.viewRect().center().x() == pytest.approx(cv.view_b.viewRect().center().x(), abs=0.5)
    text = cv.show_pixel(5, 6)
    assert f"A = {tuple(int(v) for v in img[6, 5])}" in text and "B =" in text


def test_rd_job_bd_table_export_and_cancel(panel, qtbot, tmp_path):
    panel.receive("image", _small())
    for k, box in panel.rd_checks.items():
        box.setChecked(k in ("jpeg", "block"))
    panel.rd_qualities.setText("20,40,60,80")
    panel.run_rd()
    _wait(qtbot, lambda: bool(panel.bd_rows), timeout=120000)
    assert len(panel.rd_rows) == 8
    assert panel.bd_table.rowCount() == 2
    assert panel.bd_rows[0]["bd_rate_cubic"] == pytest.approx(0.0, abs=1e-9)
    assert panel.rd_run.isEnabled() and not panel.rd_cancel.isEnabled()
    # BD and the plot on SSIM (dB) instead of PSNR; logarithmic rate axis
    psnr_bd = panel.bd_rows[1]["bd_rate_cubic"]
    panel.rd_metric.setCurrentIndex(panel.rd_metric.findData("ssim"))
    jpeg = [r for r in panel.rd_rows if r["label"] == "jpeg"]
    assert panel.rd_curves["jpeg"]["psnr"][0] == pytest.approx(-10 * np.log10(1 - min(r["ssim"] for r in jpeg)))
    assert panel.bd_rows[1]["bd_rate_cubic"] != psnr_bd and "SSIM" in panel.bd_note.text()
    from engines.codec.rd import BD_METRICS

    assert panel.rd_plot.getAxis("left").labelText == BD_METRICS["ssim"]  # the axis names the metric shown
    panel.rd_logx.setChecked(True)
    assert panel.rd_plot.plotItem.ctrl.logXCheck.isChecked()
    panel.rd_metric.setCurrentIndex(0)
    assert panel.rd_plot.getAxis("left").labelText == BD_METRICS[panel.rd_metric.currentData()]
    csv = panel.export(str(tmp_path / "rd.csv"))
    with open(csv) as handle:
        assert handle.read().count("\n") == 9
    panel.tabs.setCurrentIndex(4)
    png = panel.export(str(tmp_path / "rd.png"))
    assert read_provenance(png)["engine"] == "codec.rd"
    # a long sweep can be cancelled
    panel.rd_qualities.setText(",".join(str(q) for q in range(5, 100, 5)))
    panel.run_rd()
    handle = panel._handles["rd"]
    _wait(qtbot, lambda: len(panel.rd_rows) >= 1)
    panel.cancel_rd()
    _wait(qtbot, lambda: handle.state == "cancelled")
    _wait(qtbot, lambda: panel.rd_run.isEnabled())
    assert len(panel.rd_rows) < 2 * 19


def test_export_image_bitstream_and_parameters(panel, qtbot, tmp_path):
    panel.receive("image", _small())
    _wait(qtbot, lambda: panel.result is not None)
    png = panel.export(str(tmp_path / "out.png"))  # written by a job
    assert isinstance(png, PendingExport) and panel.services.jobs.wait_all(60)
    prov = read_provenance(png)
    assert prov["panel"] == "codec" and prov["parameters"]["transform"] == "dct"
    np.testing.assert_array_equal(np.asarray(Image.open(png)), panel.result.reconstruction)
    bits = panel.export(str(tmp_path / "out.ssbc"))
    with open(bits, "rb") as handle:
        np.testing.assert_array_equal(decode(handle.read()).image, panel.result.reconstruction)
    params = panel.current_parameters()
    params.update(transform="bas2008", quality=33, subsampling="4:4:4", channel="Y")
    panel.restore_parameters(params)
    again = panel.current_parameters()
    assert (again["transform"], again["quality"], again["subsampling"], again["channel"]) == ("bas2008", 33, "4:4:4", "Y")
    before = panel.current_parameters()
    with pytest.raises(OpenError, match="N"):  # refused as a whole, nothing changed
        panel.restore_parameters({"quality": 90, "transform": "nonsense", "N": 999})
    assert panel.current_parameters() == before


def test_real_jpeg_blocks_in_the_inspector(panel, qtbot, tmp_path):
    """An opened JPEG's own coefficients and bits drive the grid, heat map and inspector."""
    path = tmp_path / "real.jpg"
    Image.fromarray(_small()).save(path, quality=60, subsampling=1, progressive=True, restart_marker_blocks=4)
    panel.open_file(str(path))
    _wait(qtbot, lambda: panel.file_blocks is not None and panel.result is not None)
    fb = panel.file_blocks
    assert panel.block_source.currentIndex() == 1 and panel._block_source() is fb
    text = panel.file_info.text()
    assert "restart interval 4 MCUs" in text and "EOI present" in text and "exact IJG tables, quality 60" in text
    assert "Q1 (8-bit)" in text and "our entropy decoder" in text
    # 4:2:2: a Cb block covers 16x8 image pixels; a click at (x=37, y=21) -> Cb block (2, 2)
    panel.channel.setCurrentText("Cb")
    panel._on_canvas_click(37.0, 21.0)
    assert panel.selected == (1, 2, 2)
    d = panel._block_detail
    np.testing.assert_array_equal(d["q"], fb.planes[1].q[2, 2])
    assert d["bits"] == fb.planes[1].bits[2, 2] and "JPEG file" in panel.block_text.text()
    panel.block_numbers_kind.setCurrentText("quantized levels")
    item = panel.block_numbers.item(0, 0)
    if int(item.text()) != 0:
        assert item.foreground().color().lightness() < 60  # dark text on the light highlight
    # back to our codec's blocks
    panel.block_source.setCurrentIndex(0)
    assert panel._block_source() is panel.result


def test_grayscale_jpeg_has_no_chroma_blocks(panel, qtbot, tmp_path):
    path = tmp_path / "gray.jpg"
    Image.fromarray(_small()).convert("L").save(path, quality=70)
    panel.open_file(str(path))
    _wait(qtbot, lambda: panel.file_blocks is not None)
    panel.channel.setCurrentText("Cr")
    panel._on_canvas_click(10.0, 10.0)
    assert panel.selected == (0, 1, 1)  # falls back to the luma plane
    assert len(panel.file_blocks.planes) == 1


def test_compare_two_files_signed_difference_and_size_delta(panel, qtbot, tmp_path):
    """Two files side by side (one a block-codec bitstream), signed difference, size delta,
    pixel values drawn when zoomed in, equal column widths."""
    from engines.codec.blockcodec import BlockCodecParams, encode

    img = _small()
    pa, pb = tmp_path / "a.jpg", tmp_path / "b.ssbc"
    Image.fromarray(img).save(pa, quality=90)
    enc = encode(img, BlockCodecParams(quality=40))
    pb.write_bytes(enc.bitstream)
    panel.show()
    qtbot.waitExposed(panel)
    panel.tabs.setCurrentIndex(3)
    panel._on_compare_drop([str(pa), str(pb)])
    _wait(qtbot, lambda: all(panel.cmp_files.values()))
    _wait(qtbot, lambda: panel.compare.b is not None and panel.compare.a is not None)
    cv = panel.compare
    a = np.asarray(Image.open(pa).convert("RGB"))
    np.testing.assert_array_equal(cv.a, a)
    np.testing.assert_array_equal(cv.b, enc.reconstruction)
    stats = cv.stats.text()
    delta = len(enc.bitstream) - pa.stat().st_size
    assert f"size B − A: {delta:+,} bytes" in stats and "bpp" in stats and "PSNR RGB" in stats
    cv.mode.setCurrentText("Signed difference")
    cv.gain.setValue(3)
    want = np.clip(128 + 3 * (enc.reconstruction.astype(int) - a.astype(int)), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(cv.composite(), want)
    qtbot.wait(50)  # the mode change refits the view once
    # zoomed in: values of the signed difference drawn on the pixels
    cv.view_a.setRange(xRange=(20, 24), yRange=(30, 34), padding=0)
    qtbot.wait(50)
    shown = [it for it in cv._value_items[0] if it.isVisible()]
    assert 4 <= len(shown) <= 64
    d = enc.reconstruction.astype(int) - a.astype(int)
    texts = {it.textItem.toPlainText() for it in shown}
    assert "\n".join(str(v) for v in d[31, 21]) in texts
    cv.view_a.setRange(xRange=(0, 160), yRange=(0, 128), padding=0)
    qtbot.wait(50)
    assert not any(it.isVisible() for it in cv._value_items[0])
    # side by side: equal column widths even with labels of different lengths
    cv.mode.setCurrentText("Side by side")
    qtbot.wait(50)
    assert cv.view_a.width() == pytest.approx(cv.view_b.width(), abs=2)
    # history lists both files; a file of another size is refused with a message
    paths = [panel.cmp_history.itemData(i) for i in range(panel.cmp_history.count())]
    assert str(pa) in paths and str(pb) in paths
    small = tmp_path / "small.png"
    Image.fromarray(img[:64, :64]).save(small)
    panel.load_compare_file("B", str(small))
    _wait(qtbot, lambda: panel.cmp_files["B"]["path"] == str(small))
    assert "Sizes differ" in cv.stats.text() and cv.b is None


def test_learned_tab_trains_encodes_and_reads_out(panel, qtbot, tmp_path):
    panel.receive("image", _small())
    tab = panel.learned_tab
    tab.train(str(tmp_path / "tiny.pt"), steps=2, kind="factorized", N=16, M=16, patch=64, batch=1)
    _wait(qtbot, lambda: tab.trained is not None)
    assert tab.model.currentData() == str(tmp_path / "tiny.pt")
    assert read_provenance(tmp_path / "tiny.pt")["engine"] == "codec.learned.train"
    tab.quality.setValue(60)
    tab.encode()
    _wait(qtbot, lambda: tab.result is not None)
    r = tab.result
    assert r["exact"] is True and r["decoded"].shape == _small().shape
    assert r["bpp"] == pytest.approx(8 * len(r["data"]) / (128 * 160))
    assert r["bits_map"].shape == (8, 10)  # 128x160 / 16
    assert "bpp" in tab.text.text() and "Gaussianization" in tab.text.text()


def test_tokens_tab_trains_live_and_exports(panel, qtbot, tmp_path):
    from engines.codec.token_file import read_tokens

    panel.receive("image", _small())  # 128x160
    tab = panel.tokens_tab
    tab.start("vq-rotation", 8, 6, patch=32, batch=2)
    qtbot.waitUntil(lambda: tab.result is not None, timeout=60000)
    r = tab.result
    assert len(tab.history) == 6 and tab.history[-1]["step"] == 6  # eval every step (6 // 25 -> 1)
    xs, ys = tab.curves["psnr"].getData()
    assert len(xs) == 6 and np.allclose(ys, [h["psnr"] for h in tab.history])
    assert np.allclose(tab.curves["utilisation"].getData()[1], [100 * h["utilisation"] for h in tab.history])
    assert r["original"].shape == r["reconstruction"].shape == (128, 160, 3)
    from engines.codec.metrics import ssim

    assert r["final"]["ssim"] == pytest.approx(ssim(r["original"], r["reconstruction"]), abs=1e-6)
    assert len(tab.curves["ssim"].getData()[0]) == 6 and len(tab.curves["coded_bits_per_token"].getData()[0]) == 6
    assert r["indices"].shape == (32, 40)
    mse = np.mean((r["original"].astype(float) - r["reconstruction"]) ** 2)
    assert 10 * np.log10(255**2 / mse) == pytest.approx(r["final"]["psnr"], abs=0.05)  # uint8 rounding only
    assert "bits/token" in tab.text.text() and tab.export_btn.isEnabled() and tab.train_btn.isEnabled()
    out = tab.export(str(tmp_path / "t.sstk"))
    back = read_tokens(out.read_bytes())
    np.testing.assert_array_equal(back["indices"], r["indices"])
    assert back["codes"] == 256 and back["quantizer"] == "vq-rotation"
    assert read_provenance(out)["engine"] == "codec.tokens.train"


def test_token_file_opens_decoded_with_the_tokenizer_trained_in_the_tab(panel, make_panel, qtbot, tmp_path):
    from engines.codec.token_lab import decode_indices

    panel.receive("image", _small())  # 128x160
    tab = panel.tokens_tab
    tab.start("fsq", 8, 2, patch=32, batch=2)
    qtbot.waitUntil(lambda: tab.result is not None, timeout=60000)
    r = tab.result
    out = tab.export(str(tmp_path / "t.sstk"))
    assert panel.accepts(str(out), "sstk")
    panel.receive("image", np.zeros((16, 16, 3), np.uint8))
    open_and_wait(panel, out)  # encode -> .sstk -> open: the tokens decoded by the tokenizer that made them
    np.testing.assert_array_equal(panel.image, r["reconstruction"])
    np.testing.assert_array_equal(panel.image, decode_indices(r["model"], r["indices"]))
    assert panel.image_name == "t.sstk" and "t.sstk" in panel.file_info.text()
    fresh = make_panel(CodecPanel)  # no tokenizer trained there: a message naming what is missing, image unchanged
    before = fresh.image
    with pytest.raises(OpenError, match=r"t.sstk needs the tokenizer that made it \(fsq, 240 codes, weights sha256 "
                                        r"[0-9a-f]{12}…\), which is not available. No tokenizer ships with the studio"):
        open_and_wait(fresh, out)
    assert fresh.image is before


def test_tokens_tab_pause_and_cancel(panel, qtbot):
    panel.receive("image", _small())
    tab = panel.tokens_tab
    h = tab.start("fsq", 8, 1000, patch=32, batch=2)
    qtbot.waitUntil(lambda: len(tab.history) >= 1, timeout=60000)
    tab.toggle_pause()
    qtbot.waitUntil(lambda: h.state == "paused", timeout=10000)
    assert tab.pause_btn.text() == "Resume"
    tab.toggle_pause()
    qtbot.waitUntil(lambda: h.state == "running", timeout=10000)
    tab.cancel()
    qtbot.waitUntil(lambda: h.state == "cancelled", timeout=20000)
    qtbot.waitUntil(lambda: tab.train_btn.isEnabled(), timeout=5000)
    assert tab.result is None and not tab.cancel_btn.isEnabled() and len(tab.history) < 25  # eval every 40 steps: stopped long before the 1000th


def test_learned_and_tokens_tabs_are_built_on_first_use_or_as_pending_builds(panel):
    """The two tabs with nine plots between them are placeholders until used: selecting one builds it
    in place (same position and title, still selected); pending_builds() builds the rest; the
    attributes build on access."""
    from panels.codec.learned_tab import LearnedTab
    from panels.codec.tokens_tab import TokensTab

    titles = [panel.tabs.tabText(i) for i in range(panel.tabs.count())]
    assert titles[-2:] == ["Learned codec", "Tokens"]
    assert not any(isinstance(panel.tabs.widget(i), (LearnedTab, TokensTab)) for i in range(panel.tabs.count()))
    builds = panel.pending_builds()
    assert len(builds) == 2
    tokens_index = titles.index("Tokens")
    panel.tabs.setCurrentIndex(tokens_index)  # as a click on the tab does
    assert isinstance(panel.tabs.widget(tokens_index), TokensTab) and panel.tabs.currentIndex() == tokens_index
    assert panel.tokens_tab is panel.tabs.widget(tokens_index)
    assert len(panel.pending_builds()) == 1
    for build in builds:
        build()  # the tokens one finds its tab built
    assert isinstance(panel.tabs.widget(titles.index("Learned codec")), LearnedTab)
    assert panel.learned_tab is panel.tabs.widget(titles.index("Learned codec"))
    assert [panel.tabs.tabText(i) for i in range(panel.tabs.count())] == titles
    assert panel.tabs.currentIndex() == tokens_index and panel.pending_builds() == []


def test_tokens_tab_adds_its_plots_a_few_per_step_and_all_when_shown_or_used(panel, qtbot):
    """The Tokens tab starts with two of its six curve plots; its pending builds add two each; being
    shown (or training) adds the rest at once, in the grid's order."""
    from panels.codec.tokens_tab import SERIES

    tab = panel.tokens_tab
    assert len(tab.curves) == 2 and len(tab.pending_builds()) == 2
    tab.pending_builds()[0]()
    assert list(tab.curves) == [key for key, _title, _unit in SERIES[:4]]
    panel.show()
    panel.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(tab.isVisible, timeout=5000)
    assert list(tab.curves) == [key for key, _title, _unit in SERIES] and tab.pending_builds() == []
    titles = [tab.plots.getItem(i // 2, i % 2).titleLabel.text for i in range(len(SERIES))]
    assert titles == [title for _key, title, _unit in SERIES]
