"""Numba CPU kernels for tile-based splat compositing, forward and hand-written backward.

Splats are binned into 16x16 pixel tiles in depth order; each pixel walks its tile's list
front to back (forward) and back to front (backward, reconstructing T by division, as the
3DGS CUDA rasterizer does). Rules match :mod:`engines.render.reference` exactly.
Weight modes: 0 = Gaussian with conic (A, B, C), 1 = analytic pixel integral (c, s, σ₁, σ₂).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TILE = 8  # default tile edge in pixels (8 is fastest on CPU for 1-4 px splats)
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4
INV_SQRT2 = 0.7071067811865476
INV_SQRT2PI = 0.3989422804014327


@njit(cache=True)
def _ndtr(x):
    return 0.5 * math.erfc(-x * INV_SQRT2)


@njit(cache=True)
def _npdf(x):
    return INV_SQRT2PI * math.exp(-0.5 * x * x)


@njit(cache=True)
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


@njit(cache=True)
def _weight(mode, dx, dy, p0, p1, p2, p3):
    if mode == 0:
        return math.exp(-0.5 * (p0 * dx * dx + p2 * dy * dy) - p1 * dx * dy)
    p = dx * p0 + dy * p1
    q = -dx * p1 + dy * p0
    fp = _ndtr((p + 0.5) / p2) - _ndtr((p - 0.5) / p2)
    fq = _ndtr((q + 0.5) / p3) - _ndtr((q - 0.5) / p3)
    return 2.0 * math.pi * p2 * p3 * fp * fq


@njit(cache=True)
def forward(mx, my, params, opac, colors, offsets, ids, x0, x1, y0, y1, width, height, mode, bg, TILE):
    """Composite -> (image (H,W,C), T_final (H,W), n_used (H,W) = list position after the last used splat)."""
    nchan = colors.shape[1]
    ntx = (width + TILE - 1) // TILE
    image = np.zeros((height, width, nchan), colors.dtype)
    t_final = np.ones((height, width), colors.dtype)
    last = np.zeros((height, width), np.int64)
    for t in range(offsets.shape[0] - 1):
        start, stop = offsets[t], offsets[t + 1]
        if start == stop:
            for py in range((t // ntx) * TILE, min(height, (t // ntx + 1) * TILE)):
                for px in range((t % ntx) * TILE, min(width, (t % ntx + 1) * TILE)):
                    for c in range(nchan):
                        image[py, px, c] = bg[c]
            continue
        for py in range((t // ntx) * TILE, min(height, (t // ntx + 1) * TILE)):
            for px in range((t % ntx) * TILE, min(width, (t % ntx + 1) * TILE)):
                T = 1.0
                n_used = start
                cx = px + 0.5
                cy = py + 0.5
                for k in range(start, stop):
                    g = ids[k]
                    if px < x0[g] or px > x1[g] or py < y0[g] or py > y1[g]:
                        continue
                    w = _weight(mode, cx - mx[g], cy - my[g], params[g, 0], params[g, 1], params[g, 2], params[g, 3])
                    alpha = min(ALPHA_MAX, opac[g] * w)
                    if alpha < ALPHA_MIN:
                        continue
                    test_t = T * (1.0 - alpha)
                    if test_t < T_MIN:
                        break
                    for c in range(nchan):
                        image[py, px, c] += alpha * T * colors[g, c]
                    T = test_t
                    n_used = k + 1
                for c in range(nchan):
                    image[py, px, c] += T * bg[c]
                t_final[py, px] = T
                last[py, px] = n_used
    return image, t_final, last


@njit(cache=True)
def backward(mx, my, params, opac, colors, offsets, ids, x0, x1, y0, y1, width, height, mode, bg,
             t_final, last, grad_image, grad_alpha, TILE):
    """Gradients (d means2d (M,2), d params (M,4), d opac (M,), d colors (M,C)) of the composite."""
    n = mx.shape[0]
    nchan = colors.shape[1]
    ntx = (width + TILE - 1) // TILE
    g_mean = np.zeros((n, 2), colors.dtype)
    g_par = np.zeros((n, 4), colors.dtype)
    g_op = np.zeros(n, colors.dtype)
    g_col = np.zeros((n, nchan), colors.dtype)
    acc = np.zeros(nchan, colors.dtype)
    last_col = np.zeros(nchan, colors.dtype)
    for t in range(offsets.shape[0] - 1):
        start = offsets[t]
        for py in range((t // ntx) * TILE, min(height, (t // ntx + 1) * TILE)):
            for px in range((t % ntx) * TILE, min(width, (t % ntx + 1) * TILE)):
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
                    g = ids[k]
                    if px < x0[g] or px > x1[g] or py < y0[g] or py > y1[g]:
                        continue
                    dx = cx - mx[g]
                    dy = cy - my[g]
                    p0, p1, p2, p3 = params[g, 0], params[g, 1], params[g, 2], params[g, 3]
                    w = _weight(mode, dx, dy, p0, p1, p2, p3)
                    raw = opac[g] * w
                    alpha = min(ALPHA_MAX, raw)
                    if alpha < ALPHA_MIN:
                        continue
                    T = T / (1.0 - alpha)
                    d_alpha = 0.0
                    for c in range(nchan):
                        acc[c] = last_alpha * last_col[c] + (1.0 - last_alpha) * acc[c]
                        gc = grad_image[py, px, c]
                        g_col[g, c] += alpha * T * gc
                        d_alpha += (colors[g, c] - acc[c]) * T * gc
                        last_col[c] = colors[g, c]
                    last_alpha = alpha
                    d_alpha += (-T_fin / (1.0 - alpha)) * bg_dot + ga * T_fin / (1.0 - alpha)
                    if raw > ALPHA_MAX:
                        continue
                    g_op[g] += d_alpha * w
                    dw = d_alpha * opac[g]
                    if mode == 0:
                        gx = -w * (p0 * dx + p1 * dy)  # d w / d dx
                        gy = -w * (p2 * dy + p1 * dx)
                        g_par[g, 0] += dw * (-0.5 * w * dx * dx)
                        g_par[g, 1] += dw * (-w * dx * dy)
                        g_par[g, 2] += dw * (-0.5 * w * dy * dy)
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
                        g_par[g, 0] += dw * (dw_dp * dx + dw_dq * dy)
                        g_par[g, 1] += dw * (dw_dp * dy - dw_dq * dx)
                        g_par[g, 2] += dw * (w / p2 + k2 * dfp_ds * fq)
                        g_par[g, 3] += dw * (w / p3 + k2 * fp * dfq_ds)
                    g_mean[g, 0] -= dw * gx
                    g_mean[g, 1] -= dw * gy
    return g_mean, g_par, g_op, g_col
