"""One configurable bound on how much memory any loader may decode a file into.

Every loader (scenes, volumes, images, codec bitstreams, models) computes the decoded size
from the header *before* allocating or looping and refuses larger inputs with its own
clear error type. The limit defaults to 2 GiB, can be set with the environment variable
``SPECTRA_MAX_DECODED_BYTES`` (bytes, or with a ``K``/``M``/``G`` suffix) or at run time with
:func:`set_max_decoded_bytes` (the studio's settings call it).
"""

from __future__ import annotations

import math
import numbers
import os
import threading

__all__ = [
    "DEFAULT_MAX_DECODED_BYTES",
    "ENV_VAR",
    "check_decoded_size",
    "format_bytes",
    "max_decoded_bytes",
    "set_max_decoded_bytes",
    "valid_dims",
]

DEFAULT_MAX_DECODED_BYTES = 2 * 2**30
ENV_VAR = "SPECTRA_MAX_DECODED_BYTES"
_SUFFIXES = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}

_lock = threading.Lock()
_override: int | None = None


def _parse(text: str) -> int | None:
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = 1
    if text and text[-1] in _SUFFIXES:
        scale, text = _SUFFIXES[text[-1]], text[:-1]
    try:
        value = float(text) * scale
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value > 0 else None


def max_decoded_bytes() -> int:
    """The current limit in bytes: :func:`set_max_decoded_bytes`, else the environment, else 2 GiB."""
    with _lock:
        if _override is not None:
            return _override
    env = os.environ.get(ENV_VAR)
    parsed = _parse(env) if env else None
    return parsed or DEFAULT_MAX_DECODED_BYTES


def set_max_decoded_bytes(limit: int | None) -> None:
    """Set the limit for this process (``None`` = back to the environment / default)."""
    global _override
    if limit is not None and (not isinstance(limit, numbers.Integral) or limit <= 0):
        raise ValueError(f"the decoded-size limit must be a positive number of bytes (got {limit!r})")
    with _lock:
        _override = None if limit is None else int(limit)
    _apply_pillow_limit()


def format_bytes(count: float) -> str:
    """``1536`` -> ``'1.5 KiB'`` (binary units, one decimal)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover


def check_decoded_size(nbytes: int, what: str, error: type[Exception] = ValueError) -> int:
    """Raise ``error`` if ``nbytes`` (the decoded size a header announces) exceeds the limit.

    ``what`` names the file and the data, e.g. ``"scan.mhd (512×512×4000 int16 voxels)"``.
    Returns ``nbytes``.
    """
    limit = max_decoded_bytes()
    if nbytes > limit:
        raise error(f"{what} would decode to {format_bytes(nbytes)}, more than the limit of "
                    f"{format_bytes(limit)} (set {ENV_VAR} to raise it)")
    return int(nbytes)


def valid_dims(dims, what: str, error: type[Exception] = ValueError, *, allow_zero: bool = False) -> tuple[int, ...]:
    """Check header dimensions are true integers ``>= 1`` (``>= 0`` with ``allow_zero``) and return them.

    Rejects bools, floats with a fraction, NaN, strings and negative values with ``error``.
    """
    out = []
    for value in dims:
        if isinstance(value, bool) or not isinstance(value, (numbers.Integral, float)):
            raise error(f"{what}: dimension {value!r} is not a whole number")
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise error(f"{what}: dimension {value!r} is not a whole number")
        value = int(value)
        if value < (0 if allow_zero else 1):
            raise error(f"{what}: dimension {value} is {'negative' if value < 0 else 'zero'}")
        out.append(value)
    return tuple(out)


def _apply_pillow_limit() -> None:
    """Keep Pillow's decompression-bomb limit in step if Pillow is loaded: one pixel per byte of the
    limit, so :func:`engines.imagefile.open_image`'s byte check (>= 1 byte per pixel) speaks first and
    Pillow's own check stays a backstop for any other ``Image.open``."""
    import sys

    image = sys.modules.get("PIL.Image")
    if image is not None:
        image.MAX_IMAGE_PIXELS = max_decoded_bytes()
