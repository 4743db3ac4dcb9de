"""Fuzz worker: ``python -m tests.fuzz.worker TARGET[,TARGET...] SEED ROOT MEMORY_BYTES``.

Builds each target's valid sample once, then reads ``TARGET CASE`` lines from stdin and
for each writes one JSON line to stdout: the corruption, the outcome (``accepted`` / ``clear``
/ ``unexpected``), the exception type and message, the seconds and the process's peak RSS.
The address space is capped (``RLIMIT_AS``) so an allocation the header should have refused
fails here instead of swapping the machine.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np

#: a message that shows a raw exception class (``ValueError``, ``struct.error`` ...) is not clear
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b|\bstruct\.error\b|Traceback")


def case_rng(target: str, seed: int, case: int) -> np.random.Generator:
    """The generator of one case: the same (target, seed, case) always gives the same corruption."""
    return np.random.default_rng([seed, zlib.crc32(target.encode()), case])


def clear_message(text: str) -> bool:
    """One non-empty line without exception class names."""
    return bool(text.strip()) and "\n" not in text.strip() and not CLASS_NAME.search(text)


def run_case(target, pristine: Path, work: Path, seed: int, case: int) -> dict:
    """Corrupt a fresh copy of the sample and call the loader once."""
    folder = work / f"case{case}"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(pristine, folder, symlinks=True)
    primary = folder / pristine.joinpath(".primary").read_text()
    rng = case_rng(target.name, seed, case)
    try:
        what = target.mutate(rng, folder, primary)
    except Exception as exc:  # noqa: BLE001 - a harness problem, reported as such
        return {"case": case, "outcome": "harness", "what": f"mutation failed: {exc!r}"}
    start = time.perf_counter()
    record = {"case": case, "what": what}
    errors = target.errors()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            target.load(primary)
        record["outcome"] = "accepted"
    except errors as exc:
        message = str(exc)
        record.update(type=type(exc).__name__, message=message[:300],
                      outcome="clear" if clear_message(message) else "unexpected")
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        record.update(outcome="unexpected", type=type(exc).__name__, message=str(exc)[:300])
    record["seconds"] = time.perf_counter() - start
    record["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    shutil.rmtree(folder, ignore_errors=True)
    return record


def _warm_up(target, pristine: Path, root: Path) -> None:
    """Load the pristine sample once so imports and caches are not charged to the first case."""
    folder = root / f"{target.name}-warm-{os.getpid()}"
    shutil.copytree(pristine, folder, symlinks=True)
    try:
        target.load(folder / pristine.joinpath(".primary").read_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _prepare(target, root: Path) -> Path:
    """The pristine sample folder of ``target`` under ``root`` (built once, shared by restarted workers)."""
    pristine = root / f"{target.name}-pristine"
    if not pristine.exists():
        staging = root / f"{target.name}-staging-{os.getpid()}"
        staging.mkdir(parents=True)
        primary = target.build(staging)
        staging.joinpath(".primary").write_text(str(primary.relative_to(staging)))
        try:
            staging.rename(pristine)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another worker of this target got there first
    target.errors()
    _warm_up(target, pristine, root)
    return pristine


def main(argv: list[str]) -> int:
    """Entry point (see the module docstring)."""
    from tests.fuzz.targets import SELF_TEST_TARGETS, TARGETS

    names, seed, root, memory = argv[0].split(","), int(argv[1]), Path(argv[2]), int(argv[3])
    targets = {name: TARGETS.get(name) or SELF_TEST_TARGETS[name] for name in names}
    if memory:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    pristine = {name: _prepare(target, root) for name, target in targets.items()}
    work = root / f"work-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    out = sys.stdout
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        name, case = line.split()
        record = run_case(targets[name], pristine[name], work, seed, int(case))
        out.write(json.dumps(record, default=str) + "\n")
        out.flush()
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
