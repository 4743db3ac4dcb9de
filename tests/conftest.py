"""Shared test set-up: one torch thread, offline hub, a headless-safe Qt platform."""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("QT_API", "pyside6")
os.environ.setdefault("SPECTRA_SETTINGS_SCOPE", "test")
os.environ.setdefault("SPECTRA_WARM_UP", "0")  # no background kernel warm-up competing with tests
if not os.environ.get("DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"):
    os.environ["QT_QPA_PLATFORM"] = "offscreen"

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


import pytest  # noqa: E402


@pytest.fixture
def make_panel(qtbot):
    """``make_panel(PanelClass)`` builds a panel (and its parameters widget) on fresh StudioServices.

    Every job the panels started is cancelled and awaited at teardown.
    """
    from studio.services import StudioServices

    made = []

    def make(cls):
        services = StudioServices()
        panel = cls(services)
        qtbot.addWidget(panel)
        qtbot.addWidget(panel.parameters_widget())
        made.append(services)
        return panel

    yield make
    for services in made:
        services.jobs.cancel_all()
        services.jobs.wait_all(30)


def _studio_window(qtbot, tmp_path, **kwargs):
    """The real studio window (all four panels) with its own settings file; jobs stopped afterwards."""
    from studio.main_window import MainWindow
    from studio.settings import StudioSettings

    win = MainWindow(StudioSettings(str(tmp_path / "settings.ini")), **kwargs)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.jobs.cancel_all()
    win.jobs.wait_all(30)


@pytest.fixture
def window(qtbot, tmp_path):
    """The real studio window (all four panels) with its own settings file; jobs stopped afterwards."""
    yield from _studio_window(qtbot, tmp_path)


@pytest.fixture
def cold_window(qtbot, tmp_path):
    """:func:`window` without the start-up warm-up (tests whose jobs import what they need)."""
    yield from _studio_window(qtbot, tmp_path, warm_up=False)


_TESTS_RUN = [0]


@pytest.fixture(autouse=True)
def _collect_garbage_on_the_main_thread():
    """Qt objects left by a test must be destroyed on the main thread, not by a collection that a
    job's worker thread happens to trigger (that deadlocks PySide): collection runs here instead,
    and from the GUI thread's timer once a QApplication exists (studio.gc_guard)."""
    import gc

    gc.disable()
    yield
    _TESTS_RUN[0] += 1
    gc.collect(2 if _TESTS_RUN[0] % 25 == 0 else 1)  # a full collection costs ~0.1-0.3 s here
    if "qtpy" in sys.modules:
        from qtpy.QtWidgets import QApplication

        app = QApplication.instance()
        if app is not None:
            from studio.gc_guard import install

            install(app)


@pytest.fixture(autouse=True)
def _restore_device_settings():
    """Tests that change the device or threads setting (e.g. through the CLI) must not leak it."""
    from engines import device

    saved = (device._override, device._threads)
    yield
    device._override, device._threads = saved
