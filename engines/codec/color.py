"""JFIF (full-range BT.601) RGB <-> YCbCr and 4:2:0 chroma resampling. Arrays are float64."""

from __future__ import annotations

import numpy as np

__all__ = ["downsample2", "rgb_to_ycbcr", "to_uint8", "upsample2", "ycbcr_to_rgb"]

_FWD = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
_INV = np.linalg.inv(_FWD)


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB in 0..255 -> ``(H, W, 3)`` float Y, Cb, Cr in 0..255 (Cb/Cr offset 128)."""
    x = np.asarray(rgb, dtype=np.float64)
    out = x @ _FWD.T
    out[..., 1:] += 128.0
    return out


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr` (float, not clipped)."""
    x = np.asarray(ycc, dtype=np.float64).copy()
    x[..., 1:] -= 128.0
    return x @ _INV.T


def downsample2(plane: np.ndarray) -> np.ndarray:
    """2x2 box average of an ``(H, W)`` plane (odd sizes edge-padded) -> ``(ceil(H/2), ceil(W/2))``."""
    h, w = plane.shape
    p = np.pad(plane, ((0, h % 2), (0, w % 2)), mode="edge")
    return 0.25 * (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2])


def _up_axis(x: np.ndarray, axis: int) -> np.ndarray:
    x = np.moveaxis(x, axis, 0)
    prev = np.concatenate([x[:1], x[:-1]])
    nxt = np.concatenate([x[1:], x[-1:]])
    out = np.empty((2 * x.shape[0],) + x.shape[1:])
    out[0::2] = 0.75 * x + 0.25 * prev
    out[1::2] = 0.75 * x + 0.25 * nxt
    return np.moveaxis(out, 0, axis)


def upsample2(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Triangular ("fancy", as libjpeg) 2x upsampling of a box-averaged plane, cropped to ``shape``."""
    up = _up_axis(_up_axis(np.asarray(plane, dtype=np.float64), 0), 1)
    return up[: shape[0], : shape[1]]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Round and clip to uint8."""
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
