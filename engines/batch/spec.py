"""What a batch is: independent task specs with JSON-able parameters and input files by content.

A :class:`TaskSpec` names a task *kind* (a function registered in :mod:`engines.batch.tasks`),
its parameters and its input files. :meth:`Batch.load_inputs` reads every distinct input file
once and keys it by sha256, so an executor can ship each file's bytes to workers once (no
shared file system) and every task result can name exactly what it was made from.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Batch", "InputRef", "TaskOutput", "TaskSpec", "pack_folder", "safe_name", "unpack_folder"]

_NAME = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_name(text: str) -> str:
    """``text`` reduced to a file-name-safe token (letters, digits, ``._+-``)."""
    return _NAME.sub("_", str(text)).strip("._") or "x"


def pack_folder(folder: Path) -> bytes:
    """The files under ``folder`` as an uncompressed tar with sorted names and zeroed times, so
    the same content always gives the same bytes (and sha256)."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            info = tarfile.TarInfo(path.relative_to(folder).as_posix())
            info.size, info.mode = path.stat().st_size, 0o644
            with open(path, "rb") as fh:
                tar.addfile(info, fh)
    return buf.getvalue()


def unpack_folder(data: bytes, target: Path) -> Path:
    """Extract a :func:`pack_folder` tar into ``target`` (created; only plain files, no links or
    absolute paths). Extracts to a sibling temporary folder first, so ``target`` is complete or absent."""
    import io
    import shutil
    import tarfile
    import tempfile

    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            tar.extractall(tmp, filter="data")
        try:
            os.replace(tmp, target)
        except OSError:  # another worker finished the same folder first
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


@dataclass(frozen=True)
class InputRef:
    """An input file of a task: where the driver reads it and (after loading) its sha256."""

    path: str
    sha256: str = ""
    size: int = 0

    def to_dict(self) -> dict:
        """JSON-able dict (path, sha256, size)."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass
class TaskSpec:
    """One independent unit of work: ``kind`` (registered task function), JSON-able ``params``,
    ``inputs`` (role -> file path or :class:`InputRef`) and a unique, file-name-safe ``id``."""

    id: str
    kind: str
    params: dict
    inputs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if safe_name(self.id) != self.id:
            raise ValueError(f"task id {self.id!r} must be file-name safe (letters, digits, ._+-)")
        json.dumps(self.params)  # raises TypeError early for parameters a worker could not receive
        self.inputs = {role: ref if isinstance(ref, InputRef) else InputRef(os.fspath(ref))
                       for role, ref in self.inputs.items()}


@dataclass
class TaskOutput:
    """What a task function returns: ``files`` (name -> bytes, written by the driver into the
    batch folder) and ``record`` (JSON-able results and provenance)."""

    files: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)


@dataclass
class Batch:
    """A named list of independent tasks."""

    name: str
    tasks: list[TaskSpec]

    def __post_init__(self) -> None:
        ids = [t.id for t in self.tasks]
        if len(set(ids)) != len(ids):
            raise ValueError("task ids must be unique within a batch")

    def load_inputs(self, max_bytes: int = 2 << 30) -> dict[str, bytes]:
        """Read every distinct input once (a folder, e.g. a model, as a tar: :func:`pack_folder`);
        returns sha256 -> bytes and fills in each task's :class:`InputRef` (sha256, size).
        Raises ValueError for a missing input or more than ``max_bytes`` in total."""
        by_path: dict[str, InputRef] = {}
        blobs: dict[str, bytes] = {}
        total = 0
        for task in self.tasks:
            for role, ref in task.inputs.items():
                if ref.path not in by_path:
                    path = Path(ref.path)
                    if not path.exists():
                        raise ValueError(f"input not found: {ref.path}")
                    data = pack_folder(path) if path.is_dir() else path.read_bytes()
                    total += len(data)
                    if total > max_bytes:
                        raise ValueError(f"the batch inputs exceed {max_bytes >> 20} MB")
                    digest = hashlib.sha256(data).hexdigest()
                    blobs[digest] = data
                    by_path[ref.path] = InputRef(ref.path, digest, len(data))
                task.inputs[role] = by_path[ref.path]
        return blobs
