"""The fast block-codec path (fused compiled kernels) writes the same bytes as the codec before it:
whole-bitstream hashes recorded with the previous encoder, files written by it decode to the same
pixels, and the compiled path equals the numpy reference path on odd-sized images."""

import base64
import hashlib
import io

import numpy as np
import pytest

from engines.codec import blockcodec
from engines.codec._kernels import color_kernels_exact, leb128_decode, leb128_encode
from engines.codec._pixel_kernels import transform_kernels_exact
from engines.codec.blockcodec import BlockCodecParams, decode, encode
from engines.codec.entropy import Histogram, write_varint, zigzag_int
from engines.codec.transforms import get_transform

# (params, bitstream length, sha256[:16] of the whole bitstream, of the reconstruction), recorded
# with the encoder before the fused kernels (commit 66e2ab1) on the 203 x 301 astronaut crop
GOLDEN = [
    ({'transform': 'dct', 'N': 8, 'quality': 75, 'subsampling': '4:2:0'}, 10216, "61ba2b1da43e3b3d", "cad69be183f55bc0"),
    ({'transform': 'rdct', 'N': 8, 'quality': 30, 'subsampling': '4:4:4'}, 5998, "7e2ea98e9931e9cb", "b9346337bc061aec"),
    ({'transform': 'minangle', 'N': 16, 'alphabet': 2, 'quality': 90, 'subsampling': '4:2:0'}, 19084, "66afabffc144b4bc", "20249f89f8ea25c6"),
    ({'transform': 'wht', 'N': 4, 'quality': 50, 'subsampling': '4:2:0'}, 7987, "e2e3e4875227743c", "84afe31bf9a99d97"),
    ({'transform': 'dct', 'N': 32, 'quality': 10, 'subsampling': '4:4:4', 'preset': 'flat'}, 2724, "819da6eeec503bd9", "7abee8c1812e8b23"),
    ({'transform': 'bas2008', 'N': 8, 'quality': 100, 'subsampling': '4:2:0'}, 51856, "ea1bb8e3772f5c55", "ddcfe6d8ae8fd190"),
    ({'transform': 'dct', 'N': 16, 'quality': 75, 'subsampling': '4:2:0'}, 10629, "a57a18413c5ecd86", "407e32ca35f3523c"),
    ({'transform': 'minangle', 'N': 8, 'alphabet': 2, 'quality': 75, 'subsampling': '4:2:0'}, 10512, "40b48c700e02e1c4", "03c21579f85ee97e"),
    ({'transform': 'dct', 'N': 4, 'quality': 95, 'subsampling': '4:4:4'}, 33936, "8ad4bc5a8bde95e3", "fbe2a13ad4edce24"),
]

