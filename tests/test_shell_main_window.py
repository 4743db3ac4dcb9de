"""The main window with pytest-qt: panels, drop routing, export → drop restore, undo, settings."""

import numpy as np
import pytest
from PIL import Image
from qtpy.QtCore import QMimeData, QPointF, Qt, QUrl
from qtpy.QtGui import QDropEvent

from engines.jobs import Progress
from studio.export import read_provenance
from studio.main_window import MainWindow
from studio.settings import StudioSettings
from tests.fake_panels import FAKE_REGISTRY


@pytest.fixture
def settings(tmp_path):
    return StudioSettings(str(tmp_path / "settings.ini"))


@pytest.fixture
def window(qtbot, settings):
    win = MainWindow(settings, registry=FAKE_REGISTRY)
    qtbot.addWidget(win)
    win.show()
    return win


def drop(window, paths):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def test_every_registered_panel_is_in_the_switcher(window):
    assert window.panel_names() == ["alpha", "beta"]
    assert [window.switcher.item(i).text() for i in range(window.switcher.count())] == ["Alpha", "Beta"]
    assert window.active_name() == "alpha"
    window.show_panel("beta")
    assert window.stack.currentWidget() is window.panel("beta")
    assert window.params_stack.currentWidget() is window.panel("beta").parameters_widget()


def test_drop_routes_by_type(window, qtbot, tmp_path):
    other = tmp_path / "data.other"
    other.write_text("good")
    drop(window, [other])
    qtbot.waitUntil(lambda: window.panel("beta").opened == [str(other)], timeout=3000)
    assert window.active_name() == "beta"
    assert str(other) in window.settings.recent_files()


def test_ambiguous_drop_goes_to_active_panel(window, qtbot, tmp_path):
    image = tmp_path / "plain.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(image)
    window.show_panel("beta")
    drop(window, [image])
    qtbot.waitUntil(lambda: window.panel("beta").opened == [str(image)], timeout=3000)
    assert window.panel("alpha").opened == []


def test_corrupt_and_unsupported_files_change_nothing(window, qtbot, tmp_path):
    bad = tmp_path / "broken.fake"
    bad.write_text("garbage")
    unsupported = tmp_path / "notes.docx"
    unsupported.write_text("x")
    assert window.open_path(str(bad)) is None
    assert window.open_path(str(unsupported)) is None
    assert window.panel("alpha").opened == []
    messages = window.log_view.messages()
    assert any(level == "error" and "corrupt header" in text for level, text in messages)
    assert any(level == "error" and "no panel opens .docx" in text for level, text in messages)
    assert window.toast.isVisible()
    assert window.settings.recent_files() == []


def test_export_then_drop_restores_identical_parameters(window, qtbot, tmp_path):
    alpha = window.panel("alpha")
    alpha.value.setValue(321)
    params = alpha.current_parameters()
    path = window.export_to(str(tmp_path / "result.png"))
    assert path and read_provenance(path)["parameters"] == params
    alpha.value.setValue(5)
    window.show_panel("beta")
    drop(window, [path])
    qtbot.waitUntil(lambda: alpha.restored is not None, timeout=3000)
    assert alpha.current_parameters() == params
    assert window.active_name() == "alpha"


def test_export_does_not_overwrite_without_force(window, tmp_path):
    target = tmp_path / "exists.png"
    target.write_bytes(b"keep me")
    assert window.export_to(str(target)) is None
    assert target.read_bytes() == b"keep me"
    assert window.export_to(str(target), force=True) == str(target)


def test_undo_is_routed_to_active_panel(window):
    alpha, beta = window.panel("alpha"), window.panel("beta")
    alpha.set_value(10)
    window.show_panel("beta")
    beta.set_value(20)
    window.undo_action.trigger()
    assert beta.value.value() == 0 and alpha.value.value() == 10
    window.show_panel("alpha")
    window.undo_action.trigger()
    assert alpha.value.value() == 0
    window.redo_action.trigger()
    assert alpha.value.value() == 10


def test_job_error_shows_notification_and_log(window, qtbot):
    def failing():
        yield Progress(1, 2, "half way")
        raise RuntimeError("engine blew up")

    handle = window.jobs.submit("failing job", "alpha", failing)
    assert window.jobs.wait_all(10)
    assert handle.state == "failed"
    qtbot.waitUntil(window.toast.isVisible, timeout=3000)
    assert "engine blew up" in window.toast.text()
    assert any("engine blew up" in text for _, text in window.log_view.messages())
    row = window.job_table.rowCount() - 1
    assert window.job_table.item(row, 5).text().startswith("failed")


