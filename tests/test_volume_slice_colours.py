"""The slice views' colours through the per-value table of an integer volume equal the per-voxel
TF evaluation (the reference formula), also after TF edits and for values at the range's ends."""

import numpy as np

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
