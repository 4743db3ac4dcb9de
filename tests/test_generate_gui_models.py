"""GUI behaviour that depends on the selected model (pytest-qt, offscreen): text vs class
controls, the ILVR reference only for own-loop models, history summaries, a status line
that never widens the panel."""

import pytest

from panels.generate import GeneratePanel
from tests.gui_helpers import models_listed

pytest.importorskip("transformers")


@pytest.fixture
def panel(make_panel, tmp_path):
    from engines.generation.tiny import build_tiny_sd_pipeline

    build_tiny_sd_pipeline(tmp_path / "models" / "tiny-sd")
    widget = make_panel(GeneratePanel)
    widget.add_model_folder(str(tmp_path / "models"))
    return models_listed(widget)


def select(panel, name):
    index = next(i for i in range(panel.model_combo.count()) if panel.model_combo.itemText(i).startswith(name))
    panel.model_combo.setCurrentIndex(index)
    return panel.model_info()


def test_controls_follow_the_model(panel):
    import numpy as np

    info = select(panel, "digits-flow")
    assert info.conditioning == "class"
    assert panel.prompt.isHidden() and panel.negative.isHidden() and not panel.class_combo.isHidden()
    panel.ref_slot.set_image(np.zeros((32, 32, 3), np.uint8))
    panel.ilvr_slider.setValue(3)
    assert panel.generation_params().ilvr_n == 8
    info = select(panel, "tiny-sd")
    assert info.conditioning == "text" and info.kind == "pipeline"
    assert not panel.prompt.isHidden() and not panel.negative.isHidden() and panel.class_combo.isHidden()
    # the reference slot is disabled for pipeline models and its image is then not used
    assert not panel.ref_slot.isEnabled() and "only for pixel-space" in panel.ref_slot.title.text()
    assert panel.generation_params().ilvr_n == 0
    assert "ε-prediction" in panel.model_note.text()


def test_text_model_generates_and_history_summarises(panel):
    select(panel, "tiny-sd")
    panel.prompt.setPlainText("a photo of a red house")
    panel.ref_slot.set_image(__import__("numpy").zeros((32, 32, 3), "uint8"))  # ignored for this model
    panel.steps_spin.setValue(2)
    panel.seed_lock.setChecked(True)
    panel.seed_spin.setValue(123)
    panel.generate()
    assert panel.services.jobs.wait_all(120)
    assert len(panel.history) == 1 and panel.history[0]["image"].shape == (32, 32, 3)
    text = panel.status.text()
    assert text.startswith("Done") and "“a photo of a red house”" in text and "seed 123" in text
    assert panel.status.toolTip() == text


def test_long_status_does_not_widen_the_panel(panel):
    before = panel.minimumSizeHint().width()
    panel._status("x" * 2000)
    assert panel.minimumSizeHint().width() <= before


def test_settings_dock_never_clips_controls_at_its_minimum_size(panel, tmp_path):
    from qtpy.QtWidgets import QAbstractButton, QAbstractSpinBox, QApplication, QComboBox, QWidget

    from engines.generation.tiny import build_tiny_flux_pipeline

    build_tiny_flux_pipeline(tmp_path / "models" / "tiny-flux")
    models_listed(panel).refresh_models()
    models_listed(panel)
    dock = panel.parameters_widget()
    panel.advanced.expand(animate=False)
    panel.edit_box.expand(animate=False)
    for name in ("digits-flow", "tiny-sd", "tiny-flux"):
        select(panel, name)
        dock.resize(dock.minimumSizeHint().width(), 900)
        dock.show()
        QApplication.processEvents()
        clipped = []
        for control in dock.findChildren(QWidget):
            if isinstance(control, (QAbstractButton, QComboBox, QAbstractSpinBox)) and control.isVisibleTo(dock):
                left = control.mapTo(dock, control.rect().topLeft()).x()
                right = control.mapTo(dock, control.rect().bottomRight()).x()
                if left < 0 or right > dock.width() or control.width() < control.minimumSizeHint().width() - 1:
                    clipped.append(getattr(control, "text", lambda: type(control).__name__)())
        assert clipped == [], (name, clipped)
