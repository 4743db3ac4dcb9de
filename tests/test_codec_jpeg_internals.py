"""Our JPEG entropy decoder against libjpeg (Pillow): the dequantised IDCT of the coefficients we
decode matches Pillow's decode to within 1 level on every component.

What is compared: Pillow is asked for the raw YCbCr planes (``Image.draft("YCbCr", None)``, no
colour conversion). Luma and 4:4:4 chroma are compared directly. Subsampled chroma (4:2:0,
4:2:2) is upsampled here with libjpeg's "fancy" triangle filter (jdsample.c h2v2/h2v1, same
rounding) and compared with Pillow's upsampled planes. Grayscale: the single plane.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engines.codec.jpeg_internals import component_planes, read_jpeg_internals
from engines.codec.jpeg_parse import JpegError
from engines.codec.realcodecs import inspect_jpeg


@pytest.fixture(scope="module")
def photo():
    from engines.codec.images import sample_image

    return Image.fromarray(sample_image("astronaut")[:256, 64:320])


def _jpeg(im, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **kw)
    return buf.getvalue()


def _fancy_upsample(c: np.ndarray, ry: int, rx: int, shape) -> np.ndarray:
    """libjpeg's fancy upsampling (jdsample.c): h2v2 = 3/4-1/4 triangle both ways with the
    alternating +8/+7 rounding, h2v1 = horizontal only with +1/+2; edges replicated."""
    c = c.astype(np.int64)
    if ry == 2:
        up, dn = np.vstack([c[:1], c[:-1]]), np.vstack([c[1:], c[-1:]])
        rows = np.empty((2 * c.shape[0], c.shape[1]), np.int64)
        rows[0::2], rows[1::2] = 3 * c + up, 3 * c + dn
        bias, shift = (8, 7), 4
    else:
        rows, bias, shift = c, (1, 2), 2
    left, right = np.hstack([rows[:, :1], rows[:, :-1]]), np.hstack([rows[:, 1:], rows[:, -1:]])
    out = np.empty((rows.shape[0], rows.shape[1] * rx), np.int64)
    out[:, 0::2] = (3 * rows + left + bias[0]) >> shift
    out[:, 1::2] = (3 * rows + right + bias[1]) >> shift
    return out[: shape[0], : shape[1]]


CASES = {
    "baseline 4:2:0": ({"quality": 75}, None),
    "baseline 4:4:4": ({"quality": 90, "subsampling": 0}, None),
    "baseline 4:2:2": ({"quality": 50, "subsampling": 1}, None),
    "progressive 4:2:0": ({"quality": 75, "progressive": True}, None),
    "progressive 4:4:4 optimized": ({"quality": 95, "progressive": True, "subsampling": 0, "optimize": True}, None),
    "grayscale": ({"quality": 80}, "L"),
    "grayscale progressive": ({"quality": 30, "progressive": True}, "L"),
    "restart every 3 MCUs": ({"quality": 75, "restart_marker_blocks": 3}, None),
    "progressive + restarts, odd size": ({"quality": 60, "progressive": True, "restart_marker_rows": 1}, "crop"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_coefficients_match_libjpeg(photo, name):
    kw, variant = CASES[name]
    im = photo.convert("L") if variant == "L" else photo.crop((3, 5, 204, 158)) if variant == "crop" else photo
    data = _jpeg(im, **kw)
    res = read_jpeg_internals(data)
    planes = component_planes(res)
    ref_im = Image.open(io.BytesIO(data))
    if ref_im.mode == "L":
        refs = [np.asarray(ref_im)]
    else:
        ref_im.draft("YCbCr", None)
        arr = np.asarray(ref_im)
        refs = [arr[..., i] for i in range(3)]
    assert len(planes) == len(refs)
    for p, (ours, ref) in enumerate(zip(planes, refs)):
        sy, sx = res.plane_scale(p)
        if (sy, sx) != (1, 1):
            ours = _fancy_upsample(ours, sy, sx, ref.shape)
        diff = np.abs(ours.astype(int) - ref.astype(int))
        assert ours.shape == ref.shape
        assert diff.max() <= 1, f"{name}: component {p} differs by {diff.max()}"
        assert diff.mean() < 0.15  # float IDCT vs libjpeg's integer IDCT: rare +-1
    s = res.summary()
    # every bit of the file is accounted for
    assert s["block_bits"] + s["padding_bits"] + 8 * s["stuffed_bytes"] + 8 * s["header_and_marker_bytes"] == 8 * len(data)
    assert s["eoi"] is True
    assert s["process"].startswith("SOF2" if kw.get("progressive") else "SOF0")
    assert all(np.all(p.bits >= 0) for p in res.planes) and res.planes[0].bits.sum() > 0


def test_restart_interval_and_markers_reported(photo):
    data = _jpeg(photo, quality=75, restart_marker_blocks=3)
    res = read_jpeg_internals(data, with_pixels=False)
    my, mx = res.structure.mcus
    assert res.structure.restart_interval == 3
    assert res.restart_markers == -(-(my * mx) // 3) - 1
    info = inspect_jpeg(data)
    assert info["restart_interval"] == 3 and info["eoi"] is True


def test_panel_interface_like_block_codec(photo):
    res = read_jpeg_internals(_jpeg(photo, quality=75))
    assert res.sampling == "4:2:0" and res.plane_scale(1) == (2, 2)
    assert res.planes[0].q.shape == (32, 32, 8, 8) and res.planes[1].q.shape == (16, 16, 8, 8)
    bm = res.bits_map()
    assert bm.shape == (32, 32)
    assert bm.sum() == pytest.approx(sum(p.bits.sum() for p in res.planes))
    assert res.reconstruction.shape == (256, 256, 3)
    from engines.codec.analysis import block_details

    d = block_details(res, 0, 5, 7)
    np.testing.assert_array_equal(d["dequant"], res.planes[0].q[5, 7] * res.planes[0].Q)
    assert d["bits"] == res.planes[0].bits[5, 7]


def test_truncated_and_corrupt_files_raise_one_error(photo):
    data = _jpeg(photo, quality=75, progressive=True)
    for cut in (3, 20, 200, len(data) // 3, len(data) // 2, len(data) - 3):
        with pytest.raises(JpegError):
            read_jpeg_internals(data[:cut], with_pixels=False)
    with pytest.raises(JpegError, match="not a JPEG"):
        read_jpeg_internals(b"\x89PNG\r\n\x1a\n" + bytes(100))
    rng = np.random.default_rng(1)
    for _ in range(25):  # random byte damage: a clean error or a decode, never anything else
        bad = bytearray(data)
        for pos in rng.integers(2, len(bad), 4):
            bad[pos] = int(rng.integers(0, 256))
        try:
            read_jpeg_internals(bytes(bad), with_pixels=False)
        except JpegError:
            pass


def test_size_checked_before_allocating(photo):
    data = bytearray(_jpeg(photo, quality=75))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    with pytest.raises(JpegError, match="more than the limit"):
        read_jpeg_internals(bytes(data), with_pixels=False)
