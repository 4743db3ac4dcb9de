"""Real spherical harmonics up to degree 3 in the 3DGS sign convention (INRIA ``sh_utils.eval_sh``)."""

from __future__ import annotations

import torch

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
      1.445305721320277, -0.5900435899266435)

__all__ = ["eval_sh", "sh_bases", "sh_to_color"]


def sh_bases(degree: int, dirs: torch.Tensor) -> torch.Tensor:
    """Basis values Y_k(d) for unit directions ``dirs (..., 3)`` -> ``(..., (degree+1)^2)``."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, C0)]
    if degree > 0:
        out += [-C1 * y, C1 * z, -C1 * x]
    if degree > 1:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [C2[0] * xy, C2[1] * yz, C2[2] * (2 * zz - xx - yy), C2[3] * xz, C2[4] * (xx - yy)]
    if degree > 2:
        out += [C3[0] * y * (3 * xx - yy), C3[1] * xy * z, C3[2] * y * (4 * zz - xx - yy),
                C3[3] * z * (2 * zz - 3 * xx - 3 * yy), C3[4] * x * (4 * zz - xx - yy), C3[5] * z * (xx - yy),
                C3[6] * x * (xx - 3 * yy)]
    return torch.stack(out, -1)


def eval_sh(degree: int, sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Σ_k sh[..., k, c] Y_k(d) for ``sh (..., K, 3)`` (K ≥ (degree+1)^2) -> ``(..., 3)`` (no offset)."""
    k = (degree + 1) ** 2
    if sh.shape[-2] < k:
        raise ValueError(f"SH degree {degree} needs {k} coefficients, got {sh.shape[-2]}")
    return (sh_bases(degree, dirs)[..., None] * sh[..., :k, :]).sum(-2)


def sh_to_color(sh: torch.Tensor, means: torch.Tensor, cam_centre: torch.Tensor, degree: int | None = None) -> torch.Tensor:
    """View-dependent RGB = max(eval_sh(d) + 0.5, 0), d = normalize(mean - camera centre). (N,3)."""
    if degree is None:
        degree = round(sh.shape[-2] ** 0.5) - 1
    dirs = torch.nn.functional.normalize(means - cam_centre, dim=-1)
    return (eval_sh(degree, sh, dirs) + 0.5).clamp_min(0.0)
