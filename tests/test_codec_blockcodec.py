"""Block codec: bit-exact round trip through the range-coded bitstream, rates and quality."""

import numpy as np
import pytest

from engines.codec.analysis import block_details, energy_compaction
from engines.codec.blockcodec import BlockCodecParams, blockify, decode, encode, unblockify
from engines.codec.color import rgb_to_ycbcr, ycbcr_to_rgb
from engines.codec.images import sample_image
from engines.codec.quant import JPEG_LUMA, estimate_ijg_quality, ijg_scale, quant_matrix, zigzag_order
from engines.codec.transforms import get_transform


@pytest.fixture(scope="module")
def crop():
    return sample_image("astronaut")[100:228, 150:278].copy()  # 128x128, face and suit


def _psnr(a, b):
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return 10 * np.log10(255**2 / mse)


CASES = [
    ("dct", 8, 1, "4:2:0"),
    ("dct", 16, 1, "4:4:4"),
    ("rdct", 8, 1, "4:2:0"),
    ("sdct", 8, 1, "4:4:4"),
    ("bas2008", 8, 1, "4:2:0"),
    ("wht", 4, 1, "4:2:0"),
    ("jam-rdct", 32, 1, "4:2:0"),
    ("minangle", 64, 3, "4:2:0"),
]


@pytest.mark.parametrize("name,n,m,sub", CASES)
def test_bit_exact_roundtrip(crop, name, n, m, sub):
    img = crop[:-3, :-5]  # sizes that are not multiples of the block or of 2
    enc = encode(img, BlockCodecParams(transform=name, N=n, alphabet=m, quality=60, subsampling=sub))
    dec = decode(enc.bitstream)
    for a, b in zip(enc.planes, dec.planes):
        np.testing.assert_array_equal(a.q, b.q)
    np.testing.assert_array_equal(dec.image, enc.reconstruction)
    assert dec.image.shape == img.shape
    assert enc.bpp == pytest.approx(8 * len(enc.bitstream) / (img.shape[0] * img.shape[1]))
    assert len(enc.bitstream) == enc.header_bytes + enc.payload_bytes
    # the per-block map (ideal code lengths) accounts for the payload within 1 %
    ideal = sum(p.bits.sum() for p in enc.planes)
    assert ideal == pytest.approx(8 * enc.payload_bytes, rel=0.01)
    assert enc.bits_map().sum() == pytest.approx(ideal, rel=1e-9)
    assert _psnr(img, dec.image) > 24


def test_bpp_decreases_with_quality(crop):
    rates, quality = [], []
    for q in (95, 75, 50, 25, 10):
        enc = encode(crop, BlockCodecParams(quality=q))
        rates.append(enc.bpp)
        quality.append(_psnr(crop, enc.reconstruction))
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert all(a > b for a, b in zip(quality, quality[1:]))


def test_quality_100_dct_is_near_lossless(crop):
    enc = encode(crop, BlockCodecParams(quality=100, subsampling="4:4:4"))
    assert _psnr(crop, enc.reconstruction) > 45
    assert np.abs(enc.reconstruction.astype(int) - crop).max() <= 8


def test_entropy_estimate_and_header(crop):
    enc = encode(crop, BlockCodecParams(quality=50))
    assert 0 < enc.entropy_bpp
    assert enc.header_bytes < len(enc.bitstream) / 2
    assert enc.bitstream[:4] == b"SSBC"


def test_user_matrix_is_stored_and_used(crop):
    luma = np.full((8, 8), 7)
    luma[0, 0] = 3
    chroma = np.full((8, 8), 40)
    enc = encode(crop, BlockCodecParams(luma_matrix=luma, chroma_matrix=chroma))
    dec = decode(enc.bitstream)
    np.testing.assert_array_equal(dec.planes[0].Q, luma)
    np.testing.assert_array_equal(dec.planes[1].Q, chroma)
    flat = encode(crop, BlockCodecParams(preset="flat", quality=50))
    assert np.all(flat.planes[0].Q == 16)


