"""Loading images for the codec tools, and the bundled samples (from ``skimage.data``, which
ships its images inside the installed package: no download)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engines.imagefile import RGB_COPY_BYTES

__all__ = ["IMAGE_SUFFIXES", "SAMPLES", "load_image", "sample_image"]

#: sample name -> skimage.data function name (public-domain / CC0 images shipped with scikit-image)
SAMPLES = {"astronaut": "astronaut", "chelsea": "chelsea", "coffee": "coffee", "rocket": "rocket"}

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".avif", ".jp2", ".gif")


#: Pillow modes :func:`load_image` scales to 8 bits (16- and 32-bit grey)
_WIDE_GREY = ("I;16", "I;16B", "I;16L", "I")


def _conversion_bytes(mode: str) -> int:
    """Bytes per pixel :func:`load_image` allocates after decoding an image of Pillow ``mode``: a
    wide grey's copy (<= 4) and float64 values (8), else ``convert("RGB")`` (4) and its array (3)."""
    return 12 if mode in _WIDE_GREY else RGB_COPY_BYTES


def sample_image(name: str = "astronaut") -> np.ndarray:
    """A bundled sample as ``(H, W, 3)`` uint8."""
    if name not in SAMPLES:
        raise ValueError(f"unknown sample {name!r}; choose from {', '.join(SAMPLES)}")
    import skimage.data

    image = np.asarray(getattr(skimage.data, SAMPLES[name])())
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (alpha dropped, grey expanded, 16-bit scaled).

    ``sample:NAME`` loads a bundled sample. Raises FileNotFoundError or ValueError with a clear
    message for missing, unreadable or empty files.
    """
    text = os.fspath(path)
    if text.startswith("sample:"):
        return sample_image(text.split(":", 1)[1] or "astronaut")
    p = Path(text)
    if not p.exists():
        raise FileNotFoundError(2, "No such file", text)
    if p.is_dir():
        raise ValueError(f"{p.name} is a folder, not an image")
    from engines.imagefile import open_image

    im = open_image(p, extra_bytes_per_pixel=_conversion_bytes)
    try:
        if im.mode in _WIDE_GREY:  # scaled in place: one float64 copy at a time
            grey = np.asarray(im, dtype=np.float64)
            grey /= max(grey.max(), 1)
            grey *= 255.0
            arr = np.clip(grey, 0, 255, out=grey).astype(np.uint8)
            del grey
            arr = np.repeat(arr[..., None], 3, axis=-1)
        else:
            arr = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{p.name} is not a readable image: {exc}") from exc
    except MemoryError:
        from engines.imagefile import ImageFileError

        raise ImageFileError(f"{p.name} ({im.width}×{im.height}) is too large to convert to RGB in memory") from None
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{p.name}: unexpected image shape {arr.shape}")
    return np.ascontiguousarray(arr)
