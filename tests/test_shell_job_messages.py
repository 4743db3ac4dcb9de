"""One failure, one message: a failed job whose panel reports it shows one toast and writes one log
line (the panel's, carrying the traceback); an open that fails names the file once, for every loader,
through the window's real open path (examine job, then the panel's read job)."""

import gzip
import re

import numpy as np
import pytest

from engines.jobs import Progress


@pytest.fixture
def window(cold_window):
    """The real window (all four panels), no start-up warm-up (the jobs here import what they need)."""
    return cold_window


class Messages:
    """Every toast the window shows and every error line its log gets, from now on."""

    def __init__(self, window, monkeypatch) -> None:
        self.toasts, self.start = [], window.log_view.topLevelItemCount()
        self.window = window
        real = window.toast.show_message
        monkeypatch.setattr(window.toast, "show_message",
                            lambda text, level="info", *a: (self.toasts.append(text), real(text, level, *a))[1])

    def errors(self) -> list[str]:
        log = self.window.log_view
        return [log.topLevelItem(i).text(2) for i in range(self.start, log.topLevelItemCount())
                if log.topLevelItem(i).text(1) == "error"]

    def details(self) -> list[str]:
        log = self.window.log_view
        return [log.topLevelItem(i).child(0).text(2) if log.topLevelItem(i).childCount() else ""
                for i in range(self.start, log.topLevelItemCount()) if log.topLevelItem(i).text(1) == "error"]


def test_a_failed_codec_encode_shows_one_toast_and_one_log_line(window, qtbot, monkeypatch):
    import engines.codec.tasks

    window.show_panel("codec")
    panel = window.panel("codec")
    qtbot.waitUntil(lambda: panel.image is not None and window.jobs.running_count() == 0, timeout=60000)
    assert window.jobs.wait_all(60)

    def broken_encode(image, params):
        yield Progress(1, 4, "transform")
        raise ValueError("the quantisation table is empty")

    monkeypatch.setattr(engines.codec.tasks, "encode_job", broken_encode)
    messages = Messages(window, monkeypatch)
    panel.encode()
    assert window.jobs.wait_all(30)
    qtbot.wait(50)
    record = window.jobs.records()[-1]
    assert record.state == "failed" and record.error == "the quantisation table is empty"
    shown = f"{record.title} failed: the quantisation table is empty"
    assert record.title.startswith("Encode ")
    assert messages.toasts == [shown]  # the panel's message, once (not the queue's as well)
    assert messages.errors() == [shown]
    assert "Traceback" in messages.details()[0] and "quantisation table" in messages.details()[0]
    row = window.job_table.shown_jobs().index(record.id)
    status = window.job_table.item(row, 5)
    assert status.text() == "failed: the quantisation table is empty"  # the row still says so
    assert "Traceback" in status.toolTip()


def test_a_failed_volume_export_names_the_job_in_its_one_message(window, qtbot, monkeypatch, tmp_path):
    import engines.volume.raycast

    window.show_panel("volume")
    panel = window.panel("volume")
    qtbot.waitUntil(lambda: panel.volume is not None and window.jobs.running_count() == 0, timeout=60000)
    assert window.jobs.wait_all(60)
    panel.gl_export_check.setChecked(False)  # the reference caster's job, not the GL frame

    def broken_render(volume, device=None, **kwargs):
        yield Progress(1, 4, "rays")
        raise ValueError("the ray budget is exhausted")

    monkeypatch.setattr(engines.volume.raycast, "render_job", broken_render)
    messages = Messages(window, monkeypatch)
    panel.export(str(tmp_path / "shot.png"), force=True)
    assert window.jobs.wait_all(30)
    qtbot.wait(50)
    record = window.jobs.records()[-1]
    assert record.state == "failed" and record.title.startswith("Export shot.png")
    shown = f"{record.title} failed: the ray budget is exhausted"
    assert messages.toasts == [shown] and messages.errors() == [shown]  # the job named, once
    assert panel.status.text() == shown and not (tmp_path / "shot.png").exists()


def test_a_failed_job_without_a_panel_message_is_reported_by_the_queue_once(window, qtbot, monkeypatch):
    def failing():
        yield Progress(1, 2, "half way")
        raise ValueError("engine blew up")

    messages, handled = Messages(window, monkeypatch), []
    window.jobs.submit("sort splats", "render", failing, on_error=handled.append)  # handler shows nothing
    assert window.jobs.wait_all(10)
    assert len(handled) == 1
    assert messages.toasts == ["Sort splats failed: engine blew up"]
    assert messages.errors() == ["[sort splats] failed: engine blew up"]


