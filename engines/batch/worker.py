"""The code that runs one task on a worker (a Ray worker process, or the driver for ``serial``).

:func:`run_task` looks the task kind up in :mod:`engines.batch.tasks`, pins the torch thread
count (so a task computes the same bytes on any executor), runs it, and returns a plain dict
outcome: status, output files as bytes, the task's record, the error message of a failed task,
and where and how long it ran.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import time
import traceback
from pathlib import Path

__all__ = ["TaskInputs", "run_task"]


class TaskInputs:
    """A task's input files by role: their bytes, sha256 and (for packed folders) a local copy."""

    def __init__(self, blobs: dict[str, bytes], digests: dict[str, str]) -> None:
        self._blobs = blobs
        self._digests = digests

    def __contains__(self, role: str) -> bool:
        return role in self._blobs

    def bytes(self, role: str) -> bytes:
        """The content of input ``role``."""
        if role not in self._blobs:
            raise ValueError(f"this task has no {role!r} input")
        return self._blobs[role]

    def sha256(self, role: str) -> str:
        """The sha256 of input ``role`` (computed by the driver)."""
        return self._digests[role]

    def _cache(self, role: str) -> Path:
        return Path(tempfile.gettempdir()) / "spectra-batch-inputs" / self.sha256(role)[:32]

    def folder(self, role: str) -> Path:
        """A local folder holding the packed folder input ``role`` (extracted once per content)."""
        from engines.batch.spec import unpack_folder

        return unpack_folder(self.bytes(role), self._cache(role) / "folder")

    def file(self, role: str, name: str) -> Path:
        """A local file named ``name`` (keep the original suffix) holding input ``role``;
        written once per content, atomically, for loaders that need a path."""
        from engines.batch.spec import safe_name

        target = self._cache(role) / safe_name(name)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=".in.", dir=target.parent)
            with os.fdopen(handle, "wb") as fh:
                fh.write(self.bytes(role))
            os.replace(tmp, target)
        return target


def _pin_threads(threads: int) -> int | None:
    """Set torch's intra-op threads to ``threads``; returns the previous value (None without torch)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return None
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    return previous


def run_task(task_id: str, kind: str, params: dict, digests: dict, blobs: dict, threads: int = 1) -> dict:
    """Run one task; never raises for a task's own failure (it becomes ``status: failed``).

    ``digests``: role -> sha256 (from the driver); ``blobs``: role -> bytes. Returns a dict with
    ``id``, ``status`` (``done``/``failed``), ``files`` (name -> bytes), ``record``, ``error``,
    ``host``, ``pid``, ``started`` (unix time) and ``seconds``.
    """
    from engines.batch.tasks import TASKS

    started, clock = time.time(), time.monotonic()
    outcome = {"id": task_id, "status": "failed", "files": {}, "record": {}, "error": "",
               "host": socket.gethostname(), "pid": os.getpid(), "started": started, "seconds": 0.0}
    previous = _pin_threads(threads)
    try:
        if kind not in TASKS:
            raise ValueError(f"unknown task kind {kind!r}")
        for role, data in blobs.items():
            if hashlib.sha256(data).hexdigest() != digests.get(role):
                raise ValueError(f"input {role!r} arrived corrupted (sha256 mismatch)")
        result = TASKS[kind](dict(params), TaskInputs(blobs, digests))
        outcome.update(status="done", files=dict(result.files), record=dict(result.record))
    except Exception as exc:  # noqa: BLE001 - a failing task is reported, it does not stop the batch
        from engines.errors import describe_error

        outcome.update(error=describe_error(exc), details=traceback.format_exc(limit=6))
    finally:
        if previous is not None:
            _pin_threads(previous)
        outcome["seconds"] = round(time.monotonic() - clock, 4)
    return outcome
