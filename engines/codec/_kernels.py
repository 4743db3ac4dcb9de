"""Compiled kernels (numba, ``cache=True``; plain Python without numba) for the block codec's
symbol streams and colour/resampling steps.

Every kernel does exactly the arithmetic of the numpy code it replaces, in the same order
(integer work, or the same float expressions element by element, no fast-math), so the codec's
bitstream and reconstruction stay bit-identical (``tests/test_codec_kernels.py``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "band_counts",
    "block_symbols",
    "color_kernels_exact",
    "njit_cached",
    "place_symbols",
    "rgb_to_ycbcr_fast",
    "upsample2_fast",
    "ycbcr_to_rgb_u8",
]


def njit_cached(fn):
    """``numba.njit(cache=True, nogil=True)`` of ``fn``, or ``fn`` itself without numba."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a project dependency
        return fn
    return numba.njit(cache=True, nogil=True)(fn)


@njit_cached
def _symbols(q, zz, bands, nbands, known_eob):
    nb, nn = q.shape
    eob = np.zeros(nb, dtype=np.int64)
    dcd = np.empty(nb, dtype=np.int64)
    counts = np.zeros(nbands + 1, dtype=np.int64)
    prev = 0
    for i in range(nb):
        e = 0
        if known_eob.shape[0]:
            e = known_eob[i]
        else:
            for k in range(nn - 1, 0, -1):
                if q[i, zz[k]] != 0:
                    e = k
                    break
        eob[i] = e
        dc = q[i, zz[0]]
        dcd[i] = dc - prev
        prev = dc
        for k in range(1, e + 1):
            counts[bands[k] + 1] += 1
    starts = np.cumsum(counts)
    ac = np.empty(starts[-1], dtype=np.int64)
    owner = np.empty(starts[-1], dtype=np.int64)
    fill = starts[:-1].copy()
    for i in range(nb):
        for k in range(1, eob[i] + 1):
            b = bands[k]
            ac[fill[b]] = q[i, zz[k]]
            owner[fill[b]] = i
            fill[b] += 1
    return eob, dcd, ac, owner, starts


def block_symbols(flat: np.ndarray, bands: np.ndarray, nbands: int, zz: np.ndarray | None = None, eob: np.ndarray | None = None):
    """Symbols of one plane's blocks ``flat`` ``(blocks, N*N)`` (int64; zig-zag order, or
    natural order read through the zig-zag permutation ``zz``): ``eob`` (zig-zag index of the
    last non-zero AC, 0 if none), ``dcd`` (DC differences to the previous block, the first to 0),
    and every AC level up to the end of block grouped by band (``ac[starts[b]:starts[b+1]]``,
    blocks then positions in order) with its block index ``owner``. ``eob``: the ends of block
    when already known (the fused transform kernel finds them), else they are searched."""
    nn = flat.shape[1]
    zz = np.arange(nn, dtype=np.int64) if zz is None else np.ascontiguousarray(zz, dtype=np.int64)
    known = np.zeros(0, dtype=np.int64) if eob is None else np.ascontiguousarray(eob, dtype=np.int64).ravel()
    return _symbols(np.ascontiguousarray(flat, dtype=np.int64), zz, np.ascontiguousarray(bands, dtype=np.int64), int(nbands), known)


def band_counts(eob: np.ndarray, bands: np.ndarray, nbands: int) -> np.ndarray:
    """Number of AC levels per band (``(nbands,)``) coded for blocks with end-of-block ``eob``."""
    nn = bands.shape[0]
    per_eob = np.zeros((nn, nbands), dtype=np.int64)  # levels of each band up to each eob
    for k in range(1, nn):
        per_eob[k:, bands[k]] += 1
    return np.bincount(eob, minlength=nn)[:nn] @ per_eob


@njit_cached
def _place(q, eob, dcd, ac, starts, zz, bands):
    nb = q.shape[0]
    fill = starts[:-1].copy()
    dc = 0
    for i in range(nb):
        dc += dcd[i]
        q[i, zz[0]] = dc
        for k in range(1, eob[i] + 1):
            b = bands[k]
            q[i, zz[k]] = ac[fill[b]]
            fill[b] += 1
    return fill


