"""The straightforward vectorized-torch compositor (the reference for tests and benchmarks).

Every pixel is evaluated against every projected splat (in chunks of pixels); transmittance is
a cumulative product along the depth-sorted splats. Same rules as the fast path and the 3DGS
CUDA rasterizer: a splat touches pixel centres within ±radius; α = min(0.99, o·w); α < 1/255 is
skipped; accumulation stops before the splat that would bring T below 1e-4.
"""

from __future__ import annotations

import torch

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
T_MIN = 1e-4

__all__ = ["ALPHA_MAX", "ALPHA_MIN", "T_MIN", "composite_reference", "splat_weight"]


def splat_weight(dx: torch.Tensor, dy: torch.Tensor, params: torch.Tensor, mode: str) -> torch.Tensor:
    """Unnormalised splat response at offsets (dx, dy) = pixel centre − mean (broadcast with params[..., i]).

    classic/mip: exp(−½ uᵀ Σ₂⁻¹ u) with conic (A, B, C); analytic: ∫ over the unit pixel square,
    2π σ₁σ₂ [Φ((p+½)/σ₁) − Φ((p−½)/σ₁)][Φ((q+½)/σ₂) − Φ((q−½)/σ₂)], (p, q) in the eigen-frame.
    """
    if mode == "analytic":
        c, s, s1, s2 = params.unbind(-1)
        p = dx * c + dy * s
        q = -dx * s + dy * c
        ndtr = torch.special.ndtr
        fp = ndtr((p + 0.5) / s1) - ndtr((p - 0.5) / s1)
        fq = ndtr((q + 0.5) / s2) - ndtr((q - 0.5) / s2)
        return 2 * torch.pi * s1 * s2 * fp * fq
    A, B, C, _ = params.unbind(-1)
    return torch.exp(-0.5 * (A * dx * dx + C * dy * dy) - B * dx * dy)


def composite_reference(means2d, params, opacities, colors, radii, depths, width: int, height: int,
                        mode: str, background=None, chunk: int = 4096, checkpoint: bool = False):
    """Depth-sorted front-to-back compositing of M splats -> (image (H,W,C), alpha (H,W)).

    ``colors (M,C)``; ``background (C,)`` or None (zeros). Differentiable in every float input.
    ``checkpoint`` recomputes each pixel chunk in the backward pass (bounded memory for big scenes).
    """
    order = torch.argsort(depths.detach(), stable=True)
    means2d, params, opacities, colors, radii = (means2d[order], params[order], opacities[order], colors[order],
                                                 radii[order])
    ys, xs = torch.meshgrid(torch.arange(height, dtype=means2d.dtype), torch.arange(width, dtype=means2d.dtype),
                            indexing="ij")
    px, py = xs.reshape(-1) + 0.5, ys.reshape(-1) + 0.5
    nchan = colors.shape[1]
    bg = colors.new_zeros(nchan) if background is None else torch.as_tensor(background, dtype=colors.dtype)
    images, alphas = [], []

    def run(cx, cy, means2d, params, opacities, colors, bg):
        dx, dy = cx - means2d[None, :, 0], cy - means2d[None, :, 1]
        inside = (dx.abs() <= radii[None]) & (dy.abs() <= radii[None])
        alpha = torch.clamp(opacities[None] * splat_weight(dx, dy, params[None], mode), max=ALPHA_MAX)
        alpha = torch.where(inside & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
        one_minus = 1.0 - alpha
        t_incl = torch.cumprod(one_minus, 1)
        t_excl = torch.cat([torch.ones_like(t_incl[:, :1]), t_incl[:, :-1]], 1)
        used = (t_incl.detach() >= T_MIN).to(alpha.dtype)
        weight = alpha * t_excl * used
        t_final = torch.prod(1.0 - alpha * used, 1)
        return weight @ colors + t_final[:, None] * bg, 1.0 - t_final

    for start in range(0, px.shape[0], chunk):
        cx, cy = px[start:start + chunk, None], py[start:start + chunk, None]
        args = (cx, cy, means2d, params, opacities, colors, bg)
        if checkpoint:
            from torch.utils.checkpoint import checkpoint as ckpt

            image, alpha = ckpt(run, *args, use_reentrant=False)
        else:
            image, alpha = run(*args)
        images.append(image)
        alphas.append(alpha)
    return torch.cat(images).reshape(height, width, nchan), torch.cat(alphas).reshape(height, width)
