"""The input image, mask, reference and ControlNet control image of a generation, embedded beside an exported PNG (no Qt).

Each array is stored losslessly as ``.npy`` bytes (any dtype, exact), base64 in a JSON object
``{role: {"npy": ..., "sha256": ...}}``; :func:`decode_inputs` checks the header's shape and
dtype before allocating and the recorded sha256 (:func:`engines.generation.api.array_sha256`)
after decoding, so a restored input is bit-identical to the one that made the image.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np

__all__ = ["INPUTS_PNG_CHUNK", "MAX_INPUT_PIXELS", "decode_inputs", "encode_inputs", "store_input_image"]

INPUTS_PNG_CHUNK = b"spIn"  # private ancillary PNG chunk (safe to copy) holding encode_inputs() bytes
MAX_INPUT_PIXELS = 8192 * 8192
ROLES = ("init", "mask", "reference", "control")
_DTYPES = {"uint8", "uint16", "bool", "float32", "float64"}  # uint16: 16-bit depth control images


def encode_inputs(arrays: dict) -> bytes:
    """JSON text holding the ``init`` / ``mask`` / ``reference`` / ``control`` arrays given (None values skipped)."""
    from engines.generation.api import array_sha256

    out = {}
    for role in ROLES:
        array = arrays.get(role)
        if array is None:
            continue
        array = np.ascontiguousarray(array)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        out[role] = {"npy": base64.b64encode(buffer.getvalue()).decode("ascii"), "sha256": array_sha256(array)}
    return json.dumps(out).encode("ascii")


def _read_npy(data: bytes, role: str) -> np.ndarray:
    buffer = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buffer)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = reader(buffer)  # the header only: nothing allocated yet
    except (ValueError, OSError) as exc:
        raise ValueError(f"stored {role} image is not readable ({exc})") from None
    if dtype.name not in _DTYPES or len(shape) not in (2, 3) or int(np.prod(shape[:2])) > MAX_INPUT_PIXELS \
            or (len(shape) == 3 and shape[2] > 4):
        raise ValueError(f"stored {role} image has an unsupported shape {shape} or type {dtype}")
    buffer.seek(0)
    return np.load(buffer, allow_pickle=False)


def decode_inputs(text: bytes | str) -> dict:
    """``{role: array}`` from :func:`encode_inputs` text; ValueError when malformed or altered."""
    from engines.generation.api import array_sha256

    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("stored input images are not readable (not JSON)") from None
    if not isinstance(data, dict):
        raise ValueError("stored input images are not readable (not an object)")
    out = {}
    for role in ROLES:
        entry = data.get(role)
        if entry is None:
            continue
        if not isinstance(entry, dict) or not isinstance(entry.get("npy"), str):
            raise ValueError(f"stored {role} image is not readable")
        try:
            raw = base64.b64decode(entry["npy"], validate=True)
        except ValueError:
            raise ValueError(f"stored {role} image is not valid base64") from None
        array = _read_npy(raw, role)
        if array_sha256(array) != entry.get("sha256"):
            raise ValueError(f"stored {role} image does not match its checksum")
        out[role] = array
    return out


def store_input_image(array: np.ndarray, folder) -> Path:
    """Write a restored input image to ``folder/<sha256 prefix>.png`` (atomically, once) and return
    the path, so tools that take image files (the ControlNet control image) can use it again.
    uint8 is stored as it is, uint16 as a 16-bit grey PNG, floats in [0, 1] as 16-bit grey or 8-bit RGB."""
    from PIL import Image

    from engines.atomic_files import atomic_write
    from engines.generation.api import array_sha256

    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise ValueError("the stored image contains NaN or infinite values")
        scale = 65535.0 if a.ndim == 2 else 255.0
        a = np.clip(np.rint(a * scale), 0, scale).astype(np.uint16 if a.ndim == 2 else np.uint8)
    if a.dtype == np.uint16 and a.ndim != 2:
        a = (a // 257).astype(np.uint8)
    if a.dtype not in (np.uint8, np.uint16) or a.ndim not in (2, 3):
        raise ValueError(f"cannot store an image of shape {a.shape} and type {a.dtype}")
    target = Path(folder) / f"{array_sha256(np.asarray(array))[:24]}.png"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.ascontiguousarray(a))
    return atomic_write(target, lambda tmp: image.save(tmp, format="PNG"), force=True)
