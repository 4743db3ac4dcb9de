"""A still render as an engine job (used by the panel's "Still" button)."""

from __future__ import annotations

import torch

from engines.jobs import Progress
from engines.render.camera import Camera
from engines.render.rasterize import rasterize_scene
from engines.render.scene import Gaussians

__all__ = ["still_job"]


def still_job(scene: Gaussians, camera: Camera, aa_mode: str = "classic", background=(0.0, 0.0, 0.0),
              sh_degree: int | None = None, device: str = "cpu"):
    """Render ``scene`` with the exact rasterizer; returns an (H,W,3) float32 numpy image in [0, 1]."""
    yield Progress(0, 1, f"rendering {camera.width}x{camera.height} ({aa_mode})")
    with torch.no_grad():
        image, _, _ = rasterize_scene(scene, camera.to(torch.float32), aa_mode=aa_mode,
                                      background=torch.tensor(background, dtype=torch.float32), sh_degree=sh_degree)
    yield Progress(1, 1, "done")
    return image.clamp(0, 1).numpy()
