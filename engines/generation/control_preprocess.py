"""ControlNet pre-processors that need no downloaded weights (pure numpy, no Qt, no torch).

Every pre-processor takes an ``(H, W)`` / ``(H, W, 3|4)`` image (uint8, uint16 or float in
[0, 1]) and returns the control image a ControlNet expects: ``(H, W, 3)`` uint8.

- ``none``: the image as RGB.
- ``canny``: Canny edges (``skimage.feature.canny`` on the grey image in 0..255 units, so the
  thresholds read as A1111 / OpenCV ones: 100 / 200), white edges on black.
- ``scribble``: binary strokes, white on black, from a drawn mask or any picture (dark strokes
  on light paper are inverted automatically).
- ``depth``: a depth image the user supplies, normalised to 0..1 (near = white), optionally
  inverted (for distance maps where near is dark), to three grey channels.
- ``tile``: the image reduced by ``factor`` (block means) and enlarged back (bicubic), then
  blurred, for tile / upscale ControlNets.
"""

from __future__ import annotations

import numpy as np

from engines.generation.params import CONTROL_PREPROCESSORS

__all__ = ["PREPROCESSORS", "canny", "depth", "none", "parse_options", "prepare_control_image", "preprocess",
           "scribble", "tile", "to_float"]

PREPROCESSORS = CONTROL_PREPROCESSORS


