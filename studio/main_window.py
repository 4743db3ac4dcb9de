"""The main window: panel switcher, workspace, parameters dock, job queue and log docks, menus."""

from __future__ import annotations

import os
import platform
import sys
import traceback
from pathlib import Path

from qtpy import QT_VERSION
from qtpy.QtCore import QEvent, QSize, Qt, QTimer
from qtpy.QtGui import QAction, QIcon, QKeySequence, QUndoGroup
from qtpy.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from engines.filekinds import MISSING
from studio import APP_NAME, __version__
from studio.errors import describe_error
from studio.export import PendingExport
from studio.jobs import EXAMINE_LANE, FINAL_STATES, JobQueue
from studio.routing import (
    ASK,
    ERROR,
    RESTORE,
    UNSUPPORTED,
    choose_panel,
    examined,
    failure_message,
    route_path,
    route_paths_job,
)
from studio.services import StudioServices
from studio.settings import StudioSettings
from studio.startup import StartupLoader, ensure_worker_threads
from studio.theme import apply_theme
from studio.widgets.job_table import JobTable, queue_summary
from studio.widgets.log_view import LogView
from studio.widgets.settings_dialog import SettingsDialog
from studio.widgets.toast import Toast

ICON_DIR = Path(__file__).resolve().parents[1] / "assets" / "icons"
CLOSE_WAIT_SECONDS = 2.0

#: the parameters dock's width to begin with: as wide as the widest panel's controls (Volume's, 434 px), so
#: the workspace does not narrow the first time that panel is shown (the 3D views would draw everything again)
PARAMS_DOCK_MIN_WIDTH = 440


class _PanelSlot:
    """A registered panel: its class (or import error) and, once built, its widget."""

    def __init__(self, name: str, spec: str) -> None:
        self.name = name
        self.spec = spec
        self.cls = None
        self.error = ""
        self.widget = None  # the Panel instance, built on first use (or while idle after start-up)
        self.page = QWidget()  # placeholder in the stack until built
        self.params_page = QWidget()

    @property
    def title(self) -> str:
        return getattr(self.cls, "title", self.name.title())



def size_to_current_page(stack: QStackedWidget) -> None:
    """Let only the shown page of ``stack`` count for its size: a QStackedWidget is as large as the
    largest of its pages, so a wide panel shown once would keep the window that wide (hidden pages
    get the Ignored size policy)."""
    current = stack.currentWidget()
    for index in range(stack.count()):
        page = stack.widget(index)
        policy = QSizePolicy.Policy.Preferred if page is current else QSizePolicy.Policy.Ignored
        page.setSizePolicy(policy, policy)
    stack.updateGeometry()


