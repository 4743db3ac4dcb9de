"""Fused compiled kernels (numba) of the block codec's pixel path: colour conversion with 4:2:0
averaging, the separable block transform with quantization, and the inverse transform with
chroma upsampling and colour conversion back to RGB.

They do the arithmetic of the numpy pipeline they replace in the same order, so the bitstream
and the reconstruction stay bit-identical: the 2-D transform ``M X Mᵀ`` is two chains of fused
multiply-adds in ``k`` order per output, as OpenBLAS's dgemm micro-kernel computes the small
matrix products numpy's ``matmul`` hands to it. Whether that holds on this machine (BLAS
build, CPU) is checked once per transform on random blocks (:func:`transform_kernels_exact`);
the codec falls back to the numpy path when it does not.
"""

from __future__ import annotations

import numpy as np

from engines.codec._kernels import _dot3, _fma, njit_cached

__all__ = ["blocks_forward_quant", "blocks_inverse", "compose_rgb", "split_planes", "transform_kernels_exact"]

#: block sizes whose products OpenBLAS computes as one FMA chain (N = 32 and 64 split the sum)
_CHAIN_SIZES = (4, 8, 16)


@njit_cached
def _split_planes(rgb, m, sub, y, cb, cr):
    h, w, _ = rgb.shape
    step = 2 if sub else 1
    c = np.empty((2, 2, w))  # (Cb or Cr, row of the pair, column) at full resolution
    for i0 in range(0, h, step):
        for d in range(step):
            i = min(i0 + d, h - 1)
            for j in range(w):
                r = np.float64(rgb[i, j, 0])
                g = np.float64(rgb[i, j, 1])
                b = np.float64(rgb[i, j, 2])
                y[i, j] = _dot3(r, g, b, m[0, 0], m[0, 1], m[0, 2])
                c[0, d, j] = _dot3(r, g, b, m[1, 0], m[1, 1], m[1, 2]) + 128.0
                c[1, d, j] = _dot3(r, g, b, m[2, 0], m[2, 1], m[2, 2]) + 128.0
        if sub:  # downsample2: 0.25 * (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2])
            ci = i0 // 2
            for j in range(cb.shape[1]):
                ja = 2 * j
                jb = min(ja + 1, w - 1)
                cb[ci, j] = 0.25 * (((c[0, 0, ja] + c[0, 1, ja]) + c[0, 0, jb]) + c[0, 1, jb])
                cr[ci, j] = 0.25 * (((c[1, 0, ja] + c[1, 1, ja]) + c[1, 0, jb]) + c[1, 1, jb])
        else:
            for j in range(w):
                cb[i0, j] = c[0, 0, j]
                cr[i0, j] = c[1, 0, j]


