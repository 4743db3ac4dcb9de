"""Start-up time to the first painted studio window, against an empty PySide6 window.

Both are started the same way (a fresh interpreter, ``QT_API=pyside6``) and timed from process
launch to the first Paint event of the top-level window. Prints medians and the ratio.

    xvfb-run -a .venv/bin/python benchmarks/shell_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PAINT_PROBE = r"""
import os, sys, time
sys.path.insert(0, {root!r})
os.environ["QT_API"] = "pyside6"
from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QApplication, QMainWindow

class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint:
            print("PAINTED", flush=True)
            QTimer.singleShot(0, QApplication.instance().quit)
        return False

app = QApplication(sys.argv[:1])
if {studio!r}:
    from studio.main_window import MainWindow
    from studio.settings import StudioSettings
    from studio.theme import apply_theme
    settings = StudioSettings({settings!r})
    apply_theme(app, settings.theme)
    window = MainWindow(settings)
else:
    window = QMainWindow()
    window.resize(1400, 900)
probe = FirstPaint()
window.installEventFilter(probe)
window.show()
app.exec()
os._exit(0)
"""


def time_once(studio: bool, settings: str) -> float:
    """Seconds from launching the interpreter to the window's first paint."""
    code = PAINT_PROBE.format(root=str(ROOT), studio=studio, settings=settings)
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    for line in proc.stdout:
        if line.startswith("PAINTED"):
            elapsed = time.perf_counter() - start
            break
    else:
        raise RuntimeError("window never painted (is there a display? use xvfb-run)")
    proc.wait(timeout=60)
    return elapsed


def main() -> None:
    """Run both start-ups alternately and print medians and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        sys.exit("needs a display: run under xvfb-run -a")
    with tempfile.TemporaryDirectory() as tmp:
        settings = os.path.join(tmp, "settings.ini")
        time_once(True, settings)  # warm the file cache for both
        time_once(False, settings)
        empty, studio = [], []
        for _ in range(args.runs):
            empty.append(time_once(False, settings))
            studio.append(time_once(True, settings))
    e, s = statistics.median(empty), statistics.median(studio)
    print(f"empty PySide6 window : {e * 1000:7.0f} ms (median of {args.runs})")
    print(f"Spectra Studio window: {s * 1000:7.0f} ms (median of {args.runs})")
    print(f"ratio studio / empty : {s / e:7.2f}x   (extra {1000 * (s - e):.0f} ms)")


if __name__ == "__main__":
    main()
