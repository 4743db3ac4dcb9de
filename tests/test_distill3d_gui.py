"""The Generate panel's 3D mode (pytest-qt, offscreen): run with previews and a loss curve, cancel,
reference image by drop, export and Open in Render through the job queue."""

import numpy as np
import pytest
from PIL import Image

from panels.generate import GeneratePanel
from tests.gui_helpers import models_listed


@pytest.fixture
def page(make_panel):
    panel = models_listed(make_panel(GeneratePanel))
    panel.mode_tabs.setCurrentIndex(panel.mode_tabs.indexOf(panel.threed))
    return panel.threed


def test_3d_mode_runs_shows_views_and_loss_then_exports_and_opens_in_render(page, tmp_path, qtbot):
    assert page.model_combo.currentText() == "digits-flow" and page.class_combo.currentData() == 7
    assert not page.prompt.isEnabled() and not page.export_button.isEnabled()
    page.steps_spin.setValue(12)
    page.count_spin.setValue(60)
    page.run()
    qtbot.waitUntil(lambda: page.result is not None, timeout=120000)
    assert all(v.image() is not None for v in page.views)
    assert len(page.losses) == 12 and page.export_button.isEnabled()
    assert "Done" in page.status.text()
    sent = []
    page.services.send_to = lambda panel, kind, payload: sent.append((panel, kind, payload))
    page.open_in_render()
    qtbot.waitUntil(lambda: bool(sent), timeout=60000)
    assert sent[0][:2] == ("render", "scene") and sent[0][2].endswith(".ply")
    from engines.render.io import load_ply

    assert len(load_ply(sent[0][2])) == len(page.result.scene)
    page.export_to(str(tmp_path / "o.ply"), str(tmp_path / "o.webp"))
    assert page.services.jobs.wait_all(60)
    with Image.open(tmp_path / "o.webp") as anim:
        assert anim.n_frames == 36


def test_3d_mode_cancel_and_reference_drop(page, tmp_path, qtbot):
    page.steps_spin.setValue(2000)
    page.count_spin.setValue(60)
    page.run()
    qtbot.waitUntil(lambda: "step" in page.status.text(), timeout=60000)
    assert page.cancel_button.isEnabled()
    page.cancel()
    qtbot.waitUntil(lambda: page.status.text() == "Cancelled.", timeout=10000)
    assert page.run_button.isEnabled() and page.result is None
    ref = tmp_path / "ref.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(ref)
    page.load_reference(str(ref))
    qtbot.waitUntil(lambda: page.ref_slot.image() is not None, timeout=20000)
    assert page.ref_slot.path == str(ref) and "Image → 3D" in page.status.text()


def test_3d_mode_controls_start_at_the_engine_defaults(page):
    from dataclasses import replace

    from engines.distill3d.job import DistillSettings

    got = page.settings()
    assert got == replace(DistillSettings(), model=got.model, class_label=7, preview_every=10)