def split_planes(rgb: np.ndarray, m: np.ndarray, subsampling: str) -> list[np.ndarray]:
    """``(H, W, 3)`` uint8 RGB -> ``[Y, Cb, Cr]`` float64 planes (Cb/Cr offset 128, 2×2 box
    averaged for ``"4:2:0"``), bit-identical to ``rgb_to_ycbcr`` + ``downsample2``."""
    h, w = rgb.shape[:2]
    sub = subsampling == "4:2:0"
    cs = ((h + 1) // 2, (w + 1) // 2) if sub else (h, w)
    y = np.empty((h, w))
    cb, cr = np.empty(cs), np.empty(cs)
    _split_planes(np.ascontiguousarray(rgb), np.ascontiguousarray(m, dtype=np.float64), sub, y, cb, cr)
    return [y, cb, cr]


def _inline(fn):
    """``numba.njit`` inlined into its (cached) callers at the IR level, so a block size the caller
    holds as a constant unrolls here too; ``fn`` itself without numba."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a project dependency
        return fn
    return numba.njit(inline="always", nogil=True)(fn)


@_inline
def _right_product(t, m, cc, n):
    """``cc[i, j, b] = sum_k t[i, k, b] m[j, k]``: block ``b``'s rows times ``Mᵀ``, one FMA chain each."""
    nbx = t.shape[2]
    for i in range(n):
        for j in range(n):
            m0 = m[j, 0]
            for b in range(nbx):
                cc[i, j, b] = t[i, 0, b] * m0
            for k in range(1, n):
                mk = m[j, k]
                for b in range(nbx):
                    cc[i, j, b] = _fma(t[i, k, b], mk, cc[i, j, b])


def _chain_kernels(n: int):
    """The forward and inverse kernels compiled for block size ``n`` (a compile-time constant,
    cached on disk per ``n``: they reference module globals only, a closure over another kernel
    would defeat numba's cache). They work on one row of blocks at a time with the loops over
    pixels or blocks innermost, so the FMA chains vectorise across blocks while each output
    keeps its own ``k``-ordered chain."""

    @njit_cached
    def forward_quant(px, m, qstep, izz, coeffs, q, eob):
        h, w = px.shape
        nby, nbx = coeffs.shape[0], coeffs.shape[1]
        t = np.empty((n, nbx * n))  # M X for every block of the row, side by side
        tt = np.empty((n, n, nbx))  # the same, block index innermost
        cc = np.empty((n, n, nbx))  # M X Mᵀ, block index innermost
        for by in range(nby):
            for i in range(n):
                r = min(by * n, h - 1)
                mi0 = m[i, 0]
                for x in range(w):
                    t[i, x] = mi0 * (px[r, x] - 128.0)
                for k in range(1, n):
                    r = min(by * n + k, h - 1)
                    mik = m[i, k]
                    for x in range(w):
                        t[i, x] = _fma(mik, px[r, x] - 128.0, t[i, x])
                for x in range(w, nbx * n):  # edge padding: the last column repeated
                    t[i, x] = t[i, w - 1]
                for k in range(n):
                    for b in range(nbx):
                        tt[i, k, b] = t[i, b * n + k]
            _right_product(tt, m, cc, n)
            for b in range(nbx):
                e = 0  # end of block: the last non-zero level in zig-zag order
                for i in range(n):
                    for j in range(n):
                        v = cc[i, j, b]
                        coeffs[by, b, i, j] = v
                        level = np.int64(np.rint(v / qstep[i, j]))
                        q[by, b, i, j] = level
                        if level != 0 and izz[i * n + j] > e:
                            e = izz[i * n + j]
                eob[by, b] = e

    @njit_cached
    def inverse(q, qstep, inv, out):
        nby, nbx = q.shape[0], q.shape[1]
        y = np.empty((n, n, nbx))
        t = np.empty((n, n, nbx))
        cc = np.empty((n, n, nbx))
        for by in range(nby):
            for b in range(nbx):
                for k in range(n):
                    for j in range(n):
                        y[k, j, b] = np.float64(q[by, b, k, j]) * qstep[k, j]
            for i in range(n):  # t = M⁻¹ Y
                for j in range(n):
                    a0 = inv[i, 0]
                    for b in range(nbx):
                        t[i, j, b] = a0 * y[0, j, b]
                    for k in range(1, n):
                        a = inv[i, k]
                        for b in range(nbx):
                            t[i, j, b] = _fma(a, y[k, j, b], t[i, j, b])
            _right_product(t, inv, cc, n)  # t M⁻ᵀ
            for i in range(n):  # as pixels of the padded plane
                for b in range(nbx):
                    for j in range(n):
                        out[by * n + i, b * n + j] = cc[i, j, b] + 128.0

    return forward_quant, inverse


_CHAIN: dict = {}


def _chain(n: int):
    if n not in _CHAIN:
        _CHAIN[n] = _chain_kernels(n)
    return _CHAIN[n]


def blocks_forward_quant(px: np.ndarray, m: np.ndarray, qstep: np.ndarray, zz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One plane ``(h, w)`` (0..255) -> ``(coeffs, q, eob)`` of its edge-padded ``N × N`` blocks
    minus 128: ``coeffs = M X Mᵀ`` (float64) and ``q = rint(coeffs / Q)`` (int64), both
    ``(ceil(h/N), ceil(w/N), N, N)``, and each block's end of block (zig-zag index of its last
    non-zero AC level, 0 if none; ``zz`` the zig-zag order)."""
    n = m.shape[0]
    h, w = px.shape
    shape = (-(-h // n), -(-w // n), n, n)
    coeffs = np.empty(shape)
    q = np.empty(shape, dtype=np.int64)
    eob = np.empty(shape[:2], dtype=np.int64)
    izz = np.empty(n * n, dtype=np.int64)
    izz[np.asarray(zz)] = np.arange(n * n)
    _chain(n)[0](np.ascontiguousarray(px, dtype=np.float64), np.ascontiguousarray(m, dtype=np.float64),
                 np.ascontiguousarray(qstep, dtype=np.float64), izz, coeffs, q, eob)
    return coeffs, q, eob


def blocks_inverse(q: np.ndarray, qstep: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """``(nby, nbx, N, N)`` levels -> the padded plane ``(nby N, nbx N)`` of pixel blocks
    ``M⁻¹ (q Q) M⁻ᵀ + 128`` (float64)."""
    nby, nbx, n, _ = q.shape
    out = np.empty((nby * n, nbx * n))
    _chain(n)[1](np.ascontiguousarray(q, dtype=np.int64), np.ascontiguousarray(qstep, dtype=np.float64),
                 np.ascontiguousarray(inv, dtype=np.float64), out)
    return out


@njit_cached
def _chroma_row(plane, i, sub, v, out):
    """Row ``i`` of a chroma plane at full resolution: the row itself, or libjpeg-style
    triangular upsampling (rows first, then columns) of the half-size plane (``upsample2``)."""
    w = out.shape[0]
    if not sub:
        for j in range(w):
            out[j] = plane[i, j]
        return
    ch, cw = plane.shape
    si = i >> 1
    ni = si - 1 if (i & 1) == 0 else si + 1
    ni = 0 if ni < 0 else (ch - 1 if ni > ch - 1 else ni)
    for s in range(cw):
        v[s] = 0.75 * plane[si, s] + 0.25 * plane[ni, s]
    for s in range(cw):
        j = 2 * s
        if j < w:
            out[j] = 0.75 * v[s] + 0.25 * v[max(s - 1, 0)]
        if j + 1 < w:
            out[j + 1] = 0.75 * v[s] + 0.25 * v[min(s + 1, cw - 1)]


@njit_cached
def _compose(yp, cbp, crp, sub, m, out):
    h, w, _ = out.shape
    v = np.empty(cbp.shape[1])
    cb = np.empty(w)
    cr = np.empty(w)
    for i in range(h):
        _chroma_row(cbp, i, sub, v, cb)
        _chroma_row(crp, i, sub, v, cr)
        for j in range(w):
            cb[j] -= 128.0
            cr[j] -= 128.0
        for k in range(3):
            m0, m1, m2 = m[k, 0], m[k, 1], m[k, 2]
            for j in range(w):
                x = np.rint(_dot3(yp[i, j], cb[j], cr[j], m0, m1, m2))
                out[i, j, k] = np.uint8(min(max(x, 0.0), 255.0))


def compose_rgb(planes: list[np.ndarray], shape: tuple[int, int], chroma_shape: tuple[int, int], subsampling: str, m: np.ndarray) -> np.ndarray:
    """Y, Cb, Cr padded planes (from :func:`blocks_inverse`) -> ``(H, W, 3)`` uint8 RGB: the
    same values as cropping + ``upsample2`` + ``ycbcr_to_rgb`` + ``to_uint8``."""
    out = np.empty((int(shape[0]), int(shape[1]), 3), dtype=np.uint8)
    ch, cw = int(chroma_shape[0]), int(chroma_shape[1])
    _compose(planes[0], np.ascontiguousarray(planes[1][:ch, :cw]), np.ascontiguousarray(planes[2][:ch, :cw]),
             subsampling == "4:2:0", np.ascontiguousarray(m, dtype=np.float64), out)
    return out


_EXACT: dict = {}


def transform_kernels_exact(tr) -> bool:
    """True when :func:`blocks_forward_quant` / :func:`blocks_inverse` reproduce numpy's
    ``matmul`` bit for bit for transform ``tr`` on this machine (checked once per transform)."""
    key = (tr.name, tr.N, tr.matrix.tobytes())
    if key not in _EXACT:
        ok = False
        if _fma is not None and tr.N in _CHAIN_SIZES:
            rng = np.random.default_rng(11)
            n = tr.N
            px = rng.uniform(0, 255, (3 * n + 1, 2 * n + 3))
            qstep = rng.integers(1, 40, (n, n))
            coeffs, q, _ = blocks_forward_quant(px, tr.matrix, qstep, np.arange(n * n))
            p = np.pad(px - 128.0, ((0, (-px.shape[0]) % n), (0, (-px.shape[1]) % n)), mode="edge")
            ref = tr.forward(p.reshape(p.shape[0] // n, n, p.shape[1] // n, n).transpose(0, 2, 1, 3))
            levels = rng.integers(-60, 60, (3, 2, n, n))
            inv_ref = tr.inverse(levels.astype(np.float64) * qstep) + 128.0
            back = blocks_inverse(levels, qstep, tr.inverse_matrix).reshape(3, n, 2, n).transpose(0, 2, 1, 3)
            ok = (np.array_equal(coeffs, ref) and np.array_equal(q, np.rint(ref / qstep).astype(np.int64))
                  and np.array_equal(back, inv_ref))
        _EXACT[key] = bool(ok)
    return _EXACT[key]