class MainWindow(QMainWindow):
    """Spectra Studio's main window. Panels are built lazily, the first time they are shown."""

    def __init__(self, settings: StudioSettings | None = None, registry: list | None = None,
                 warm_up: bool | None = None) -> None:
        """``warm_up``: import the engines' heavy libraries and load their kernels in the background
        (default: unless the environment sets ``SPECTRA_WARM_UP=0``)."""
        super().__init__()
        from panels import PANEL_REGISTRY, load_panel_class

        self.settings = settings or StudioSettings()
        self.setWindowTitle(APP_NAME)
        self.setWindowIcon(QIcon(str(ICON_DIR / "studio.svg")))
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self.jobs = JobQueue(max_running=self.settings.max_running_jobs)
        ensure_worker_threads()
        self.services = StudioServices(self.jobs, self.settings)
        self.undo_group = QUndoGroup(self)

        self.slots: list[_PanelSlot] = []
        self._open_messages: dict[str, str] = {}  # path -> message once its background open ends
        self._examinations: list[dict] = []  # drops whose paths are examined on a worker, in drop order
        self._opening_examined = False
        for name, spec in registry if registry is not None else PANEL_REGISTRY:
            slot = _PanelSlot(name, spec)
            try:
                slot.cls = load_panel_class(spec)
            except Exception as exc:  # a broken panel must not stop the studio
                slot.error = f"{describe_error(exc)}\n\n{traceback.format_exc()}"
            self.slots.append(slot)

        self._build_central()
        self._build_docks()
        self._build_menus()
        self._build_status_bar()
        self.toast = Toast(self.centralWidget())
        self.services.message.connect(self.log_view.append)
        self.services.notification.connect(lambda level, text: self.toast.show_message(text, level))
        self.services.send_requested.connect(self._on_send_requested)
        self.jobs.failed.connect(
            lambda record: self.toast.show_message(f"{record.title} failed: {record.error}", "error")
        )

        geometry, state = self.settings.window_layout()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        start = self.settings.active_panel
        index = next((i for i, s in enumerate(self.slots) if s.name == start), 0)
        self.switcher.setCurrentRow(index)
        # device detection imports torch: a background thread does it (and warms the kernels up)
        self.startup = StartupLoader(self)
        self.startup.finished.connect(self._on_startup_finished)
        self._apply_compute_settings()
        if warm_up if warm_up is not None else os.environ.get("SPECTRA_WARM_UP", "1") != "0":
            self.startup.start_warm_up([slot.cls for slot in self.slots if slot.cls is not None],
                                       [lambda slot=slot: self._prebuild(slot) for slot in self.slots])

    # -- construction -----------------------------------------------------------------
    def _build_central(self) -> None:
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        self.stack = QStackedWidget()
        self.stack.setObjectName("workspace")
        for slot in self.slots:
            self.stack.addWidget(slot.page)
        layout.addWidget(self.stack)
        self.setCentralWidget(central)

        self.switcher = QListWidget()
        self.switcher.setObjectName("panelSwitcher")
        self.switcher.setViewMode(QListWidget.ViewMode.IconMode)
        self.switcher.setFlow(QListWidget.Flow.TopToBottom)
        self.switcher.setMovement(QListWidget.Movement.Static)
        self.switcher.setIconSize(QSize(40, 40))
        self.switcher.setGridSize(QSize(88, 76))
        self.switcher.setFixedWidth(96)
        self.switcher.setSpacing(4)
        for slot in self.slots:
            icon = QIcon(str(ICON_DIR / getattr(slot.cls, "icon", f"{slot.name}.svg")))
            item = QListWidgetItem(icon, slot.title)
            item.setTextAlignment(Qt.AlignmentFlag.AlignHCenter)
            item.setToolTip(f"{slot.title} panel" + (f" (failed to load: {slot.error.splitlines()[0]})" if slot.error else ""))
            self.switcher.addItem(item)
        self.switcher.currentRowChanged.connect(self.show_panel_index)
        dock = QDockWidget("Panels", self)
        dock.setObjectName("panelsDock")
        dock.setWidget(self.switcher)
        dock.setFeatures(QDockWidget.DockWidgetFeature.NoDockWidgetFeatures)
        dock.setTitleBarWidget(QWidget())
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

    def _build_docks(self) -> None:
        self.params_stack = QStackedWidget()
        for slot in self.slots:
            self.params_stack.addWidget(slot.params_page)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.params_stack)
        self.params_dock = QDockWidget("Parameters", self)
        self.params_dock.setObjectName("parametersDock")
        self.params_dock.setWidget(scroll)
        self.params_dock.setMinimumWidth(PARAMS_DOCK_MIN_WIDTH)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.params_dock)
        # a page whose controls grow later (a section opened, rows added) widens the dock again
        self._refit_timer = QTimer(self)
        self._refit_timer.setSingleShot(True)
        self._refit_timer.timeout.connect(self._fit_params_width)
        self.params_stack.installEventFilter(self)

        self.job_table = JobTable(self.jobs)
        self.job_table.panel_titles = {"studio": "Studio", **{slot.name: slot.title for slot in self.slots}}
        self.log_view = LogView()
        self.bottom_tabs = QTabWidget()
        self.bottom_tabs.addTab(self.job_table, "Jobs")
        self.bottom_tabs.addTab(self.log_view, "Log")
        self.bottom_dock = QDockWidget("Jobs and log", self)
        self.bottom_dock.setObjectName("jobsDock")
        self.bottom_dock.setWidget(self.bottom_tabs)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.bottom_dock)
        self.resizeDocks([self.bottom_dock], [200], Qt.Orientation.Vertical)
        self.job_table.row_added.connect(lambda _r: self.bottom_tabs.setCurrentWidget(self.job_table))

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_action = QAction("&Open…", self, shortcut=QKeySequence.StandardKey.Open)
        self.open_action.triggered.connect(self.open_dialog)
        file_menu.addAction(self.open_action)
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.export_action = QAction("&Export…", self, shortcut=QKeySequence("Ctrl+E"))
        self.export_action.triggered.connect(self.export_dialog)
        file_menu.addAction(self.export_action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)

        edit_menu = bar.addMenu("&Edit")
        self.undo_action = self.undo_group.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = self.undo_group.createRedoAction(self, "&Redo")
        self.redo_action.setShortcut(QKeySequence.StandardKey.Redo)
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)
        edit_menu.addSeparator()
        prefs = QAction("&Preferences…", self, shortcut=QKeySequence("Ctrl+,"))
        prefs.triggered.connect(self.preferences_dialog)
        edit_menu.addAction(prefs)

        view_menu = bar.addMenu("&View")
        theme_menu = view_menu.addMenu("&Theme")
        for theme in ("light", "dark"):
            action = QAction(theme.title(), self, checkable=True)
            action.setChecked(self.settings.theme == theme)
            action.triggered.connect(lambda _=False, t=theme: self.set_theme(t))
            theme_menu.addAction(action)
        self._theme_actions = theme_menu.actions()
        view_menu.addSeparator()
        view_menu.addAction(self.params_dock.toggleViewAction())
        view_menu.addAction(self.bottom_dock.toggleViewAction())

        jobs_menu = bar.addMenu("&Jobs")
        cancel_all = QAction("Cancel &all jobs", self)
        cancel_all.triggered.connect(self.jobs.cancel_all)
        jobs_menu.addAction(cancel_all)
        clear = QAction("&Clear finished jobs", self)
        clear.triggered.connect(self.job_table.clear_finished)
        jobs_menu.addAction(clear)

        help_menu = bar.addMenu("&Help")
        about = QAction("&About Spectra Studio", self)
        about.triggered.connect(self.about_dialog)
        help_menu.addAction(about)

    def _build_status_bar(self) -> None:
        self.device_label = QLabel("device: …")
        self.device_label.setObjectName("deviceLabel")
        self.memory_label = QLabel("")
        self.jobs_label = QLabel("")
        for label, width in ((self.jobs_label, 250), (self.memory_label, 130), (self.device_label, 150)):
            label.setMinimumWidth(width)
            self.statusBar().addPermanentWidget(label)
        self._status_timer = QTimer(self)
        self._status_timer.timeout.connect(self._refresh_status)
        self._status_timer.start(2000)
        self.jobs.job_changed.connect(lambda _record: self._refresh_status())
        self._refresh_status()

    # -- panels -----------------------------------------------------------------------
    def panel_names(self) -> list[str]:
        """Registered panel names, in switcher order."""
        return [slot.name for slot in self.slots]

    def slot(self, name: str) -> _PanelSlot:
        """The registered panel called ``name``."""
        for slot in self.slots:
            if slot.name == name:
                return slot
        raise KeyError(name)

    def panel(self, name: str):
        """The panel widget called ``name`` (built now if needed)."""
        return self._ensure_built(self.slot(name))

    def active_panel(self):
        """The panel widget shown now (None if it failed to load)."""
        return self.slots[self.switcher.currentRow()].widget if self.slots else None

    def active_name(self) -> str:
        """Name of the panel shown now."""
        return self.slots[self.switcher.currentRow()].name

    def show_panel(self, name: str) -> None:
        """Switch to the panel called ``name``."""
        self.switcher.setCurrentRow(self.panel_names().index(name))

    def show_panel_index(self, index: int) -> None:
        """Show the ``index``-th panel, building it on first use."""
        if index < 0:
            return
        slot = self.slots[index]
        widget = self._ensure_built(slot)
        self.stack.setCurrentWidget(slot.page if widget is None else widget)
        size_to_current_page(self.stack)
        self.params_stack.setCurrentWidget(slot.params_page if widget is None else widget.parameters_widget())
        self.params_dock.setWindowTitle(f"{slot.title} parameters")
        self._fit_params_dock()
        if widget is not None:
            self.undo_group.setActiveStack(widget.undo_stack)
            self.export_action.setEnabled(True)
            try:
                widget.on_shown()
            except Exception as exc:
                self.services.log(f"{slot.title}: {describe_error(exc)}", "error", traceback.format_exc())
        self.settings.active_panel = slot.name

    def _fit_params_dock(self) -> None:
        """Make the parameters dock wide enough for the shown panel's controls (no sideways scroll)."""
        size_to_current_page(self.params_stack)
        self._fit_params_width()

    def _fit_params_width(self) -> None:
        """The dock's minimum width: the widest minimum of the pages shown so far, plus a scroll bar
        (at most 560 px). It never narrows for a narrower page: a dock that followed each page moved
        the workspace's edge at every switch, and the 3D views, resized, drew everything again."""
        current = self.params_stack.currentWidget()
        if current is None:
            return
        scroll = self.params_dock.widget()
        needed = current.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width() + 8
        width = max(PARAMS_DOCK_MIN_WIDTH, min(max(needed, self.params_dock.minimumWidth()), 560))
        if width != self.params_dock.minimumWidth():
            self.params_dock.setMinimumWidth(width)

    def eventFilter(self, watched, event) -> bool:  # Qt override
        if watched is self.params_stack and event.type() == QEvent.Type.LayoutRequest:
            self._refit_timer.start(0)
        return super().eventFilter(watched, event)

    def _ensure_built(self, slot: _PanelSlot):
        if slot.widget is not None or slot.cls is None:
            if slot.cls is None and not slot.page.layout():
                self._show_load_error(slot)
            return slot.widget
        try:
            widget = slot.cls(self.services)
            params = widget.parameters_widget()
        except Exception as exc:
            slot.error = f"{describe_error(exc)}\n\n{traceback.format_exc()}"
            slot.cls = None
            self.services.log(f"{slot.title} panel failed to start: {describe_error(exc)}", "error", slot.error)
            self._show_load_error(slot)
            return None
        saved = self.settings.panel_parameters(slot.name)
        if saved:
            try:
                widget.restore_parameters(saved)
            except Exception as exc:
                self.services.log(f"{slot.title}: could not restore last parameters ({describe_error(exc)})", "warning")
        widget.file_opened.connect(self._on_file_opened)
        widget.file_open_failed.connect(self._on_file_open_failed)
        widget.file_open_cancelled.connect(self._on_file_open_cancelled)
        widget.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)  # until shown
        self.stack.insertWidget(self.stack.indexOf(slot.page), widget)
        params.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)  # until shown
        self.params_stack.insertWidget(self.params_stack.indexOf(slot.params_page), params)
        self.undo_group.addStack(widget.undo_stack)
        slot.widget = widget
        return widget

    def _prebuild(self, slot: _PanelSlot) -> list:
        """Build a panel not shown yet, while the studio is idle after start-up (a start-up GUI
        step): its first show then only lays it out and paints. Returns the panel's own pending
        parts, each built in a later turn."""
        if slot.widget is None and slot.cls is None:
            return []
        if slot.widget is not None:  # shown already (the start-up panel): only its pending parts
            return slot.widget.pending_builds()
        widget = self._ensure_built(slot)
        return [] if widget is None else widget.pending_builds()

    def _show_load_error(self, slot: _PanelSlot) -> None:
        layout = QVBoxLayout(slot.page)
        label = QLabel(f"<h3>The {slot.title} panel could not be loaded</h3><pre>{slot.error}</pre>")
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setWordWrap(True)
        layout.addWidget(label)
        layout.addStretch(1)

    # -- files ------------------------------------------------------------------------
    def _acceptors(self) -> list:
        return [(slot.name, slot.cls.accepts) for slot in self.slots if slot.cls is not None]

    def open_paths(self, paths: list[str]):
        """Open dropped / chosen paths, in order, each in the panel that handles it; returns the job handle.

        Their content is examined (headers sniffed, provenance read) by a job on the
        :data:`EXAMINE_LANE`, never on the GUI thread: a folder of thousands of DICOM files or a
        network share takes a while. The status line and a job row show it meanwhile. Each path is
        then opened as :meth:`open_path` would, in drop order, and after the paths of earlier drops.
        """
        paths = [os.fspath(path) for path in paths]
        if not paths:
            return None
        examination = {"paths": paths, "routes": None}  # routes: filled when its job ends
        self._examinations.append(examination)
        label = (Path(paths[0]).name or paths[0]) if len(paths) == 1 else f"{len(paths)} files"

        def ended(routes) -> None:
            examination["routes"] = routes
            self._open_examined()

        self.statusBar().showMessage(f"Examining {label}…")
        acceptors = self._acceptors()
        return self.jobs.submit(
            f"examine {label}", "studio", lambda: route_paths_job(paths, acceptors), device=EXAMINE_LANE,
            on_result=ended, on_error=lambda _record: ended([]), on_cancel=lambda: ended([]))

    def _open_examined(self) -> None:
        """Open the routed paths of the oldest drops whose examination ended (later ones wait for them)."""
        if self._opening_examined:  # a dialog (which panel?) of an earlier path is open
            return
        self._opening_examined = True
        try:
            while self._examinations and self._examinations[0]["routes"] is not None:
                for route in self._examinations.pop(0)["routes"]:
                    self._open_routed(choose_panel(route, self.active_name()))
        finally:
            self._opening_examined = False
        if not self._examinations and self.statusBar().currentMessage().startswith("Examining "):
            self.statusBar().clearMessage()

    def open_path(self, path: str, ask=None) -> str | None:
        """Route ``path`` by its content and open it; returns the panel name, or None (with a message).

        Sniffs ``path`` here, on the calling thread (scripts, tests); the window's drops, File > Open
        and recent files go through :meth:`open_paths`, which sniffs on a worker.
        ``ask(candidates, path) -> name | None`` chooses among several panels (default: a dialog).
        An exported file with provenance is opened in the panel that made it and its parameters
        are restored (all or nothing).
        """
        return self._open_routed(route_path(path, self._acceptors(), self.active_name()), ask)

    def _open_routed(self, decision, ask=None) -> str | None:
        """Open ``decision.path`` as ``decision`` (a :class:`studio.routing.Route`) says."""
        path = decision.path
        if decision.action in (ERROR, UNSUPPORTED):
            if decision.kind == MISSING:
                self.settings.forget_recent_file(path)
            self._report_open_failure(decision.message)
            return None
        name = decision.panel
        if decision.action == ASK:
            name = (ask or self._ask_panel)(decision.candidates, path)
            if not name:
                return None
        panel = self.panel(name)
        if panel is None:
            self._report_open_failure(f"{Path(path).name}: the {self.slot(name).title} panel is not available")
            return None
        title, file_name = self.slot(name).title, Path(path).name
        try:
            with examined(path, decision.facts):  # the panel asks the file system nothing on the GUI thread
                pending = self._open_in(panel, decision)
        except Exception as exc:
            self._report_open_failure(failure_message(path, describe_error(exc)), traceback.format_exc())
            return None
        self.show_panel(name)
        if decision.action == RESTORE:
            message = (f"Opened {file_name} in {title} and restored its parameters" if decision.open_file
                       else f"Restored the {title} parameters saved with {file_name}")
        else:
            message = f"Opened {file_name} in {title}"
        if pending is None:  # opened synchronously
            self._file_opened(path, message)
        else:  # a job reads the file: the panel shows its loading state, file_opened/failed follow
            self._open_messages[str(path)] = message
            self.statusBar().showMessage(f"Opening {file_name} in {title}…", 5000)
        return name

    @staticmethod
    def _open_in(panel, decision):
        """``panel.open_file`` / ``open_exported`` for ``decision``; returns the job handle or None."""
        if decision.action == RESTORE:
            provenance = dict(decision.provenance or {})
            provenance["source_path"] = os.path.abspath(decision.path)
            return panel.open_exported(decision.path, provenance, open_file=decision.open_file)
        return panel.open_file(decision.path)

    def _on_file_opened(self, path: str) -> None:
        """A panel's background open finished (the panel's own samples are not the user's files)."""
        message = self._open_messages.pop(path, None)
        if message is not None:
            self._file_opened(path, message)

    def _file_opened(self, path: str, message: str) -> None:
        self.settings.add_recent_file(path)
        self.services.log(message)
        self.statusBar().showMessage(message, 5000)

    def _on_file_open_failed(self, path: str, message: str) -> None:
        self._open_messages.pop(path, None)
        self._report_open_failure(failure_message(path, message))  # "Cannot open x.vp: <reason>", x.vp once

    def _on_file_open_cancelled(self, path: str) -> None:
        """A panel's background open was cancelled: nothing will be opened, forget its message."""
        if self._open_messages.pop(path, None) is not None:
            self.statusBar().showMessage(f"Cancelled opening {Path(path).name or path}", 5000)

    def _report_open_failure(self, message: str, details: str = "") -> None:
        """One log line and one toast (a failed open job's own message: see ``StudioServices.notify``)."""
        self.services.notify(f"Cannot open {message}", "error", details)
        self.statusBar().showMessage(f"Cannot open {message}", 5000)  # not "Opening …" any more

    def _ask_panel(self, candidates: list[str], path: str) -> str | None:
        titles = [self.slot(c).title for c in candidates]
        choice, ok = QInputDialog.getItem(
            self, "Open with", f"Which panel should open {Path(path).name}?", titles, 0, False
        )
        return candidates[titles.index(choice)] if ok else None

    def file_filters(self) -> str:
        """File-dialog filter listing every panel's file types."""
        parts, everything = [], []
        for slot in self.slots:
            if slot.cls is None:
                continue
            patterns = [f"*{s}" for s in slot.cls.file_types if s != "/"]
            everything += patterns
            parts.append(f"{slot.title} ({' '.join(patterns)})")
        return ";;".join([f"All supported ({' '.join(sorted(set(everything)))})", *parts, "All files (*)"])

    def open_dialog(self) -> None:
        """File > Open…"""
        paths, _ = QFileDialog.getOpenFileNames(self, "Open", "", self.file_filters())
        self.open_paths(paths)

    def _fill_recent_menu(self) -> None:
        """File > Recent: the paths as remembered (not checked here, a stat each on the GUI thread;
        the examination of a chosen path says when it is gone, and it leaves the list)."""
        self.recent_menu.clear()
        recent = self.settings.recent_files(existing=False)
        if not recent:
            self.recent_menu.addAction("(none)").setEnabled(False)
        for path in recent:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_paths([p]))

    def export_dialog(self) -> None:
        """File > Export… for the active panel (asks before overwriting)."""
        panel = self.active_panel()
        if panel is None or not panel.can_export():
            self.toast.show_message("Nothing to export in this panel yet.", "warning")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export", "", panel.export_filters)
        if not path:
            return
        self.export_to(path, force=True)  # the file dialog already asked about overwriting

    def export_to(self, path: str, force: bool = False) -> str | None:
        """Export the active panel's result to ``path``; returns the path or None on failure."""
        panel = self.active_panel()
        try:
            written = panel.export(path, force=force)
        except Exception as exc:
            self.services.log(f"Export failed: {describe_error(exc)}", "error", traceback.format_exc())
            self.toast.show_message(f"Export failed: {describe_error(exc)}", "error")
            return None
        if isinstance(written, PendingExport) or not os.path.exists(written):
            message = f"Exporting {Path(written).name}: the file is written when its job finishes"
        else:
            message = f"Exported {written}"
        self.services.log(message)
        self.statusBar().showMessage(message, 5000)
        return written

    def _on_send_requested(self, panel_name: str, kind: str, payload) -> None:
        panel = self.panel(panel_name)
        if panel is None:
            self.toast.show_message(f"The {self.slot(panel_name).title} panel is not available", "error")
            return
        try:
            panel.receive(kind, payload)
        except Exception as exc:
            self.toast.show_message(f"{self.slot(panel_name).title}: {describe_error(exc)}", "error")
            return
        self.show_panel(panel_name)

    # -- drag and drop ----------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        """Accept drags that carry local files."""
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:
        """Keep accepting file drags while they move."""
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        """Open every dropped file in the panel that handles it (examined on a worker, see :meth:`open_paths`)."""
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.open_paths(paths)

    # -- settings, theme, status --------------------------------------------------------
    def _apply_compute_settings(self) -> None:
        """Apply the device and threads settings on the start-up thread (torch is imported there)."""
        self.jobs.set_max_running(self.settings.max_running_jobs)
        self.device_label.setText("device: detecting…")
        self.device_label.setToolTip("Loading the compute libraries and detecting the device in the background")
        self.startup.detect_device(self.settings.device, self.settings.threads)

    def _on_startup_finished(self, kind: str, result: dict) -> None:
        """The start-up thread finished a step: show the device, log warnings."""
        for warning in result.get("warnings", []):
            self.services.log(warning, "warning")
        if kind == "device":
            self.device_label.setText(f"device: {result.get('label', '?')}")
            self.device_label.setToolTip(f"Engines compute on {result.get('label', '?')}")
        elif kind == "warm-up":
            self.services.log(f"Engines ready ({result.get('seconds', 0.0):.1f} s in the background)")

    def preferences_dialog(self) -> None:
        """Edit > Preferences…"""
        from engines.device import available_devices

        dialog = SettingsDialog(self.settings, available_devices()[:-1] + ["cpu"], self)
        if dialog.exec():
            dialog.store(self.settings)
            self._apply_compute_settings()

    def set_theme(self, theme: str) -> None:
        """Switch between the light and dark theme (remembered)."""
        self.settings.theme = theme
        for action in self._theme_actions:
            action.setChecked(action.text().lower() == theme)
        apply_theme(QApplication.instance(), theme)

    def _refresh_status(self) -> None:
        from engines.device import memory_in_use_mb

        self.memory_label.setText(f"memory: {memory_in_use_mb():,.0f} MiB")
        self.jobs_label.setText(queue_summary(self.jobs.records()))

    def versions(self) -> dict[str, str]:
        """Versions shown in Help > About."""
        from importlib import metadata

        def version(dist: str) -> str:
            try:
                return metadata.version(dist)
            except metadata.PackageNotFoundError:
                return "not installed"

        from engines.device import device_label

        return {
            "Spectra Studio": __version__,
            "Python": platform.python_version(),
            "Qt": QT_VERSION,
            "PySide6": version("PySide6-Essentials") if version("PySide6") == "not installed" else version("PySide6"),
            "torch": version("torch"),
            "diffusers": version("diffusers"),
            "vispy": version("vispy"),
            "device": device_label(),
        }

    def about_dialog(self) -> None:
        """Help > About."""
        rows = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in self.versions().items())
        QMessageBox.about(
            self,
            f"About {APP_NAME}",
            f"<h3>{APP_NAME}</h3><p>Generation, Gaussian splatting, volume transfer functions and "
            f"codec inspection on your own files.</p><table>{rows}</table>",
        )

    def closeEvent(self, event) -> None:
        """Save layout and panel parameters, cancel every job and wait at most
        :data:`CLOSE_WAIT_SECONDS` for them, then close (the process exit ends any straggler)."""
        from studio.gc_guard import collections_paused

        self.startup.drop_gui_steps()  # no panel is built for a closed window
        self.save_state()
        self.jobs.cancel_all()
        with collections_paused():  # a collection would hold the GUI thread past the deadline
            stopped = self.jobs.wait_all(timeout=CLOSE_WAIT_SECONDS)
        if not stopped:
            left = [r.name for r in self.jobs.records() if r.state not in FINAL_STATES]
            print(f"closing with {len(left)} job(s) still stopping: {', '.join(left)}", file=sys.stderr)
        super().closeEvent(event)

    def save_state(self) -> None:
        """Persist window layout and every built panel's parameters."""
        self.settings.set_window_layout(self.saveGeometry(), self.saveState())
        for slot in self.slots:
            if slot.widget is None:
                continue
            try:
                self.settings.set_panel_parameters(slot.name, slot.widget.current_parameters())
            except Exception as exc:
                print(f"could not save {slot.name} parameters: {exc}", file=sys.stderr)
        self.settings.sync()

    def resizeEvent(self, event) -> None:
        """Keep the notification in the corner."""
        super().resizeEvent(event)
        if self.toast.isVisible():
            parent = self.toast.parentWidget()
            self.toast.move(parent.width() - self.toast.width() - 16, parent.height() - self.toast.height() - 16)
