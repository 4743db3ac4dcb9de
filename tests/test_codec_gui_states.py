"""Codec panel: empty states, hints, fitted views and the auto-selected block (offscreen Qt)."""

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from panels.codec import CodecPanel


@pytest.fixture()
def panel(make_panel):
    p = make_panel(CodecPanel)
    p.resize(1200, 800)
    p.p_auto.setChecked(False)
    return p


def _small():
    from engines.codec.images import sample_image

    return sample_image("coffee")[:96, :128].copy()


def test_empty_state_hints_and_disabled_exports(panel):
    # the drop hint is in the middle of the visible range (not cut off at the left edge)
    rect = panel.canvas.view.viewRect()
    pos = panel.canvas.placeholder.pos()
    assert panel.canvas.placeholder.isVisible()
    assert rect.left() < pos.x() < rect.right() and rect.top() < pos.y() < rect.bottom()
    assert panel.compaction_plot._hint_item is not None and "Load an image" in panel.compaction_plot._hint_item.toPlainText()
    assert panel.rd_plot._hint_item is not None
    assert not panel.rd_export_csv.isEnabled() and not panel.rd_export_png.isEnabled()
    assert panel.rd_progress.text() == "no sweep yet"
    assert "No image yet" in panel.compare.label_a.text
    assert not panel.can_export()


def test_first_encode_selects_the_costliest_block(panel, qtbot):
    panel.receive("image", _small())
    qtbot.waitUntil(lambda: panel.result is not None, timeout=60000)
    bits = panel.result.planes[0].bits
    by, bx = np.unravel_index(int(np.argmax(bits)), bits.shape)
    assert panel.selected == (0, int(by), int(bx))
    assert "bits" in panel.block_text.text() and panel.block_numbers.rowCount() == 8


def test_fom_table_cells_are_short_and_explained(panel, qtbot):
    panel.refresh_explorer()
    qtbot.waitUntil(lambda: bool(panel.fom_rows), timeout=60000)
    col = panel.fom_table.columnCount() - 1
    texts = [panel.fom_table.item(i, col).text() for i in range(panel.fom_table.rowCount())]
    assert all(len(t) <= 30 for t in texts)
    sdct = next(i for i in range(panel.fom_table.rowCount()) if panel.fom_table.item(i, 0).text() == "sdct")
    assert panel.fom_table.item(sdct, 6).text() == "24"
    assert "additions/shifts only" in panel.fom_table.item(sdct, col).toolTip()


def test_compare_view_fits_the_image_when_its_tab_is_shown(panel, qtbot):
    img = _small()
    panel.receive("image", img)  # compare tab hidden: its views have no size yet
    panel.cmp_codec.setCurrentText("jpeg")
    panel.run_compare()
    qtbot.waitUntil(lambda: panel.compare_result is not None, timeout=60000)
    panel.show()
    qtbot.waitExposed(panel)
    panel.tabs.setCurrentIndex(3)
    cv = panel.compare

    def fitted():
        r = cv.view_a.viewRect()
        # the whole image is in view and it fills the view in at least one direction
        inside = r.left() <= 0.5 and r.top() <= 0.5 and r.right() >= img.shape[1] - 0.5 and r.bottom() >= img.shape[0] - 0.5
        return inside and (r.width() <= 1.1 * img.shape[1] or r.height() <= 1.1 * img.shape[0])

    qtbot.waitUntil(fitted, timeout=5000)
    # in split mode the hidden B view takes no room: A spans (almost) the whole canvas
    assert cv.view_a.width() > 0.9 * cv.canvas.width()
