"""The Generate panel's model list comes from a job: scanning the model folders (JSON and weight
headers of every candidate; slow on a network share) runs on the ``examine`` lane, the GUI thread
keeps ticking meanwhile, a restored model is selected once the scan lists it and an older scan never
replaces a newer list."""

import shutil

import pytest

import engines.generation.models as model_files
from engines.generation.model_scan import list_models
from panels.generate import GeneratePanel
from tests.gui_helpers import models_listed
from tests.test_gui_thread_file_checks import MAX_GAP_MS, probe  # noqa: F401 - the fixture


@pytest.fixture
def model_folder(tmp_path):
    """A model folder holding a copy of the shipped model one level down (``sub/digits-copy``)."""
    shutil.copytree(model_files.SHIPPED_MODELS_DIR / "digits-flow", tmp_path / "models" / "sub" / "digits-copy")
    return tmp_path / "models"


def listed(panel) -> list[str]:
    return [panel.model_combo.itemText(i) for i in range(panel.model_combo.count())]


def test_list_models_resolves_the_wanted_model_by_name_path_or_fallback(model_folder, tmp_path):
    copy = str(model_folder / "sub" / "digits-copy")
    scan = list_models([str(model_folder)], [], "digits-copy")
    assert [m.name for m in scan.models] == ["digits-flow", "digits-copy"]
    assert (scan.wanted_path, scan.wanted_added, scan.problems) == (copy, False, [])
    scan = list_models([], [str(tmp_path / "gone")], "unknown-name", fallback=copy)
    assert [m.name for m in scan.models] == ["digits-flow", "digits-copy"] and scan.wanted_added
    assert scan.problems == [f"model not found: {tmp_path / 'gone'}"]
    scan = list_models([], [], "unknown-name", fallback=str(tmp_path / "gone"))
    assert scan.wanted_path is None and scan.wanted_problem == "unknown model 'unknown-name' (known: digits-flow)"


def test_model_scans_run_on_a_worker_while_the_panel_is_built_and_a_folder_added(
        make_panel, qtbot, monkeypatch, probe, model_folder):  # noqa: F811
    monkeypatch.setattr(model_files, "scan_models", probe.slowed(model_files.scan_models))  # a cold share
    probe.start(qtbot)
    panel = make_panel(GeneratePanel)
    assert panel.scanning_models and "Scanning model folders" in panel.model_note.text()
    assert panel.model_combo.placeholderText() == panel.threed.model_combo.placeholderText() == "scanning…"
    assert not panel.generate_button.isEnabled()
    qtbot.waitUntil(lambda: listed(panel) == ["digits-flow  (shipped)"], timeout=10000)
    assert panel.generate_button.isEnabled() and panel.model_info().name == "digits-flow"
    panel.steps_spin.setValue(3)
    panel.add_model_folder(str(model_folder))
    assert panel.model_info().name == "digits-flow"  # the list stays usable meanwhile
    assert "Scanning model folders" in panel.model_note.text()
    qtbot.waitUntil(lambda: listed(panel) == ["digits-flow  (shipped)", "digits-copy"], timeout=10000)
    assert probe.longest_while_slow() < MAX_GAP_MS  # both scans slept half a second, not on the GUI thread
    assert len(probe.slow) == 2 and "Scanning" not in panel.model_note.text()
    assert panel.model_info().name == "digits-flow" and panel.steps_spin.value() == 3  # selection kept
    assert panel.threed.model_combo.count() == 2  # the 3D mode lists them too
    names = [r.name for r in panel.services.jobs.records()]
    assert names.count("scan model folders") == 2
    assert {r.device for r in panel.services.jobs.records() if r.name == "scan model folders"} == {"examine"}


def test_a_restored_model_is_selected_once_the_scan_lists_it(make_panel, model_folder):
    source = models_listed(make_panel(GeneratePanel))
    source.add_model_folder(str(model_folder))
    models_listed(source).model_combo.setCurrentIndex(1)
    source.steps_spin.setValue(4)  # not the model's default (10)
    source.sampler_combo.setCurrentIndex(source.sampler_combo.findData("heun"))
    saved = source.current_parameters()
    assert saved["model"] == str(model_folder / "sub" / "digits-copy")

    fresh = make_panel(GeneratePanel)
    fresh.restore_parameters(saved)  # during its first scan, which knows no model folder yet
    assert fresh.steps_spin.value() == 4 and fresh.model_folders == [str(model_folder)]
    models_listed(fresh)
    assert fresh.model_info().name == "digits-copy"
    assert fresh.current_parameters() == saved  # the model's defaults did not replace restored values

    notes = []
    fresh.services.notify = lambda text, level="info": notes.append((level, text))
    fresh.restore_parameters({**saved, "model": "no-such-model"})
    models_listed(fresh)
    unknown = "unknown model 'no-such-model' (known: digits-flow, digits-copy)"
    assert notes == [("warning", f"Model of these parameters is not available: {unknown}")]
    assert fresh.model_info().name == "digits-copy"  # the selection stays


def test_an_older_scan_never_replaces_a_newer_list(make_panel, qtbot, monkeypatch, model_folder):
    import time

    real = model_files.scan_models

    def scan(folders=()):
        if not folders:
            time.sleep(0.5)  # the first scan (no model folder) ends after the second
        return real(folders)

    monkeypatch.setattr(model_files, "scan_models", scan)
    panel = make_panel(GeneratePanel)
    panel.services.jobs.set_max_running(2)  # both scans may run at once
    panel.add_model_folder(str(model_folder))
    qtbot.waitUntil(lambda: not panel.scanning_models, timeout=10000)
    assert listed(panel) == ["digits-flow  (shipped)", "digits-copy"]
    assert panel.services.jobs.wait_all(10)  # the older scan has ended too
    assert listed(panel) == ["digits-flow  (shipped)", "digits-copy"]
