"""After the start-up warm-up, a user's first actions import nothing on the GUI thread.

An import on the GUI thread freezes the window for as long as it takes (jsonschema with its
dependencies, the fit engine, the ray caster: 0.05-0.2 s each, and an import that loads a C extension
holds the GIL throughout). Each panel's ``warm_up()`` imports them on the start-up thread instead;
this test opens a volume and an image, runs a fit, exports a ray-cast render and restores parameters
in the real window, and records every module imported on the GUI thread meanwhile.
"""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

_RECORDING: list[str] = []
_ACTIVE = [False]


def _audit(event: str, args) -> None:
    if event == "import" and _ACTIVE[0] and threading.current_thread() is threading.main_thread() \
            and args[0] not in sys.modules:
        _RECORDING.append(args[0])


@pytest.fixture()
def warm_window(qtbot, tmp_path):
    from studio.main_window import MainWindow
    from studio.settings import StudioSettings

    win = MainWindow(StudioSettings(str(tmp_path / "settings.ini")), warm_up=True)
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitUntil(lambda: not win.startup.busy, timeout=120000)
    yield win
    win.jobs.cancel_all()
    win.jobs.wait_all(30)


def test_first_actions_import_nothing_on_the_gui_thread(warm_window, qtbot, tmp_path, monkeypatch):
    import importlib

    import nibabel as nib
    from PIL import Image

    win = warm_window
    idle = lambda: all(r.state in ("done", "cancelled", "failed") for r in win.jobs.records())  # noqa: E731
    volume_file = tmp_path / "ct.nii.gz"
    data = (np.indices((24, 28, 20)).sum(0) * 20 - 600).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.7, 2.5, 1.0])), str(volume_file))
    photo = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((96, 128, 3)) * 255).astype(np.uint8)).save(photo)
    sys.addaudithook(_audit)  # process-wide and permanent: it records only while _ACTIVE
    import_module = importlib.import_module  # raises no "import" audit event: recorded here

    def recorded_import_module(name, package=None):
        _audit("import", (name,))
        return import_module(name, package)

    monkeypatch.setattr(importlib, "import_module", recorded_import_module)
    _ACTIVE[0] = True
    try:
        win.show_panel("volume")
        volume = win.panel("volume")
        win.open_path(str(volume_file))
        qtbot.waitUntil(lambda: volume.source_path == str(volume_file) and idle(), timeout=60000)
        win.show_panel("codec")
        codec = win.panel("codec")
        win.open_path(str(photo))
        qtbot.waitUntil(lambda: codec.image_path == str(photo) and idle(), timeout=60000)
        win.show_panel("render")
        render = win.panel("render")
        render.receive("image", (np.random.default_rng(1).random((24, 24, 3)) * 255).astype(np.uint8))
        render.restore_parameters({"count": 40, "steps": 2})
        render.start_button.click()
        qtbot.waitUntil(lambda: render.fit_handle is None and render.fit_result is not None, timeout=60000)
        win.show_panel("volume")
        target = tmp_path / "render.png"
        win.export_to(str(target), force=True)
        qtbot.waitUntil(lambda: target.exists() and idle(), timeout=60000)
    finally:
        _ACTIVE[0] = False
    imported = sorted({name for name in _RECORDING if name in sys.modules})  # attempts at absent modules cost ~nothing
    assert imported == [], f"imported on the GUI thread after the warm-up: {imported}"


def test_panels_are_built_while_idle_after_start_up(warm_window, qtbot):
    """The start-up GUI steps build every panel not shown yet, the Codec tabs held back and the
    Render panel's OpenGL view: a first switch only lays the panel out and paints it; the view,
    hidden until then, draws its first frame."""
    from panels.codec.tokens_tab import TokensTab

    win = warm_window
    assert all(slot.widget is not None for slot in win.slots if slot.cls is not None)
    codec, render = win.slot("codec").widget, win.slot("render").widget
    tokens = codec.tabs.widget(codec.tabs.count() - 1)
    assert codec.pending_builds() == [] and isinstance(tokens, TokensTab)
    assert len(tokens.curves) == 6 and tokens.pending_builds() == []  # its plots too, a few per turn
    assert render.canvas is not None and render._scene_canvas is None and render.pending_builds() == []
    view = render.canvas.native
    assert not view.isVisible() and view.frames == 0  # made while hidden: nothing drawn yet
    canvas = render.canvas
    win.show_panel("render")
    assert render.canvas is canvas
    qtbot.waitUntil(lambda: view.frames > 0, timeout=30000)
