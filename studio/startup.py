"""Start-up work that must not run on the GUI thread: device detection and engine warm-up.

Importing torch takes seconds and loading its native library holds the GIL; compiling or
loading numba kernels takes seconds too. :class:`StartupLoader` does both on one background
thread, in order (device first, then each panel's ``warm_up``), and reports each step with its
``finished(kind, result)`` signal on the GUI thread. The window paints at once and shows
"device: detecting…" until the device is known. No garbage collection runs while these imports
do (a full collection over the growing heap froze the GUI thread for 0.1-0.3 s each time), and what
the first ones created is then frozen out of later collections (:mod:`studio.gc_guard`).
"""

from __future__ import annotations

import ctypes
import importlib
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from queue import Queue

from qtpy.QtCore import QObject, QTimer, Signal

from engines.thread_priority import lower_current_thread
from studio.gc_guard import long_lived_imports

#: modules that define Qt classes (Shiboken builds their types as they are imported: that must not race the
#: GUI thread, so they are imported on it, after the warm-up, one per event-loop turn; see Panel.gui_modules)
SHELL_GUI_MODULES = ("panels.loading",)
#: delay between two of those imports (ms): input and paints get the turns in between
GUI_IMPORT_TURN_MS = 15

#: worker threads the studio's jobs share: compute jobs, a file open, the still render ...
MIN_WORKER_THREADS = 4


def ensure_worker_threads(count: int = MIN_WORKER_THREADS) -> None:
    """Let Qt's global thread pool run at least ``count`` jobs at once (a file opens while a fit runs)."""
    from qtpy.QtCore import QThreadPool

    pool = QThreadPool.globalInstance()
    if pool.maxThreadCount() < count:
        pool.setMaxThreadCount(count)


def is_gui_thread() -> bool:
    """Whether the calling thread is the Qt application's (GUI) thread; False without an application."""
    from qtpy.QtCore import QCoreApplication, QThread

    app = QCoreApplication.instance()
    return app is not None and QThread.currentThread() == app.thread()


#: (package, its native libraries) mapped ahead by :func:`preload_native_libraries`, in order
NATIVE_LIBRARIES = (
    ("torch", ("lib/libgomp.so.1", "lib/libc10.so", "lib/libtorch_cpu.so", "lib/libtorch.so", "lib/libtorch_python.so")),
    ("llvmlite", ("binding/libllvmlite.so",)),  # numba's LLVM (~100 MB): ctypes.CDLL maps it holding the GIL
)


def preload_native_libraries(packages: tuple[str, ...] = ("torch", "llvmlite")) -> None:
    """Map the large native libraries of ``packages`` with the GIL released (Linux), so that the
    imports that follow on a background thread do not freeze the GUI thread for the time the
    dynamic loader needs (``ctypes.CDLL`` and extension imports hold the GIL while it maps and
    relocates: 50-200 ms for torch's, 10-100 ms for llvmlite's). A no-op elsewhere and for a
    package already imported."""
    if not sys.platform.startswith("linux"):
        return
    import importlib.util

    try:
        libc = ctypes.CDLL(None)  # calls through ctypes.CDLL release the GIL
        dlopen = libc.dlopen
    except (OSError, AttributeError):
        return
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    for package, libraries in NATIVE_LIBRARIES:
        if package not in packages or package in sys.modules:
            continue
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = next(iter(spec.submodule_search_locations))
        # torch's are loaded globally (its extension resolves their symbols); llvmlite's as ctypes does
        mode = os.RTLD_NOW | (os.RTLD_GLOBAL if package == "torch" else os.RTLD_LOCAL)
        for name in libraries:
            path = os.path.join(root, name)
            if os.path.exists(path):
                dlopen(path.encode(), mode)


def detect_device(device_setting: str | None, threads: int | None) -> dict:
    """Apply the device and threads settings (imports torch); returns ``{"label", "warnings"}``."""
    preload_native_libraries(("torch",))
    from engines import device

    warnings = []
    try:
        device.set_device_override(device_setting)
    except ValueError as exc:
        warnings.append(f"Device setting ignored: {exc}")
        device.set_device_override(None)
    if threads:
        try:
            device.set_threads(threads)
        except ValueError as exc:  # e.g. a hand-edited settings file
            warnings.append(f"Threads setting ignored: {exc}")
    return {"label": device.device_label(), "warnings": warnings}


