"""``B − A`` is computed in one place (engines.codec.difference.signed_difference), signed and
without wrap-around for uint8 and uint16 images, and the compare view's difference image, zoomed
pixel values and hover read-out all agree with it on a pixel."""

from __future__ import annotations

import numpy as np
import pytest

from engines.codec.difference import difference_dtype, signed_difference


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_signed_difference_matches_numpy_in_python_ints(dtype):
    top = np.iinfo(dtype).max
    rng = np.random.default_rng(11)
    a = rng.integers(0, top + 1, (37, 23, 3), dtype=dtype)
    b = rng.integers(0, top + 1, (37, 23, 3), dtype=dtype)
    a[0, 0], b[0, 0] = (top, 0, 5), (0, top, 5)  # the extremes: −top, +top, 0
    want = b.astype(np.int64) - a.astype(np.int64)  # independent: wide integers, no wrap possible
    got = signed_difference(a, b)
    assert got.dtype.kind == "i" and got.dtype.itemsize == 2 * np.dtype(dtype).itemsize
    np.testing.assert_array_equal(got, want)
    assert tuple(got[0, 0]) == (-int(top), int(top), 0)
    np.testing.assert_array_equal(signed_difference(a[5, 7], b[5, 7]), want[5, 7])  # one pixel too


def test_difference_dtype_and_shape_check():
    assert difference_dtype(np.uint8) == np.int16 and difference_dtype(np.int16) == np.int32
    assert difference_dtype(np.uint32) == np.int64 and difference_dtype(np.float32) == np.float32
    assert difference_dtype(np.uint8, np.uint16) == np.int32
    with pytest.raises(ValueError, match="differ in size"):
        signed_difference(np.zeros((2, 3, 3), np.uint8), np.zeros((3, 2, 3), np.uint8))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_compare_view_callers_agree_on_a_pixel(qtbot, dtype):
    pytest.importorskip("pytestqt")
    from panels.codec.widgets import CompareView

    top = int(np.iinfo(dtype).max)
    rng = np.random.default_rng(3)
    a = rng.integers(0, top + 1, (20, 30, 3), dtype=dtype)
    b = rng.integers(0, top + 1, (20, 30, 3), dtype=dtype)
    y, x = 7, 11
    base = top - 100  # uint16: above 32767, where an int16 cast wraps
    a[y, x] = (base, 60, base - 40)
    b[y, x] = (base + 50, 55, base - 140)
    want = (50, -5, -100)
    view = CompareView()
    qtbot.addWidget(view)
    view.set_pair(a, b, "A", "B")
    np.testing.assert_array_equal(view.signed_difference()[y, x], want)
    assert f"B − A = {want}" in view.show_pixel(x, y)  # hover read-out
    view.mode.setCurrentText("Signed difference")
    view.gain.setValue(1)
    np.testing.assert_array_equal(view._values_shown(0, y, y + 1, x, x + 1)[0, 0], want)  # zoomed values
    np.testing.assert_array_equal(view.composite()[y, x], [128 + d for d in want])  # difference image
    view.mode.setCurrentText("Difference")
    np.testing.assert_array_equal(view._values_shown(0, y, y + 1, x, x + 1)[0, 0], [abs(d) for d in want])
    np.testing.assert_array_equal(view.composite()[y, x], [abs(d) for d in want])
