"""Reference images for image → 3D: RGB + foreground mask at the render size (no Qt)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["automatic_mask", "prepare_reference"]


def automatic_mask(rgb: np.ndarray) -> np.ndarray:
    """Foreground mask of an (H,W,3) float image in [0, 1] without alpha.

    The background colour is the median of the border pixels; the mask is the distance to it,
    thresholded by Otsu's method (scikit-image) and softened to [0, 1] around the threshold.
    """
    from skimage.filters import threshold_otsu

    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    bg = np.median(border, 0)
    dist = np.linalg.norm(rgb - bg, axis=2)
    if float(dist.max()) < 1e-6:
        raise ValueError("the reference image is uniform: no foreground to reconstruct")
    thr = float(threshold_otsu(dist))
    return np.clip((dist - 0.5 * thr) / max(thr, 1e-6), 0.0, 1.0)


def prepare_reference(image, size: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    """(rgb (h,w,3), mask (h,w)) float tensors at ``size`` = (h, w) from an (H,W), (H,W,3) or (H,W,4) image.

    uint8 or float in [0, 1]; the alpha channel is the mask when present, else :func:`automatic_mask`.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, 2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 4:
        raise ValueError(f"the reference must be an (H,W,3) or (H,W,4) image of at least 4x4 pixels, got {a.shape}")
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError("the reference image contains NaN or infinite values")
    a = np.clip(a, 0.0, 1.0)
    rgb = a[..., :3]
    mask = a[..., 3] if a.shape[2] == 4 else automatic_mask(rgb)
    stack = torch.from_numpy(np.concatenate([rgb, mask[..., None]], 2)).permute(2, 0, 1)[None]
    if tuple(stack.shape[-2:]) != tuple(size):
        stack = F.interpolate(stack, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    out = stack[0].permute(1, 2, 0).clamp(0, 1)
    return out[..., :3].contiguous(), out[..., 3].contiguous()