class StartupLoader(QObject):
    """One background thread that runs start-up steps in order and reports each one.

    ``finished(kind, result)``: ``kind`` is ``"device"`` (result ``label``, ``warnings``) or
    ``"warm-up"`` (result ``seconds``, ``warnings``). Failures become warnings, never exceptions.
    """

    finished = Signal(str, object)
    _gui_work_due = Signal()  # emitted by the start-up thread, handled on the GUI thread

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._gui_queue: list = []  # GUI-thread work still to do, one item per turn: Qt module names to import, then steps
        self._gui_timer = QTimer(self)
        self._gui_timer.setSingleShot(True)
        self._gui_timer.timeout.connect(self._run_next_gui_item)
        self._gui_work_due.connect(lambda: self._gui_timer.start(GUI_IMPORT_TURN_MS))
        self._tasks: Queue = Queue()
        self._thread: threading.Thread | None = None
        self._pending = 0
        self._lock = threading.Lock()
        self._device_requested = False
        self._steps_dropped = False

    @property
    def busy(self) -> bool:
        """Whether a step is queued or running."""
        with self._lock:
            return self._pending > 0 or bool(self._gui_queue)

    def detect_device(self, device_setting: str | None, threads: int | None) -> None:
        """Queue device detection (see :func:`detect_device`); the first one imports torch: what it
        imports is frozen out of later garbage collections (:func:`studio.gc_guard.long_lived_imports`)."""
        first, self._device_requested = not self._device_requested, True
        self._submit("device", lambda: detect_device(device_setting, threads), freeze=first)

    def start_warm_up(self, panel_classes: Iterable[type], gui_steps: Iterable[Callable[[], object]] = ()) -> None:
        """Queue each panel class's ``warm_up()`` (heavy imports, kernel compilation; what they
        create is frozen out of later garbage collections), then import the panels' ``gui_modules``
        on the GUI thread, one per event-loop turn, then run ``gui_steps`` there, one per turn (a
        step may return a list of further steps, run next)."""
        gui_steps = list(gui_steps)
        panel_classes = list(panel_classes)
        classes = [cls for cls in panel_classes if callable(getattr(cls, "warm_up", None))]
        gui_modules = [name for cls in panel_classes for name in getattr(cls, "gui_modules", ())]

        def warm() -> dict:
            start, warnings = time.perf_counter(), []
            preload_native_libraries()  # numba's LLVM library, before a warm-up imports numba
            from engines.provenance import warm_validator

            warm_validator()  # every panel validates parameters and provenance with it
            for cls in classes:
                try:
                    cls.warm_up()
                except Exception as exc:  # noqa: BLE001 - a failed warm-up only costs time later
                    warnings.append(f"{getattr(cls, 'title', cls.__name__)} warm-up failed: {exc}")
                    traceback.print_exc()
            with self._lock:  # still busy until these are in too
                self._gui_queue.extend(name for name in [*SHELL_GUI_MODULES, *gui_modules]
                                         if name not in self._gui_queue)
                if not self._steps_dropped:
                    self._gui_queue.extend(gui_steps)
            self._gui_work_due.emit()
            return {"seconds": time.perf_counter() - start, "warnings": warnings}

        self._submit("warm-up", warm)

    def _run_next_gui_item(self) -> None:
        """Import the next of the panels' Qt modules here, on the GUI thread (see ``gui_modules``),
        or run the next GUI step."""
        with self._lock:
            name = self._gui_queue[0] if self._gui_queue else None
        if name is None:
            return
        further = []
        try:
            with long_lived_imports():
                if callable(name):
                    further = list(name() or [])
                else:
                    importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - it is imported / built again (and fails visibly) where it is used
            what = f"import of {name}" if isinstance(name, str) else "step"
            self.finished.emit("gui-import", {"warnings": [f"start-up {what} failed: {exc}"]})
        with self._lock:
            self._gui_queue.pop(0)
            self._gui_queue[:0] = further
            more = bool(self._gui_queue)
        if more:
            self._gui_timer.start(GUI_IMPORT_TURN_MS)

    def drop_gui_steps(self) -> None:
        """Forget the GUI steps not run yet (the window is closing: nothing more to build)."""
        with self._lock:
            self._gui_queue[:] = [name for name in self._gui_queue if not callable(name)]
            self._steps_dropped = True  # and those a warm-up still running would add

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until every queued step ran (tests, benchmarks); False on timeout. On the GUI thread
        it processes events meanwhile (the last steps, the Qt modules, run there); on any other thread
        it only sleeps (``processEvents`` is for the GUI thread alone)."""
        from qtpy.QtCore import QCoreApplication

        on_gui_thread = is_gui_thread()
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            if on_gui_thread:
                QCoreApplication.processEvents()
            time.sleep(0.01)
        return not self.busy

    def _submit(self, kind: str, step: Callable[[], dict], freeze: bool = True) -> None:
        with self._lock:
            self._pending += 1
        self._tasks.put((kind, step, freeze))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="studio-startup", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        lower_current_thread()  # start-up work gives way to the first paints and the user's input
        while True:
            kind, step, freeze = self._tasks.get()
            try:
                with long_lived_imports(freeze=freeze):
                    result = step()
            except Exception as exc:  # noqa: BLE001 - reported, the studio keeps going
                result = {"warnings": [f"start-up step {kind!r} failed: {exc}"], "label": "cpu"}
            self.finished.emit(kind, result)
            with self._lock:
                self._pending -= 1
