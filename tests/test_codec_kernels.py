"""The compiled block-codec kernels change nothing: the range-coded payload and the
reconstruction are bit-identical to the codec before them (golden hashes recorded with the
pure-numpy code), and each kernel equals the numpy expression it replaces."""

import hashlib

import numpy as np
import pytest

from engines.codec import color
from engines.codec._kernels import band_counts, block_symbols, color_kernels_exact, place_symbols, rgb_to_ycbcr_fast, upsample2_fast, ycbcr_to_rgb_u8
from engines.codec.blockcodec import BlockCodecParams, _bands, decode, encode
from engines.codec.quant import zigzag_order

# (params, sha256[:16] of the payload, of the reconstruction) from the numpy-only codec (commit c83103b)
GOLDEN = [
    ({"transform": "dct", "N": 8, "quality": 75, "subsampling": "4:2:0"}, "a144ca884ae021e4", "cad69be183f55bc0"),
    ({"transform": "rdct", "N": 8, "quality": 30, "subsampling": "4:4:4"}, "186e26454c3003e6", "b9346337bc061aec"),
    ({"transform": "minangle", "N": 16, "alphabet": 2, "quality": 90, "subsampling": "4:2:0"}, "bd849117c8f6c123", "20249f89f8ea25c6"),
    ({"transform": "wht", "N": 4, "quality": 50, "subsampling": "4:2:0"}, "d2c18f0bc4a2fed7", "84afe31bf9a99d97"),
    ({"transform": "dct", "N": 32, "quality": 10, "subsampling": "4:4:4", "preset": "flat"}, "431d258bdeace792", "7abee8c1812e8b23"),
    ({"transform": "bas2008", "N": 8, "quality": 100, "subsampling": "4:2:0"}, "d027c3a0ebbdc383", "ddcfe6d8ae8fd190"),
]


@pytest.fixture(scope="module")
def img():
    from engines.codec.images import sample_image

    return sample_image("astronaut")[37:240, 11:312]  # 203 x 301: odd sizes, padded blocks


def _h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.mark.parametrize("params,payload,recon", GOLDEN, ids=[f"{g[0]['transform']}-N{g[0]['N']}" for g in GOLDEN])
def test_bit_identical_to_the_numpy_codec(img, params, payload, recon):
    if not color_kernels_exact():
        pytest.skip("this CPU's BLAS does not chain FMAs; the codec uses numpy's colour path")
    enc = encode(img, BlockCodecParams(**params))
    assert _h(enc.bitstream[enc.header_bytes :]) == payload
    assert _h(enc.reconstruction.tobytes()) == recon
    dec = decode(enc.bitstream)
    np.testing.assert_array_equal(dec.image, enc.reconstruction)
    for pd, pe in zip(dec.planes, enc.planes):
        np.testing.assert_array_equal(pd.q, pe.q)


def _numpy_symbols(flat, bands, nbands):
    """The stream construction of the codec before the kernels (reference)."""
    nn = flat.shape[1]
    nz = flat[:, 1:] != 0
    eob = np.where(nz.any(axis=1), nn - 1 - np.argmax(nz[:, ::-1], axis=1), 0)
    dcd = np.diff(flat[:, 0], prepend=0)
    pos = np.arange(nn)[None, :]
    mask = (pos >= 1) & (pos <= eob[:, None])
    per_band = [flat[mask & (bands[None, :] == b)] for b in range(nbands)]
    owners = [np.nonzero(mask & (bands[None, :] == b))[0] for b in range(nbands)]
    return eob, dcd, per_band, owners


@pytest.mark.parametrize("n", [4, 8, 16, 32])
def test_symbols_and_placement_match_numpy(n):
    rng = np.random.default_rng(n)
    q = rng.integers(-3, 4, (57, n, n)) * (rng.random((57, n, n)) < np.linspace(0.9, 0.02, n * n).reshape(n, n))
    q[5] = 0  # an all-zero block
    q[9, 0, 0] = 7  # DC only
    zz = zigzag_order(n)
    flat = q.reshape(-1, n * n)[:, zz].astype(np.int64)
    bands = _bands(n)
    nbands = int(bands.max()) + 1
    eob, dcd, ac, owner, starts = block_symbols(flat, bands, nbands)
    r_eob, r_dcd, r_band, r_own = _numpy_symbols(flat, bands, nbands)
    np.testing.assert_array_equal(eob, r_eob)
    np.testing.assert_array_equal(dcd, r_dcd)
    for b in range(nbands):
        np.testing.assert_array_equal(ac[starts[b] : starts[b + 1]], r_band[b])
        np.testing.assert_array_equal(owner[starts[b] : starts[b + 1]], r_own[b])
    np.testing.assert_array_equal(band_counts(eob, bands, nbands), np.diff(starts))
    back = place_symbols(eob, dcd, ac, starts, zz, bands, n)
    np.testing.assert_array_equal(back, q.reshape(-1, n * n))


@pytest.mark.parametrize("shape", [(1, 2), (2, 5), (7, 3), (33, 9), (64, 64), (1, 300), (203, 301)])
def test_color_kernels_equal_numpy(shape):
    if not color_kernels_exact():
        pytest.skip("this CPU's BLAS does not chain FMAs")
    rng = np.random.default_rng(shape[0] * 1000 + shape[1])
    rgb = rng.integers(0, 256, shape + (3,)).astype(np.uint8)
    ycc = color.rgb_to_ycbcr(rgb)
    np.testing.assert_array_equal(rgb_to_ycbcr_fast(rgb, color._FWD), ycc)
    noisy = ycc + rng.normal(0, 4, ycc.shape)
    np.testing.assert_array_equal(ycbcr_to_rgb_u8(noisy, color._INV), color.to_uint8(color.ycbcr_to_rgb(noisy)))
    half = noisy[::2, ::2, 1]
    np.testing.assert_array_equal(upsample2_fast(half, shape), color.upsample2(half, shape))


def test_one_pixel_wide_image_uses_numpy_path():
    rgb = np.random.default_rng(3).integers(0, 256, (41, 1, 3)).astype(np.uint8)
    enc = encode(rgb, BlockCodecParams(quality=60))
    np.testing.assert_array_equal(decode(enc.bitstream).image, enc.reconstruction)
