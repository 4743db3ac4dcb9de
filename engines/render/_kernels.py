"""Numba CPU kernels for tile-based splat compositing, forward and hand-written backward.

Splats are binned into TILE x TILE pixel tiles in depth order (once per forward; the lists are
reused by the backward); each pixel walks its tile's list front to back (forward) and back to
front (backward, reconstructing T by division, as the 3DGS CUDA rasterizer does). Rules match
:mod:`engines.render.reference` exactly.
Weight modes: 0 = Gaussian with conic (A, B, C), 1 = analytic pixel integral (c, s, σ₁, σ₂).

Parallelism: one compiled per-tile function (``_forward_tile`` / ``_backward_tile``) is driven
either by a plain loop (``forward_serial`` / ``backward_serial``) or by ``numba.prange`` over tiles
(``forward`` / ``backward``). Tiles own disjoint pixels, so the forward needs no synchronisation;
the backward writes each (tile, splat) pair's gradient into its own row of a per-pair buffer,
which ``_reduce_pairs`` sums per splat in list order. The arithmetic and summation order never
depend on the thread count: serial and parallel results are bit-identical.

Per tile, the splats' screen data are first gathered into contiguous float64 rows (the same
values the per-splat arrays promote to), and in Gaussian mode a conservative per-splat exponent
threshold (``log_thresholds``) skips exp() for pixels whose α is certainly below 1/255.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

TILE = 8  # default tile edge in pixels (8 is fastest on CPU for 1-4 px splats)
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4
INV_SQRT2 = 0.7071067811865476
INV_SQRT2PI = 0.3989422804014327


@njit(cache=True, nogil=True)
def _ndtr(x):
    return 0.5 * math.erfc(-x * INV_SQRT2)


@njit(cache=True, nogil=True)
def _npdf(x):
    return INV_SQRT2PI * math.exp(-0.5 * x * x)


@njit(cache=True, nogil=True)
def bin_tiles(mx, my, radii, order, width, height, TILE):
    """CSR lists of splat ids per tile, each list in ``order`` (depth) order.

    Returns (offsets (ntiles+1,), ids (npairs,), x0, x1, y0, y1 per splat pixel ranges).
    """
    n = mx.shape[0]
    ntx = (width + TILE - 1) // TILE
    nty = (height + TILE - 1) // TILE
    x0 = np.empty(n, np.int64)
    x1 = np.empty(n, np.int64)
    y0 = np.empty(n, np.int64)
    y1 = np.empty(n, np.int64)
    counts = np.zeros(ntx * nty + 1, np.int64)
    for g in range(n):
        r = radii[g]
        a0 = max(0, int(math.ceil(mx[g] - r - 0.5)))  # noqa: RUF046
        a1 = min(width - 1, int(math.floor(mx[g] + r - 0.5)))  # noqa: RUF046
        b0 = max(0, int(math.ceil(my[g] - r - 0.5)))  # noqa: RUF046
        b1 = min(height - 1, int(math.floor(my[g] + r - 0.5)))  # noqa: RUF046
        x0[g], x1[g], y0[g], y1[g] = a0, a1, b0, b1
        if a0 > a1 or b0 > b1:
            continue
        for ty in range(b0 // TILE, b1 // TILE + 1):
            for tx in range(a0 // TILE, a1 // TILE + 1):
                counts[ty * ntx + tx + 1] += 1
    offsets = np.cumsum(counts)
    fill = offsets[:-1].copy()
    ids = np.empty(offsets[-1], np.int64)
    for k in range(n):
        g = order[k]
        if x0[g] > x1[g] or y0[g] > y1[g]:
            continue
        for ty in range(y0[g] // TILE, y1[g] // TILE + 1):
            for tx in range(x0[g] // TILE, x1[g] // TILE + 1):
                t = ty * ntx + tx
                ids[fill[t]] = g
                fill[t] += 1
    return offsets, ids, x0, x1, y0, y1


@njit(cache=True, nogil=True)
def _weight(mode, dx, dy, p0, p1, p2, p3):
    if mode == 0:
        return math.exp(-0.5 * (p0 * dx * dx + p2 * dy * dy) - p1 * dx * dy)
    p = dx * p0 + dy * p1
    q = -dx * p1 + dy * p0
    fp = _ndtr((p + 0.5) / p2) - _ndtr((p - 0.5) / p2)
    fq = _ndtr((q + 0.5) / p3) - _ndtr((q - 0.5) / p3)
    return 2.0 * math.pi * p2 * p3 * fp * fq


@njit(cache=True, nogil=True)
def log_thresholds(opac):
    """Per splat: exponents below which opac·exp(power) < ALPHA_MIN for sure (lets mode 0 skip exp).

    A small safety margin keeps the shortcut conservative; the exact test still decides otherwise.
    """
    n = opac.shape[0]
    out = np.empty(n, np.float64)
    for g in range(n):
        o = float(opac[g])
        out[g] = math.log(ALPHA_MIN / o) - 1e-6 if o > 0.0 else np.inf
    return out


@njit(cache=True, nogil=True)
def _gather_tile(start, cnt, ids, mx, my, params, opac, lthr, x0, x1, y0, y1):
    """Copy one tile's splats into contiguous arrays (reused by every pixel of the tile).

    Returns ``sm`` (cnt, 8) float64: mean x, mean y, 4 footprint params, opacity, log-threshold;
    and ``box`` (cnt, 4) int64: pixel bounds x0, x1, y0, y1.
    """
    sm = np.empty((cnt, 8), np.float64)
    box = np.empty((cnt, 4), np.int64)
    for j in range(cnt):
        g = ids[start + j]
        sm[j, 0] = mx[g]
        sm[j, 1] = my[g]
        for k in range(4):
            sm[j, 2 + k] = params[g, k]
        sm[j, 6] = opac[g]
        sm[j, 7] = lthr[g]
        box[j, 0] = x0[g]
        box[j, 1] = x1[g]
        box[j, 2] = y0[g]
        box[j, 3] = y1[g]
    return sm, box


@njit(cache=True, nogil=True)
def _forward_tile(t, mx, my, params, opac, colors, lthr, offsets, ids, x0, x1, y0, y1, width, height, mode, bg,
                  TILE, image, t_final, last):
    nchan = colors.shape[1]
    ntx = (width + TILE - 1) // TILE
    start, stop = offsets[t], offsets[t + 1]
    cnt = stop - start
    ty0, tx0 = (t // ntx) * TILE, (t % ntx) * TILE
    sm, box = _gather_tile(start, cnt, ids, mx, my, params, opac, lthr, x0, x1, y0, y1)
    for py in range(ty0, min(height, ty0 + TILE)):
        for px in range(tx0, min(width, tx0 + TILE)):
            T = 1.0
            n_used = start
            cx = px + 0.5
            cy = py + 0.5
            for j in range(cnt):
                if px < box[j, 0] or px > box[j, 1] or py < box[j, 2] or py > box[j, 3]:
                    continue
                dx = cx - sm[j, 0]
                dy = cy - sm[j, 1]
                if mode == 0:
                    power = -0.5 * (sm[j, 2] * dx * dx + sm[j, 4] * dy * dy) - sm[j, 3] * dx * dy
                    if power < sm[j, 7]:
                        continue
                    w = math.exp(power)
                else:
                    w = _weight(mode, dx, dy, sm[j, 2], sm[j, 3], sm[j, 4], sm[j, 5])
                alpha = min(ALPHA_MAX, sm[j, 6] * w)
                if alpha < ALPHA_MIN:
                    continue
                test_t = T * (1.0 - alpha)
                if test_t < T_MIN:
                    break
                g = ids[start + j]
                for c in range(nchan):
                    image[py, px, c] += alpha * T * colors[g, c]
                T = test_t
                n_used = start + j + 1
            for c in range(nchan):
                image[py, px, c] += T * bg[c]
            t_final[py, px] = T
            last[py, px] = n_used


@njit(cache=True, nogil=True)
def _alloc_forward(height, width, nchan, dtype_like):
    image = np.zeros((height, width, nchan), dtype_like.dtype)
    t_final = np.ones((height, width), dtype_like.dtype)
    last = np.zeros((height, width), np.int64)
    return image, t_final, last


@njit(cache=True, nogil=True)
def forward_serial(mx, my, params, opac, colors, lthr, offsets, ids, x0, x1, y0, y1, width, height, mode, bg, TILE):
    """Single-threaded composite; same outputs as :func:`forward`."""
    image, t_final, last = _alloc_forward(height, width, colors.shape[1], colors)
    for t in range(offsets.shape[0] - 1):
        _forward_tile(t, mx, my, params, opac, colors, lthr, offsets, ids, x0, x1, y0, y1, width, height, mode, bg,
                      TILE, image, t_final, last)
    return image, t_final, last


@njit(cache=True, nogil=True, parallel=True)
def forward(mx, my, params, opac, colors, lthr, offsets, ids, x0, x1, y0, y1, width, height, mode, bg, TILE):
    """Composite -> (image (H,W,C), T_final (H,W), n_used (H,W) = list position after the last used splat).

    Tiles in parallel (``numba.prange``); ``lthr`` from :func:`log_thresholds`.
    """
    image, t_final, last = _alloc_forward(height, width, colors.shape[1], colors)
    for t in prange(offsets.shape[0] - 1):
        _forward_tile(t, mx, my, params, opac, colors, lthr, offsets, ids, x0, x1, y0, y1, width, height, mode, bg,
                      TILE, image, t_final, last)
    return image, t_final, last


@njit(cache=True, nogil=True, parallel=True)
def forward_tiles(mx, my, params, opac, colors, lthr, offsets, ids, x0, x1, y0, y1, width, height, mode, bg, TILE,
                  first, stop, image, t_final, last):
    """:func:`forward` for tiles ``first``..``stop-1`` only, into preallocated outputs.

    ``image`` zeros (H,W,C), ``t_final`` ones (H,W), ``last`` zeros (H,W) as :func:`forward`
    allocates them; the same per-tile function writes the same values, so a frame composited in
    bands of tiles (with a cancellation check between bands) is bit-identical to one call.
    """
    for t in prange(first, stop):
        _forward_tile(t, mx, my, params, opac, colors, lthr, offsets, ids, x0, x1, y0, y1, width, height, mode, bg,
                      TILE, image, t_final, last)


@njit(cache=True, nogil=True)
def _backward_tile(t, mx, my, params, opac, colors, lthr, offsets, ids, x0, x1, y0, y1, width, height, mode, bg,
                   t_final, last, grad_image, grad_alpha, TILE, buf):
    """Accumulate this tile's gradients into rows offsets[t]..offsets[t+1] of ``buf``.

    buf columns: 0-1 d means2d, 2-5 d params, 6 d opacity, 7.. d colours.
    """
    nchan = colors.shape[1]
    ntx = (width + TILE - 1) // TILE
    start = offsets[t]
    acc = np.zeros(nchan, np.float64)
    last_col = np.zeros(nchan, np.float64)
    ty0, tx0 = (t // ntx) * TILE, (t % ntx) * TILE
    cnt = offsets[t + 1] - start
    sm, box = _gather_tile(start, cnt, ids, mx, my, params, opac, lthr, x0, x1, y0, y1)
    for py in range(ty0, min(height, ty0 + TILE)):
        for px in range(tx0, min(width, tx0 + TILE)):
            stop = last[py, px]
            if stop <= start:
                continue
            T_fin = t_final[py, px]
            T = T_fin
            bg_dot = 0.0
            for c in range(nchan):
                bg_dot += bg[c] * grad_image[py, px, c]
                acc[c] = 0.0
                last_col[c] = 0.0
            last_alpha = 0.0
            ga = grad_alpha[py, px]
            cx = px + 0.5
            cy = py + 0.5
            for k in range(stop - 1, start - 1, -1):
                j = k - start
                if px < box[j, 0] or px > box[j, 1] or py < box[j, 2] or py > box[j, 3]:
                    continue
                dx = cx - sm[j, 0]
                dy = cy - sm[j, 1]
                p0, p1, p2, p3 = sm[j, 2], sm[j, 3], sm[j, 4], sm[j, 5]
                if mode == 0:
                    power = -0.5 * (p0 * dx * dx + p2 * dy * dy) - p1 * dx * dy
                    if power < sm[j, 7]:
                        continue
                    w = math.exp(power)
                else:
                    w = _weight(mode, dx, dy, p0, p1, p2, p3)
                op_g = sm[j, 6]
                g = ids[k]
                raw = op_g * w
                alpha = min(ALPHA_MAX, raw)
                if alpha < ALPHA_MIN:
                    continue
                T = T / (1.0 - alpha)
                d_alpha = 0.0
                for c in range(nchan):
                    acc[c] = last_alpha * last_col[c] + (1.0 - last_alpha) * acc[c]
                    gc = grad_image[py, px, c]
                    buf[k, 7 + c] += alpha * T * gc
                    d_alpha += (colors[g, c] - acc[c]) * T * gc
                    last_col[c] = colors[g, c]
                last_alpha = alpha
                d_alpha += (-T_fin / (1.0 - alpha)) * bg_dot + ga * T_fin / (1.0 - alpha)
                if raw > ALPHA_MAX:
                    continue
                buf[k, 6] += d_alpha * w
                dw = d_alpha * op_g
                if mode == 0:
                    gx = -w * (p0 * dx + p1 * dy)  # d w / d dx
                    gy = -w * (p2 * dy + p1 * dx)
                    buf[k, 2] += dw * (-0.5 * w * dx * dx)
                    buf[k, 3] += dw * (-w * dx * dy)
                    buf[k, 4] += dw * (-0.5 * w * dy * dy)
                else:
                    p = dx * p0 + dy * p1
                    q = -dx * p1 + dy * p0
                    ap, bp = (p + 0.5) / p2, (p - 0.5) / p2
                    aq, bq = (q + 0.5) / p3, (q - 0.5) / p3
                    fp = _ndtr(ap) - _ndtr(bp)
                    fq = _ndtr(aq) - _ndtr(bq)
                    k2 = 2.0 * math.pi * p2 * p3
                    dfp_dp = (_npdf(ap) - _npdf(bp)) / p2
                    dfq_dq = (_npdf(aq) - _npdf(bq)) / p3
                    dfp_ds = -(_npdf(ap) * ap - _npdf(bp) * bp) / p2
                    dfq_ds = -(_npdf(aq) * aq - _npdf(bq) * bq) / p3
                    dw_dp = k2 * dfp_dp * fq
                    dw_dq = k2 * fp * dfq_dq
                    gx = dw_dp * p0 - dw_dq * p1
                    gy = dw_dp * p1 + dw_dq * p0
                    buf[k, 2] += dw * (dw_dp * dx + dw_dq * dy)
                    buf[k, 3] += dw * (dw_dp * dy - dw_dq * dx)
                    buf[k, 4] += dw * (w / p2 + k2 * dfp_ds * fq)
                    buf[k, 5] += dw * (w / p3 + k2 * fp * dfq_ds)
                buf[k, 0] -= dw * gx
                buf[k, 1] -= dw * gy


@njit(cache=True, nogil=True)
def _reduce_pairs(n, ids, buf, nchan, dtype_like):
    """Sum per-pair gradient rows per splat, in list (tile, depth) order."""
    g_mean = np.zeros((n, 2), dtype_like.dtype)
    g_par = np.zeros((n, 4), dtype_like.dtype)
    g_op = np.zeros(n, dtype_like.dtype)
    g_col = np.zeros((n, nchan), dtype_like.dtype)
    acc = np.zeros((n, 7 + nchan), np.float64)
    for k in range(ids.shape[0]):
        g = ids[k]
        for j in range(7 + nchan):
            acc[g, j] += buf[k, j]
    for g in range(n):
        g_mean[g, 0] = acc[g, 0]
        g_mean[g, 1] = acc[g, 1]
        for j in range(4):
            g_par[g, j] = acc[g, 2 + j]
        g_op[g] = acc[g, 6]
        for c in range(nchan):
            g_col[g, c] = acc[g, 7 + c]
    return g_mean, g_par, g_op, g_col


@njit(cache=True, nogil=True)
def backward_serial(mx, my, params, opac, colors, lthr, offsets, ids, x0, x1, y0, y1, width, height, mode, bg,
                    t_final, last, grad_image, grad_alpha, TILE):
    """Single-threaded backward; same outputs as :func:`backward`."""
    nchan = colors.shape[1]
    buf = np.zeros((ids.shape[0], 7 + nchan), np.float64)
    for t in range(offsets.shape[0] - 1):
        _backward_tile(t, mx, my, params, opac, colors, lthr, offsets, ids, x0, x1, y0, y1, width, height, mode, bg,
                       t_final, last, grad_image, grad_alpha, TILE, buf)
    return _reduce_pairs(mx.shape[0], ids, buf, nchan, colors)


@njit(cache=True, nogil=True, parallel=True)
def backward(mx, my, params, opac, colors, lthr, offsets, ids, x0, x1, y0, y1, width, height, mode, bg,
             t_final, last, grad_image, grad_alpha, TILE):
    """Gradients (d means2d (M,2), d params (M,4), d opac (M,), d colors (M,C)) of the composite.

    Tiles in parallel into a per-pair float64 buffer (npairs, 7+C), then a fixed-order reduction.
    """
    nchan = colors.shape[1]
    buf = np.zeros((ids.shape[0], 7 + nchan), np.float64)
    for t in prange(offsets.shape[0] - 1):
        _backward_tile(t, mx, my, params, opac, colors, lthr, offsets, ids, x0, x1, y0, y1, width, height, mode, bg,
                       t_final, last, grad_image, grad_alpha, TILE, buf)
    return _reduce_pairs(mx.shape[0], ids, buf, nchan, colors)