def place_symbols(eob, dcd, ac, starts, zz, bands, n: int) -> np.ndarray:
    """Inverse of :func:`block_symbols`: levels ``(blocks, N*N)`` in natural (row-major) order."""
    q = np.zeros((eob.shape[0], n * n), dtype=np.int64)
    _place(q, eob.astype(np.int64), dcd.astype(np.int64), ac.astype(np.int64), starts.astype(np.int64), zz.astype(np.int64), bands.astype(np.int64))
    return q


def _make_fma():
    """A fused multiply-add ``a * b + c`` with one rounding (LLVM ``llvm.fma``), the operation
    the BLAS kernels behind numpy's matmul chain; None without numba."""
    try:
        from numba import types
        from numba.extending import intrinsic
    except ImportError:  # pragma: no cover - numba is a project dependency
        return None

    @intrinsic
    def fma(typingctx, a, b, c):
        sig = types.float64(types.float64, types.float64, types.float64)

        def codegen(context, builder, signature, args):
            return builder.fma(*args)

        return sig, codegen

    return fma


_fma = _make_fma()


def _dot3(x0, x1, x2, m0, m1, m2):
    """``x · m`` as numpy's matmul computes it here: ``fma(x2, m2, fma(x1, m1, x0 * m0))``."""
    return _fma(x2, m2, _fma(x1, m1, x0 * m0))


if _fma is not None:
    _dot3 = njit_cached(_dot3)


@njit_cached
def _rgb_to_ycbcr(rgb, m, out):
    h, w, _ = rgb.shape
    for i in range(h):
        for j in range(w):
            r = np.float64(rgb[i, j, 0])
            g = np.float64(rgb[i, j, 1])
            b = np.float64(rgb[i, j, 2])
            out[i, j, 0] = _dot3(r, g, b, m[0, 0], m[0, 1], m[0, 2])
            out[i, j, 1] = _dot3(r, g, b, m[1, 0], m[1, 1], m[1, 2]) + 128.0
            out[i, j, 2] = _dot3(r, g, b, m[2, 0], m[2, 1], m[2, 2]) + 128.0


def rgb_to_ycbcr_fast(rgb: np.ndarray, m: np.ndarray) -> np.ndarray | None:
    """``rgb @ m.T`` with +128 on the chroma channels, bit-identical to
    :func:`engines.codec.color.rgb_to_ycbcr`; None when no compiled FMA is available."""
    if _fma is None:  # pragma: no cover
        return None
    out = np.empty(rgb.shape, dtype=np.float64)
    _rgb_to_ycbcr(np.ascontiguousarray(rgb), np.ascontiguousarray(m, dtype=np.float64), out)
    return out


@njit_cached
def _ycbcr_to_rgb_u8(ycc, m, out):
    h, w, _ = ycc.shape
    for i in range(h):
        for j in range(w):
            a = ycc[i, j, 0]
            b = ycc[i, j, 1] - 128.0
            c = ycc[i, j, 2] - 128.0
            for ch in range(3):
                v = np.rint(_dot3(a, b, c, m[ch, 0], m[ch, 1], m[ch, 2]))
                out[i, j, ch] = 0 if v < 0 else (255 if v > 255 else np.uint8(v))


def ycbcr_to_rgb_u8(ycc: np.ndarray, m: np.ndarray) -> np.ndarray | None:
    """``(H, W, 3)`` float Y, Cb, Cr -> uint8 RGB: ``(ycc - (0, 128, 128)) @ m.T`` rounded and
    clipped, bit-identical to ``to_uint8(ycbcr_to_rgb(ycc))``; None without a compiled FMA."""
    if _fma is None:  # pragma: no cover
        return None
    out = np.empty(ycc.shape, dtype=np.uint8)
    _ycbcr_to_rgb_u8(np.ascontiguousarray(ycc, dtype=np.float64), np.ascontiguousarray(m, dtype=np.float64), out)
    return out


