"""Render panel crop box: numeric bounds prefilled from the scene, Apply crop, undo/redo, GL wireframe."""

import numpy as np
import pytest

from engines.render.io import save_ply
from engines.render.synthetic import sphere_scene
from panels.render import RenderPanel
from panels.render.viewer import box_edges
from tests.gui_helpers import open_and_wait, shown_gl_render_panel, wait_loaded


@pytest.fixture()
def panel(make_panel):
    widget = make_panel(RenderPanel)
    wait_loaded(widget)  # the bundled sample is read by a job
    return widget


@pytest.fixture()
def scene_path(tmp_path):
    path = tmp_path / "ball.ply"
    save_ply(path, sphere_scene(300, footprint=0.1, sh_degree=0))
    return path


def test_crop_box_prefill_apply_undo(panel, scene_path):
    open_and_wait(panel, scene_path)
    means = panel.scene.means.numpy().astype(np.float64)
    lo, hi = panel.crop_box()
    # prefilled with the scene bounds (rounded outwards to the 4 shown decimals): nothing outside
    assert np.all(lo <= means.min(0)) and np.all(hi >= means.max(0))
    assert np.all(means.min(0) - lo < 1e-4) and np.all(hi - means.max(0) < 1e-4)
    assert not panel.crop_apply_button.isEnabled() and "0 of 300" in panel.crop_info.text()
    assert panel.apply_crop() == 0 and panel.undo_stack.count() == 0
    # keep the half-space x >= centre and z <= 0.2 (typed into the spin boxes as a user would)
    cx = float(np.median(means[:, 0]))
    panel.crop_min[0].setValue(cx)
    panel.crop_max[2].setValue(0.2)
    lo, hi = panel.crop_box()
    expected = np.all((means >= lo) & (means <= hi), axis=1)
    assert 0 < expected.sum() < 300
    assert panel.crop_apply_button.isEnabled()
    assert f"{300 - expected.sum()} of 300" in panel.crop_info.text()
    panel.select_all()
    removed = panel.apply_crop()
    assert removed == 300 - expected.sum() == 300 - len(panel.scene)
    np.testing.assert_array_equal(panel.scene.means.numpy(), means[expected].astype(np.float32))
    assert panel.selection.shape == (len(panel.scene),) and panel.selection.all()  # selection kept for survivors
    assert "Crop box" in panel.undo_stack.undoText()
    panel.undo_stack.undo()
    assert len(panel.scene) == 300
    np.testing.assert_array_equal(panel.scene.means.numpy(), means.astype(np.float32))
    panel.undo_stack.redo()
    assert len(panel.scene) == expected.sum()
    # an inverted box is refused
    panel.crop_min[1].setValue(5.0)
    panel.crop_max[1].setValue(-5.0)
    assert not panel.crop_apply_button.isEnabled() and "min" in panel.crop_info.text()
    assert panel.apply_crop() == 0 and len(panel.scene) == expected.sum()
    # reset and fit-to-selection
    panel.reset_crop_box()
    assert panel.apply_crop() == 0
    panel.clear_selection()
    assert not panel.crop_from_selection_button.isEnabled()
    sel = panel.scene.means.numpy()[:, 1] > np.median(panel.scene.means.numpy()[:, 1])
    panel._set_selection(sel)
    panel.crop_box_from_selection()
    lo, hi = panel.crop_box()
    m = panel.scene.means.numpy()
    assert np.all(lo <= m[sel].min(0)) and np.all(hi >= m[sel].max(0))
    n_before = len(panel.scene)
    panel.apply_crop()
    assert sel.sum() <= len(panel.scene) < n_before  # unselected splats inside the box stay


def test_box_edges_are_the_twelve_cube_edges():
    pts = box_edges([0, 0, 0], [1, 2, 3]).reshape(12, 2, 3)
    diff = np.abs(pts[:, 1] - pts[:, 0])
    assert sorted(map(tuple, np.round(diff, 6))) == sorted([(1, 0, 0)] * 4 + [(0, 2, 0)] * 4 + [(0, 0, 3)] * 4)
    assert {tuple(p) for p in pts.reshape(-1, 3)} == {(x, y, z) for x in (0, 1) for y in (0, 2) for z in (0, 3)}


@pytest.mark.gl
def test_crop_box_wireframe_in_gl_view(panel, scene_path, qtbot):
    shown_gl_render_panel(panel, scene_path)
    qtbot.wait(50)
    lines = panel.canvas.crop_lines
    lo, hi = panel.crop_box()
    assert not lines.visible and not panel.crop_show.isChecked()  # hidden until the user works with the box
    panel.crop_max[1].setValue(float(hi[1]) + 0.05)  # editing a bound shows the box
    assert panel.crop_show.isChecked() and lines.visible
    lo, hi = panel.crop_box()
    np.testing.assert_allclose(lines.pos, box_edges(lo, hi))
    panel.set_background((0, 0, 0))
    panel.sh_degree.setValue(0)
    with_box = panel.canvas.canvas.render()[..., :3].astype(int)
    # the box edges are drawn in cyan: pixels where blue and green clearly exceed red
    cyan = (with_box[..., 2] > 150) & (with_box[..., 1] > 150) & (with_box[..., 0] < 120)
    panel.crop_show.setChecked(False)
    assert not lines.visible
    without = panel.canvas.canvas.render()[..., :3].astype(int)
    cyan_off = (without[..., 2] > 150) & (without[..., 1] > 150) & (without[..., 0] < 120)
    assert cyan.sum() > 200 and cyan.sum() > 5 * max(1, cyan_off.sum())
    panel.crop_show.setChecked(True)
    panel.crop_max[0].setValue(float(lo[0] + 0.5 * (hi[0] - lo[0])))
    lo2, hi2 = panel.crop_box()
    np.testing.assert_allclose(lines.pos, box_edges(lo2, hi2))
    panel.canvas.canvas.close()


def test_still_is_cleared_on_new_scene_and_marked_stale_after_edits(panel, scene_path, qtbot):
    panel.render_still()
    assert panel.services.jobs.wait_all(60)
    qtbot.waitUntil(lambda: panel.still is not None, timeout=5000)
    assert panel.still_caption.text().startswith("Still:") and "out of date" not in panel.still_caption.text()
    panel.select_all()
    panel.delete_selected()  # an edit: the still stays (exportable) but is marked stale
    assert panel.still is not None and "out of date" in panel.still_caption.text()
    panel.undo_stack.undo()
    open_and_wait(panel, scene_path)  # a new scene: the old still is dropped
    assert panel.still is None and panel.still_view.image is None
    assert panel.can_export()  # the scene itself can still be exported
