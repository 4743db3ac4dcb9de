"""Posed views from any supported folder: our ``cameras.json``, a COLMAP sparse model, a ``transforms.json``.

:func:`load_posed_views` returns the images (uint8 RGB), their cameras (scaled with the images when
``max_side`` downsizes them), initial Gaussians from COLMAP's ``points3D`` (3DGS initialisation:
colour from the point, isotropic scale = sqrt(mean squared distance to the 3 nearest points),
opacity 0.1) and notes (e.g. ignored lens distortion).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engines.render.camera import Camera
from engines.render.scene import Gaussians

__all__ = ["PosedViews", "load_posed_views", "points_to_gaussians", "posed_views_kind"]


@dataclass
class PosedViews:
    """Images (H,W,3) uint8, their cameras, optional initial Gaussians, the folder's kind and notes."""

    images: list
    cameras: list
    init: Gaussians | None
    kind: str
    notes: list = field(default_factory=list)


def posed_views_kind(folder: str | os.PathLike) -> str | None:
    """"cameras.json", "transforms.json", "colmap" or None for a folder of posed views."""
    from engines.render.formats.colmap import find_colmap_model

    folder = Path(folder)
    if not folder.is_dir():
        return None
    if (folder / "cameras.json").is_file():
        return "cameras.json"
    if (folder / "transforms.json").is_file():
        return "transforms.json"
    if find_colmap_model(folder) is not None:
        return "colmap"
    return None


def points_to_gaussians(xyz, rgb_uint8, opacity: float = 0.1) -> Gaussians:
    """3DGS initialisation from a point cloud (positions (M,3), colours (M,3) uint8)."""
    from scipy.spatial import cKDTree

    xyz = np.asarray(xyz, np.float64)
    if len(xyz) == 0:
        raise ValueError("no 3D points to start from")
    k = min(4, len(xyz))
    if k > 1:
        dist, _ = cKDTree(xyz).query(xyz, k=k)
        mean_sq = (dist[:, 1:] ** 2).mean(1)
    else:
        mean_sq = np.ones(1)
    scale = np.sqrt(np.maximum(mean_sq, 1e-14))
    rgb = np.asarray(rgb_uint8, np.float64) / 255.0
    return Gaussians.from_activated(torch.from_numpy(xyz).float(), torch.from_numpy(scale).float(),
                                    torch.from_numpy(rgb).float(), torch.full((len(xyz),), float(opacity)))


def _open_rgb(path: Path, max_side: int | None):
    from PIL import Image

    from engines.imagefile import RGB_COPY_BYTES, open_image

    im = open_image(path, extra_bytes_per_pixel=RGB_COPY_BYTES).convert("RGB")
    full = im.size
    if max_side and max(im.size) > max_side:
        scale = max_side / max(im.size)
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.LANCZOS)
    return np.asarray(im), full


def _scaled(K, view, size_k, size_image) -> Camera:
    """A camera whose K (for an image of ``size_k``) is rescaled to ``size_image`` (w, h)."""
    K = np.array(K, np.float64)
    K[0] *= size_image[0] / size_k[0]
    K[1] *= size_image[1] / size_k[1]
    return Camera(torch.from_numpy(K), torch.from_numpy(np.asarray(view, np.float64)), int(size_image[0]),
                  int(size_image[1]))


def _find_image(folder: Path, name: str) -> Path:
    for base in (folder / "images", folder, folder.parent / "images", folder.parent.parent / "images"):
        if (base / name).is_file():
            return base / name
    raise ValueError(f"image {name!r} of the COLMAP model was not found (looked in images/ next to the model)")


def load_posed_views(folder: str | os.PathLike, max_side: int | None = None) -> PosedViews:
    """Read posed views from ``folder`` (see module docstring). Raises ValueError with one clear line."""
    folder = Path(folder)
    kind = posed_views_kind(folder)
    if kind is None:
        raise ValueError(f"{folder.name}: no cameras.json, transforms.json or COLMAP model (sparse/0) here")
    notes: list[str] = []
    images, cameras, init = [], [], None
    if kind == "cameras.json":
        from engines.render.synthetic import load_views

        full_images, full_cams = load_views(folder)
        for image, cam in zip(full_images, full_cams):
            if max_side and max(image.shape[:2]) > max_side:
                from PIL import Image

                scale = max_side / max(image.shape[:2])
                size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
                image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
            images.append(image)
            cameras.append(_scaled(cam.K.numpy(), cam.viewmat.numpy(), (cam.width, cam.height),
                                   (image.shape[1], image.shape[0])))
    elif kind == "transforms.json":
        from engines.render.formats.transforms_json import frame_camera, read_transforms

        frames, notes = read_transforms(folder)
        for frame in frames:
            if not frame["image"].is_file():
                raise ValueError(f"transforms.json: image {frame['image'].name} does not exist")
            image, (w, h) = _open_rgb(frame["image"], max_side)
            declared = (frame["width"] or w, frame["height"] or h)
            K, view = frame_camera(frame, int(declared[0]), int(declared[1]))
            images.append(image)
            cameras.append(_scaled(K, view, declared, (image.shape[1], image.shape[0])))
    else:
        from engines.render.formats.colmap import colmap_camera, read_colmap_model

        model = read_colmap_model(folder)
        notes = list(model.notes)
        for entry in model.images:
            K, view, w, h = colmap_camera(model, entry)
            path = _find_image(folder, entry[4])
            image, _ = _open_rgb(path, max_side)
            images.append(image)
            cameras.append(_scaled(K, view, (w, h), (image.shape[1], image.shape[0])))
        if len(model.points):
            init = points_to_gaussians(model.points, model.colors)
    if not images:
        raise ValueError(f"{folder.name}: the {kind} lists no views")
    if any(not math.isfinite(float(c.K.abs().sum() + c.viewmat.abs().sum())) for c in cameras):
        raise ValueError(f"{folder.name}: a camera has non-finite values")
    return PosedViews(images, cameras, init, kind, notes)
