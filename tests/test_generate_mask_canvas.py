"""The Generate panel's mask / sketch brush: the painted discs equal an independent full-image
computation (also clipped at the edges), the caller's image is never drawn into, and the shown
thumbnail marks every painted block even on an image much larger than the widget."""

import numpy as np
import pytest
from qtpy.QtCore import QSize

from panels.generate.widgets import MaskCanvas


def reference_disc(shape, x, y, r):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return (xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= r ** 2


@pytest.mark.parametrize("x, y, r", [(100.3, 200.7, 4.0), (0.0, 0.0, 6.0), (1023.9, 767.2, 9.5), (-3.0, 50.0, 4.0),
                                      (2000.0, 50.0, 4.0)])
def test_brush_discs_match_the_full_image_reference(qtbot, x, y, r):
    canvas = MaskCanvas()
    qtbot.addWidget(canvas)
    image = np.random.default_rng(0).integers(0, 255, (768, 1024, 3), dtype=np.uint8)
    original = image.copy()
    canvas.set_image(image)
    canvas.brush = r
    canvas.paint_at(x, y, 1.0)
    expected = reference_disc((768, 1024), x, y, r)
    assert np.array_equal(canvas._mask > 0, expected)
    canvas.paint_at(x, y, 1.0, "sketch")
    drawn = expected[..., None] & np.ones(3, bool)
    assert np.array_equal(canvas.image()[drawn], np.full(drawn.sum(), 255, np.uint8))
    assert np.array_equal(canvas.image()[~drawn], original[~drawn])
    assert np.array_equal(image, original)  # the caller's array is untouched


def test_thumbnail_shows_each_painted_block_on_a_large_image(qtbot):
    canvas = MaskCanvas()
    qtbot.addWidget(canvas)
    canvas.set_image(np.zeros((2048, 2048, 3), np.uint8))
    canvas.brush = 1.0  # a 2 px dot: thinner than one shown pixel (2048 / 180 ≈ 11 image pixels)
    canvas.paint_at(1000.5, 300.5)
    canvas.paint_at(5.5, 2040.5)
    step, thumb, shown_mask = canvas._thumb
    assert step > 1
    painted = canvas._mask > 0
    blocks = np.zeros(thumb.shape[:2], bool)  # independent: the blocks that contain a painted pixel
    for yy, xx in np.argwhere(painted):
        blocks[yy // step, xx // step] = True
    assert np.array_equal(shown_mask > 0, blocks) and blocks.sum() >= 2
    canvas.invert_mask()  # a whole-mask change rebuilds the thumbnail
    assert np.array_equal(canvas._thumb[2] > 0, np.ones_like(blocks))
    image = canvas.shown_image()  # the screen's resolution, not the image's
    ratio = canvas.devicePixelRatioF()
    assert not image.isNull() and image.size() == QSize(round(180 * ratio), round(180 * ratio))


def test_changed_is_emitted_once_per_edit_and_never_by_a_repaint(qtbot):
    canvas = MaskCanvas()
    qtbot.addWidget(canvas)
    emitted = []
    canvas.changed.connect(lambda: emitted.append(1))
    canvas.set_image(np.zeros((600, 800, 3), np.uint8))
    assert len(emitted) == 1
    canvas.paint_at(100.0, 100.0)  # mask
    canvas.paint_at(200.0, 100.0, 1.0, "sketch")  # the sketch rebuilds the shown thumbnail
    assert len(emitted) == 3
    canvas.paint_at(-50.0, -50.0)  # wholly outside the image: nothing changes
    assert len(emitted) == 3
    canvas.set_mask(None)
    canvas._thumb = None  # a repaint that has to rebuild the shown picture edits nothing
    canvas.show()
    canvas.grab()
    assert len(emitted) == 4
