"""Scene model: 3D Gaussians (3DGS parameterisation) and spheres.

Gaussians are stored *pre-activation*, exactly as the 3DGS ``.ply`` stores them:
means ``(N, 3)`` world units, quats ``(N, 4)`` unnormalised (w, x, y, z), log_scales ``(N, 3)``
(natural log of the standard deviations), opacity_logits ``(N,)`` and SH coefficients
``sh (N, K, 3)`` with K = (degree + 1)^2 (index 0 = DC term). Activated values: opacity =
sigmoid(logit), scale = exp(log_scale), RGB of the DC term = 0.5 + C0 * sh[:, 0].
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

SH_C0 = 0.28209479177387814

__all__ = ["SH_C0", "Gaussians", "Spheres", "num_sh_bases", "rgb_to_sh", "sh_degree_from_k", "sh_to_rgb"]


def rgb_to_sh(rgb):
    """RGB in [0, 1] -> DC SH coefficient (3DGS ``RGB2SH``): (rgb - 0.5) / C0."""
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh_dc):
    """DC SH coefficient -> RGB (before clamping): 0.5 + C0 * sh."""
    return 0.5 + SH_C0 * sh_dc


def num_sh_bases(degree: int) -> int:
    """K = (degree + 1)^2 SH basis functions for ``degree`` in 0..3."""
    return (int(degree) + 1) ** 2


def sh_degree_from_k(k: int) -> int:
    """Inverse of :func:`num_sh_bases`; raises ValueError if ``k`` is not a square in {1,4,9,16}."""
    for degree in range(4):
        if (degree + 1) ** 2 == k:
            return degree
    raise ValueError(f"{k} SH coefficients per channel is not a degree 0-3 layout")


@dataclass
class Gaussians:
    """A set of N 3D Gaussians in pre-activation form (see module docstring)."""

    means: torch.Tensor  # (N, 3)
    quats: torch.Tensor  # (N, 4) w, x, y, z (unnormalised)
    log_scales: torch.Tensor  # (N, 3)
    opacity_logits: torch.Tensor  # (N,)
    sh: torch.Tensor  # (N, K, 3)
    extra: dict = field(default_factory=dict)  # extra per-splat ply properties, name -> (N,) array

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        checks = {
            "means": (self.means, (n, 3)),
            "quats": (self.quats, (n, 4)),
            "log_scales": (self.log_scales, (n, 3)),
            "opacity_logits": (self.opacity_logits, (n,)),
        }
        for name, (tensor, shape) in checks.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(f"Gaussians.{name} must have shape {shape}, got {tuple(tensor.shape)}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise ValueError(f"Gaussians.sh must have shape (N, K, 3), got {tuple(self.sh.shape)}")
        sh_degree_from_k(self.sh.shape[1])

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_activated(cls, means, scales, rgb, opacity, quats=None, sh_degree: int = 0) -> Gaussians:
        """Build from activated values: scales (N,3) or (N,) std-devs, rgb (N,3) in [0,1], opacity (N,)."""
        means = torch.as_tensor(means, dtype=torch.float32)
        n = means.shape[0]
        scales = torch.as_tensor(scales, dtype=torch.float32)
        if scales.ndim == 1:
            scales = scales[:, None].expand(n, 3)
        opacity = torch.as_tensor(opacity, dtype=torch.float32).clamp(1e-6, 1 - 1e-6)
        if quats is None:
            quats = torch.zeros(n, 4)
            quats[:, 0] = 1.0
        sh = torch.zeros(n, num_sh_bases(sh_degree), 3)
        sh[:, 0] = rgb_to_sh(torch.as_tensor(rgb, dtype=torch.float32))
        return cls(means.clone(), torch.as_tensor(quats, dtype=torch.float32).clone(), scales.log().clone(),
                   torch.log(opacity / (1 - opacity)), sh)

    # -- activations ------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def sh_degree(self) -> int:
        """SH degree 0..3 inferred from K."""
        return sh_degree_from_k(self.sh.shape[1])

    @property
    def scales(self) -> torch.Tensor:
        """Activated std-devs exp(log_scales), (N, 3)."""
        return self.log_scales.exp()

    @property
    def opacities(self) -> torch.Tensor:
        """Activated opacity sigmoid(logit), (N,)."""
        return torch.sigmoid(self.opacity_logits)

    @property
    def rgb(self) -> torch.Tensor:
        """DC colour 0.5 + C0 * sh[:, 0], clamped to [0, 1], (N, 3)."""
        return sh_to_rgb(self.sh[:, 0]).clamp(0.0, 1.0)

    # -- editing ----------------------------------------------------------------------
    def subset(self, index) -> Gaussians:
        """A new scene with the Gaussians selected by a boolean mask or index array."""
        if isinstance(index, np.ndarray):
            index = torch.from_numpy(index)
        extra = {k: np.asarray(v)[index.numpy() if torch.is_tensor(index) else index] for k, v in self.extra.items()}
        return Gaussians(self.means[index], self.quats[index], self.log_scales[index],
                         self.opacity_logits[index], self.sh[index], extra)

    def with_degree(self, degree: int) -> Gaussians:
        """Copy truncated or zero-padded to SH ``degree``."""
        k = num_sh_bases(degree)
        sh = self.sh[:, :k]
        if sh.shape[1] < k:
            sh = torch.cat([sh, sh.new_zeros(len(self), k - sh.shape[1], 3)], 1)
        return replace(self, sh=sh.clone())

    def detach(self) -> Gaussians:
        """Copy with every tensor detached (CPU, float32)."""
        f = lambda t: t.detach().to("cpu", torch.float32).clone()
        return Gaussians(f(self.means), f(self.quats), f(self.log_scales), f(self.opacity_logits), f(self.sh),
                         dict(self.extra))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min xyz, max xyz) of the means as numpy arrays (zeros for an empty scene)."""
        if len(self) == 0:
            return np.zeros(3), np.zeros(3)
        m = self.means.detach().cpu().numpy()
        return m.min(0), m.max(0)

    @staticmethod
    def concat(items: list[Gaussians]) -> Gaussians:
        """Concatenate scenes with the same SH degree."""
        return Gaussians(*(torch.cat([getattr(g, n) for g in items]) for n in
                           ("means", "quats", "log_scales", "opacity_logits", "sh")))


@dataclass
class Spheres:
    """N spheres: centres (N,3), radii (N,) world units, colours (N,3) in [0,1], opacities (N,) in [0,1]."""

    centres: torch.Tensor
    radii: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = self.centres.shape[0]
        if self.opacities is None:
            self.opacities = torch.ones(n, dtype=self.centres.dtype)
        if tuple(self.centres.shape) != (n, 3) or tuple(self.radii.shape) != (n,) \
                or tuple(self.colors.shape) != (n, 3) or tuple(self.opacities.shape) != (n,):
            raise ValueError("Spheres need centres (N,3), radii (N,), colors (N,3), opacities (N,)")

    def __len__(self) -> int:
        return int(self.centres.shape[0])

    def detach(self) -> Spheres:
        """Copy with detached CPU float32 tensors."""
        f = lambda t: t.detach().to("cpu", torch.float32).clone()
        return Spheres(f(self.centres), f(self.radii), f(self.colors), f(self.opacities))

    def to_gaussians(self) -> Gaussians:
        """Isotropic Gaussians with std-dev radius/2 (used to save spheres as a 3DGS .ply)."""
        return Gaussians.from_activated(self.centres.detach(), (self.radii.detach() / 2).clamp_min(1e-6),
                                        self.colors.detach().clamp(0, 1), self.opacities.detach().clamp(0.001, 0.999))
