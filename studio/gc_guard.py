"""Cyclic garbage collection on the GUI thread only.

Python's collector runs in whichever thread happens to allocate when a generation's threshold is
reached. When that is a worker thread and the garbage holds Qt objects (a closed dialog, a panel
of an earlier window), their C++ destructors run on the worker while the GUI thread may be
deleting related objects: PySide then waits for the GIL inside a Qt mutex and the two threads
deadlock (seen as a frozen window, and as a test run that never ended while a numba kernel
compiled in a job). :func:`install` turns automatic collection off and collects from a timer on
the GUI thread instead (the approach calibre uses), so Qt objects are only ever destroyed there.

A full collection examines every tracked object: once torch, diffusers, vispy and the panels are
loaded that is half a million objects and 0.4-1 s of frozen window (measured in the stall
benchmark's window). With ``freeze_long_lived`` the long-lived objects are moved out of the
collector's sight (:func:`gc.freeze`) once the start-up warm-up is done and after any full
collection that took longer than :data:`SLOW_FULL_COLLECTION_MS`, so later full collections only
examine what was created since. The price: reference cycles among frozen objects are never freed
(module-level and cached objects, which live as long as the process anyway).

While the start-up thread imports (:func:`long_lived_imports`) nothing is collected at all: the
heap grows by half a million objects in a few seconds, and each collection of that growing heap
(even of generation 0 alone, between two timer ticks) held the GUI thread 0.1-0.3 s. When the
imports end, what they created is frozen at once (application collector only), before any
collection can examine it.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from qtpy.QtCore import QObject, QTimer

__all__ = ["MainThreadCollector", "collections_paused", "freeze_long_lived", "install", "long_lived_imports"]

#: a full collection slower than this freezes its survivors (with ``freeze_long_lived``)
SLOW_FULL_COLLECTION_MS = 50.0

_collector = None
_importing = [0]  # start-up import steps running: collections wait for them
_importing_lock = threading.Lock()


class MainThreadCollector(QObject):
    """Polls the collector's counts every ``interval_ms`` on the GUI thread and collects the
    generations whose threshold was passed, as automatic collection would have."""

    def __init__(self, parent=None, interval_ms: int = 500, freeze_long_lived: bool = False):
        super().__init__(parent)
        self.freeze_long_lived = freeze_long_lived
        self.threshold = gc.get_threshold()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)

    def check(self) -> int:
        """Collect the oldest generation whose count passed its threshold; returns it, or -1 (also
        while start-up imports run)."""
        if _importing[0]:
            return -1
        counts = gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self.threshold[generation]:
                start = time.perf_counter()
                gc.collect(generation)
                if generation == 2:
                    slow = (time.perf_counter() - start) * 1000.0 > SLOW_FULL_COLLECTION_MS
                    if self.freeze_long_lived and slow:
                        gc.freeze()  # the survivors are long-lived: not examined again
                return generation
        return -1


def install(app, freeze_long_lived: bool = False) -> MainThreadCollector:
    """Disable automatic collection and collect on ``app``'s (the GUI) thread from now on
    (``freeze_long_lived``: see the module docstring; the application sets it, tests do not)."""
    global _collector
    if _collector is None:
        gc.disable()
        _collector = MainThreadCollector(app, freeze_long_lived=freeze_long_lived)
    return _collector


def freeze_long_lived() -> bool:
    """Move every object tracked now out of the collector's sight (call when start-up is done:
    what the imports and panels built lives as long as the process). Without a collection first:
    collecting half a million objects is the stall this avoids. Only with an application
    collector installed with ``freeze_long_lived``; returns whether it froze."""
    if _collector is None or not _collector.freeze_long_lived:
        return False
    gc.freeze()
    return True


@contextmanager
def long_lived_imports(freeze: bool = True) -> Iterator[None]:
    """Run heavy imports (any thread) with no collection on the GUI thread meanwhile; when the last
    such block ends, ``freeze`` moves what they created out of the collector's sight
    (:func:`freeze_long_lived`: the application collector only) before any collection examines it."""
    with _importing_lock:
        _importing[0] += 1
    try:
        yield
    finally:
        with _importing_lock:
            _importing[0] -= 1
            if _importing[0] == 0 and freeze:
                freeze_long_lived()


@contextmanager
def collections_paused() -> Iterator[None]:
    """No collection on the GUI thread meanwhile (and nothing frozen after): for a wait with a deadline,
    such as closing the window, which a full collection of a large heap would overrun by 0.4-1 s."""
    with long_lived_imports(freeze=False):
        yield