def to_float(image: np.ndarray) -> np.ndarray:
    """An image as float64 in [0, 1], ``(H, W)`` or ``(H, W, C)`` (alpha dropped); ValueError on bad input."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3)) or min(array.shape[:2]) < 1:
        raise ValueError(f"control image must be (H, W) or (H, W, 3), got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.float64)
    if array.dtype.kind in "ui":
        top = float(np.iinfo(array.dtype).max)
        return np.clip(array.astype(np.float64) / top, 0.0, 1.0)
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError("control image contains NaN or infinite values")
    return np.clip(array, 0.0, 1.0)


def _grey(image: np.ndarray) -> np.ndarray:
    """Float [0, 1] grey (ITU-R 601 luma, as PIL's ``convert("L")``)."""
    f = to_float(image)
    if f.ndim == 3:
        f = f[:, :, 0] if f.shape[2] == 1 else f @ np.array([0.299, 0.587, 0.114])
    return f


def _rgb8(values: np.ndarray) -> np.ndarray:
    """``(H, W)`` or ``(H, W, 3)`` floats in [0, 1] -> ``(H, W, 3)`` uint8."""
    out = np.clip(np.rint(np.asarray(values) * 255.0), 0, 255).astype(np.uint8)
    return np.repeat(out[:, :, None], 3, axis=2) if out.ndim == 2 else out


def none(image: np.ndarray) -> np.ndarray:
    """The image unchanged, as ``(H, W, 3)`` uint8 RGB."""
    f = to_float(image)  # validates the shape and values
    a = np.asarray(image) if np.asarray(image).dtype == np.uint8 else None  # uint8: exact, no float round trip
    if a is None:
        a = f
    a = a[:, :, :3] if a.ndim == 3 and a.shape[2] >= 3 else (a[:, :, 0] if a.ndim == 3 else a)
    if a.dtype != np.uint8:
        return _rgb8(a)
    return np.ascontiguousarray(np.repeat(a[:, :, None], 3, axis=2) if a.ndim == 2 else a)


def canny(image: np.ndarray, low: float = 100.0, high: float = 200.0, sigma: float = 1.0) -> np.ndarray:
    """Canny edges (white on black); ``low`` / ``high``: hysteresis thresholds on the gradient of
    the grey image in 0..255 units (``low <= high``); ``sigma``: Gaussian smoothing in pixels."""
    from skimage.feature import canny as sk_canny

    if not (0 <= low <= high) or sigma < 0:
        raise ValueError(f"canny needs 0 <= low <= high and sigma >= 0 (got {low}, {high}, {sigma})")
    edges = sk_canny(_grey(image) * 255.0, sigma=float(sigma), low_threshold=float(low), high_threshold=float(high))
    return _rgb8(edges.astype(np.float64))


def scribble(image: np.ndarray, threshold: float = 0.5, invert: bool | None = None) -> np.ndarray:
    """Binary strokes, white on black. ``invert=None`` decides from the image: mostly light
    (mean > 0.5, dark strokes on paper) is inverted; a mask (light strokes on black) is not."""
    grey = _grey(image)
    if invert is None:
        invert = bool(grey.mean() > 0.5)
    strokes = (grey < threshold) if invert else (grey >= threshold)
    return _rgb8(strokes.astype(np.float64))


def depth(image: np.ndarray, invert: bool = False) -> np.ndarray:
    """A user-supplied depth image normalised to 0..1 over its own range (a flat image gives
    black), optionally inverted, as three grey channels. 16-bit and float depth maps keep
    their precision until the final 8-bit rounding."""
    grey = _grey(image)
    lo, hi = float(grey.min()), float(grey.max())
    norm = (grey - lo) / (hi - lo) if hi > lo else np.zeros_like(grey)
    return _rgb8(1.0 - norm if invert else norm)


def tile(image: np.ndarray, factor: int = 4, blur: float = 1.0) -> np.ndarray:
    """The image reduced by ``factor`` (mean of each ``factor`` x ``factor`` block, edge blocks
    partial), enlarged back to its size (bicubic) and blurred with a Gaussian of ``blur`` pixels."""
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    if int(factor) < 1 or blur < 0:
        raise ValueError(f"tile needs factor >= 1 and blur >= 0 (got {factor}, {blur})")
    f = to_float(image)
    if f.ndim == 2:
        f = f[:, :, None]
    f = np.repeat(f, 3, axis=2) if f.shape[2] == 1 else f
    h, w = f.shape[:2]
    n = int(factor)
    hs, ws = -(-h // n), -(-w // n)
    padded = np.pad(f, ((0, hs * n - h), (0, ws * n - w), (0, 0)))
    counts = np.pad(np.ones((h, w)), ((0, hs * n - h), (0, ws * n - w)))
    sums = padded.reshape(hs, n, ws, n, 3).sum(axis=(1, 3))
    small = sums / counts.reshape(hs, n, ws, n).sum(axis=(1, 3))[:, :, None]
    channels = [np.asarray(Image.fromarray(small[:, :, c].astype(np.float32)).resize((w, h), Image.BICUBIC))
                for c in range(3)]
    big = np.stack(channels, axis=2).astype(np.float64)
    if blur > 0:
        big = gaussian_filter(big, sigma=(float(blur), float(blur), 0))
    return _rgb8(np.clip(big, 0, 1))


def _function(name: str):
    functions = {"none": none, "canny": canny, "scribble": scribble, "depth": depth, "tile": tile}
    if name not in functions:
        raise ValueError(f"unknown control pre-processor {name!r} (choose: {', '.join(PREPROCESSORS)})")
    return functions[name]


def parse_options(name: str, text: str) -> dict:
    """``"low=50;high=150"`` -> keyword options of pre-processor ``name`` (its keyword parameters
    only, converted to their default's type: numbers, ``true``/``false``); ValueError otherwise."""
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(_function(name)).parameters.items() if k != "image"}
    out: dict = {}
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        key, sep, value = (x.strip() for x in part.partition("="))
        if not sep or key not in defaults:
            choices = ", ".join(defaults) or "none"
            raise ValueError(f"control option {part.strip()!r} does not suit {name} (options: {choices})")
        kind = type(defaults[key]) if defaults[key] is not None else bool
        try:
            if kind is bool:
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                out[key] = value.lower() in ("true", "1")
            else:
                out[key] = kind(float(value)) if kind is int else kind(value)
        except ValueError:
            raise ValueError(f"control option {key} must be {kind.__name__} (got {value!r})") from None
        if kind is not bool and not np.isfinite(out[key]):
            raise ValueError(f"control option {key} must be finite (got {value!r})")
    return out


def preprocess(image: np.ndarray, name: str, **options) -> np.ndarray:
    """Run pre-processor ``name`` (one of :data:`PREPROCESSORS`) with its ``options``."""
    return _function(name)(image, **options)


def prepare_control_image(image: np.ndarray, name: str, size: tuple, options: dict | None = None) -> np.ndarray:
    """The control image for a run at ``size = (height, width)`` pixels: resized (Lanczos, as
    diffusers' control image processor does) when its size differs, then pre-processed with ``options``."""
    from PIL import Image

    rgb = none(image) if name != "depth" else None
    if name == "depth":  # keep 16-bit / float depth precision: resize the grey values as floats
        grey = _grey(image).astype(np.float32)
        if grey.shape != tuple(size):
            grey = np.asarray(Image.fromarray(grey).resize((size[1], size[0]), Image.LANCZOS))
        return depth(grey.astype(np.float64), **(options or {}))
    if rgb.shape[:2] != tuple(size):
        rgb = np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.LANCZOS))
    return preprocess(rgb, name, **(options or {}))