def _truncated(path, keep=0.5):
    data = path.read_bytes()
    out = path.with_name("trunc" + "".join(path.suffixes))
    out.write_bytes(data[: int(len(data) * keep)])
    return out


def _ply(folder):
    from tests.fuzz.targets import _build_ply

    return _truncated(_build_ply(folder))


def _nifti_gz(folder):
    import nibabel as nib

    volume = (np.arange(24 * 20 * 16) % 251).reshape(24, 20, 16).astype(np.int16)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), folder / "ct.nii")
    raw = (folder / "ct.nii").read_bytes()
    (folder / "ct.nii.gz").write_bytes(gzip.compress(raw))
    return _truncated(folder / "ct.nii.gz", keep=0.6)


def _png(folder):
    from tests.fuzz.targets import _build_png

    return _truncated(_build_png(folder))


@pytest.mark.parametrize("make, panel", [(_ply, "render"), (_nifti_gz, "volume"), (_png, "codec")])
def test_a_truncated_file_opened_in_the_window_is_named_once(window, qtbot, tmp_path, monkeypatch, make, panel):
    path = make(tmp_path)
    window.show_panel("codec")  # a PNG is opened by several panels: the active one takes it
    messages = Messages(window, monkeypatch)
    window.open_paths([str(path)])
    qtbot.waitUntil(lambda: bool(messages.toasts), timeout=60000)
    assert window.jobs.wait_all(30)
    qtbot.wait(50)
    assert [r.panel for r in window.jobs.records() if r.name == f"open {path.name}"] == [panel]
    name = path.name
    assert len(messages.toasts) == 1 and messages.errors() == messages.toasts, (messages.toasts, messages.errors())
    shown = messages.toasts[0]
    assert shown.startswith(f"Cannot open {name}: ") and shown.count(name) == 1, shown
    reason = shown[len(f"Cannot open {name}: "):]
    assert reason and reason[0].islower() and not reason.endswith(":"), shown  # a clause, not a label
    assert not re.search(r"\b[A-Z]\w*(Error|Exception)\b", shown), shown  # no raw class name
    assert window.statusBar().currentMessage() == shown


@pytest.mark.parametrize("reason, said", [
    ("trunc.ply is truncated: its header announces 4160 bytes", "trunc.ply: it is truncated: its header announces 4160 bytes"),
    ("trunc.ply: a Slicer .vp file has 9 lines", "trunc.ply: a Slicer .vp file has 9 lines"),
    ("header too short", "trunc.ply: header too short"),
    ("file not found: /data/a b/trunc.ply", "trunc.ply: file not found"),
    ("permission denied: /data/a b/trunc.ply.", "trunc.ply: permission denied"),
    ("cannot read trunc.ply: read error", "trunc.ply: cannot read it: read error"),
    ("/data/a b/trunc.ply does not exist", "trunc.ply: it does not exist"),
    ("trunc.ply.json is not valid JSON", "trunc.ply: trunc.ply.json is not valid JSON"),  # another file
    ("old_trunc.ply is newer", "trunc.ply: old_trunc.ply is newer"),
    ("trunc.ply/header.json is missing", "trunc.ply: trunc.ply/header.json is missing"),
])
def test_failure_message_says_the_file_name_once(reason, said):
    from studio.routing import failure_message

    assert failure_message("/data/a b/trunc.ply", reason) == said


@pytest.mark.parametrize("reason, said", [  # a folder's name may be an ordinary word: only its path is a mention
    ("model folder has no model_index.json", "model: model folder has no model_index.json"),
    ("model/unet/config.json: unreadable JSON", "model: model/unet/config.json: unreadable JSON"),
    ("model: no diffusers layout", "model: no diffusers layout"),
    ("/data/model is not a diffusers model folder", "model: it is not a diffusers model folder"),
    ("cannot list /data/model: permission denied", "model: cannot list it: permission denied"),
])
def test_failure_message_reads_a_folder_name_as_a_word(reason, said):
    from studio.routing import failure_message

    assert failure_message("/data/model", reason) == said


def _job_rows(window) -> list[tuple[str, str]]:
    table = window.job_table
    return [(table.item(r, 0).text(), table.item(r, 5).text()) for r in range(table.rowCount())]


