"""Turntables and evaluation views of a distilled scene, rendered with the exact rasterizer (no Qt)."""

from __future__ import annotations

import numpy as np

from engines.distill3d.cameras import fixed_view
from engines.distill3d.scene3d import render_scene

__all__ = ["FRONT_ARC", "orbit_views", "turntable_frames"]

# The acceptance views: azimuth −45…45° step 15°, elevation 0° and 15°.
FRONT_ARC = [(float(az), float(el)) for el in (0, 15) for az in range(-45, 46, 15)]


def orbit_views(scene, angles, radius: float = 2.5, fov: float = 40.0, size: int = 32,
                background=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Renders ``(N, size, size, 3)`` float in [0, 1] at the (azimuth, elevation) pairs ``angles``."""
    frames = [render_scene(scene, fixed_view(az, el, radius, fov, size, size).camera, background).numpy()
              for az, el in angles]
    return np.stack(frames)


def turntable_frames(scene, frames: int = 36, elevation: float = 15.0, radius: float = 2.5, fov: float = 40.0,
                     size: int = 128, background=(0.0, 0.0, 0.0)) -> list[np.ndarray]:
    """``frames`` uint8 (size, size, 3) images on a full orbit starting at the front view."""
    angles = [(360.0 * i / frames, elevation) for i in range(frames)]
    views = orbit_views(scene, angles, radius, fov, size, background)
    return [(v * 255).round().astype(np.uint8) for v in views]


def save_animation(path, frames: list[np.ndarray], fmt: str, duration_ms: int = 80) -> None:
    """Write ``frames`` as a looping animated ``"WEBP"`` (lossless) or ``"GIF"`` to ``path`` (Pillow)."""
    from PIL import Image

    fmt = fmt.upper()
    if fmt not in ("WEBP", "GIF"):
        raise ValueError("a turntable is written as .webp or .gif")
    images = [Image.fromarray(f) for f in frames]
    extra = {"lossless": True} if fmt == "WEBP" else {"disposal": 2}
    images[0].save(path, format=fmt, save_all=True, append_images=images[1:], duration=duration_ms, loop=0, **extra)