def test_corrupt_bitstream_raises(crop):
    enc = encode(crop[:32, :32], BlockCodecParams())
    with pytest.raises(ValueError, match="magic"):
        decode(b"XXXX" + enc.bitstream[4:])
    with pytest.raises(ValueError):
        decode(enc.bitstream[:12])


def test_bad_inputs():
    with pytest.raises(ValueError, match="RGB"):
        encode(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        encode(np.full((8, 8, 3), np.nan))
    with pytest.raises(ValueError, match="subsampling"):
        encode(np.zeros((8, 8, 3), np.uint8), BlockCodecParams(subsampling="4:1:1"))


def test_blockify_roundtrip_and_color():
    x = np.random.default_rng(1).normal(size=(19, 23))
    b = blockify(x, 8)
    assert b.shape == (3, 3, 8, 8)
    np.testing.assert_array_equal(unblockify(b, x.shape), x)
    rgb = np.random.default_rng(2).integers(0, 256, (5, 7, 3)).astype(float)
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-9)
    # JFIF: white -> Y 255, Cb = Cr = 128
    np.testing.assert_allclose(rgb_to_ycbcr(np.full((1, 1, 3), 255.0))[0, 0], [255, 128, 128], atol=1e-3)


def test_quant_tables_and_zigzag():
    np.testing.assert_array_equal(ijg_scale(JPEG_LUMA, 50), JPEG_LUMA)
    assert ijg_scale(JPEG_LUMA, 100).max() == 1
    assert quant_matrix(16, 50).shape == (16, 16)
    assert estimate_ijg_quality(ijg_scale(JPEG_LUMA, 75)) == pytest.approx(74.75, abs=0.01)
    assert estimate_ijg_quality(ijg_scale(JPEG_LUMA, 25)) == pytest.approx(25.0, abs=0.01)
    zz = zigzag_order(8)
    assert list(zz[:10]) == [0, 1, 8, 16, 9, 2, 3, 10, 17, 24]
    assert sorted(zz) == list(range(64))


def test_block_details_and_compaction(crop):
    enc = encode(crop, BlockCodecParams(quality=50, subsampling="4:4:4"))
    d = block_details(enc, 0, 3, 4)
    ycc = rgb_to_ycbcr(crop)[..., 0]
    np.testing.assert_allclose(d["original"], ycc[24:32, 32:40], atol=1e-9)
    np.testing.assert_array_equal(d["dequant"], d["q"] * d["Q"])
    assert d["bits"] > 0
    curves = {name: energy_compaction(crop, get_transform(name, 8)) for name in ("dct", "wht")}
    for c in curves.values():
        assert c[0] == 0 and c[-1] == pytest.approx(1.0)
        assert np.all(np.diff(c) >= -1e-12)
    # the DCT compacts the energy of natural images better than the WHT
    assert curves["dct"][5] > curves["wht"][5]


@pytest.mark.parametrize("shape", [(64, 96), (63, 95), (7, 3), (1, 1), (33, 2)])
def test_bits_map_adds_each_chroma_block_to_the_luma_blocks_it_covers(shape):
    """bits_map (slicing) equals the reference sum: every 4:2:0 chroma block's bits spread over the 2x2
    luma blocks it covers, the parts past the luma grid of an odd-sized image on its last row / column."""
    from types import SimpleNamespace

    from engines.codec.blockcodec import EncodeResult

    rng = np.random.default_rng(3)
    h, w = shape
    luma = rng.random((h, w)) * 100
    chroma = [rng.random(((h + 1) // 2, (w + 1) // 2)) * 40 for _ in range(2)]
    want = luma.copy()
    for c in chroma:
        for (y, x), value in np.ndenumerate(c):
            for dy in (0, 1):
                for dx in (0, 1):
                    want[min(2 * y + dy, h - 1), min(2 * x + dx, w - 1)] += value / 4.0
    result = object.__new__(EncodeResult)
    result.planes = [SimpleNamespace(bits=p) for p in (luma, *chroma)]
    np.testing.assert_allclose(EncodeResult.bits_map(result), want, rtol=1e-12)
