"""Run a batch as one job: progress with an ETA, each result written as it lands, a manifest.

:func:`batch_job` is a generator job (see :mod:`engines.jobs`): it yields ``Progress`` (done of
total tasks, with failures and an ETA in the message), a ``Preview`` per finished task
(``data={"task": id, "status": ..., "record": ...}``) and ``Log`` lines for failures, and returns
a :class:`BatchReport`. The driver writes every output file atomically into the batch folder,
so a cancelled or failed batch never leaves a half-written file; ``batch.json`` (task ->
parameters, inputs, status, output files, timings, worker host) is written at the end, also
after a cancel.
"""

from __future__ import annotations

import hashlib
import threading
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from engines.batch.executors import Executor
from engines.batch.spec import Batch, safe_name
from engines.jobs import CancelToken, JobCancelled, Log, Preview, Progress, Stopwatch, wait_in_thread

__all__ = ["MANIFEST", "BatchReport", "batch_job", "prepare_folder"]

MANIFEST = "batch.json"
MANIFEST_VERSION = 1


@dataclass
class BatchReport:
    """The outcome of a batch: ``tasks`` (id -> manifest entry), the folder and the manifest path."""

    name: str
    folder: Path
    manifest: Path
    tasks: dict
    executor: dict
    wall_seconds: float
    cancelled: bool = False
    summary: dict = field(default_factory=dict)

    def records(self, status: str = "done") -> list[dict]:
        """The records of the tasks with ``status``, in the batch's task order."""
        return [e["record"] for e in self.tasks.values() if e["status"] == status]

    @property
    def failed(self) -> list[dict]:
        """Manifest entries of the failed tasks."""
        return [e for e in self.tasks.values() if e["status"] == "failed"]


def prepare_folder(folder, force: bool = False, create: bool = True) -> Path:
    """Check (and with ``create`` make) the batch folder; refuse an existing batch (its
    ``batch.json``) unless ``force``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder} is a file, not a folder")
    if (folder / MANIFEST).exists() and not force:
        raise ValueError(f"{folder} already holds a batch (use --force to overwrite)")
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_atomic(path: Path, data: bytes) -> None:
    from engines.atomic_files import atomic_write_bytes

    atomic_write_bytes(path, data, force=True)


def _entry(task) -> dict:
    return {"kind": task.kind, "params": task.params, "inputs": {r: ref.to_dict() for r, ref in task.inputs.items()},
            "status": "pending", "files": [], "record": {}, "error": "", "details": "", "host": "", "pid": None,
            "started": None, "seconds": None}


def _eta(watch: Stopwatch, done: int, total: int) -> str:
    left = watch.remaining(done / total) if total else None
    return "" if left is None else f", ETA {left:.0f} s"


def _start(executor: Executor, announce: Progress):
    """Job step: yield ``announce``, then start ``executor`` on a helper thread (a Ray start-up takes
    seconds), so a cancel stops the job at once; an executor started after the job was cancelled is
    closed again."""
    lock, state = threading.Lock(), {"started": False, "abandoned": False}

    def start() -> None:
        executor.start()
        with lock:
            state["started"] = True
            close = state["abandoned"]
        if close:
            executor.close()

    try:
        yield from wait_in_thread(start, announce=announce)
    except GeneratorExit:
        with lock:
            state["abandoned"] = True
            close = state["started"]
        if close:
            executor.close()
        raise


def batch_job(batch: Batch, executor: Executor, folder, *, force: bool = False,
              cancel: CancelToken | None = None, blobs: dict | None = None):
    """Job: run ``batch`` on ``executor``, writing outputs and ``batch.json`` into ``folder``.

    ``blobs`` (sha256 -> bytes) may be passed when the inputs are already loaded. Failed tasks
    are reported (Log + manifest) and do not stop the others. Cancel by closing the generator
    or with ``cancel``: unfinished tasks are cancelled and marked ``cancelled``.
    """
    folder = prepare_folder(folder, force, create=False)
    if blobs is None:
        blobs = batch.load_inputs()
    entries = {t.id: _entry(t) for t in batch.tasks}
    total, done, failed = len(batch.tasks), 0, 0
    watch = Stopwatch()
    yield from _start(executor, Progress(0, total, f"starting the {executor.name} executor"))
    try:
        prepare_folder(folder, force)
    except (ValueError, OSError):
        executor.close()
        raise
    yield Log(f"batch {batch.name}: {total} tasks on {executor.name} (start-up {executor.startup_seconds:.1f} s)")
    stream = executor.run(batch.tasks, blobs)
    cancelled = True
    try:
        for outcome in stream:
            if cancel is not None and cancel.cancelled:
                raise JobCancelled("cancelled")
            if outcome is not None:
                entry = entries[outcome["id"]]
                entry.update({k: outcome.get(k, entry[k]) for k in ("status", "record", "error", "details", "host",
                                                                     "pid", "started", "seconds")})
                for name, data in outcome.get("files", {}).items():
                    if safe_name(name) != name:
                        raise ValueError(f"task {outcome['id']} returned a bad file name {name!r}")
                    _write_atomic(folder / name, data)
                    entry["files"].append({"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
                done += 1
                if entry["status"] == "failed":
                    failed += 1
                    yield Log(f"task {outcome['id']} failed: {entry['error']} (parameters {json.dumps(entry['params'])})",
                              "warning")
                yield Preview(None, data={"task": outcome["id"], "status": entry["status"], "record": entry["record"]})
            note = f", {failed} failed" if failed else ""
            yield Progress(done, total, f"{done}/{total} tasks{note}{_eta(watch, done, total)}")
        cancelled = False
    finally:
        stream.close()
        for entry in entries.values():
            if entry["status"] == "pending":
                entry["status"] = "cancelled"
        wall = watch.elapsed()
        info = executor.describe()
        executor.close()
        counts = {s: sum(e["status"] == s for e in entries.values()) for s in ("done", "failed", "cancelled")}
        manifest = {"format": "spectra-batch", "version": MANIFEST_VERSION, "name": batch.name,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "executor": info,
                    "wall_seconds": round(wall, 3), "counts": counts, "tasks": entries}
        _write_atomic(folder / MANIFEST, json.dumps(manifest, indent=1, default=str).encode())
    return BatchReport(batch.name, folder, folder / MANIFEST, entries, info, round(wall, 3), cancelled, counts)
