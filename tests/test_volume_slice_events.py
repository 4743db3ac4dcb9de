"""Per-event work of the Volume slice views, checked against the full computations: the slice
colours through the per-value table of an integer volume equal the per-voxel TF evaluation (also
after TF edits and at the range's ends); a brush drag's overlay drawn step by step equals the one
built from scratch; a stroke's repeats are removed as ``np.unique(axis=0)`` does."""

import numpy as np
import pytest

from engines.volume.classify import unique_voxels
from engines.volume.model import Volume
from engines.volume.tf import TransferFunction1D
from panels.volume.panel import slice_colours


def test_integer_volume_slices_through_the_table_equal_the_per_voxel_colours(make_panel, qtbot):
    from panels.volume import VolumePanel

    panel = make_panel(VolumePanel)
    rng = np.random.default_rng(7)
    data = rng.integers(-1024, 3000, (9, 20, 24), dtype=np.int16)
    panel.set_volume(Volume(data), None)
    for tf in (TransferFunction1D(color=[(-500.0, 0.1, 0.2, 0.9), (40.0, 1.0, 0.5, 0.0), (2500.0, 1.0, 1.0, 1.0)],
                                  opacity=[(-1024.0, 0.0), (37.5, 0.33), (41.0, 0.9), (3000.0, 0.05)]),
               TransferFunction1D(opacity=[(100.0, 0.0), (101.0, 1.0)])):
        panel.set_tf(tf)
        panel.set_cursor(4, 11, 7)
        for axis in range(3):
            index = [slice(None)] * 3
            index[axis] = panel.cursor[axis]
            want = slice_colours(tf, panel._clim, data[tuple(index)])  # voxel by voxel
            got = panel.slice_rgb(axis)
            assert got.dtype == np.uint8 and np.array_equal(got, want)
        assert panel._slice_table_cache is not None  # the table was used
    ends = np.array([data.min(), data.max()])
    first, colours = panel._slice_table()
    np.testing.assert_array_equal(colours[ends - first], slice_colours(panel.tf, panel._clim, ends))


def test_float_volume_slices_are_evaluated_per_voxel(make_panel, qtbot):
    from panels.volume import VolumePanel

    panel = make_panel(VolumePanel)
    data = np.random.default_rng(8).random((6, 10, 12)).astype(np.float32)
    panel.set_volume(Volume(data), None)
    want = slice_colours(panel.tf, panel._clim, data[:, :, panel.cursor[2]])
    np.testing.assert_array_equal(panel.slice_rgb(2), want)
    assert panel._slice_table() is None


def test_a_brush_drag_draws_only_its_new_voxels_and_commits_every_painted_voxel_once(make_panel, qtbot):
    """Each drag step draws its disc into the overlay kept for the stroke; the overlay shown equals the
    one built from scratch, and the committed stroke is the set of every disc's voxels."""
    from panels.volume import VolumePanel

    panel = make_panel(VolumePanel)
    data = np.random.default_rng(9).integers(0, 500, (12, 40, 50), dtype=np.int16)
    panel.set_volume(Volume(data), None)
    panel.paint_check.setChecked(True)
    panel.brush = 3
    panel.set_cursor(5, 20, 25)
    want = set()
    centres = [(5, 2, 3), (5, 4, 6), (5, 6, 9), (5, 37, 47), (5, 38, 48)]  # clipped at the edges too
    for step, (z, y, x) in enumerate(centres):
        panel.paint_at(0, (z, y, x), finish=False)
        want |= {(z, y + dy, x + dx) for dy in range(-3, 4) for dx in range(-3, 4)
                 if dy * dy + dx * dx <= 9 and 0 <= y + dy < 40 and 0 <= x + dx < 50}
        shown = panel.slice_views[0].overlay.image
        np.testing.assert_array_equal(shown, panel._overlay(0), err_msg=f"step {step}")
    assert panel.strokes.voxels == {}
    panel._commit_stroke()
    ((_cls, voxels),) = panel.strokes.voxels.items()
    assert voxels.dtype == np.int64 and [tuple(v) for v in voxels] == sorted(want)  # once each, sorted


def test_unique_voxels_equals_numpy_unique_rows():
    rng = np.random.default_rng(10)
    shape = (7, 300, 11)
    voxels = np.stack([rng.integers(0, n, 5000) for n in shape], 1)
    voxels = np.concatenate([voxels, voxels[::3]])  # repeats
    got = unique_voxels(voxels, shape)
    assert got.dtype == np.int64 and np.array_equal(got, np.unique(voxels, axis=0))
    assert unique_voxels(np.zeros((0, 3), int), shape).shape == (0, 3)


@pytest.mark.parametrize("brush", [1, 6, 20])
def test_a_fast_drag_step_paints_the_whole_band_it_swept(make_panel, qtbot, brush):
    """One drag step that crossed many voxels paints (nearly) every disc along its way: at least the
    discs of radius brush − 1 around each crossed voxel, nothing outside the discs of radius brush."""
    from engines.volume.classify import disc_voxels
    from panels.volume import VolumePanel
    from panels.volume.slices import segment_points

    panel = make_panel(VolumePanel)
    panel.set_volume(Volume(np.zeros((5, 90, 120), np.int16)), None)
    panel.paint_check.setChecked(True)
    panel.brush = brush
    panel.set_cursor(2, 0, 0)
    rows, cols = segment_points(20.3, 10.6, 70.2, 105.9, first=True)
    panel._on_pointer(0, rows, cols, drag=True, finish=True)
    painted = {tuple(v) for v in panel.strokes.voxels[0]}
    crossed = {(2, int(r), int(c)) for r, c in zip(rows, cols)}

    def discs(radius):
        return {tuple(v) for c in crossed for v in disc_voxels(c, 0, radius, panel.volume.shape)}

    assert discs(max(brush - 1, 0)) <= painted <= discs(brush)
