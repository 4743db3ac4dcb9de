"""Small panels used by the shell tests, so they do not depend on the real panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtGui import QUndoCommand
from qtpy.QtWidgets import QFormLayout, QSpinBox, QWidget

from panels.base import OpenError, Panel
from studio.export import make_provenance, save_png


class _SetValue(QUndoCommand):
    def __init__(self, panel: FakeImagePanel, value: int) -> None:
        super().__init__(f"set {value}")
        self.panel, self.new, self.old = panel, value, panel.value.value()

    def redo(self) -> None:
        self.panel.value.setValue(self.new)

    def undo(self) -> None:
        self.panel.value.setValue(self.old)


class FakeImagePanel(Panel):
    """Opens .png and .fake files (a .fake file must contain the word 'good')."""

    name = "alpha"
    title = "Alpha"
    icon = "generate.svg"
    file_types = {".png": "image", ".fake": "fake data"}

    def __init__(self, services, parent=None) -> None:
        super().__init__(services, parent)
        self.opened: list[str] = []
        self.value = QSpinBox()
        self.value.setRange(0, 1000)
        self.restored: dict | None = None

    def build_parameters(self) -> QWidget:
        widget = QWidget()
        QFormLayout(widget).addRow("value", self.value)
        return widget

    def open_file(self, path: str) -> None:
        if path.endswith(".fake") and "good" not in Path(path).read_text(errors="replace"):
            raise OpenError("not a valid fake file (corrupt header)")
        if path.endswith(".png"):
            from PIL import Image

            try:
                Image.open(path).load()
            except Exception as exc:
                raise OpenError(f"not a readable image: {exc}") from exc
        self.opened.append(path)

    def set_value(self, value: int) -> None:
        self.undo_stack.push(_SetValue(self, value))

    def current_parameters(self) -> dict:
        return {"value": self.value.value(), "label": "alpha"}

    def restore_parameters(self, parameters: dict) -> None:
        self.restored = dict(parameters)
        self.value.setValue(int(parameters.get("value", 0)))

    def can_export(self) -> bool:
        return True

    def export(self, path: str, force: bool = False) -> str:
        image = np.full((8, 8, 3), self.value.value() % 256, np.uint8)
        provenance = make_provenance(self.name, "fake", self.current_parameters(), seed=7, device="cpu")
        return str(save_png(path, image, provenance, force=force))


class FakeOtherPanel(FakeImagePanel):
    """Also opens .png, plus .other files."""

    name = "beta"
    title = "Beta"
    icon = "codec.svg"
    file_types = {".png": "image", ".other": "other data"}


FAKE_REGISTRY = [
    ("alpha", "tests.fake_panels:FakeImagePanel"),
    ("beta", "tests.fake_panels:FakeOtherPanel"),
]
