"""The parameters dock at the main window's minimum size clips no control: every panel, and the
Generate panel with each family of model selected (digits, tiny SD, tiny SDXL, tiny Flux) and
every collapsible section open. A control is clipped when any parent cuts it, when it sticks
out of the dock sideways, or when it is squeezed below its minimum size (Cancel, "…")."""

import pytest
from qtpy.QtCore import QPoint, QRect
from qtpy.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QSlider,
    QWidget,
)
from superqt import QCollapsible

from studio.main_window import MainWindow
from studio.settings import StudioSettings

pytest.importorskip("transformers")

CONTROLS = (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QSlider)


def clipped_controls(scroll) -> list:
    """Descriptions of the visible controls of the dock's page that the user cannot fully see."""
    root, viewport = scroll.widget(), scroll.viewport()
    problems = []
    for control in root.findChildren(QWidget):
        if not isinstance(control, CONTROLS) or not control.isVisibleTo(root):
            continue
        if isinstance(control, QLineEdit) and isinstance(control.parentWidget(), (QAbstractSpinBox, QComboBox)):
            continue  # the editor inside a spin box or combo box: the box itself is checked
        name = (getattr(control, "text", lambda: "")() or control.toolTip()[:30] or type(control).__name__)
        widget = control
        while widget is not root:
            parent = widget.parentWidget()
            box = QRect(control.mapTo(parent, QPoint(0, 0)), control.size())
            if not parent.rect().contains(box):
                problems.append(f"{name}: cut by {type(parent).__name__}")
                break
            widget = parent
        left = control.mapTo(viewport, QPoint(0, 0)).x()
        if left < 0 or left + control.width() > viewport.width():
            problems.append(f"{name}: outside the dock sideways")
        if control.width() < control.minimumSizeHint().width() - 1:
            problems.append(f"{name}: squeezed to {control.width()} px")
    return problems


def settle(window):
    for _ in range(4):
        QApplication.processEvents()
    window.jobs.wait_all(30)
    QApplication.processEvents()


@pytest.fixture
def window(qtbot, tmp_path):
    win = MainWindow(StudioSettings(str(tmp_path / "settings.ini")))
    qtbot.addWidget(win)
    win.show()
    win.resize(win.minimumSizeHint())
    yield win
    win.jobs.cancel_all()
    win.jobs.wait_all(30)


def open_sections(panel):
    for box in panel.parameters_widget().findChildren(QCollapsible):
        box.expand(animate=False)


@pytest.mark.slow  # builds all four panels in a main window
def test_every_panel_dock_at_the_minimum_window_size(window):
    for name in window.panel_names():
        window.show_panel(name)
        open_sections(window.panel(name))
        settle(window)
        assert clipped_controls(window.params_dock.widget()) == [], name


@pytest.mark.slow  # builds three tiny pipelines
def test_generate_dock_with_each_model_family_and_adapters_listed(window, tmp_path):
    import json

    import torch
    from safetensors.torch import save_file

    from engines.generation.tiny import (
        build_tiny_flux_pipeline,
        build_tiny_sd_pipeline,
        build_tiny_sdxl_pipeline,
    )

    models = tmp_path / "models"
    build_tiny_sd_pipeline(models / "tiny-sd")
    build_tiny_sdxl_pipeline(models / "tiny-sdxl")
    build_tiny_flux_pipeline(models / "tiny-flux")
    lora = tmp_path / "a_lora_with_a_rather_long_file_name_v2.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 4)}, str(lora), metadata={
        "ss_tag_frequency": json.dumps({"x": {f"tag number {i}": 20 - i for i in range(20)}})})
    window.show_panel("generate")
    panel = window.panel("generate")
    panel.add_model_folder(str(models))
    panel.adapters.add_lora(str(lora), 0.8)
    panel.adapters.add_embedding(str(tmp_path / "missing-embedding.pt"))
    open_sections(panel)
    for family in ("digits-flow", "tiny-sd", "tiny-sdxl", "tiny-flux"):
        index = next(i for i in range(panel.model_combo.count()) if panel.model_combo.itemText(i).startswith(family))
        panel.model_combo.setCurrentIndex(index)
        settle(window)
        assert window.width() <= window.minimumSizeHint().width() + 1
        assert "tag number 0" in panel.adapters.lora_rows[0].info.text()  # the trigger words were read
        assert clipped_controls(window.params_dock.widget()) == [], family
