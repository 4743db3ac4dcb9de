"""Pulsar-style differentiable sphere renderer (Lassner & Zollhöfer 2021), vectorized torch.

For each pixel ray and sphere i: closeness cᵢ = clamp(1 − dist(ray, centre)/radius, 0, 1);
normalized depth dᵢ = (zᵢ − min_depth)/(max_depth − min_depth) with zᵢ the camera-space depth of
the centre; weight wᵢ = cᵢ·oᵢ·exp(oᵢ(1 − dᵢ)/γ). The background has weight exp(ε/γ) (normalized
depth 1 − ε, closeness 1, opacity 1). Pixel = (Σ wᵢ colᵢ + w_bg·bg) / (Σ wᵢ + w_bg), computed as a
softmax of log-weights. γ in [1e-5, 1]: 1 is soft (good for optimization), → 0 is a hard z-buffer.
"""

from __future__ import annotations

import torch

__all__ = ["render_spheres", "render_spheres_scene"]


def render_spheres(centres, radii, colors, opacities, viewmat, K, width: int, height: int, *,
                   gamma: float = 1.0, min_depth: float | None = None, max_depth: float | None = None,
                   background=None, bg_epsilon: float = 1e-4, near: float = 0.01, chunk: int = 4096):
    """Render N spheres -> (image (H,W,C), coverage (H,W) = Σwᵢ/(Σwᵢ + w_bg)).

    centres (N,3) world, radii (N,) world units, colors (N,C), opacities (N,) in (0,1],
    viewmat (4,4) world->camera (OpenCV), K (3,3) pixels. ``min_depth``/``max_depth`` default to
    the visible spheres' depth range (padded by the largest radius). Differentiable in centres,
    radii, colors and opacities.
    """
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
        return bg.expand(height, width, nchan).clone(), colors.new_zeros(height, width)
    with torch.no_grad():
        rmax = float(radii.max())
        lo = float(t[:, 2].min()) - rmax if min_depth is None else float(min_depth)
        hi = float(t[:, 2].max()) + rmax if max_depth is None else float(max_depth)
        lo = max(lo, near)
        span = max(hi - lo, 1e-6)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dtype), torch.arange(width, dtype=dtype), indexing="ij")
    dirs = torch.stack([(xs.reshape(-1) + 0.5 - K[0, 2]) / K[0, 0], (ys.reshape(-1) + 0.5 - K[1, 2]) / K[1, 1],
                        torch.ones(width * height, dtype=dtype)], 1)
    dirs = dirs / dirs.norm(dim=1, keepdim=True)
    depth_term = opacities * (1.0 - (t[:, 2] - lo) / span) / gamma
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
        logit = torch.where(hit, torch.log(torch.where(hit, close, torch.ones_like(close))) + log_o[None]
                            + depth_term[None], torch.full_like(close, -torch.inf))
        all_logits = torch.cat([logit, bg_logit.expand(d.shape[0], 1)], 1)
        weights = torch.softmax(all_logits, 1)
        images.append(weights[:, :-1] @ colors + weights[:, -1:] * bg)
        cover.append(1.0 - weights[:, -1])
    return torch.cat(images).reshape(height, width, nchan), torch.cat(cover).reshape(height, width)


def render_spheres_scene(spheres, camera, **kwargs):
    """Render a :class:`~engines.render.scene.Spheres` with a :class:`~engines.render.camera.Camera`."""
    return render_spheres(spheres.centres, spheres.radii, spheres.colors, spheres.opacities,
                          camera.viewmat, camera.K, camera.width, camera.height, **kwargs)