# bitstreams written by the encoder before the fused kernels (31 x 43 crop) and the sha256[:16]
# of the image that decoder produced from them
OLD_FILES = [
    ("7f7a7d688f4faf28",
     "U1NCQwJjAQAA6AAAACR3h+8fAAAAKwAAAAgBAQNkY3R8eNqljM0OwWAUBWejP7SRYIG0KJKSiPBpgoT3fy1TpLGXuzlz7tybENEjIWPCnKUUEdMnp2RBYY6/25LNm1MGDHUP7PRbGtuvudJQa46kFXvpzpGZudZtePLgwtbuxJkbwS54n3ozNX2m/ZdTdZxJRUdBs/qh/+cFed0SH9UBeNo9UNFSwzAMk+ykZe3GNnbl4HYce+WVV75ln8K/Izk7nDpxIsuVfXxFgIQt0FlxxwyiaW13bQuedE0K1RkmaC0VNaQQ45cfsRrnkUQnVk1ZynfaTcDLLz6xiogik4ygE6kji5B4fgeL/S8tXcWFktuVCliQX0zrGORkPRhOTjxc9BNacMcBk1IaRkXsd6xOJpxwlQ8wEuu5+islIeALRytf1sEMbPjGWzXAqaNK3ORs6dHd0C2i1ScR0jR/YF+Di5pbt/qHkMGBoe7eHo2W/QG+NgWCEpu980BVhY3IjQLN1/+o4c4dqPWFzAKLFobGccE2KkB1O3oNEEFpVmpPRUKWzw8a6TtJrZS15V7elh7deXOENxe77hxrT1XHtgeKzkfHxM57AGYG5kbxCHOME27JIpkskWJn3cq4KRcpFwMW1Dn5LqTOi9wqSzrFtLkv17YyvL78LEvJoDi3QCTEjDr9JnywkENcdRR/qTWM6S9shkmc/1cf+GcylcBhzsSAfj8n3zoUMK7H4bPAoMe/mQzKHpR0MUrZECez8pVOi0HBavsA6Q0kPYYCKV56Nq0gOVtRAozOKgTUAaF9fQ=="),
    ("36935f9d2a87cf7d",
     "U1NCQwKkAQAA0AAAAH0jNa8fAAAAKwAAABACAAhtaW5hbmdsZa8BeNrl0UsLAWEYhuFZOvSNkGw0WZFCDqFmMbGxkHwOC2XF//8T7qdGSVPvN2tdu7mnp3dwkYuqqMChjT5GmMMZvZaro4EOpphhDKvrufr3tvoGE4T0GC10obv22GIBq39aAu2tcccVGayum3rQtyyxww0PHGD1IfRcW7pLuy88cYHVU2jniBO0e4be87B6nNOdA/gfIb0J/a8rlO3aVdNv6wtYXTcV7Yb2f/cGRTdyzd0BeNo1kM1OAzEMhD/HWW93UxaqqggOUHHgxIkDByRegQPvxgMzdksiW8mMf8aOX8OYeZR/Ij7pbDyw44V402cwiTWIH44iYC8kzoJcdJPff8hNVeVyJlnTHQcRyFqidmXZjvVuLuYfbGapo7GdVbVn9JWyXunipWzOer06Z0uvRpXpjEGRksrCKiRS3m6mRhg8cxDEPPDgxLvmkerujXu+ObmtfBGuvouSV0oPZZFirLG8cnvR1aozN0yZUJMY3TNUf1dsx5JrVU1I11KbW2i/kfwd7qbtleQ8fzzsBqtx8l24rxwfPLUmTKFocchs++XqS0FPMxo4QlGkzDmp0K2YEfGBW3EPDWK0ghg74QbnxxVaamPR62FTM+ba6krfBK/ejdmOGHGh8jmFx8gsJ4FBJpeObwhDKeaXwLPhHW2gfcK/ERe53r5oHmRwj7i/YwLSb2fjakAy0AVueIr1kP7Pg925pH1zibgf2FWMDUcTbUYWqLbpt9hmq058VJz/0oknLtyKQFfDnYtSzW0GfsEoE12vXXsSpZmCGD42bptyNQVi0FlDUl2iweu7eEL2"),
]


def _h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@pytest.fixture(scope="module")
def img():
    from engines.codec.images import sample_image

    return sample_image("astronaut")[37:240, 11:312]  # 203 x 301: odd sizes, padded blocks


def _needs_exact_colour():
    if not color_kernels_exact():
        pytest.skip("this CPU's BLAS does not chain FMAs; the codec uses numpy's colour path")


@pytest.mark.parametrize("params,length,stream,recon", GOLDEN, ids=[f"{g[0]['transform']}-N{g[0]['N']}" for g in GOLDEN])
def test_whole_bitstream_equals_the_previous_encoder(img, params, length, stream, recon):
    _needs_exact_colour()
    enc = encode(img, BlockCodecParams(**params))
    assert len(enc.bitstream) == length
    assert _h(enc.bitstream) == stream
    assert _h(enc.reconstruction.tobytes()) == recon


@pytest.mark.parametrize("image_hash,data", OLD_FILES)
def test_files_of_the_previous_encoder_decode_to_the_same_pixels(image_hash, data):
    _needs_exact_colour()
    dec = decode(base64.b64decode(data))
    assert dec.image.shape == (31, 43, 3)
    assert _h(dec.image.tobytes()) == image_hash


