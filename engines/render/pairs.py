"""Pair-list compositor in plain torch (fast on any device, autograd for the backward).

Each splat emits one (pixel, splat) pair per pixel centre inside its ±radius square; pairs with
α < 1/255 are dropped; pairs are stable-sorted by pixel (splats are pre-sorted by depth), and the
exclusive transmittance of each pair is exp(cumsum(log(1 − α))) within its pixel segment, summed
in float64 to avoid cancellation. Same rules and results as :mod:`engines.render.reference`.
"""

from __future__ import annotations

import torch

from engines.render.reference import ALPHA_MAX, ALPHA_MIN, T_MIN, splat_weight

__all__ = ["composite_pairs"]


def composite_pairs(means2d, params, opacities, colors, radii, depths, width: int, height: int, mode: str,
                    background=None):
    """Composite M splats -> (image (H,W,C), alpha (H,W)); see :func:`composite_reference`."""
    dev = means2d.device
    nchan = colors.shape[1]
    bg = colors.new_zeros(nchan) if background is None else torch.as_tensor(background, dtype=colors.dtype,
                                                                              device=dev)
    order = torch.argsort(depths.detach(), stable=True)
    means2d, params, opacities, colors, radii = (means2d[order], params[order], opacities[order], colors[order],
                                                 radii[order])
    with torch.no_grad():
        mx, my = means2d[:, 0], means2d[:, 1]
        r = radii.to(mx.dtype)
        x0 = torch.ceil(mx - r - 0.5).clamp(min=0).long()
        x1 = torch.floor(mx + r - 0.5).clamp(max=width - 1).long()
        y0 = torch.ceil(my - r - 0.5).clamp(min=0).long()
        y1 = torch.floor(my + r - 0.5).clamp(max=height - 1).long()
        nx = (x1 - x0 + 1).clamp(min=0)
        ny = (y1 - y0 + 1).clamp(min=0)
        counts = nx * ny
        gid = torch.repeat_interleave(torch.arange(len(counts), device=dev), counts)
        first = torch.cumsum(counts, 0) - counts
        local = torch.arange(gid.numel(), device=dev) - first[gid]
        px = x0[gid] + local % nx[gid].clamp(min=1)
        py = y0[gid] + local // nx[gid].clamp(min=1)
    dx = px.to(means2d.dtype) + 0.5 - means2d[gid, 0]
    dy = py.to(means2d.dtype) + 0.5 - means2d[gid, 1]
    alpha = torch.clamp(opacities[gid] * splat_weight(dx, dy, params[gid], mode), max=ALPHA_MAX)
    keep = alpha.detach() >= ALPHA_MIN
    alpha, gid = alpha[keep], gid[keep]
    pix = (py * width + px)[keep]
    perm = torch.argsort(pix, stable=True)  # gid order (= depth order) kept inside each pixel
    alpha, gid, pix = alpha[perm], gid[perm], pix[perm]
    log1m = torch.log1p(-alpha.double())
    cs = torch.cumsum(log1m, 0)
    _, seg_counts = torch.unique_consecutive(pix, return_counts=True)
    seg_first = torch.cumsum(seg_counts, 0) - seg_counts
    base = torch.repeat_interleave((cs - log1m)[seg_first], seg_counts)
    log_t_incl = cs - base
    log_t_excl = log_t_incl - log1m
    used = (log_t_incl.detach() >= torch.log(torch.tensor(T_MIN, dtype=torch.float64))).to(alpha.dtype)
    weight = alpha * torch.exp(log_t_excl).to(alpha.dtype) * used
    image = colors.new_zeros(height * width, nchan).index_add(0, pix, weight[:, None] * colors[gid])
    log_t_final = torch.zeros(height * width, dtype=torch.float64, device=dev).index_add(0, pix, log1m * used)
    t_final = torch.exp(log_t_final).to(colors.dtype)
    image = image + t_final[:, None] * bg
    return image.reshape(height, width, nchan), (1.0 - t_final).reshape(height, width)
