"""The four real panels inside the main window: registration, parameters, corrupt files, screenshots."""

import json

import numpy as np
import pytest


PANELS = ["generate", "render", "volume", "codec"]


def suffixes(window, name):
    return [s for s in window.slot(name).cls.file_types if s != "/"]


@pytest.mark.parametrize("name", PANELS)
def test_parameters_are_json_and_round_trip(window, name):
    panel = window.panel(name)
    assert panel is not None, window.slot(name).error
    params = panel.current_parameters()
    assert json.loads(json.dumps(params)) == params
    panel.restore_parameters(params)
    assert panel.current_parameters() == params


@pytest.mark.parametrize("name", PANELS)
@pytest.mark.parametrize("content", [b"", bytes(np.random.default_rng(1).integers(0, 256, 1001, dtype=np.uint8))])
def test_corrupt_files_get_a_message_and_change_nothing(window, tmp_path, name, content):
    panel = window.panel(name)
    before = panel.current_parameters()
    for suffix in suffixes(window, name):
        path = tmp_path / f"broken{suffix}"
        path.write_bytes(content)
        seen = len(window.log_view.messages())
        window.open_path(str(path), ask=lambda candidates, p: name)  # files are read by a job
        assert window.jobs.wait_all(30), suffix
        assert not panel.loading, suffix
        assert panel.current_parameters() == before, (suffix, window.log_view.messages())
        # the error (an interrupted load, e.g. the start-up sample's, then starts again and logs after it)
        errors = [text for level, text in window.log_view.messages()[seen:] if level == "error"]
        assert len(errors) == 1 and "broken" in errors[0], (suffix, window.log_view.messages()[seen:])
    assert window.settings.recent_files() == []


def test_parameters_dock_fits_the_shown_panel(window, qtbot, tmp_path):
    for name in PANELS:  # build every panel first: hidden pages must not widen the dock
        window.panel(name)
    for name in PANELS:
        window.show_panel(name)
        qtbot.wait(50)
        scroll = window.params_dock.widget()
        assert scroll.widget().width() <= scroll.viewport().width(), name
        assert not scroll.horizontalScrollBar().isVisible(), name
