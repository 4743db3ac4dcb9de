"""EWA projection of 3D Gaussians to screen space (differentiable, torch, any device).

Anti-aliasing modes (``AA_MODES``):
  ``classic``  Σ₂ + 0.3·I dilation, opacity unchanged (3DGS).
  ``mip``      Σ₂ + 0.3·I and opacity × √(det Σ₂ / det(Σ₂ + 0.3·I)) (Mip-Splatting 2D filter as in
               gsplat ``antialiased``).
  ``analytic`` no dilation; the Gaussian is integrated over the pixel square (Analytic-Splatting):
               per-splat eigen-frame (cos θ, sin θ, σ₁, σ₂) is returned instead of a conic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

AA_MODES = ("classic", "mip", "analytic")
EPS2D = 0.3

__all__ = ["AA_MODES", "Projected", "covariance_3d", "project_gaussians", "quat_to_rotmat"]


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Unnormalised (w, x, y, z) quaternions (N,4) -> rotation matrices (N,3,3)."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(quats.shape[:-1] + (3, 3))


def covariance_3d(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Σ = R S Sᵀ Rᵀ from quats (N,4) and activated std-devs scales (N,3) -> (N,3,3)."""
    m = quat_to_rotmat(quats) * scales[:, None, :]
    return m @ m.transpose(1, 2)


@dataclass
class Projected:
    """Screen-space splats for the visible subset ``ids`` (M of the N input Gaussians).

    means2d (M,2) pixels; depths (M,) camera z; params (M,4): conic (A, B, C, 0) of the dilated
    Σ₂ for classic/mip, or (cos θ, sin θ, σ₁, σ₂) for analytic; opacities (M,) after
    compensation; radii (M,) int pixels (a splat touches pixel centres within ±radius);
    cov2d (M,2,2) before dilation.
    """

    ids: torch.Tensor
    means2d: torch.Tensor
    depths: torch.Tensor
    params: torch.Tensor
    opacities: torch.Tensor
    radii: torch.Tensor
    cov2d: torch.Tensor
    mode: str


def project_gaussians(means, quats, scales, opacities, viewmat, K, width: int, height: int,
                      aa_mode: str = "classic", near: float = 0.01, far: float = 1e10,
                      fov_limits: tuple[float, float] | None = None) -> Projected:
    """Project N Gaussians (activated ``scales (N,3)``, ``opacities (N,)``) through a pinhole camera.

    ``viewmat (4,4)`` world->camera (OpenCV), ``K (3,3)`` pixels. Culls Gaussians outside
    (near, far), with a degenerate Σ₂ or with a bounding square entirely off-screen.
    ``fov_limits`` (x/z, y/z) overrides the Jacobian clamp 1.3·(W/2)/f_x, 1.3·(H/2)/f_y (a tile of a
    larger image passes the limits of the whole image, so tiles match the untiled render exactly).
    """
    if aa_mode not in AA_MODES:
        raise ValueError(f"unknown aa_mode {aa_mode!r}; use one of {', '.join(AA_MODES)}")
    dtype = means.dtype
    viewmat = viewmat.to(means.device, dtype)
    K = K.to(means.device, dtype)
    rot, trans = viewmat[:3, :3], viewmat[:3, 3]
    t = means @ rot.T + trans
    z = t[:, 2]
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    zs = torch.where(z > near, z, torch.ones_like(z))
    if fov_limits is None:
        lim_x = 1.3 * (0.5 * width / fx)
        lim_y = 1.3 * (0.5 * height / fy)
    else:
        lim_x, lim_y = (float(v) for v in fov_limits)
    tx = (t[:, 0] / zs).clamp(-lim_x, lim_x) * zs
    ty = (t[:, 1] / zs).clamp(-lim_y, lim_y) * zs
    zero = torch.zeros_like(zs)
    J = torch.stack([fx / zs, zero, -fx * tx / zs**2, zero, fy / zs, -fy * ty / zs**2], -1).reshape(-1, 2, 3)
    cov_cam = rot @ covariance_3d(quats, scales) @ rot.T
    cov2d = J @ cov_cam @ J.transpose(1, 2)
    means2d = torch.stack([fx * t[:, 0] / zs + cx, fy * t[:, 1] / zs + cy], -1)
    a, b, c = cov2d[:, 0, 0], cov2d[:, 0, 1], cov2d[:, 1, 1]
    det0 = a * c - b * b
    if aa_mode in ("classic", "mip"):
        ad, cd = a + EPS2D, c + EPS2D
        det = ad * cd - b * b
        safe = torch.where(det > 0, det, torch.ones_like(det))
        params = torch.stack([cd / safe, -b / safe, ad / safe, torch.zeros_like(det)], -1)
        opac = opacities
        if aa_mode == "mip":
            comp = torch.sqrt(torch.clamp(det0 / safe, min=0.0)).clamp_min(0.005)
            opac = opacities * comp
        mid = 0.5 * (ad + cd)
        lam = mid + torch.sqrt(torch.clamp(mid * mid - det, min=0.1))
        ok = det > 0
    else:
        mid = 0.5 * (a + c)
        half_diff = 0.5 * (a - c)
        disc_sq = half_diff * half_diff + b * b
        disc = torch.sqrt(torch.clamp(disc_sq, min=1e-20))
        lam1 = mid + disc
        lam2 = torch.clamp(mid - disc, min=1e-12)
        degenerate = (b.abs() + half_diff.abs()) < 1e-12
        theta = 0.5 * torch.atan2(torch.where(degenerate, torch.zeros_like(b), 2 * b),
                                  torch.where(degenerate, torch.ones_like(b), a - c))
        params = torch.stack([torch.cos(theta), torch.sin(theta), torch.sqrt(lam1), torch.sqrt(lam2)], -1)
        opac = opacities
        lam = mid + torch.sqrt(torch.clamp(mid * mid - det0, min=0.1))
        ok = det0 > 0
    with torch.no_grad():
        radii = torch.ceil(3.0 * torch.sqrt(lam.detach())).to(torch.int64)
        mx, my = means2d[:, 0].detach(), means2d[:, 1].detach()
        on_screen = (mx + radii > 0) & (mx - radii < width) & (my + radii > 0) & (my - radii < height)
        keep = (z > near) & (z < far) & ok & on_screen & torch.isfinite(mx) & torch.isfinite(my)
        ids = torch.nonzero(keep).squeeze(1)
    return Projected(ids, means2d[ids], z[ids], params[ids], opac[ids], radii[ids], cov2d[ids], aa_mode)
