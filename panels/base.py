"""The contract every panel implements, and the services the studio hands to it.

A panel is a ``QWidget`` (its workspace, shown in the centre of the main window) plus a
parameters widget (shown in the dock beside it). It never computes: it builds engine job
generators and submits them with ``self.services.jobs.submit(...)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtGui import QUndoStack
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

if TYPE_CHECKING:  # pragma: no cover
    from studio.services import StudioServices


class OpenError(ValueError):
    """A file cannot be opened by a panel (unsupported, corrupt, wrong shape ...)."""


class Panel(QWidget):
    """Base class of the four panels.

    Class attributes a panel sets:
      ``name``        CLI and settings key (``"generate"``)
      ``title``       shown in the switcher (``"Generate"``)
      ``icon``        file name under ``assets/icons``
      ``file_types``  suffix -> short description, e.g. ``{".ply": "Gaussian splat scene"}``;
                      the suffix ``"/"`` means "a folder" (a DICOM series, a diffusers model)
      ``export_filters`` Qt file-dialog filter for File > Export
    """

    name = "panel"
    title = "Panel"
    icon = "panel.svg"
    file_types: dict[str, str] = {}
    export_filters = "PNG image (*.png)"

    def __init__(self, services: StudioServices, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.undo_stack = QUndoStack(self)
        self._params_widget: QWidget | None = None

    # -- layout -----------------------------------------------------------------------
    def parameters_widget(self) -> QWidget:
        """The widget shown in the parameters dock (built once, by :meth:`build_parameters`)."""
        if self._params_widget is None:
            self._params_widget = self.build_parameters()
        return self._params_widget

    def build_parameters(self) -> QWidget:
        """Build the parameters widget; panels override this."""
        widget = QWidget()
        layout = QVBoxLayout(widget)
        layout.addWidget(QLabel("No parameters."))
        layout.addStretch(1)
        return widget

    def on_shown(self) -> None:
        """Called when the panel becomes the active one (use it for lazy, heavy set-up)."""

    # -- files ------------------------------------------------------------------------
    def can_open(self, path: str | os.PathLike) -> bool:
        """Whether this panel handles ``path`` (by suffix; ``"/"`` in file_types = folders)."""
        path = Path(path)
        if path.is_dir():
            return "/" in self.file_types
        suffixes = "".join(path.suffixes).lower()
        return any(suffixes.endswith(s) for s in self.file_types if s != "/")

    def open_file(self, path: str) -> None:
        """Load ``path`` into the panel. Raise :class:`OpenError` with a clear message on bad input,
        leaving the panel unchanged."""
        raise OpenError(f"{self.title} cannot open {Path(path).name}")

    # -- parameters -------------------------------------------------------------------
    def current_parameters(self) -> dict:
        """Every parameter the panel's controls hold now (JSON-able)."""
        return {}

    def restore_parameters(self, parameters: dict) -> None:
        """Set the controls from a dict produced by :meth:`current_parameters`."""

    def restore_from_provenance(self, provenance: dict) -> None:
        """Restore from an exported file's provenance record (default: its parameters)."""
        self.restore_parameters(provenance.get("parameters") or {})

    # -- export -----------------------------------------------------------------------
    def can_export(self) -> bool:
        """Whether File > Export has something to write now."""
        return False

    def export(self, path: str, force: bool = False) -> str:
        """Write the current result to ``path`` via :mod:`studio.export`; return the path written."""
        raise OpenError(f"{self.title} has nothing to export")

    def receive(self, kind: str, payload: Any) -> None:
        """Accept data sent from another panel (e.g. ``("image", ndarray)``)."""
        raise OpenError(f"{self.title} cannot receive {kind}")
