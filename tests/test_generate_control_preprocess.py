"""ControlNet pre-processors against independent computations on synthetic images."""

import numpy as np
import pytest

from engines.generation.control_preprocess import (
    canny,
    depth,
    none,
    prepare_control_image,
    preprocess,
    scribble,
    tile,
)


def square(size=64, lo=0, hi=255, a=16, b=48):
    image = np.full((size, size, 3), lo, np.uint8)
    image[a:b, a:b] = hi
    return image


def test_none_is_the_image_as_rgb():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(none(rgb), rgb)
    grey = rgb[:, :, 0]
    assert np.array_equal(none(grey), np.repeat(grey[:, :, None], 3, axis=2))
    rgba = np.dstack([rgb, np.full((5, 7), 9, np.uint8)])
    assert np.array_equal(none(rgba), rgb)
    assert np.array_equal(none(rgb / 255.0), rgb)


def test_canny_finds_the_square_outline_only():
    out = canny(square(), 100, 200)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    assert set(np.unique(out)) == {0, 255} and np.array_equal(out[:, :, 0], out[:, :, 2])
    edges = out[:, :, 0] > 0
    # the true outline: pixels just inside or outside the square's border (rows/cols 15-16 and 47-48)
    yy, xx = np.mgrid[:64, :64]
    inside = (yy >= 16) & (yy < 48) & (xx >= 16) & (xx < 48)
    ring = (np.abs(yy - 15.5) <= 1) | (np.abs(yy - 47.5) <= 1) | (np.abs(xx - 15.5) <= 1) | (np.abs(xx - 47.5) <= 1)
    near_border = ring & ((yy >= 14) & (yy <= 49) & (xx >= 14) & (xx <= 49))
    assert edges.any() and not (edges & ~near_border).any()
    # each of the 4 sides is found along most of its length
    for side in (edges[15:17, 20:44], edges[47:49, 20:44], edges[20:44, 15:17].T, edges[20:44, 47:49].T):
        assert side.any(axis=0).mean() >= 0.9
    assert not (edges & inside & ~ring).any()
    # thresholds above the strongest gradient find nothing; a flat image has no edges
    assert canny(square(), 5000, 6000).max() == 0
    assert canny(np.full((32, 32, 3), 90, np.uint8)).max() == 0


def test_scribble_is_white_strokes_on_black_from_paper_or_mask():
    paper = np.full((20, 30, 3), 250, np.uint8)
    paper[5, 3:25] = 10  # a dark pen line on light paper
    paper[2:18, 12] = 30
    out = scribble(paper)
    expected = np.zeros((20, 30), bool)
    expected[5, 3:25] = True
    expected[2:18, 12] = True
    assert np.array_equal(out[:, :, 1] == 255, expected) and set(np.unique(out)) == {0, 255}
    mask = expected.copy()  # a drawn mask (True = stroke) is not inverted
    assert np.array_equal(scribble(mask)[:, :, 0] == 255, expected)
    assert np.array_equal(scribble(paper, invert=False)[:, :, 0] == 255, ~expected)


def test_depth_normalises_inverts_and_keeps_16_bit_precision():
    ramp = (np.arange(100, dtype=np.uint16)[None, :] * 300 + 1000).repeat(4, axis=0)  # 16-bit depth values
    out = depth(ramp)
    want = np.rint((ramp - 1000) / (99 * 300) * 255).astype(np.uint8)
    assert np.array_equal(out[:, :, 0], want) and np.array_equal(out[:, :, 2], want)
    assert np.array_equal(depth(ramp, invert=True)[:, :, 0], np.rint((1 - (ramp - 1000) / (99 * 300)) * 255).astype(np.uint8))
    assert depth(np.full((4, 4), 7, np.uint8)).max() == 0  # flat: no depth information
    with pytest.raises(ValueError, match="NaN"):
        depth(np.array([[0.0, np.nan]]))


def test_tile_keeps_block_means_and_removes_fine_detail():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:64, :64]
    smooth = 0.5 + 0.3 * np.sin(xx / 10.0) * np.cos(yy / 13.0)
    checker = ((yy + xx) % 2) * 0.2 - 0.1  # 2-px checkerboard: pure fine detail
    image = np.clip(smooth + checker + rng.normal(0, 0.01, smooth.shape), 0, 1)
    out = tile(np.dstack([image] * 3), factor=4, blur=1.0)[:, :, 0] / 255.0
    # independent: 8x8 block means of input and output agree (the low-pass survives) ...
    def means(a):
        return a.reshape(8, 8, 8, 8).mean(axis=(1, 3))

    assert np.abs(means(out) - means(image)).max() < 0.03
    # ... and the checkerboard is gone: its correlation with the output is near zero
    detail = out - out.mean()
    assert abs(float((detail * checker).mean()) / float((checker * checker).mean())) < 0.05
    with pytest.raises(ValueError):
        tile(image, factor=0)


def test_prepare_resizes_to_the_run_size_then_preprocesses_and_rejects_unknown():
    big = square(128, a=32, b=96)
    out = prepare_control_image(big, "canny", (64, 48))
    assert out.shape == (64, 48, 3)
    assert prepare_control_image(big, "none", (128, 128)) is not None
    assert np.array_equal(prepare_control_image(big, "none", (128, 128)), big)
    depth16 = (np.arange(64, dtype=np.uint16)[None, :] * 1000).repeat(64, axis=0)
    d = prepare_control_image(depth16, "depth", (32, 32))
    assert d.shape == (32, 32, 3) and d[:, 0, 0].max() < 10 and d[:, -1, 0].min() > 245
    with pytest.raises(ValueError, match="unknown control pre-processor"):
        preprocess(big, "sobel")
    with pytest.raises(ValueError, match="shape"):
        none(np.zeros((4, 4, 2)))


def test_options_are_parsed_typed_and_checked():
    from engines.generation.control_preprocess import parse_options

    assert parse_options("canny", "low=50; high=150") == {"low": 50.0, "high": 150.0}
    assert parse_options("tile", "factor=8;blur=0") == {"factor": 8, "blur": 0.0}
    assert parse_options("depth", "invert=true") == {"invert": True}
    assert parse_options("scribble", "invert=0;threshold=0.3") == {"invert": False, "threshold": 0.3}
    assert parse_options("none", "") == {}
    for name, text, match in (("canny", "low", "does not suit"), ("canny", "factor=2", "does not suit"),
                              ("tile", "factor=x", "must be int"), ("depth", "invert=maybe", "must be bool"),
                              ("canny", "low=nan", "finite"), ("none", "a=1", "options: none")):
        with pytest.raises(ValueError, match=match):
            parse_options(name, text)
    # the options reach the pre-processor: a high threshold finds fewer edges, invert flips depth
    soft = np.clip(square().astype(float) * 0.3, 0, 255).astype(np.uint8)  # a weak edge
    few = prepare_control_image(soft, "canny", (64, 64), parse_options("canny", "low=300;high=400"))
    many = prepare_control_image(soft, "canny", (64, 64), parse_options("canny", "low=20;high=40"))
    assert few.max() == 0 and many.max() == 255
    ramp = np.arange(64, dtype=np.uint8)[None, :].repeat(8, axis=0) * 4
    flipped = prepare_control_image(ramp, "depth", (8, 64), {"invert": True})
    assert np.array_equal(flipped, 255 - prepare_control_image(ramp, "depth", (8, 64)))
