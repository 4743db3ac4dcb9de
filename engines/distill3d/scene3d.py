"""The optimised 3D representation: Gaussians (SH 0/1) or Pulsar-style spheres as a parameter dict.

The dict uses the names of :mod:`engines.render.fit` (``means``, ``quats``, ``log_scales``,
``opacity_logits``, ``sh`` for Gaussians; ``means``, ``log_radii``, ``color_logits``,
``opacity_logits`` for spheres) so the Render fit's density control applies unchanged.
"""

from __future__ import annotations

import math

import torch

from engines.render.pulsar import render_spheres
from engines.render.rasterize import rasterize
from engines.render.scene import Gaussians, Spheres, rgb_to_sh

__all__ = ["init_ellipsoid", "params_to_scene", "render_params", "render_scene"]


def init_ellipsoid(count: int, radii, primitive: str, sh_degree: int, opacity: float,
                   generator: torch.Generator) -> dict:
    """``count`` primitives uniformly inside an ellipsoid with semi-axes ``radii`` (x, y, z), grey colour."""
    radii_t = torch.as_tensor(radii, dtype=torch.float32)
    direction = torch.randn(count, 3, generator=generator)
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-8)
    r = torch.rand(count, generator=generator) ** (1.0 / 3.0)
    means = direction * r[:, None] * radii_t
    rgb = (0.5 + 0.1 * (torch.rand(count, 3, generator=generator) - 0.5)).clamp(0.02, 0.98)
    volume = 4.0 / 3.0 * math.pi * float(radii_t.prod())
    scale = 0.8 * (volume / count) ** (1.0 / 3.0)
    logit = math.log(opacity / (1.0 - opacity))
    if primitive == "spheres":
        return {"means": means, "log_radii": torch.full((count,), math.log(2.0 * scale)),
                "color_logits": torch.logit(rgb), "opacity_logits": torch.full((count,), logit)}
    quats = torch.zeros(count, 4)
    quats[:, 0] = 1.0
    sh = torch.zeros(count, (sh_degree + 1) ** 2, 3)
    sh[:, 0] = rgb_to_sh(rgb)
    return {"means": means, "quats": quats, "log_scales": torch.full((count, 3), math.log(scale)),
            "opacity_logits": torch.full((count,), logit), "sh": sh}


def render_params(params: dict, camera, background: torch.Tensor, sh_degree: int = 0, gamma: float = 1.0):
    """Render the parameter dict through ``camera`` -> (image (H,W,3), alpha (H,W), meta or None).

    Gaussians go through :func:`engines.render.rasterize.rasterize` on black and are composited
    over ``background`` here, so a learned background receives its exact gradient.
    """
    if "sh" in params:
        image, alpha, meta = rasterize(params["means"], params["quats"], params["log_scales"].exp(),
                                       torch.sigmoid(params["opacity_logits"]), params["sh"], camera.viewmat, camera.K,
                                       camera.width, camera.height, sh_degree=sh_degree)
        return image + (1.0 - alpha)[..., None] * background, alpha, meta
    image, alpha = render_spheres(params["means"], params["log_radii"].exp(), torch.sigmoid(params["color_logits"]),
                                  torch.sigmoid(params["opacity_logits"]), camera.viewmat, camera.K, camera.width,
                                  camera.height, gamma=gamma, background=background)
    return image, alpha, None


def params_to_scene(params: dict):
    """Detached :class:`Gaussians` or :class:`Spheres` from the parameter dict."""
    d = {k: v.detach().float().clone() for k, v in params.items()}
    if "sh" not in d:
        return Spheres(d["means"], d["log_radii"].exp(), torch.sigmoid(d["color_logits"]),
                       torch.sigmoid(d["opacity_logits"]))
    return Gaussians(d["means"], torch.nn.functional.normalize(d["quats"], dim=1), d["log_scales"],
                     d["opacity_logits"], d["sh"])


def render_scene(scene, camera, background=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """Render a finished Gaussians/Spheres scene exactly (no grad) -> (H,W,3) in [0, 1]."""
    bg = torch.as_tensor(background, dtype=torch.float32)
    with torch.no_grad():
        if isinstance(scene, Gaussians):
            params = {"means": scene.means, "quats": scene.quats, "log_scales": scene.log_scales,
                      "opacity_logits": scene.opacity_logits, "sh": scene.sh}
            image, _, _ = render_params(params, camera, bg, scene.sh_degree)
        else:
            image, _ = render_spheres(scene.centres, scene.radii, scene.colors, scene.opacities, camera.viewmat,
                                      camera.K, camera.width, camera.height, background=bg)
    return image.clamp(0, 1)
