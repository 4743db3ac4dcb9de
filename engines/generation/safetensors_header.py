"""Header-only reading of ``.safetensors`` files (tensor table and ``__metadata__``), bounded.

A safetensors file starts with an 8-byte little-endian header length and a JSON header; the
tensors follow. Reading only the header lets the GUI list a LoRA's trigger words or an
embedding's token without loading gigabytes of weights.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

__all__ = ["MAX_HEADER_BYTES", "read_safetensors_header", "safetensors_metadata"]

MAX_HEADER_BYTES = 32 << 20


def read_safetensors_header(path: str | os.PathLike) -> dict:
    """The JSON header of a ``.safetensors`` file (tensor entries plus ``__metadata__``).

    Reads at most ``8 + MAX_HEADER_BYTES`` bytes; ValueError with one clear reason when the file
    is missing, truncated, not safetensors, or its header is too large.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise ValueError(f"{path.name} is not a .safetensors file (too short)")
            (length,) = struct.unpack("<Q", head)
            if length > MAX_HEADER_BYTES:
                raise ValueError(f"{path.name}: its header claims {length} bytes (limit {MAX_HEADER_BYTES})")
            if length + 8 > size:
                raise ValueError(f"{path.name} is truncated (header of {length} bytes, file of {size})")
            raw = handle.read(length)
    except OSError as exc:
        raise ValueError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError(f"{path.name} is not a .safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path.name} is not a .safetensors file (its header is not a table)")  # noqa: TRY004
    return header


def safetensors_metadata(path: str | os.PathLike) -> dict:
    """The ``__metadata__`` string table of a ``.safetensors`` file (``{}`` when it has none)."""
    meta = read_safetensors_header(path).get("__metadata__") or {}
    return {str(k): v for k, v in meta.items() if isinstance(v, str)} if isinstance(meta, dict) else {}
