"""Parent side of the fuzzer: drive one worker per loader, enforce the per-case timeout and
restart the worker after a hang or a crash (that case is recorded as a failure).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MEMORY_CAP = 4 << 30
CASE_TIMEOUT = 10.0
START_TIMEOUT = 180.0


@dataclass
class Summary:
    """Outcome counts of one loader's cases (``failures`` holds the records of the bad ones)."""

    loader: str
    cases: int = 0
    accepted: int = 0
    clear: int = 0
    unexpected: int = 0
    hangs: int = 0
    crashes: int = 0
    max_seconds: float = 0.0
    max_rss_mib: float = 0.0
    failures: list = field(default_factory=list)

    def add(self, record: dict) -> None:
        """Count one case record."""
        self.cases += 1
        outcome = record["outcome"]
        if outcome == "accepted":
            self.accepted += 1
        elif outcome == "clear":
            self.clear += 1
        elif outcome == "hang":
            self.hangs += 1
        elif outcome == "crash":
            self.crashes += 1
        else:
            self.unexpected += 1
        if outcome not in ("accepted", "clear"):
            self.failures.append(record)
        self.max_seconds = max(self.max_seconds, float(record.get("seconds", 0.0)))
        self.max_rss_mib = max(self.max_rss_mib, float(record.get("rss_mib", 0.0)))

    @property
    def ok(self) -> bool:
        """No unexpected exception, hang or crash."""
        return self.unexpected == 0 and self.hangs == 0 and self.crashes == 0


class Worker:
    """One worker subprocess for a loader, speaking JSON lines."""

    def __init__(self, loaders: list[str], seed: int, root: Path, memory: int) -> None:
        loader = ",".join(loaders)
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0",
                   HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.log = open(root / f"{loaders[0]}-worker.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.worker", loader, str(seed), str(root), str(memory)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, cwd=ROOT, env=env,
            start_new_session=True,
        )
        self.buffer = b""
        self.eof = False
        ready = self.read_line(START_TIMEOUT)
        if ready is None or not json.loads(ready).get("ready"):
            self.stop()
            raise RuntimeError(f"the {loader} fuzz worker did not start (see {root / f'{loaders[0]}-worker.log'})")

    def read_line(self, timeout: float) -> str | None:
        """The next line, or None on timeout or end of output."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([fd], [], [], remaining)
            if not readable:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                self.eof = True
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def run(self, loader: str, case: int, timeout: float) -> dict:
        """One case; a hang or crash is returned as such (the worker is then unusable)."""
        start = time.perf_counter()
        try:
            self.proc.stdin.write(f"{loader} {case}\n".encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self.read_line(timeout)
        if line is not None:
            return json.loads(line)
        seconds = time.perf_counter() - start
        if self.eof:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            return {"case": case, "outcome": "hang", "seconds": seconds, "what": f"no answer within {timeout:.0f} s"}
        code = self.proc.returncode
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        return {"case": case, "outcome": "crash", "seconds": seconds, "what": f"worker died ({how})"}

    def kill(self) -> None:
        """Kill the worker's process group (a hung loader may have started children)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        """End the worker (kill its process group if it does not quit)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait()
        self.log.close()


def fuzz_loaders(loaders: list[str], cases: int, seed: int = 0, *, timeout: float = CASE_TIMEOUT,
                 memory: int = MEMORY_CAP, root: Path | None = None) -> list[Summary]:
    """Run ``cases`` seeded corruptions of each loader's sample through ONE worker (loaders that
    share heavy imports, e.g. both model kinds); returns a :class:`Summary` per loader."""
    own_root = root is None
    root = Path(tempfile.mkdtemp(prefix="spectra-fuzz-")) if own_root else root
    summaries = [Summary(name) for name in loaders]
    worker = None
    try:
        for summary in summaries:
            for case in range(cases):
                if worker is None:
                    worker = Worker(loaders, seed, root, memory)
                record = worker.run(summary.loader, case, timeout)
                summary.add(record)
                if record["outcome"] in ("hang", "crash"):
                    worker.kill()
                    worker.stop()
                    worker = None
    finally:
        if worker is not None:
            worker.stop()
        if own_root:
            shutil.rmtree(root, ignore_errors=True)
    return summaries


def fuzz_loader(loader: str, cases: int, seed: int = 0, **options) -> Summary:
    """:func:`fuzz_loaders` for one loader."""
    return fuzz_loaders([loader], cases, seed, **options)[0]


HEADER = ("loader", "cases", "accepted", "clear errors", "unexpected", "hangs", "crashes", "max time s", "max RSS MiB")


def format_table(summaries: list[Summary]) -> str:
    """A plain-text table of the summaries (one row per loader and a total)."""
    rows = [[s.loader, s.cases, s.accepted, s.clear, s.unexpected, s.hangs, s.crashes,
             f"{s.max_seconds:.2f}", f"{s.max_rss_mib:.0f}"] for s in summaries]
    total = ["total"] + [sum(r[i] for r in rows) for i in range(1, 7)]
    total += [f"{max((s.max_seconds for s in summaries), default=0):.2f}",
              f"{max((s.max_rss_mib for s in summaries), default=0):.0f}"]
    rows.append(total)
    widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *rows)]
    line = lambda r: "  ".join(str(x).rjust(w) if i else str(x).ljust(w) for i, (x, w) in enumerate(zip(r, widths)))
    return "\n".join([line(HEADER), line(["-" * w for w in widths])] + [line(r) for r in rows])


def describe_failures(summary: Summary, limit: int = 10) -> str:
    """The first bad cases of a loader, one line each (enough to reproduce: loader, seed, case)."""
    out = []
    for record in summary.failures[:limit]:
        out.append(f"{summary.loader} case {record['case']}: {record['outcome']} "
                   f"{record.get('type', '')}: {str(record.get('message', ''))[:160]!r} after {record.get('what', '')}")
    return "\n".join(out)
