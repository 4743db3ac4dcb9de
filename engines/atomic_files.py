"""Atomic file writing shared by the engines, the CLI and the studio (no Qt, no studio import).

A file is written to a hidden temporary next to its target and renamed into place only when complete;
a data file and its provenance sidecar are written as a pair (both or neither).
"""

from __future__ import annotations

import json
import os
import secrets
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from engines.provenance import _app_version, jsonable

PNG_KEY = "spectra-studio"


class ExportError(ValueError):
    """An export could not be written (bad data, bad path, existing file without force), or a
    provenance record could not be read (the one error type of :func:`read_provenance`)."""


class FileExistsErrorNoForce(ExportError):
    """The target exists and overwriting was not allowed."""


class PendingExport(str):
    """The path an export will write when its background job finishes (the file does not exist yet).

    A panel's ``export()`` returns this instead of a plain path when it started a job; the job
    itself reports "Exported …" once the file is in place.
    """


def _check_target(target: Path, force: bool) -> Path:
    """The folder ``target`` goes into; refuses an existing target without ``force``, and a folder in
    its place even with ``force`` (the rename would fail after the data file replaced the old one)."""
    if target.is_dir():
        raise ExportError(f"{target} is a folder; give a file name")
    if target.exists() and not force:
        raise FileExistsErrorNoForce(f"{target} exists (use --force to overwrite)")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"{folder} is a file, not a folder" if folder.exists() else f"folder {folder} does not exist")
    return folder


def check_target(path: str | os.PathLike, suffixes: tuple[str, ...] = (), *, force: bool = False,
                 sidecar: bool = False) -> Path:
    """Check before any work that ``path`` can be written: its name ends in one of ``suffixes`` (when
    given), its folder exists, and neither it nor (``sidecar=True``) its ``.json`` sidecar exists
    unless ``force``. Raises :class:`ExportError` with one sentence; returns the path."""
    target = Path(path)
    if suffixes and not target.name.lower().endswith(tuple(s.lower() for s in suffixes)):
        raise ExportError(f"{target.name}: the file name must end in {' or '.join(suffixes)}")
    _check_target(target, force)
    if sidecar:
        _check_target(sidecar_path(target), force)
    return target


def _new_temp(target: Path, folder: Path) -> str:
    """Create an empty hidden temporary file next to ``target`` with the user's umask (not 0600)."""
    for _ in range(100):
        tmp = folder / f".{target.name}.{secrets.token_hex(4)}.partial{target.suffix}"
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        except OSError as exc:
            raise ExportError(f"cannot write {target.name}: {exc.strerror or exc}") from None
        return str(tmp)
    raise ExportError(f"cannot create a temporary file for {target.name}")


def _write_temp(target: Path, writer: Callable[[str], None], folder: Path) -> str:
    """Run ``writer`` on a new temporary file for ``target``; returns its path, removes it on failure.

    An ``OSError`` (disk full, permission ...) becomes an :class:`ExportError` naming ``target``, never
    the temporary file.
    """
    tmp = _new_temp(target, folder)
    try:
        writer(tmp)
        if not os.path.exists(tmp) or os.path.getsize(tmp) == 0:
            raise ExportError(f"writing {target.name} produced no data")
    except BaseException as exc:
        _remove(tmp)
        if isinstance(exc, OSError):
            raise ExportError(f"could not write {target.name}: {exc.strerror or exc}") from exc
        if isinstance(exc, Exception) and tmp in str(exc):
            raise ExportError(str(exc).replace(tmp, target.name)) from exc
        raise
    return tmp


def _remove(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _rename(tmp: str, target: Path) -> None:
    try:
        os.replace(tmp, target)
    except OSError as exc:
        raise ExportError(f"could not write {target.name}: {exc.strerror or exc}") from exc


def atomic_write(
    path: str | os.PathLike,
    writer: Callable[[str], None],
    *,
    force: bool = False,
) -> Path:
    """Call ``writer(tmp_path)`` and rename the result to ``path`` only if it succeeds.

    Raises :class:`FileExistsErrorNoForce` if ``path`` exists and ``force`` is false. Any
    exception from ``writer`` removes the temporary file and propagates (an ``OSError`` as an
    :class:`ExportError` naming ``path``); ``path`` is then untouched (absent, or the previous
    version). The file gets the user's umask, like any file the user creates.
    """
    target = Path(path)
    folder = _check_target(target, force)
    tmp = _write_temp(target, writer, folder)
    try:
        _rename(tmp, target)
    finally:
        _remove(tmp)
    return target


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, force: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)

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
    """Write a non-PNG file with ``writer(tmp_path)`` and its provenance as ``<path>.json``, as a pair.

    Both temporary files are written first and renamed only when both are complete; on any
    failure neither new file is left behind (both or neither).
    """
    target, side = Path(path), sidecar_path(path)
    folder = _check_target(target, force)
    _check_target(side, force)
    text = json.dumps(jsonable(provenance), indent=2, sort_keys=True).encode()

    def write_sidecar(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(text)

    data_tmp = _write_temp(target, writer, folder)
    try:
        side_tmp = _write_temp(side, write_sidecar, folder)
    except BaseException:
        _remove(data_tmp)
        raise
    try:
        _rename(data_tmp, target)
        try:
            _rename(side_tmp, side)
        except BaseException:
            _remove(target)  # no data file without its sidecar
            raise
    finally:
        _remove(data_tmp)
        _remove(side_tmp)
    return target


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
    attachments: dict | None = None,
) -> Path:
    """Save an image as PNG with ``provenance`` in an iTXt chunk, atomically.

    ``image``: ``(H, W)`` / ``(H, W, 3)`` / ``(H, W, 4)``, uint8 or float in [0, 1].
    """
    from PIL import Image, PngImagePlugin

    pixels = _to_uint8_image(image)
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PNG_KEY, json.dumps(jsonable(provenance), sort_keys=True))
    for chunk_type, data in (attachments or {}).items():  # e.g. a generation's input images
        info.add(chunk_type, zlib.compress(data, 6))  # a private chunk: PNG gives it a length and a CRC
    params = provenance.get("parameters") or {}
    info.add_text("Software", f"Spectra Studio {_app_version()}")
    if params and provenance.get("panel") == "generate":
        from engines.generation.interop import a1111_parameters

        info.add_text("parameters", a1111_parameters(params))  # the text A1111-compatible tools read
    elif params:
        info.add_text("parameters", ", ".join(f"{k}: {v}" for k, v in params.items()))

    def write(tmp: str) -> None:
        Image.fromarray(pixels).save(tmp, format="PNG", pnginfo=info)

    return atomic_write(path, write, force=force)