@njit_cached
def _upsample2(x, out):
    h, w = x.shape
    oh, ow = out.shape
    for i in range(oh):
        si = i >> 1
        ni = si - 1 if (i & 1) == 0 else si + 1
        ni = 0 if ni < 0 else (h - 1 if ni > h - 1 else ni)
        for j in range(ow):
            sj = j >> 1
            nj = sj - 1 if (j & 1) == 0 else sj + 1
            nj = 0 if nj < 0 else (w - 1 if nj > w - 1 else nj)
            # rows first (0.75 x + 0.25 neighbour), then columns on the row-upsampled values
            a = 0.75 * x[si, sj] + 0.25 * x[ni, sj]
            b = 0.75 * x[si, nj] + 0.25 * x[ni, nj]
            out[i, j] = 0.75 * a + 0.25 * b


def upsample2_fast(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """:func:`engines.codec.color.upsample2` (triangular 2x upsampling), cropped to ``shape``."""
    out = np.empty((int(shape[0]), int(shape[1])), dtype=np.float64)
    _upsample2(np.ascontiguousarray(plane, dtype=np.float64), out)
    return out


_EXACT: list[bool] = []


def color_kernels_exact() -> bool:
    """True when the compiled colour kernels reproduce numpy's matmul bit for bit on this
    machine (checked once on a probe image; numpy's BLAS chains FMAs where the CPU has them)."""
    if not _EXACT:
        from engines.codec.color import _FWD, _INV, rgb_to_ycbcr, to_uint8, ycbcr_to_rgb

        probe = np.random.default_rng(7).integers(0, 256, (23, 37, 3)).astype(np.uint8)
        ok = False
        fwd = rgb_to_ycbcr_fast(probe, _FWD)
        if fwd is not None:
            ycc = rgb_to_ycbcr(probe)
            noisy = ycc + np.random.default_rng(8).normal(0, 2, ycc.shape)
            ok = np.array_equal(fwd, ycc) and np.array_equal(ycbcr_to_rgb_u8(noisy, _INV), to_uint8(ycbcr_to_rgb(noisy)))
        _EXACT.append(bool(ok))
    return _EXACT[0]


@njit_cached
def _leb128_encode(values, out):
    p = 0
    for v in values:
        while True:
            byte = v & 0x7F
            v >>= 7
            if v:
                out[p] = byte | 0x80
                p += 1
            else:
                out[p] = byte
                p += 1
                break
    return p


def leb128_encode(values: np.ndarray) -> bytes:
    """Unsigned LEB128 varints of non-negative int64 ``values``, concatenated."""
    v = np.ascontiguousarray(values, dtype=np.int64)
    if v.size and v.min() < 0:
        raise ValueError("varint must be non-negative")
    out = np.empty(v.size * 10, dtype=np.uint8)
    return out[: _leb128_encode(v, out)].tobytes()


@njit_cached
def _leb128_decode(data, pos, count, out):
    """Decode ``count`` varints from ``data[pos:]`` into ``out``; returns the end position,
    -1 when the data end first, -2 for a varint longer than 63 bits."""
    n = data.shape[0]
    for i in range(count):
        value = 0
        shift = 0
        while True:
            if pos >= n:
                return -1
            b = np.int64(data[pos])
            pos += 1
            if shift > 56 and (b >> (63 - shift)) != 0:
                return -2
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 63:
                return -2
        out[i] = value
    return pos


def leb128_decode(data: np.ndarray, pos: int, count: int) -> tuple[np.ndarray, int]:
    """``count`` LEB128 varints from ``data`` (uint8) at ``pos``: ``(values int64, end)``;
    ValueError when the data end inside them or a varint exceeds 63 bits."""
    out = np.empty(count, dtype=np.int64)
    end = _leb128_decode(data, int(pos), int(count), out)
    if end == -1:
        raise ValueError("truncated bitstream (varint)")
    if end == -2:
        raise ValueError("corrupt bitstream (varint too long)")
    return out, end
