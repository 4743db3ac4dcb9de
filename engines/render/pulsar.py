"""Pulsar-style differentiable sphere renderer (Lassner & Zollhöfer 2021), vectorized torch.

For each pixel ray and sphere i: closeness cᵢ = clamp(1 − dist(ray, centre)/radius, 0, 1);
normalized depth dᵢ = (zᵢ − min_depth)/(max_depth − min_depth) with zᵢ the camera-space depth of
the ray's first intersection with the sphere (Pulsar's intersection depth; the centre depth in the
``depth="centre"`` variant of :func:`render_spheres_dense`); weight wᵢ = cᵢ·oᵢ·exp(oᵢ(1 − dᵢ)/γ). The background has weight exp(ε/γ) (normalized
depth 1 − ε, closeness 1, opacity 1). Pixel = (Σ wᵢ colᵢ + w_bg·bg) / (Σ wᵢ + w_bg), computed as a
softmax of log-weights. γ in [1e-5, 1]: 1 is soft (good for optimization), → 0 is a hard z-buffer.

:func:`render_spheres` works on a pair list: each sphere only meets the pixels of its screen box
(the projection of its bounding cube), and the per-pixel softmax runs over those (pixel, sphere)
pairs with scatter operations, instead of every pixel against every sphere
(:func:`render_spheres_dense`, kept as the reference). Both give the same image.
"""

from __future__ import annotations

import torch

__all__ = ["render_spheres", "render_spheres_dense", "render_spheres_scene"]


def _setup(centres, radii, colors, opacities, viewmat, K, width, height, gamma, min_depth, max_depth, background,
           near):
    """((camera-space centres, radii, colors, opacities of the visible spheres, K, bg, depth lo, span), None),
    or (None, the background image) when no sphere is in front of the camera. Shared by both renderers."""
    if not 1e-5 <= gamma <= 1.0:
        raise ValueError("gamma must be in [1e-5, 1]")
    dtype = centres.dtype
    viewmat = viewmat.to(centres.device, dtype)
    K = K.to(centres.device, dtype)
    t = centres @ viewmat[:3, :3].T + viewmat[:3, 3]
    visible = t[:, 2] > near
    t, radii, colors, opacities = t[visible], radii[visible], colors[visible], opacities[visible]
    nchan = colors.shape[1]
    bg = colors.new_ones(nchan) if background is None else torch.as_tensor(background, dtype=dtype)
    if t.shape[0] == 0:
        return None, (bg.expand(height, width, nchan).clone(), colors.new_zeros(height, width))
    with torch.no_grad():
        rmax = float(radii.max())
        lo = float(t[:, 2].min()) - rmax if min_depth is None else float(min_depth)
        hi = float(t[:, 2].max()) + rmax if max_depth is None else float(max_depth)
        lo = max(lo, near)
        span = max(hi - lo, 1e-6)
    return (t, radii, colors, opacities, K, bg, lo, span), None


def _pixel_dirs(K, width: int, height: int, dtype) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij")
    dirs = torch.stack([(xs.reshape(-1) + 0.5 - K[0, 2]) / K[0, 0], (ys.reshape(-1) + 0.5 - K[1, 2]) / K[1, 1],
                        torch.ones(width * height, dtype=dtype)], 1)
    return dirs / dirs.norm(dim=1, keepdim=True)


def _screen_boxes(t, radii, K, width: int, height: int, near: float):
    """Pixel ranges x0..x1, y0..y1 (inclusive, pixel centres) holding each sphere's projection.

    The bounding cube [x ± r] x [y ± r] x [z ± r] projects inside [min, max] of x'/z' over its corners
    (x'/z' is monotonic in each); spheres reaching the near plane get the whole image.
    """
    with torch.no_grad():
        x, y, z, r = t[:, 0], t[:, 1], t[:, 2], radii
        front = z - r > near
        zf, zb = torch.where(front, z - r, torch.ones_like(z)), z + r
        bounds = []
        for c, f, p, size in ((x, K[0, 0], K[0, 2], width), (y, K[1, 1], K[1, 2], height)):
            lo_ = torch.minimum((c - r) / zf, (c - r) / zb) * f + p
            hi_ = torch.maximum((c + r) / zf, (c + r) / zb) * f + p
            first = torch.where(front, torch.ceil(lo_ - 0.5), torch.zeros_like(lo_)).clamp(0, size)
            last = torch.where(front, torch.floor(hi_ - 0.5), torch.full_like(hi_, size - 1)).clamp(-1, size - 1)
            bounds += [first.long(), last.long()]
        return bounds


def render_spheres(centres, radii, colors, opacities, viewmat, K, width: int, height: int, *,
                   gamma: float = 1.0, min_depth: float | None = None, max_depth: float | None = None,
                   background=None, bg_epsilon: float = 1e-4, near: float = 0.01):
    """Render N spheres -> (image (H,W,C), coverage (H,W) = Σwᵢ/(Σwᵢ + w_bg)).

    centres (N,3) world, radii (N,) world units, colors (N,C), opacities (N,) in (0,1],
    viewmat (4,4) world->camera (OpenCV), K (3,3) pixels. ``min_depth``/``max_depth`` default to
    the visible spheres' depth range (padded by the largest radius). Differentiable in centres,
    radii, colors and opacities. Pair-list implementation (see the module docstring).
    """
    return _render(_composite_pairs, centres, radii, colors, opacities, viewmat, K, width, height, gamma, min_depth,
                   max_depth, background, bg_epsilon, near)


