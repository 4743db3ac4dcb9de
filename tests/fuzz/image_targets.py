"""Fuzz targets for the images Pillow decodes with a library of its own: AVIF (libavif), JPEG 2000
(OpenJPEG, ``.jp2`` boxes and a bare ``.j2k`` codestream) and GIF (Pillow's LZW decoder).

They are opened the way the Codec panel and ``codec encode --image`` open every image
(:func:`engines.codec.images.load_image`). The mutations set the size fields the decoders
trust (AVIF ``ispe``, JP2 ``ihdr`` and the codestream's ``SIZ`` marker, GIF's logical screen
and image descriptor) to huge, zero or inconsistent values, or corrupt bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path

from tests.fuzz.mutations import mutate_bytes, pick, replace_with_special

#: values a 32-bit size field is set to (huge, zero, one, just inside / outside the decoded-size limit)
_BIG32 = [0, 1, 65535, 16384, 40000, 100000, 1 << 20, 2**31 - 1, 2**32 - 1]
#: values a 16-bit size field is set to
_BIG16 = [0, 1, 255, 16384, 30000, 40000, 65535]


def _save(name: str, fmt: str, **options):
    """``build(folder)`` saving the fuzz sample pixels as ``name`` in Pillow format ``fmt``."""
    def build(folder: Path) -> Path:
        from PIL import Image

        from tests.fuzz.targets import _image_pixels

        path = folder / name
        Image.fromarray(_image_pixels()).save(path, fmt, **options)
        return path

    return build


def _set(path: Path, data: bytearray, offset: int, fmt: str, value) -> str:
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))
    return f"@{offset} = {value}"


def _field_or_bytes(rng, path: Path, fields: list[tuple[str, int, str, list]], header_bias: int) -> str:
    """Half the time one of ``fields`` (name, offset, struct format, bad values) set to a bad value,
    else a special file (5 %) or corrupt bytes."""
    data = bytearray(path.read_bytes())
    fields = [f for f in fields if 0 <= f[1] and f[1] + struct.calcsize(f[2]) <= len(data)]
    if fields and rng.random() < 0.5:
        name, offset, fmt, values = pick(rng, fields)
        what = f"{name} " + _set(path, data, offset, fmt, pick(rng, values))
        if rng.random() < 0.2:  # and a second field
            name, offset, fmt, values = pick(rng, fields)
            what += f"; {name} " + _set(path, data, offset, fmt, pick(rng, values))
        return what
    if rng.random() < 0.05:
        return replace_with_special(rng, path)
    return mutate_bytes(rng, path, header_bias=header_bias)


# -- AVIF (ISO-BMFF boxes around an AV1 key frame) ----------------------------------------------------------
def _box_fields(data: bytes, kinds: list[bytes]) -> list[tuple[str, int, str, list]]:
    """The 32-bit size field in front of each box type in ``kinds`` found in ``data``."""
    found = []
    for kind in kinds:
        at = data.find(kind)
        if at >= 4:
            found.append((f"{kind.decode()} box size", at - 4, ">I", [0, 1, 7, 8, 2**31 - 1, 2**32 - 1, len(data)]))
    return found


def _mutate_avif(rng, folder: Path, path: Path) -> str:
    data = path.read_bytes()
    fields = _box_fields(data, [b"ftyp", b"meta", b"iloc", b"iprp", b"ipco", b"ispe", b"av1C", b"mdat"])
    ispe, pixi, iloc = data.find(b"ispe"), data.find(b"pixi"), data.find(b"iloc")
    if ispe > 0:
        fields += [("ispe width", ispe + 8, ">I", _BIG32), ("ispe height", ispe + 12, ">I", _BIG32)]
    if pixi > 0:
        fields += [("pixi channels", pixi + 8, ">B", [0, 1, 4, 255]), ("pixi depth", pixi + 9, ">B", [0, 1, 12, 16, 255])]
    if iloc > 0:  # version 0, offset/length 4 bytes each: the item's extent length is the last field
        fields += [("iloc extent length", iloc + 24, ">I", [0, 1, 2**31 - 1, 2**32 - 1, 1 << 20]),
                   ("iloc extent offset", iloc + 20, ">I", [0, 1, 2**31 - 1, 2**32 - 1, len(data) - 1])]
    return _field_or_bytes(rng, path, fields, header_bias=300)


# -- JPEG 2000 (.jp2 boxes, or a bare codestream) ------------------------------------------------------------
def _siz_fields(data: bytes) -> list[tuple[str, int, str, list]]:
    siz = data.find(b"\xff\x51")
    if siz < 0:
        return []
    at = siz + 4  # after the marker and Lsiz
    fields = [("Rsiz", at, ">H", [0, 0xFFFF, 3, 0x4000])]
    for i, name in enumerate(("Xsiz", "Ysiz", "XOsiz", "YOsiz", "XTsiz", "YTsiz", "XTOsiz", "YTOsiz")):
        fields.append((name, at + 2 + 4 * i, ">I", _BIG32 + [19, 23]))
    fields += [("Lsiz", siz + 2, ">H", [0, 2, 38, 41, 65535]), ("Csiz", at + 34, ">H", [0, 1, 4, 16384, 65535]),
               ("Ssiz", at + 36, ">B", [0, 7, 15, 31, 37, 0x8F, 255]), ("XRsiz", at + 37, ">B", [0, 1, 2, 255]),
               ("YRsiz", at + 38, ">B", [0, 3, 255])]
    cod = data.find(b"\xff\x52")
    if cod > 0:  # decomposition levels and code-block size exponents
        fields += [("COD levels", cod + 9, ">B", [0, 5, 32, 33, 255]), ("COD block width", cod + 10, ">B", [0, 8, 9, 255]),
                   ("COD layers", cod + 6, ">H", [0, 65535])]
    return fields


def _mutate_jp2(rng, folder: Path, path: Path) -> str:
    data = path.read_bytes()
    note = ""
    if rng.random() < 0.3:  # the bare codestream (a .j2k in a .jp2 name: Pillow reads either by its magic)
        data = data[data.find(b"\xff\x4f\xff\x51"):]
        path.write_bytes(data)
        note = "bare codestream; "
    fields = _siz_fields(data)
    ihdr = data.find(b"ihdr")
    if ihdr > 0:
        fields += [("ihdr height", ihdr + 4, ">I", _BIG32), ("ihdr width", ihdr + 8, ">I", _BIG32),
                   ("ihdr components", ihdr + 12, ">H", [0, 1, 4, 16384, 65535]), ("ihdr bpc", ihdr + 14, ">B", [0, 15, 37, 255])]
    fields += _box_fields(data, [b"jp2h", b"ihdr", b"colr", b"jp2c", b"ftyp"])
    return note + _field_or_bytes(rng, path, fields, header_bias=200)


# -- GIF -------------------------------------------------------------------------------------------------------
def _build_gif(folder: Path) -> Path:
    """A two-frame GIF (the loader decodes the first frame)."""
    from PIL import Image

    from tests.fuzz.targets import _image_pixels

    pixels = _image_pixels()
    path = folder / "photo.gif"
    first, second = Image.fromarray(pixels), Image.fromarray(pixels[::-1].copy())
    first.save(path, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    return path


def _mutate_gif(rng, folder: Path, path: Path) -> str:
    data = path.read_bytes()
    fields = [("screen width", 6, "<H", _BIG16), ("screen height", 8, "<H", _BIG16),
              ("screen flags", 10, "<B", [0, 0x07, 0x80, 0xF7, 0xFF])]
    descriptor = data.find(b"\x2c", 13 + 3 * 256 if data[10] & 0x80 else 13)
    if descriptor > 0:
        fields += [("frame left", descriptor + 1, "<H", _BIG16), ("frame top", descriptor + 3, "<H", _BIG16),
                   ("frame width", descriptor + 5, "<H", _BIG16), ("frame height", descriptor + 7, "<H", _BIG16),
                   ("frame flags", descriptor + 9, "<B", [0, 0x40, 0x87, 0xFF]),
                   ("LZW code size", descriptor + 10, "<B", [0, 1, 9, 12, 13, 255])]
    return _field_or_bytes(rng, path, fields, header_bias=800)


def image_targets(target_class) -> list:
    """The targets of this module (``target_class`` is :class:`tests.fuzz.targets.Target`)."""
    from tests.fuzz.file_targets import _load_image_errors
    from tests.fuzz.targets import _load_image

    return [
        target_class("avif", _save("photo.avif", "AVIF", quality=80), _mutate_avif, _load_image, _load_image_errors, "images"),
        target_class("jpeg2000", _save("photo.jp2", "JPEG2000"), _mutate_jp2, _load_image, _load_image_errors, "images"),
        target_class("gif", _build_gif, _mutate_gif, _load_image, _load_image_errors, "images"),
    ]