def test_housekeeping_jobs_leave_no_rows_unless_slow_or_failed(window, qtbot, tmp_path, monkeypatch):
    """Each drop's "examine" job and Generate's model scan are housekeeping: no row when they end within
    half a second, a row while one still runs after that (it goes when it ends well), and a row that
    stays when one fails. The files' open jobs are user jobs and keep their rows."""
    import time

    from PIL import Image

    import studio.routing
    from tests.gui_helpers import models_listed
    from tests.test_shell_drop_examine import drop

    window.show_panel("generate")
    models_listed(window.panel("generate"))
    window.show_panel("codec")
    qtbot.waitUntil(lambda: window.panel("codec").image is not None, timeout=60000)
    assert window.jobs.wait_all(60)
    names = [r.name for r in window.jobs.records()]
    assert "scan model folders" in names and not any(title == "Scan model folders" for title, _ in _job_rows(window))
    real = studio.routing.sniff

    def sniff(path):  # a cold share answers in 1.2 s; a broken one fails
        name = str(path).rsplit("/", 1)[-1]
        if name.startswith("slow"):
            time.sleep(1.2)
        if name.startswith("broken"):
            raise ValueError("the share stopped answering")
        return real(path)

    monkeypatch.setattr(studio.routing, "sniff", sniff)
    paths = [tmp_path / name for name in ("quick.png", "slow.png", "broken.png")]
    for number, path in enumerate(paths):
        Image.fromarray(np.full((24, 32, 3), 60 * number, np.uint8)).save(path)
    before = window.job_table.rowCount()
    for path in paths:  # three drops
        drop(window, [path])
    qtbot.waitUntil(lambda: ("Examine slow.png", "running") in _job_rows(window), timeout=3000)  # slow: shown
    assert not any(title == "Examine quick.png" for title, _ in _job_rows(window)[before:])  # ended at once
    qtbot.waitUntil(lambda: window.jobs.running_count() == 0 and window.jobs.waiting_count() == 0, timeout=60000)
    assert window.jobs.wait_all(60)
    qtbot.wait(600)  # past the half second: nothing shows up late
    rows = _job_rows(window)[before:]
    encode = ("Encode dct N=8 q=75", "done")  # the Codec panel encodes what it opened
    assert rows == [("Open quick.png", "done"), encode, ("Examine broken.png", "failed: the share stopped answering"),
                    ("Open slow.png", "done"), encode], rows
    examined = {r.name: r.state for r in window.jobs.records() if r.name.startswith("examine ")}
    assert examined == {"examine quick.png": "done", "examine slow.png": "done", "examine broken.png": "failed"}
    window.job_table.clear_finished()
    assert window.job_table.rowCount() == 0


def _png_file(folder):
    from tests.fuzz.targets import _build_png

    return _build_png(folder)


def _model_folder(folder):
    from tests.fuzz.targets import _build_model

    return _build_model(folder)


def _ply_file(folder):
    from tests.fuzz.targets import _build_ply

    return _build_ply(folder)


def _nifti_file(folder):
    from tests.fuzz.targets import _build_nifti

    return _build_nifti(folder)


@pytest.mark.parametrize("make, panel", [(_png_file, "codec"), (_model_folder, "generate"), (_ply_file, "render"),
                                         (_nifti_file, "volume")])
def test_a_drop_is_opened_without_asking_the_file_system_on_the_gui_thread(window, qtbot, tmp_path, monkeypatch,
                                                                         make, panel):
    """The examine job has stat'ed the dropped path (exists, folder, size): the panel's ``open_file`` on
    the GUI thread gets those facts and makes no ``stat`` of its own (exists / is_dir / is_file all stat)."""
    import os
    import threading

    from tests.test_shell_drop_examine import drop

    window.show_panel("codec")
    window.show_panel(panel)
    assert window.jobs.wait_all(60)
    path = make(tmp_path)
    gui, real_stat, on_gui = threading.current_thread(), os.stat, []

    def recorded(target, *args, **kwargs):
        if threading.current_thread() is gui and os.fspath(target) == str(path):
            on_gui.append(os.fspath(target))
        return real_stat(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", recorded)
    drop(window, [path])
    qtbot.waitUntil(lambda: any(r.name == f"open {path.name}" for r in window.jobs.records()), timeout=30000)
    assert window.jobs.wait_all(60)  # and none while the opened file is shown
    monkeypatch.undo()
    assert on_gui == []
    assert [r.panel for r in window.jobs.records() if r.name == f"open {path.name}"] == [panel]
