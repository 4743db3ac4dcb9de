"""Still renders as engine jobs: the exact rasterizer, tile by tile so memory stays bounded.

A tile is the same camera with the principal point shifted and the Jacobian clamp of the whole
image (``fov_limits``), so the tiled image equals the untiled one; only one tile's working memory
(projection, tile lists, float image) exists at a time, next to the output array.
"""

from __future__ import annotations

import numpy as np
import torch

from engines.jobs import Progress
from engines.render.camera import Camera
from engines.render.rasterize import rasterize_scene
from engines.render.scene import Gaussians

__all__ = ["TILE", "render_tiled", "still_job", "tile_cameras"]

TILE = 1024  # tile edge in pixels


def tile_cameras(camera: Camera, tile: int = TILE):
    """(x0, y0, tile camera) covering ``camera``'s image in row-major tiles of at most ``tile`` pixels."""
    for y0 in range(0, camera.height, tile):
        for x0 in range(0, camera.width, tile):
            K = camera.K.clone()
            K[0, 2] -= x0
            K[1, 2] -= y0
            yield x0, y0, Camera(K, camera.viewmat, min(tile, camera.width - x0), min(tile, camera.height - y0))


def render_tiled(scene: Gaussians, camera: Camera, aa_mode: str = "classic", background=(0.0, 0.0, 0.0),
                 sh_degree: int | None = None, dtype=np.float32, tile: int = TILE, device: str = "cpu"):
    """Job: render ``scene`` tile by tile. Returns ``(image (H,W,3), alpha mean, visible count)``.

    ``dtype`` float32 gives values in [0, 1]; uint8 gives rint(255·value) (what a PNG stores), a
    quarter of the memory. Yields one Progress per tile and checks cancellation between tiles.
    """
    cam = camera.to(torch.float32)
    fx, fy = float(cam.K[0, 0]), float(cam.K[1, 1])
    limits = (1.3 * 0.5 * camera.width / fx, 1.3 * 0.5 * camera.height / fy)  # of the whole image
    image = np.empty((camera.height, camera.width, 3), dtype)
    seen = torch.zeros(len(scene), dtype=torch.bool)
    coverage = 0.0
    tiles = list(tile_cameras(cam, tile))
    bg = torch.tensor(background, dtype=torch.float32, device=device)
    for i, (x0, y0, sub) in enumerate(tiles):
        yield Progress(i, len(tiles), f"rendering {camera.width}x{camera.height} ({aa_mode}), tile {i + 1}/{len(tiles)}")
        with torch.no_grad():
            out, alpha, meta = rasterize_scene(scene, sub.to(torch.float32, device), aa_mode=aa_mode, background=bg,
                                               sh_degree=sh_degree, fov_limits=limits)
        block = out.clamp(0, 1).cpu().numpy()
        if dtype == np.uint8:
            block = np.rint(block.astype(np.float64) * 255.0).astype(np.uint8)
        image[y0:y0 + sub.height, x0:x0 + sub.width] = block
        coverage += float(alpha.double().sum())
        seen[meta["ids"].cpu()] = True
        del out, alpha, meta, block
    yield Progress(len(tiles), len(tiles), "done")
    return image, coverage / (camera.width * camera.height), int(seen.sum())


def still_job(scene: Gaussians, camera: Camera, aa_mode: str = "classic", background=(0.0, 0.0, 0.0),
              sh_degree: int | None = None, device: str = "cpu"):
    """Render ``scene`` with the exact rasterizer; returns an (H,W,3) float32 numpy image in [0, 1]."""
    image, _, _ = yield from render_tiled(scene, camera, aa_mode, background, sh_degree, device=device)
    return image
