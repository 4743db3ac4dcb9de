"""Cyclic garbage collection on the GUI thread only.

Python's collector runs in whichever thread happens to allocate when a generation's threshold is
reached. When that is a worker thread and the garbage holds Qt objects (a closed dialog, a panel
of an earlier window), their C++ destructors run on the worker while the GUI thread may be
deleting related objects: PySide then waits for the GIL inside a Qt mutex and the two threads
deadlock (seen as a frozen window, and as a test run that never ended while a numba kernel
compiled in a job). :func:`install` turns automatic collection off and collects from a timer on
the GUI thread instead (the approach calibre uses), so Qt objects are only ever destroyed there.
"""

from __future__ import annotations

import gc

from qtpy.QtCore import QObject, QTimer

__all__ = ["MainThreadCollector", "install"]

_collector = None


class MainThreadCollector(QObject):
    """Polls the collector's counts every ``interval_ms`` on the GUI thread and collects the
    generations whose threshold was passed, as automatic collection would have."""

    def __init__(self, parent=None, interval_ms: int = 500):
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)

    def check(self) -> int:
        """Collect the oldest generation whose count passed its threshold; returns it, or -1."""
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self.threshold[generation]:
                gc.collect(generation)
                return generation
        return -1


def install(app) -> MainThreadCollector:
    """Disable automatic collection and collect on ``app``'s (the GUI) thread from now on."""
    global _collector
    if _collector is None:
        gc.disable()
        _collector = MainThreadCollector(app)
    return _collector
