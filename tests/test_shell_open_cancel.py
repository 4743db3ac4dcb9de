"""A cancelled background open leaves no "Opened …" message waiting in the window (nothing was opened)."""

import threading
import time

import nibabel as nib
import numpy as np
import torch

from engines.jobs import Progress


def _stalling_job(release: threading.Event):
    """A job that keeps yielding until cancelled (or released): it is still running when the user cancels."""
    def job(*_args):
        deadline = time.monotonic() + 30
        while not release.is_set() and time.monotonic() < deadline:
            yield Progress(1, 10, "reading")
            time.sleep(0.01)
    return job


def _cancel_running(window, qtbot, name: str) -> None:
    record = [r for r in window.jobs.records() if r.name == name][-1]
    qtbot.waitUntil(lambda: record.state == "running", timeout=10000)
    window.jobs.cancel(record.id)
    assert window.jobs.wait_all(30)
    assert record.state == "cancelled"


def test_cancelled_feature_model_check_forgets_its_message(window, qtbot, tmp_path, monkeypatch):
    import panels.volume.panel as volume_panel

    release = threading.Event()
    monkeypatch.setattr(volume_panel, "_feature_model_job", _stalling_job(release))
    path = tmp_path / "features.pt"
    torch.jit.save(torch.jit.script(torch.nn.Conv3d(1, 2, 1)), str(path))
    assert window.open_path(str(path)) == "volume"
    assert str(path) in window._open_messages
    _cancel_running(window, qtbot, "check features.pt")
    release.set()
    assert window._open_messages == {}
    assert window.statusBar().currentMessage() == "Cancelled opening features.pt"
    assert window.panel("volume").feature_model != str(path)
    assert not any("Opened features.pt" in text for _, text in window.log_view.messages())


def test_cancelled_or_replaced_volume_open_forgets_its_message(window, qtbot, tmp_path, monkeypatch):
    import panels.volume.panel as volume_panel

    release = threading.Event()
    monkeypatch.setattr(volume_panel, "_read_job", _stalling_job(release))
    paths = []
    for name in ("a.nii.gz", "b.nii.gz", "c.nii.gz"):
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.int16), np.eye(4)), str(tmp_path / name))
        paths.append(str(tmp_path / name))
    window.open_path(paths[0])
    window.open_path(paths[1])  # replaces a.nii.gz's open (cancelled)
    window.open_path(paths[1])  # the same file again: its message stays for the newer open
    _cancel_running(window, qtbot, "open b.nii.gz")
    assert window._open_messages == {}
    window.open_path(paths[2])
    release.set()
    assert window.jobs.wait_all(30)
    assert window._open_messages == {}  # c.nii.gz ended (apply failed on the fake result): reported, forgotten
