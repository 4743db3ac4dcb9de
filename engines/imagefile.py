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
from collections.abc import Callable
from pathlib import Path

from engines.limits import check_decoded_size, max_decoded_bytes

__all__ = ["ImageFileError", "open_image"]


class ImageFileError(ValueError):
    """An image file is missing, corrupt, too large or not an image (the message says which)."""


# bytes per pixel of Pillow's internal storage by mode (the decoder allocates this much)
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 4, "La": 4, "PA": 4, "RGB": 4, "RGBA": 4, "RGBa": 4, "RGBX": 4,
               "CMYK": 4, "YCbCr": 4, "LAB": 4, "HSV": 4, "I": 4, "F": 4, "I;16": 2, "I;16L": 2, "I;16B": 2,
               "I;16N": 2}


#: bytes per pixel a caller allocates to get an RGB array from a decoded image: ``convert("RGB")``
#: (Pillow stores RGB in 4) and its numpy array (3); pass it as ``extra_bytes_per_pixel``
RGB_COPY_BYTES = 7


def open_image(path: str | os.PathLike | bytes, *, name: str | None = None, error: type[Exception] = ImageFileError,
               extra_bytes_per_pixel: int | Callable[[str], int] = 0):
    """Open and fully decode an image; returns a loaded ``PIL.Image.Image`` (file already closed).

    ``path`` may also be the encoded bytes (then ``name`` labels messages). Raises ``error``
    (default :class:`ImageFileError`) for missing, unreadable, truncated or oversized images.
    ``extra_bytes_per_pixel`` is what the caller allocates from the image afterwards (7 for
    ``convert("RGB")`` and its array: a 1-byte palette GIF becomes 8 bytes a pixel), or a function
    of the image's Pillow mode returning it; it is counted in the same size check, before decoding.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = max_decoded_bytes()  # pixels: never below our byte check, still a backstop
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
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the byte check below decides
            with Image.open(source) as image:
                width, height = image.size
                extra = extra_bytes_per_pixel(image.mode) if callable(extra_bytes_per_pixel) else extra_bytes_per_pixel
                per_pixel = _MODE_BYTES.get(image.mode, 4) + _decoder_bytes(image) + extra
                check_decoded_size(width * height * per_pixel,
                                   f"{label} ({width}×{height} {image.mode} image)", error)
                _check_plausible(image, _encoded_size(source), label, error)
                image.load()
                return image
    except Image.DecompressionBombError as exc:
        raise error(f"{label} is too large to open safely (a possible decompression bomb): "
                    f"{_first_line(exc)}") from exc
    except UnidentifiedImageError as exc:
        raise error(f"{label} is not a readable image (unknown or damaged format)") from exc
    except error:
        raise
    except RuntimeError as exc:  # Pillow's AVIF plugin reports every libavif failure as a RuntimeError
        raise error(f"{label} is a corrupt or truncated image: {_first_line(exc)}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, struct.error,
            zlib.error, MemoryError, OverflowError, ZeroDivisionError) as exc:
        # Pillow's plugins raise all of these for corrupt or truncated files
        raise error(f"{label} is a corrupt or truncated image: {_first_line(exc)}") from exc


def _decoder_bytes(image) -> int:
    """Bytes per pixel a format's decoding library holds besides Pillow's image: OpenJPEG keeps
    every component as int32, libavif / dav1d a YUV frame of up to 16-bit samples and its copy.
    A flat 16 Mpx RGB image is < 1 KB in either format and peaks at ~250-300 MB while decoding."""
    if image.format == "JPEG2000":
        return 4 * len(image.getbands())
    if image.format == "AVIF":
        return 12
    return 0


# deflate cannot compress better than ~1032:1; a PNG smaller than raw / 1032 is truncated or a bomb
_DEFLATE_MAX_RATIO = 1032
# bits per pixel as files code them (at least)
_CODED_BITS = {"1": 1, "L": 8, "P": 8, "LA": 16, "RGB": 24, "RGBA": 32, "CMYK": 32, "YCbCr": 24, "I": 32, "F": 32,
               "I;16": 16, "I;16L": 16, "I;16B": 16, "I;16N": 16}
# the best compression ratio of each TIFF coding Pillow reads (raw: none; LZW: 4096-byte strings per 12-bit code)
_TIFF_MAX_RATIO = {"raw": 1, "packbits": 64, "tiff_deflate": _DEFLATE_MAX_RATIO, "tiff_adobe_deflate": _DEFLATE_MAX_RATIO,
                   "tiff_lzw": 4096}
_JPEG_ARITHMETIC_SOF = {0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _encoded_size(source) -> int:
    if isinstance(source, Path):
        return source.stat().st_size
    return len(source.getbuffer())


def _check_plausible(image, encoded: int, label: str, error: type[Exception]) -> None:
    """Refuse PNG / JPEG headers announcing far more pixels than the file can encode (truncated
    files and decompression bombs) before the decoder allocates and loops over them."""
    width, height = image.size
    if image.format == "PNG":
        bits = _CODED_BITS.get(image.mode, 8) if image.mode != "I" else 16
        raw = height * (-(-width * bits // 8) + 1)
        needed = raw // _DEFLATE_MAX_RATIO
    elif image.format == "JPEG" and _jpeg_sof(image) not in _JPEG_ARITHMETIC_SOF:
        needed = (-(-width // 8) * -(-height // 8)) // 8  # Huffman coding spends >= 1 bit per luma block
    elif image.format == "TIFF" and image.info.get("compression") in _TIFF_MAX_RATIO:
        bits = _CODED_BITS.get(image.mode, 1)
        needed = height * -(-width * bits // 8) // _TIFF_MAX_RATIO[image.info["compression"]]
    else:
        return
    if encoded < needed:
        raise error(f"{label} is truncated or corrupt: a {width}×{height} {image.format} needs at least "
                    f"{needed:,} bytes of coded data, the file holds {encoded:,}")


def _jpeg_sof(image) -> int:
    """The SOF marker byte of an open JPEG (0 if unknown)."""
    fp = getattr(image, "fp", None)
    if fp is None:
        return 0
    position = fp.tell()
    try:
        fp.seek(2)
        for _ in range(64):
            head = fp.read(4)
            if len(head) < 4 or head[0] != 0xFF:
                return 0
            marker, length = head[1], struct.unpack(">H", head[2:])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return marker
            fp.seek(length - 2, 1)
        return 0
    finally:
        fp.seek(position)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"
