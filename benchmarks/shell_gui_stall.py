"""The longest GUI-thread stall while a CPU-heavy engine job runs (goal: under 50 ms).

A 2 ms QTimer on the GUI thread records the gaps between its ticks while the job runs:
  * baseline: the same computation called directly on the GUI thread (what a naive app does);
  * studio:   the computation as an engine job on the studio's JobQueue (worker thread).
The job mixes torch kernels (which release the GIL) with pure-Python work (which holds it)
and yields a Progress + Preview event every step. Prints the longest and 99th-percentile gaps.

    xvfb-run -a .venv/bin/python benchmarks/shell_gui_stall.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_API", "pyside6")

import numpy as np
import torch
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

from engines.jobs import Preview, Progress, run_job
from studio.jobs import JobQueue

STEPS = 40


def heavy_job(steps: int = STEPS):
    """CPU-heavy engine-like job: convolutions plus a Python loop per step."""
    x = torch.randn(1, 8, 192, 192)
    weight = torch.randn(8, 8, 5, 5) * 0.05
    for i in range(steps):
        x = torch.tanh(torch.nn.functional.conv2d(x, weight, padding=2))
        total = 0.0
        for value in range(20000):  # pure Python, holds the GIL
            total += value * 1e-9
        image = (x[0, :3].permute(1, 2, 0).numpy() * 0.5 + 0.5).clip(0, 1)
        yield Progress(i + 1, steps, "convolving")
        yield Preview(image=image, data={"step": i, "total": total})
    return float(x.abs().mean())


class GapMeter:
    """Records intervals between ticks of a fast GUI-thread timer."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self.last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(2)
        self.timer.timeout.connect(self.tick)

    def tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self.last)
        self.last = now

    def start(self) -> None:
        self.last = time.perf_counter()
        self.timer.start()

    def stop(self) -> tuple[float, float]:
        self.timer.stop()
        self.tick()
        gaps = np.array(self.gaps) * 1000
        return float(gaps.max()), float(np.percentile(gaps, 99))


def main() -> None:
    """Measure both ways and print the stalls and the ratio."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    run_job(heavy_job(2))  # warm-up

    meter = GapMeter()
    meter.start()
    QTimer.singleShot(20, lambda: (run_job(heavy_job()), None))
    deadline = time.perf_counter() + 0.05
    while time.perf_counter() < deadline:
        app.processEvents()
    start = time.perf_counter()
    while time.perf_counter() - start < 0.1:
        app.processEvents()
    base_max, base_p99 = meter.stop()

    queue = JobQueue()
    previews = []
    meter = GapMeter()
    meter.start()
    queue.submit("heavy", "bench", heavy_job, on_event=previews.append)
    queue.wait_all(300)
    job_max, job_p99 = meter.stop()

    print(f"baseline (job on GUI thread): longest stall {base_max:8.1f} ms, p99 {base_p99:7.1f} ms")
    print(f"studio JobQueue (worker)    : longest stall {job_max:8.1f} ms, p99 {job_p99:7.1f} ms "
          f"({len(previews)} events delivered)")
    print(f"ratio baseline / studio     : {base_max / job_max:8.1f}x   goal: studio < 50 ms -> "
          f"{'met' if job_max < 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
