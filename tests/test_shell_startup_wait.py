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


def test_gui_steps_run_on_the_gui_thread_one_per_turn_after_the_imports(qtbot):
    """Start-up GUI steps (the window builds its panels with them) run in order on the GUI thread,
    one per event-loop turn; a step's returned steps run next; a failing step becomes a warning;
    the loader is busy until the last one ran."""
    ran, warnings = [], []

    class Quick:
        title = "Quick"
        gui_modules = ("json",)

        @staticmethod
        def warm_up():
            pass

    def step(name, more=()):
        def run():
            ran.append((name, threading.current_thread() is threading.main_thread(),
                        QCoreApplication.instance().property("turn")))
            return list(more)
        return run

    def broken():
        raise RuntimeError("no such widget")

    loader = StartupLoader()
    loader.finished.connect(lambda kind, result: warnings.extend(result.get("warnings", [])))
    turns = [0]

    def count_turn():  # a fast timer: each step must see a new turn number
        turns[0] += 1
        QCoreApplication.instance().setProperty("turn", turns[0])

    from qtpy.QtCore import QTimer

    ticker = QTimer()
    ticker.timeout.connect(count_turn)
    ticker.start(1)
    loader.start_warm_up([Quick], [step("a", [step("a1"), step("a2")]), broken, step("b")])
    assert loader.busy
    assert loader.wait(20) and not loader.busy
    ticker.stop()
    assert [name for name, _gui, _turn in ran] == ["a", "a1", "a2", "b"]
    assert all(gui for _name, gui, _turn in ran)
    assert len({turn for _name, _gui, turn in ran}) == 4  # never two steps in one turn
    assert any("step failed: no such widget" in w for w in warnings), warnings


def test_dropped_gui_steps_never_run_even_those_a_warm_up_adds_later(qtbot):
    """Closing the window drops the start-up GUI steps (no panel built for a closed window), also
    when the warm-up that queues them is still running."""
    ran = []
    release = threading.Event()

    class Slow:
        title = "Slow"

        @staticmethod
        def warm_up():
            release.wait(10)

    loader = StartupLoader()
    loader.start_warm_up([Slow], [lambda: ran.append("built")])
    loader.drop_gui_steps()  # as MainWindow.closeEvent does, while the warm-up still runs
    release.set()
    assert loader.wait(20)
    assert ran == []


def test_native_libraries_are_mapped_ahead_and_the_imports_still_work():
    """preload_native_libraries() maps torch's and llvmlite's libraries before their imports (through
    libc's dlopen, which releases the GIL; ctypes.CDLL maps llvmlite's holding it: the gain is
    measured by benchmarks/shell_gui_stall.py, not here). In a fresh interpreter: mapped, not yet
    imported, and numba and torch work afterwards (the modes match what their imports use)."""
    import subprocess
    import sys

    code = """
import sys
from studio.startup import preload_native_libraries
preload_native_libraries()
maps = open("/proc/self/maps").read()
assert "libllvmlite.so" in maps and "libtorch_cpu.so" in maps, "not mapped"
assert "numba" not in sys.modules and "torch" not in sys.modules
import numba, torch
assert numba.njit(lambda x: x + 1)(1) == 2 and int(torch.ones(2).sum()) == 2
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0 and out.stdout.split()[-1] == "ok", out.stderr[-2000:]
