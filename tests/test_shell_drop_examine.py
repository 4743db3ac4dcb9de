"""Dropped paths are examined (sniffed) on a worker: the GUI keeps serving its event loop, the files
still open in the right panel, in drop order, and a drop made meanwhile is not lost."""

import time

import numpy as np
import pytest
from PIL import Image
from qtpy.QtCore import QElapsedTimer, QMimeData, QPointF, Qt, QTimer, QUrl
from qtpy.QtGui import QDropEvent

import studio.routing
from studio.gc_guard import collections_paused
from studio.main_window import MainWindow
from studio.settings import StudioSettings
from tests.fake_panels import FAKE_REGISTRY

SLOW_SNIFF_S = 0.5


@pytest.fixture
def window(qtbot, tmp_path):
    settings = StudioSettings(str(tmp_path / "settings.ini"))
    settings.max_running_jobs = 2  # two drops may be examined at once: opening still follows drop order
    win = MainWindow(settings, registry=FAKE_REGISTRY, warm_up=False)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.jobs.cancel_all()
    win.jobs.wait_all(10)


@pytest.fixture
def slow_sniff(monkeypatch):
    """The sniff of a path whose name starts with "slow" takes half a second (a cold network folder)."""
    real = studio.routing.sniff

    def sniff(path):
        if str(path).rsplit("/", 1)[-1].startswith("slow"):
            time.sleep(SLOW_SNIFF_S)
        return real(path)

    monkeypatch.setattr(studio.routing, "sniff", sniff)


def drop(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    window.dropEvent(QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier))


def _png(path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    return path


def test_a_slow_sniff_does_not_stall_the_gui(window, qtbot, tmp_path, slow_sniff):
    other = tmp_path / "slow.other"
    other.write_text("good")
    ticks, clock = [], QElapsedTimer()
    clock.start()
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(clock.elapsed()))
    with collections_paused():  # a collection on the GUI thread (0.1-0.6 s in a test process) is not the sniff
        timer.start(5)
        qtbot.wait(50)
        started = clock.elapsed()
        drop(window, [other])
        assert window.statusBar().currentMessage() == "Examining slow.other…"
        assert [r.name for r in window.jobs.records()] == ["examine slow.other"]
        qtbot.waitUntil(lambda: window.panel("beta").opened == [str(other)], timeout=5000)
        assert clock.elapsed() - started >= SLOW_SNIFF_S * 1000  # the sniff did take that long ...
        qtbot.wait(50)
        timer.stop()
    gaps = np.diff([started, *[t for t in ticks if t >= started]])
    assert gaps.max() < SLOW_SNIFF_S * 1000 / 2, f"the event loop stalled {gaps.max()} ms"  # ... not on the GUI thread
    assert window.active_name() == "beta"
    assert window.jobs.records()[0].state == "done"
    assert not window.statusBar().currentMessage().startswith("Examining")


def test_a_drop_while_another_is_examined_is_not_lost_and_keeps_order(window, qtbot, tmp_path, slow_sniff):
    first = tmp_path / "slow-first.other"
    second, third = tmp_path / "second.other", tmp_path / "third.other"
    for path in (first, second, third):
        path.write_text("good")
    beta = window.panel("beta")
    drop(window, [first])
    drop(window, [second, third])  # examined at once (two lanes' slots), opened after the first drop
    qtbot.waitUntil(lambda: len(beta.opened) == 3, timeout=5000)
    assert beta.opened == [str(first), str(second), str(third)]
    assert [r.name for r in window.jobs.records()] == ["examine slow-first.other", "examine 2 files"]


def test_ambiguous_files_go_to_the_panel_active_when_each_opens(window, qtbot, tmp_path):
    """As when files were opened one after the other: the .fake file switches to Alpha, so the
    ambiguous .png dropped with it opens in Alpha too, though Beta was active at the drop."""
    fake, image = tmp_path / "a.fake", _png(tmp_path / "b.png")
    fake.write_text("good")
    window.show_panel("beta")
    drop(window, [fake, image])
    qtbot.waitUntil(lambda: len(window.panel("alpha").opened) == 2, timeout=5000)
    assert window.panel("alpha").opened == [str(fake), str(image)]
    assert window.panel("beta").opened == []


def test_cancelling_an_examination_opens_nothing(window, qtbot, tmp_path, slow_sniff):
    other = tmp_path / "slow.other"
    other.write_text("good")
    handle = window.open_paths([other])
    qtbot.waitUntil(lambda: handle.state == "running", timeout=5000)
    handle.cancel()
    assert window.jobs.wait_all(10)
    assert handle.state == "cancelled"
    qtbot.wait(50)
    assert window.panel("beta").opened == [] and window._examinations == []
    later = tmp_path / "later.other"
    later.write_text("good")
    window.open_paths([later])  # the next drop is not held back by the cancelled one
    qtbot.waitUntil(lambda: window.panel("beta").opened == [str(later)], timeout=5000)
