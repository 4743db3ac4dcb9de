"""GUI-thread cost of putting the Generate history loaded at start-up into the strip (up to 500
results): icons drawn from the thumbnails the load job made (today) against icons scaled from the
full results on the GUI thread (before), by result size, same run, ratio printed.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/generate_history_load.py [--entries 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_API", "pyside6")


def main() -> None:
    """Fill a strip both ways per result size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=200)
    args = parser.parse_args()
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from panels.generate.history_store import fit_thumbnail
    from panels.generate.widgets import HistoryStrip

    print(f"{args.entries} history results into the strip (GUI thread, ms; the job's thumbnails: worker time)")
    print(f"{'result':>11} {'before':>9} {'now':>8} {'ratio':>7} {'job thumbnails':>15}")
    rng = np.random.default_rng(0)
    for side in (512, 1024, 2048):
        images = [rng.integers(0, 255, (side, side, 3), dtype=np.uint8) for _ in range(4)]
        start = time.perf_counter()
        thumbs = [fit_thumbnail(images[i % 4]) for i in range(args.entries)]
        job_ms = 1000.0 * (time.perf_counter() - start)
        times = {}
        for name in ("before", "now"):
            strip = HistoryStrip()
            strip.show()
            app.processEvents()
            start = time.perf_counter()
            for i in range(args.entries):
                strip.add(images[i % 4], f"#{i + 1}", "", i, thumbnail=thumbs[i] if name == "now" else None)
            app.processEvents()
            times[name] = 1000.0 * (time.perf_counter() - start)
            strip.close()
        print(f"{side:>5}×{side:<5} {times['before']:9.0f} {times['now']:8.0f} {times['before'] / times['now']:6.1f}× "
              f"{job_ms:15.0f}")


if __name__ == "__main__":
    main()
