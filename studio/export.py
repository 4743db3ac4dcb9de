"""The one export service: atomic writes and provenance for every file the studio writes.

PNG files carry their provenance as a JSON ``iTXt`` chunk under the key ``spectra-studio``;
every other format gets a ``<file>.json`` sidecar. Writes go to a temporary file in the
target folder and are renamed into place only when complete, so a failing writer never
leaves a partial file behind. No Qt here: the CLI uses it too.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from studio import __version__

PNG_KEY = "spectra-studio"

__all__ = [
    "ExportError",
    "FileExistsErrorNoForce",
    "atomic_write",
    "atomic_write_bytes",
    "file_sha256",
    "make_provenance",
    "read_provenance",
    "save_png",
    "save_with_sidecar",
    "sidecar_path",
]


class ExportError(ValueError):
    """An export could not be written (bad data, bad path, existing file without force)."""


class FileExistsErrorNoForce(ExportError):
    """The target exists and overwriting was not allowed."""


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (of every file inside, sorted, for a folder)."""
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays, paths and tuples into plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def make_provenance(
    panel: str,
    engine: str,
    parameters: dict,
    *,
    seed: int | None = None,
    device: str | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    extra: dict | None = None,
) -> dict:
    """The provenance record stored with an export.

    ``parameters`` must be everything needed to reproduce the result; ``inputs`` are files
    the result was made from (their sha256 is recorded, keyed by file name).
    """
    record = {
        "app": "Spectra Studio",
        "app_version": __version__,
        "panel": panel,
        "engine": engine,
        "parameters": _jsonable(dict(parameters)),
        "seed": seed,
        "device": device,
        "inputs": {
            os.fspath(p): file_sha256(p) for p in inputs if p and Path(p).exists()
        },
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
    }
    if extra:
        record.update(_jsonable(extra))
    return record


def atomic_write(
    path: str | os.PathLike,
    writer: Callable[[str], None],
    *,
    force: bool = False,
) -> Path:
    """Call ``writer(tmp_path)`` and rename the result to ``path`` only if it succeeds.

    Raises :class:`FileExistsErrorNoForce` if ``path`` exists and ``force`` is false. Any
    exception from ``writer`` removes the temporary file and propagates; ``path`` is then
    untouched (absent, or the previous version).
    """
    target = Path(path)
    if target.exists() and not force:
        raise FileExistsErrorNoForce(f"{target} exists (use --force to overwrite)")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"folder {folder} does not exist")
    handle, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial" + target.suffix, dir=folder)
    os.close(handle)
    try:
        writer(tmp)
        if not os.path.exists(tmp) or (os.path.getsize(tmp) == 0):
            raise ExportError(f"writing {target.name} produced no data")
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, force: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)

    return atomic_write(path, write, force=force)


def _to_uint8_image(image: Any) -> np.ndarray:
    """Convert ``(H, W)``, ``(H, W, 3|4)`` uint8 or float-in-[0,1] arrays to uint8."""
    array = np.asarray(image)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ExportError(f"cannot save an array of shape {array.shape} as an image")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype == np.uint8:
        return array
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ExportError("image contains NaN or infinite values")
    return np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)


def save_png(
    path: str | os.PathLike,
    image: Any,
    provenance: dict,
    *,
    force: bool = False,
) -> Path:
    """Save an image as PNG with ``provenance`` in an iTXt chunk, atomically.

    ``image``: ``(H, W)`` / ``(H, W, 3)`` / ``(H, W, 4)``, uint8 or float in [0, 1].
    """
    from PIL import Image, PngImagePlugin

    pixels = _to_uint8_image(image)
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PNG_KEY, json.dumps(_jsonable(provenance), sort_keys=True))
    params = provenance.get("parameters") or {}
    info.add_text("Software", f"Spectra Studio {__version__}")
    if params:
        info.add_text("parameters", ", ".join(f"{k}: {v}" for k, v in params.items()))

    def write(tmp: str) -> None:
        Image.fromarray(pixels).save(tmp, format="PNG", pnginfo=info)

    return atomic_write(path, write, force=force)


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where the provenance sidecar of ``path`` lives: ``<path>.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def save_with_sidecar(
    path: str | os.PathLike,
    writer: Callable[[str], None],
    provenance: dict,
    *,
    force: bool = False,
) -> Path:
    """Write a non-PNG file with ``writer(tmp_path)`` and its provenance as ``<path>.json``.

    Both files are written atomically; the sidecar is written only after the data file.
    """
    side = sidecar_path(path)
    if not force:
        for candidate in (Path(path), side):
            if candidate.exists():
                raise FileExistsErrorNoForce(f"{candidate} exists (use --force to overwrite)")
    target = atomic_write(path, writer, force=True)
    atomic_write_bytes(side, json.dumps(_jsonable(provenance), indent=2, sort_keys=True).encode(), force=True)
    return target


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance stored with a file (PNG chunk or sidecar), or None if it has none.

    Raises :class:`ExportError` when the file is a PNG that cannot be read.
    """
    path = Path(path)
    if path.suffix.lower() == ".png":
        from engines.imagefile import open_image

        image = open_image(path, error=ExportError)
        text = image.text.get(PNG_KEY) if hasattr(image, "text") else None
        if text:
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return None
    side = sidecar_path(path)
    if side.exists():
        try:
            return json.loads(side.read_text())
        except (OSError, json.JSONDecodeError):
            return None
    return None
