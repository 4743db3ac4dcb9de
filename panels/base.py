"""The contract every panel implements, and the services the studio hands to it.

A panel is a ``QWidget`` (its workspace, shown in the centre of the main window) plus a
parameters widget (shown in the dock beside it). It never computes: it builds engine job
generators and submits them with ``self.services.jobs.submit(...)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qtpy.QtCore import Signal
from qtpy.QtGui import QUndoStack
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

if TYPE_CHECKING:  # pragma: no cover
    from studio.services import StudioServices


class OpenError(ValueError):
    """A file cannot be opened by a panel (unsupported, corrupt, wrong shape ...)."""


def import_libraries(names) -> None:
    """Import the libraries ``names`` (skipping any that is not installed), for a panel's ``warm_up()``:
    the engines import their libraries inside the functions that use them, so a first open or job
    would import them on a job thread, and an import that loads a C extension holds the GIL (the
    GUI thread waits) for as long as it takes."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:  # an optional library
            pass


#: the ``gui_modules`` of a panel with an off-screen vispy view (panels/offscreen_canvas.py)
OFFSCREEN_VIEW_MODULES = ("qtpy.QtOpenGLWidgets", "vispy.app.backends._pyside6", "panels.offscreen_canvas")


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

    #: a background open (:meth:`load_in_background`) finished: the path
    file_opened = Signal(str)
    #: a background open failed: the path and one clear message
    file_open_failed = Signal(str, str)
    #: a background open was cancelled (by the user, or replaced by an open of another file): the path
    file_open_cancelled = Signal(str)

    name = "panel"
    title = "Panel"
    icon = "panel.svg"
    file_types: dict[str, str] = {}
    export_filters = "PNG image (*.png)"
    content_kinds: tuple[str, ...] = ()
    parameter_schema: dict = {"type": "object"}  # noqa: RUF012 - a class-level contract, never mutated
    #: modules that define Qt classes and that the panel's first use imports: imported on the GUI thread
    #: after the start-up warm-up (``warm_up()`` runs on a worker thread, where building Qt types races
    #: the GUI thread), one per event-loop turn
    gui_modules: tuple[str, ...] = ()

    def __init__(self, services: StudioServices, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.services = services
        self.undo_stack = QUndoStack(self)
        self._params_widget: QWidget | None = None
        self._open_seq = 0
        self._open_handle = None
        self._open_path = ""  # the path of the newest background open
        self._open_request: tuple | None = None  # (path, job, apply, title) of the load in flight
        self._loading_card = None
        self._after_open = None  # runs after the next background open is shown (see open_exported)

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

    def pending_builds(self) -> list:
        """The parts of the panel not built yet (each a callable that builds one, on the GUI thread):
        the studio calls them one per event-loop turn while it is idle after start-up, so no turn
        builds a whole panel at once. Each part is also built on first use."""
        return []

    @staticmethod
    def warm_up() -> None:
        """Import heavy libraries and load compiled kernels; the studio calls it once at start-up
        on a background thread (never the GUI thread). No Qt here."""

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

    def open_exported(self, path: str, provenance: dict, open_file: bool = True):
        """Open a file this studio exported and restore the parameters that made it.

        All or nothing: the parameters are checked first, then the file is opened (when
        ``open_file``), then the parameters are applied. Raises :class:`OpenError`.
        """
        self.check_parameters(provenance.get("parameters") or {})
        pending = self.open_file(path) if open_file else None
        if pending is None:
            self.restore_from_provenance(provenance)
        else:  # the file is read by a job: restore once it is shown (returns the job handle)
            self._after_open = lambda: self.restore_from_provenance(provenance)
        return pending

    def open_file(self, path: str):
        """Load ``path`` into the panel. Raise :class:`OpenError` with a clear message on bad input,
        leaving the panel unchanged.

        A panel whose files are large returns the :class:`~studio.jobs.JobHandle` of
        :meth:`load_in_background` instead; it then emits :attr:`file_opened` or
        :attr:`file_open_failed` when the job ends.
        """
        raise OpenError(f"{self.title} cannot open {Path(path).name}")

    def load_in_background(self, path: str, job, apply, *, title: str | None = None):
        """Read and prepare ``path`` on a worker, then ``apply(result)`` on the GUI thread.

        ``job()`` is called on the worker and returns an engine job generator (Progress events
        move the loading card's bar); ``apply`` must be cheap (it only hands finished arrays to
        widgets). Runs on the queue's ``io`` lane, so a long fit does not hold it back. A newer
        load cancels this one and a result that arrives after a newer load started is dropped:
        the last file the user opened always wins; if it fails, the load it interrupted (e.g. the
        start-up sample) starts again, so a bad file never leaves the panel empty. Returns the job handle.
        """
        interrupted = None
        if self._open_handle is not None:
            self._open_handle.cancel()
            interrupted = self._open_request
        self._open_request = (path, job, apply, title)
        self._open_seq += 1
        self._after_open = None
        seq, name = self._open_seq, Path(path).name or str(path)
        self._open_path = str(path)
        if self._loading_card is None:
            from panels.loading import LoadingOverlay

            self._loading_card = LoadingOverlay(self)
        self._loading_card.start(title or f"Opening {name}…")

        def current() -> bool:
            return seq == self._open_seq

        def on_event(event) -> None:
            from engines.jobs import Progress

            if current() and isinstance(event, Progress):
                self._loading_card.set_progress(event.fraction, event.message)

        def on_result(result) -> None:
            if not current():
                return
            self._end_loading()
            after, self._after_open = self._after_open, None
            try:
                apply(result)
                if after is not None:
                    after()
            except Exception as exc:  # noqa: BLE001 - reported as a failed open, never raised into Qt
                from studio.errors import describe_error

                self.file_open_failed.emit(str(path), describe_error(exc))
                return
            self.file_opened.emit(str(path))

        def on_error(record) -> None:
            if current():
                self._end_loading()
                self.file_open_failed.emit(str(path), record.error)
                if interrupted is not None and current():  # what was on its way before this file
                    self.load_in_background(interrupted[0], interrupted[1], interrupted[2], title=interrupted[3])

        def on_cancel() -> None:
            if current():
                self._end_loading()
            if current() or self._open_path != str(path):  # the same file opened again still goes on
                self.file_open_cancelled.emit(str(path))

        self._open_handle = self.services.jobs.submit(
            f"open {name}", self.name, job, device="io", on_event=on_event, on_result=on_result,
            on_error=on_error, on_cancel=on_cancel)
        return self._open_handle

    def _end_loading(self) -> None:
        self._open_handle = None
        self._open_request = None
        if self._loading_card is not None:
            self._loading_card.finish()

    @property
    def loading(self) -> bool:
        """Whether a background open is in flight."""
        return self._open_handle is not None

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