def _render(kernel, centres, radii, colors, opacities, viewmat, K, width, height, gamma, min_depth, max_depth,
            background, bg_epsilon, near, **extra):
    visible, empty = _setup(centres, radii, colors, opacities, viewmat, K, width, height, gamma, min_depth, max_depth,
                            background, near)
    return empty if empty is not None else kernel(*visible, width, height, gamma, bg_epsilon, near, **extra)


def _composite_pairs(t, radii, colors, opacities, K, bg, lo, span, width, height, gamma, bg_epsilon, near):
    dtype, nchan = t.dtype, colors.shape[1]
    x0, x1, y0, y1 = _screen_boxes(t, radii, K, width, height, near)
    wx, wy = (x1 - x0 + 1).clamp_min(0), (y1 - y0 + 1).clamp_min(0)
    area = wx * wy
    sid = torch.repeat_interleave(torch.arange(len(area)), area)
    start = torch.cumsum(area, 0) - area
    local = torch.arange(len(sid)) - start[sid]
    pix = (y0[sid] + local // wx[sid]) * width + x0[sid] + local % wx[sid]
    d = _pixel_dirs(K, width, height, dtype)[pix]
    ts = t[sid]
    along = (d * ts).sum(1)
    dist_sq = (ts * ts).sum(1) - along * along
    with torch.no_grad():
        hit = ((dist_sq < radii[sid] ** 2) & (along > 0)).nonzero().squeeze(1)
    sid, pix, d, along, dist_sq = sid[hit], pix[hit], d[hit], along[hit], dist_sq[hit]
    r = radii[sid]
    close = 1.0 - torch.sqrt(dist_sq.clamp_min(1e-20)) / r
    z_hit = (along - torch.sqrt((r * r - dist_sq).clamp_min(1e-20))) * d[:, 2]
    o = opacities[sid]
    logit = torch.log(close.clamp_min(1e-30)) + torch.log(o.clamp_min(1e-12)) + o * (1.0 - (z_hit - lo) / span) / gamma
    npix = width * height
    bg_logit = bg_epsilon / gamma
    with torch.no_grad():  # per-pixel maximum for a stable softmax (the result does not depend on it)
        top = torch.full((npix,), bg_logit, dtype=dtype).scatter_reduce(0, pix, logit.detach(), "amax")
    w = torch.exp(logit - top[pix])
    w_bg = torch.exp(bg_logit - top)
    denom = w_bg + torch.zeros(npix, dtype=dtype).index_add(0, pix, w)
    num = w_bg[:, None] * bg + torch.zeros(npix, nchan, dtype=dtype).index_add(0, pix, w[:, None] * colors[sid])
    image = (num / denom[:, None]).reshape(height, width, nchan)
    return image, (1.0 - w_bg / denom).reshape(height, width)


def render_spheres_dense(centres, radii, colors, opacities, viewmat, K, width: int, height: int, *,
                         gamma: float = 1.0, min_depth: float | None = None, max_depth: float | None = None,
                         background=None, bg_epsilon: float = 1e-4, near: float = 0.01, chunk: int = 4096,
                         depth: str = "intersection"):
    """The reference: every pixel against every sphere (same result as :func:`render_spheres`).

    ``depth="centre"`` uses the centre depth instead of the intersection (the earlier renderer)."""
    return _render(_composite_dense, centres, radii, colors, opacities, viewmat, K, width, height, gamma, min_depth,
                   max_depth, background, bg_epsilon, near, chunk=chunk, depth=depth)


def _composite_dense(t, radii, colors, opacities, K, bg, lo, span, width, height, gamma, bg_epsilon, near, chunk,
                     depth):
    dtype, nchan = t.dtype, colors.shape[1]
    dirs = _pixel_dirs(K, width, height, dtype)
    log_o = torch.log(opacities.clamp_min(1e-12))
    bg_logit = torch.tensor(bg_epsilon / gamma, dtype=dtype)
    images, cover = [], []
    for start in range(0, dirs.shape[0], chunk):
        d = dirs[start:start + chunk]
        along = d @ t.T  # (P, N)
        dist_sq = (t * t).sum(1)[None] - along * along
        dist = torch.sqrt(dist_sq.clamp_min(1e-20))
        close = 1.0 - dist / radii[None]
        hit = (close > 0) & (along > 0)
        if depth == "centre":
            z = t[:, 2][None].expand_as(close)
        else:
            z = (along - torch.sqrt((radii[None] ** 2 - dist_sq).clamp_min(1e-20))) * d[:, 2:3]
        depth_term = opacities[None] * (1.0 - (z - lo) / span) / gamma
        logit = torch.where(hit, torch.log(torch.where(hit, close, torch.ones_like(close))) + log_o[None]
                            + depth_term, torch.full_like(close, -torch.inf))
        all_logits = torch.cat([logit, bg_logit.expand(d.shape[0], 1)], 1)
        weights = torch.softmax(all_logits, 1)
        images.append(weights[:, :-1] @ colors + weights[:, -1:] * bg)
        cover.append(1.0 - weights[:, -1])
    return torch.cat(images).reshape(height, width, nchan), torch.cat(cover).reshape(height, width)


def render_spheres_scene(spheres, camera, **kwargs):
    """Render a :class:`~engines.render.scene.Spheres` with a :class:`~engines.render.camera.Camera`."""
    return render_spheres(spheres.centres, spheres.radii, spheres.colors, spheres.opacities,
                          camera.viewmat, camera.K, camera.width, camera.height, **kwargs)
