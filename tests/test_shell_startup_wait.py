"""StartupLoader.wait(): processes events only on the GUI thread; elsewhere it only waits."""

import threading
import time

from qtpy.QtCore import QCoreApplication

from studio.startup import StartupLoader, is_gui_thread


def test_is_gui_thread_tells_the_threads_apart(qapp):
    seen = []
    worker = threading.Thread(target=lambda: seen.append(is_gui_thread()))
    worker.start()
    worker.join()
    assert is_gui_thread() and seen == [False]


def test_wait_from_a_worker_thread_never_processes_events(qtbot, monkeypatch):
    class SlowWarm:
        title = "Slow"

        @staticmethod
        def warm_up():
            time.sleep(0.3)

    callers = []
    real = QCoreApplication.processEvents

    def spy(*_args):  # called as QCoreApplication.processEvents() and as app.processEvents()
        callers.append(threading.current_thread() is threading.main_thread())
        return real()

    monkeypatch.setattr(QCoreApplication, "processEvents", staticmethod(spy))
    loader = StartupLoader()
    loader.start_warm_up([SlowWarm])
    results = []
    worker = threading.Thread(target=lambda: results.append((loader.wait(20), loader.busy)))
    worker.start()
    # the GUI thread keeps its event loop going: the warm-up's Qt-module imports run here
    qtbot.waitUntil(lambda: not worker.is_alive(), timeout=30000)
    assert results == [(True, False)]
    assert False not in callers  # processEvents never ran on the worker thread


def test_wait_on_the_gui_thread_still_runs_the_gui_steps(qtbot):
    loader = StartupLoader()
    loader.start_warm_up([])
    assert loader.wait(20)  # the Qt-module imports need this thread's events
    assert not loader.busy
