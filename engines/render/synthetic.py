"""Seeded synthetic scenes and posed-view data sets (offline ground truth for tests and demos)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from engines.render.camera import Camera
from engines.render.scene import Gaussians

__all__ = ["load_views", "render_views", "save_views", "sphere_refit_problem", "sphere_scene"]


def sphere_scene(count: int = 200, radius: float = 1.0, seed: int = 0, sh_degree: int = 0,
                 footprint: float = 0.08) -> Gaussians:
    """``count`` Gaussians on a sphere of ``radius``, coloured by their normal, opacity 0.7-0.9.

    Flattened along the normal (std-devs footprint, footprint, footprint/4, world units).
    """
    g = torch.Generator().manual_seed(seed)
    i = torch.arange(count, dtype=torch.float64) + 0.5
    phi = torch.acos(1 - 2 * i / count)
    theta = math.pi * (1 + 5**0.5) * i
    normal = torch.stack([torch.cos(theta) * torch.sin(phi), torch.sin(theta) * torch.sin(phi), torch.cos(phi)], 1)
    means = (normal * radius).float()
    rgb = (0.5 + 0.45 * normal).float()
    # rotate local z onto the normal: quaternion from (0,0,1) to n
    z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    axis = torch.cross(z.expand_as(normal), normal, dim=1)
    w = 1 + normal[:, 2]
    quats = torch.cat([w[:, None], axis], 1)
    flip = w < 1e-6
    quats[flip] = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    scales = torch.tensor([footprint, footprint, footprint / 4]).expand(count, 3)
    opacity = 0.7 + 0.2 * torch.rand(count, generator=g)
    scene = Gaussians.from_activated(means, scales, rgb, opacity, quats.float(), sh_degree=sh_degree)
    if sh_degree > 0:
        scene.sh[:, 1:] = 0.1 * torch.randn(count, scene.sh.shape[1] - 1, 3, generator=g)
    return scene


def sphere_refit_problem(count: int = 40, views: int = 6, size: int = 32, seed: int = 0):
    """A sphere refit from a near-truth start: (truth Spheres, cameras, images (H,W,3) float, start Spheres).

    ``count`` spheres in a 1.2 cube (radii 0.12-0.2, opacity 0.9) seen by ``views`` Fibonacci cameras
    at ``size``² (background black); the start moves the centres by 0.03 (std), scales the radii by
    1.3 and greys the colours and opacities.
    """
    from engines.render.camera import fibonacci_cameras
    from engines.render.pulsar import render_spheres
    from engines.render.scene import Spheres

    g = torch.Generator().manual_seed(seed)
    truth = Spheres((torch.rand(count, 3, generator=g) - 0.5) * 1.2, 0.12 + 0.08 * torch.rand(count, generator=g),
                    torch.rand(count, 3, generator=g), torch.full((count,), 0.9))
    cams = fibonacci_cameras(views, 3.5, width=size, height=size)
    with torch.no_grad():
        images = [render_spheres(truth.centres, truth.radii, truth.colors, truth.opacities, c.viewmat.float(),
                                 c.K.float(), size, size, background=torch.zeros(3))[0].numpy() for c in cams]
    start = Spheres(truth.centres + 0.03 * torch.randn(count, 3, generator=g), truth.radii * 1.3,
                    torch.full((count, 3), 0.5), torch.full((count,), 0.5))
    return truth, cams, images, start


def render_views(scene: Gaussians, cameras: list[Camera], aa_mode: str = "classic") -> list[np.ndarray]:
    """Render ``scene`` from every camera -> list of (H,W,3) float32 arrays in [0, 1]."""
    from engines.render.rasterize import rasterize_scene

    out = []
    with torch.no_grad():
        for cam in cameras:
            image, _, _ = rasterize_scene(scene, cam.to(torch.float32), aa_mode=aa_mode)
            out.append(image.clamp(0, 1).numpy())
    return out


def save_views(folder: str | os.PathLike, images: list[np.ndarray], cameras: list[Camera]) -> Path:
    """Write a posed-view folder: ``view_000.png ...`` and ``cameras.json``
    ({"frames": [{"file", "K", "viewmat", "width", "height"}]})."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for i, (image, cam) in enumerate(zip(images, cameras)):
        name = f"view_{i:03d}.png"
        Image.fromarray(np.clip(np.rint(np.asarray(image) * 255), 0, 255).astype(np.uint8)).save(folder / name)
        frames.append({"file": name, **cam.as_dict()})
    (folder / "cameras.json").write_text(json.dumps({"frames": frames}, indent=1))
    return folder


MAX_CAMERAS_BYTES = 64 << 20


def load_views(folder: str | os.PathLike) -> tuple[list[np.ndarray], list[Camera]]:
    """Read a folder written by :func:`save_views`. Raises ValueError with a clear message."""
    from engines.imagefile import RGB_COPY_BYTES, open_image

    folder = Path(folder)
    meta = folder / "cameras.json"
    if not meta.is_file():
        raise ValueError(f"{folder} has no cameras.json (a posed-view folder needs one)")
    if meta.stat().st_size > MAX_CAMERAS_BYTES:
        raise ValueError(f"{meta.name} is too large for a cameras.json (at most {MAX_CAMERAS_BYTES >> 20} MiB)")
    try:
        frames = json.loads(meta.read_bytes().decode("utf-8"))["frames"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, RecursionError):
        raise ValueError(f"{meta} is not a valid cameras.json (JSON with a 'frames' list)") from None
    if not isinstance(frames, list):
        raise ValueError(f"{meta}: 'frames' must be a list")
    images, cams = [], []
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict) or not isinstance(frame.get("file"), str) or not frame["file"]:
            raise ValueError(f"{meta.name}: frame {i} needs a 'file' name")
        try:
            cams.append(Camera.from_dict(frame))
        except ValueError as exc:
            raise ValueError(f"{meta.name}: frame {i}: {exc}") from None
        images.append(np.asarray(open_image(folder / frame["file"], extra_bytes_per_pixel=RGB_COPY_BYTES).convert("RGB")))
    if not images:
        raise ValueError(f"{meta} lists no frames")
    return images, cams