@pytest.mark.parametrize("name,n,alphabet", [("dct", 8, 1), ("dct", 16, 1), ("minangle", 16, 2), ("wht", 4, 1), ("sdct", 8, 1)])
def test_the_compiled_transform_kernels_are_exact_here(name, n, alphabet):
    """The codec only takes the fused path where it equals numpy's matmul; on this machine
    (OpenBLAS dgemm: one FMA chain per entry) it does for N <= 16."""
    _needs_exact_colour()
    assert transform_kernels_exact(get_transform(name, n, alphabet))


@pytest.mark.parametrize("shape,sub,name,n", [((37, 61), "4:2:0", "dct", 8), ((64, 48), "4:4:4", "minangle", 16),
                                             ((9, 2), "4:2:0", "wht", 4), ((33, 17), "4:2:0", "bas2008", 8)])
def test_fast_path_equals_the_numpy_reference_path(monkeypatch, shape, sub, name, n):
    rng = np.random.default_rng(shape[0] * shape[1])
    smooth = np.cumsum(np.cumsum(rng.normal(0, 6, shape + (3,)), 0), 1)
    image = np.clip(smooth - smooth.min(), 0, 255).astype(np.uint8)
    params = BlockCodecParams(transform=name, N=n, alphabet=2, quality=70, subsampling=sub)
    fast = encode(image, params)
    monkeypatch.setattr(blockcodec, "transform_kernels_exact", lambda tr: False)
    ref = encode(image, params)
    assert fast.bitstream == ref.bitstream
    np.testing.assert_array_equal(fast.reconstruction, ref.reconstruction)
    for a, b in zip(fast.planes, ref.planes):
        np.testing.assert_array_equal(a.q, b.q)
        np.testing.assert_array_equal(a.coeffs, b.coeffs)
        np.testing.assert_array_equal(a.bits, b.bits)
    np.testing.assert_array_equal(decode(fast.bitstream).image, ref.reconstruction)


def test_histogram_tables_match_the_python_varint_writer():
    rng = np.random.default_rng(5)
    for _ in range(50):
        values = np.unique(rng.integers(-10**9, 10**9, int(rng.integers(0, 40))))
        hist = Histogram(values, rng.integers(1, 10**12, values.size))
        buf = io.BytesIO()
        hist.write(buf)
        ref = io.BytesIO()
        write_varint(ref, int(values.size))
        prev = None
        for v, c in zip(values.tolist(), hist.counts.tolist()):
            write_varint(ref, zigzag_int(v) if prev is None else v - prev - 1)
            write_varint(ref, c - 1)
            prev = v
        assert buf.getvalue() == ref.getvalue()
        back = Histogram.read(io.BytesIO(buf.getvalue()))
        np.testing.assert_array_equal(back.values, values)
        np.testing.assert_array_equal(back.counts, hist.counts)


def test_varints_refuse_truncation_and_overlong_values():
    data = np.frombuffer(leb128_encode(np.array([0, 127, 128, 2**40, 2**62])), dtype=np.uint8)
    values, end = leb128_decode(data, 0, 5)
    assert values.tolist() == [0, 127, 128, 2**40, 2**62] and end == data.size
    with pytest.raises(ValueError, match="truncated"):
        leb128_decode(data[:-1], 0, 5)
    with pytest.raises(ValueError, match="too long"):
        leb128_decode(np.full(11, 0xFF, dtype=np.uint8), 0, 1)


def test_block_size_kernels_can_be_cached_on_disk():
    """numba's disk cache misses every run (a 20-50 s compile per process) when a cached kernel
    closes over another kernel: the per-N kernels may close over the block size only."""
    from engines.codec._pixel_kernels import _chain

    for kernel in _chain(8):
        assert kernel._cache.__class__.__name__ == "FunctionCache"
        assert [type(c.cell_contents) for c in kernel.py_func.__closure__] == [int]
