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
      ``content_kinds`` the :mod:`engines.filekinds` kinds the panel opens (routing sniffs the
                      content once and asks :meth:`accepts`, without building the panel);
                      empty = decide by suffix only
      ``parameter_schema`` JSON schema of :meth:`current_parameters`; restores are checked
                      against it before anything changes
    """

    name = "panel"
    title = "Panel"
    icon = "panel.svg"
    file_types: dict[str, str] = {}
    export_filters = "PNG image (*.png)"
    content_kinds: tuple[str, ...] = ()
    parameter_schema: dict = {"type": "object"}  # noqa: RUF012

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
    @classmethod
    def claims_suffix(cls, path: str | os.PathLike) -> bool:
        """Whether ``path``'s suffix is one of :attr:`file_types` (``"/"`` = any folder)."""
        path = Path(path)
        if path.is_dir():
            return "/" in cls.file_types
        suffixes = "".join(path.suffixes).lower()
        return any(suffixes.endswith(s) for s in cls.file_types if s != "/")

    @classmethod
    def accepts(cls, path: str | os.PathLike, kind: str) -> bool:
        """Whether this panel opens ``path`` whose sniffed content is ``kind`` (no instance needed).

        With :attr:`content_kinds`: the content decides; content that is not recognised at all
        (or a path that does not exist yet) still comes here when the suffix is ours, so the
        panel can say what is wrong with it.
        """
        from engines.filekinds import MISSING, UNKNOWN

        if not cls.content_kinds:
            return cls.claims_suffix(path)
        if kind in cls.content_kinds:
            return True
        return kind in (UNKNOWN, MISSING) and not Path(path).is_dir() and cls.claims_suffix(path)

    def can_open(self, path: str | os.PathLike) -> bool:
        """Whether this panel handles ``path`` (see :meth:`accepts`)."""
        from engines.filekinds import sniff

        return self.accepts(path, sniff(path))

    def open_exported(self, path: str, provenance: dict, open_file: bool = True) -> None:
        """Open a file this studio exported and restore the parameters that made it.

        All or nothing: the parameters are checked first, then the file is opened (when
        ``open_file``), then the parameters are applied. Raises :class:`OpenError`.
        """
        self.check_parameters(provenance.get("parameters") or {})
        if open_file:
            self.open_file(path)
        self.restore_from_provenance(provenance)

    def open_file(self, path: str) -> None:
        """Load ``path`` into the panel. Raise :class:`OpenError` with a clear message on bad input,
        leaving the panel unchanged."""
        raise OpenError(f"{self.title} cannot open {Path(path).name}")

    # -- parameters -------------------------------------------------------------------
    def current_parameters(self) -> dict:
        """Every parameter the panel's controls hold now (JSON-able)."""
        return {}

    def check_parameters(self, parameters) -> dict:
        """Return ``parameters`` if they fit :attr:`parameter_schema`; else raise :class:`OpenError`
        (nothing is changed). Panels call this first in :meth:`restore_parameters`."""
        from engines.provenance import ProvenanceError, validate_parameters

        try:
            return validate_parameters(parameters, self.parameter_schema, self.title)
        except ProvenanceError as exc:
            raise OpenError(str(exc)) from None

    def restore_parameters(self, parameters: dict) -> None:
        """Set the controls from a dict produced by :meth:`current_parameters` (checked first)."""
        self.check_parameters(parameters)

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
