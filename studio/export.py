"""The one export service: atomic writes and provenance for every file the studio writes.

PNG files carry their provenance as a JSON ``iTXt`` chunk under the key ``spectra-studio``;
every other format gets a ``<file>.json`` sidecar, written as a pair with its data file (both
or neither). Writes go to a temporary file in the target folder (created with the user's umask)
and are renamed into place only when complete, so a failing writer never leaves a partial file
behind. The provenance record itself is built and validated in :mod:`engines.provenance`; this
module only writes and reads it. No Qt here: the CLI uses it too.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

from engines.atomic_files import (
    PNG_KEY,
    ExportError,
    FileExistsErrorNoForce,
    PendingExport,
    atomic_write,
    atomic_write_bytes,
    check_target,
    save_png,
    save_with_sidecar,
    sidecar_path,
)
from engines.provenance import MAX_RECORD_BYTES, ProvenanceError, file_sha256, parse_record
from engines.provenance import build_record as make_provenance

__all__ = [
    "ExportError",
    "FileExistsErrorNoForce",
    "PendingExport",
    "atomic_write",
    "atomic_write_bytes",
    "check_target",
    "file_sha256",
    "make_provenance",
    "read_png_chunk",
    "read_provenance",
    "save_png",
    "save_with_sidecar",
    "sidecar_path",
]


def _decode_record(text: str | bytes, where: str) -> dict:
    try:
        return parse_record(text)
    except ProvenanceError as exc:
        raise ExportError(f"{where}: its Spectra Studio record is not valid ({exc})") from None


def _png_record(path: Path) -> dict | None:
    """The record in a PNG's ``spectra-studio`` chunk (read without decoding the pixels)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.format != "PNG":
                raise ExportError(f"{path.name} is not a readable image: it holds {image.format} data, not PNG")
            text = image.info.get(PNG_KEY)
            if text is None:
                return _foreign_record(image.info)
    except ExportError:
        raise
    except UnidentifiedImageError:  # Pillow's message names the full path: say it as the loaders do
        raise ExportError(f"{path.name} is not a readable image (unknown or damaged format)") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types (incl. bomb errors) on bad files
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise ExportError(f"{path.name} is not a readable image: {message}") from None
    if text is None:
        return None
    return _decode_record(text, path.name)


MAX_ATTACHMENT_BYTES = 512 << 20


def read_png_chunk(path: str | os.PathLike, chunk_type: bytes) -> bytes | None:
    """The (decompressed) data of the first private chunk ``chunk_type`` that :func:`save_png`
    wrote as an attachment, or None. Lengths and CRCs are checked; ExportError when damaged."""
    import struct

    path = Path(path)
    try:
        with open(path, "rb") as handle:
            if handle.read(8) != b"\x89PNG\r\n\x1a\n":
                return None
            while True:
                head = handle.read(8)
                if len(head) < 8:
                    return None
                length, kind = struct.unpack(">I4s", head)
                if kind == b"IEND":
                    return None
                if kind != chunk_type:
                    handle.seek(length + 4, 1)
                    continue
                if length > MAX_ATTACHMENT_BYTES:
                    raise ExportError(f"{path.name}: its {chunk_type.decode()} chunk is too large")
                data = handle.read(length)
                crc = handle.read(4)
                if len(data) != length or len(crc) != 4 or zlib.crc32(kind + data) != struct.unpack(">I", crc)[0]:
                    raise ExportError(f"{path.name}: its {chunk_type.decode()} chunk is damaged (length or CRC)")
                inflater = zlib.decompressobj()
                out = inflater.decompress(data, MAX_ATTACHMENT_BYTES)
                if inflater.unconsumed_tail:
                    raise ExportError(f"{path.name}: its {chunk_type.decode()} chunk is too large")
                return out
    except OSError as exc:
        raise ExportError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    except zlib.error:
        raise ExportError(f"{path.name}: its {chunk_type.decode()} chunk is damaged (not zlib data)") from None


def _foreign_record(chunks: dict) -> dict | None:
    """A Generate record built from another tool's PNG metadata (A1111, InvokeAI, ComfyUI), or None."""
    from engines.generation.interop import foreign_generation_params

    found = foreign_generation_params(chunks)
    if found is None:
        return None
    tool, params = found
    params.setdefault("model", "")  # the other tool's model is named only when it says so
    return {"app": tool, "panel": "generate", "engine": "generation", "parameters": params,
            "imported_from": tool}


def _sidecar_record(path: Path) -> dict | None:
    """The record in ``<path>.json``; None when there is none or it is not a Spectra Studio record."""
    side = sidecar_path(path)
    try:
        if not side.is_file():
            return None
        if side.stat().st_size > MAX_RECORD_BYTES:
            raise ExportError(f"{side.name} is too large to be a Spectra Studio record")
        data = side.read_bytes()
    except OSError as exc:
        raise ExportError(f"cannot read {side.name}: {exc.strerror or exc}") from None
    try:
        peek = json.loads(data)
    except (ValueError, RecursionError):
        return _decode_record(data, side.name)  # raises with the reason
    if not isinstance(peek, dict) or ("panel" not in peek and peek.get("app") != "Spectra Studio"):
        return None  # some other tool's metadata next to the file
    return _decode_record(data, side.name)


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The validated provenance stored with a file (PNG chunk, else sidecar), or None if it has none.

    Raises :class:`ExportError` (and nothing else) when the PNG cannot be read or the record is
    malformed: not JSON, not an object, too large, nested too deeply, or fields of the wrong type.
    """
    path = Path(path)
    if path.suffix.lower() == ".png":
        record = _png_record(path)
        if record is not None:
            return record
    return _sidecar_record(path)