def test_job_table_cancel_button(window, qtbot):
    import time

    def slow():
        for i in range(1000):
            time.sleep(0.01)
            yield Progress(i, 1000)

    handle = window.jobs.submit("slow job", "alpha", slow)
    qtbot.waitUntil(lambda: handle.record.fraction > 0, timeout=5000)
    window.job_table.cancel_button(handle.id).click()
    assert window.jobs.wait_all(10)
    assert handle.state == "cancelled"


def test_settings_persist_across_restarts(qtbot, settings, tmp_path):
    first = MainWindow(settings, registry=FAKE_REGISTRY)
    qtbot.addWidget(first)
    first.panel("alpha").value.setValue(77)
    first.show_panel("beta")
    first.set_theme("light")
    first.save_state()
    again = StudioSettings(str(tmp_path / "settings.ini"))
    second = MainWindow(again, registry=FAKE_REGISTRY)
    qtbot.addWidget(second)
    assert second.active_name() == "beta"
    assert second.panel("alpha").value.value() == 77
    assert again.theme == "light"


def test_about_lists_versions(window):
    versions = window.versions()
    for key in ("Python", "Qt", "torch", "diffusers", "vispy", "device"):
        assert versions[key] and versions[key] != "not installed"


def test_real_registry_loads_every_panel(qtbot, settings):
    win = MainWindow(settings)
    qtbot.addWidget(win)
    assert win.panel_names() == ["generate", "render", "volume", "codec"]
    for name in win.panel_names():
        slot = win.slot(name)
        assert slot.error == "", slot.error
        assert win.panel(name) is not None, win.slot(name).error


def test_clear_finished_keeps_running_jobs(window, qtbot):
    import time

    def slow():
        for i in range(1000):
            time.sleep(0.01)
            yield Progress(i, 1000)

    window.jobs.submit("quick", "alpha", lambda: iter([Progress(1, 1)]))
    assert window.jobs.wait_all(5)
    running = window.jobs.submit("slow", "alpha", slow)
    qtbot.waitUntil(lambda: running.record.fraction > 0, timeout=5000)
    window.job_table.clear_finished()
    assert window.job_table.rowCount() == 1 and window.job_table.item(0, 0).text() == "Slow"
    running.cancel()
    assert window.jobs.wait_all(10)
    assert window.job_table.item(0, 5).text() == "cancelled"


@pytest.mark.parametrize("reason, shown", [
    ("x.vp: a Slicer .vp file has 9 lines", "Cannot open x.vp: a Slicer .vp file has 9 lines"),
    ("header too short", "Cannot open x.vp: header too short"),
])
def test_open_failure_names_the_file_once(window, reason, shown):
    window.panel("alpha").file_open_failed.emit("/somewhere/x.vp", reason)
    assert window.statusBar().currentMessage() == shown
    assert window.log_view.messages()[-1] == ("error", shown)


def test_job_rows_read_in_sentence_case_with_the_panels_title(window, qtbot, tmp_path):
    """Names are given as lower-case verb phrases ("examine x.png"); the table shows "Examine x.png",
    and the panel's title rather than its internal name; a name's own capitals are kept."""
    other = tmp_path / "photo.other"
    other.write_text("good")
    window.open_paths([other])  # its quick "examine" job leaves no row (housekeeping)
    window.jobs.submit("export photo.other", "studio", lambda: iter([Progress(1, 1)]))
    window.jobs.submit("JPEG internals photo.jpg", "alpha", lambda: iter([Progress(1, 1)]))
    assert window.jobs.wait_all(10)
    rows = [(window.job_table.item(r, 0).text(), window.job_table.item(r, 1).text())
            for r in range(window.job_table.rowCount())]
    assert rows == [("Export photo.other", "Studio"), ("JPEG internals photo.jpg", window.slot("alpha").title)]
    assert [r.title for r in window.jobs.records()][0] == "Examine photo.other"
    assert [r.name for r in window.jobs.records()] == ["examine photo.other", "export photo.other",
                                                       "JPEG internals photo.jpg"]
