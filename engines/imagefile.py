"""Opening PNG / JPEG / TIFF / WebP ... images with Pillow, within the decoded-size limit.

Every place that opens a user's image goes through :func:`open_image`: it reads the header,
checks ``width × height × bytes per pixel`` against :func:`engines.limits.max_decoded_bytes`
before decoding, keeps Pillow's own decompression-bomb limit at the same value and turns
every failure (truncated data, bombs, foreign files) into one :class:`ImageFileError`.
"""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

from engines.limits import check_decoded_size, max_decoded_bytes

__all__ = ["ImageFileError", "open_image"]


class ImageFileError(ValueError):
    """An image file is missing, corrupt, too large or not an image (the message says which)."""


# bytes per pixel of Pillow's internal storage by mode (the decoder allocates this much)
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 4, "La": 4, "PA": 4, "RGB": 4, "RGBA": 4, "RGBa": 4, "RGBX": 4,
               "CMYK": 4, "YCbCr": 4, "LAB": 4, "HSV": 4, "I": 4, "F": 4, "I;16": 2, "I;16L": 2, "I;16B": 2,
               "I;16N": 2}


def open_image(path: str | os.PathLike | bytes, *, name: str | None = None, error: type[Exception] = ImageFileError):
    """Open and fully decode an image; returns a loaded ``PIL.Image.Image`` (file already closed).

    ``path`` may also be the encoded bytes (then ``name`` labels messages). Raises ``error``
    (default :class:`ImageFileError`) for missing, unreadable, truncated or oversized images.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = max_decoded_bytes() // 4
    if isinstance(path, (bytes, bytearray, memoryview)):
        source, label = io.BytesIO(bytes(path)), name or "image data"
    else:
        p = Path(path)
        label = name or p.name
        if not p.exists():
            raise error(f"{label}: file not found")
        if not p.is_file():
            raise error(f"{label} is not a regular file")
        source = p
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = image.size
                per_pixel = _MODE_BYTES.get(image.mode, 4)
                check_decoded_size(width * height * per_pixel,
                                   f"{label} ({width}×{height} {image.mode} image)", error)
                image.load()
                return image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise error(f"{label} is too large to open safely (a possible decompression bomb): "
                    f"{_first_line(exc)}") from exc
    except UnidentifiedImageError as exc:
        raise error(f"{label} is not a readable image (unknown or damaged format)") from exc
    except error:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error,
            zlib.error, MemoryError, OverflowError, ZeroDivisionError) as exc:
        # Pillow's plugins raise all of these for corrupt or truncated files
        raise error(f"{label} is a corrupt or truncated image: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"
