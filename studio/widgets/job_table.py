"""The job queue table: name, panel, progress, elapsed, remaining, status, cancel / pause."""

from __future__ import annotations

from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtGui import QColor, QPalette
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from studio.jobs import (
    ACTIVE_STATES,
    CANCELLED,
    CANCELLING,
    DONE,
    FAILED,
    FINAL_STATES,
    PAUSED,
    QUEUED,
    RUNNING,
    JobQueue,
    JobRecord,
    is_housekeeping,
    percent,
)
from studio.widgets.progress import ElidedProgressBar, set_progress_later

#: the bar colour of a failed job
FAILED_COLOUR = "#c0392b"
#: a housekeeping job (examining a drop, scanning model folders) gets a row only if it still runs after this
HOUSEKEEPING_DELAY_MS = 500
COLUMNS = ["Job", "Panel", "Progress", "Elapsed", "Remaining", "Status", ""]


def format_seconds(seconds: float | None) -> str:
    """``75.2`` → ``1:15``; None → ``–``."""
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def status_text(record: JobRecord) -> str:
    """The Status column: ``running``, ``cancelling…``, ``failed: <reason>`` ..."""
    if record.state == CANCELLING:
        return "cancelling…"
    return record.state + (f": {record.error}" if record.error else "")


def queue_summary(records: list[JobRecord]) -> str:
    """The status-bar line: ``jobs: 1 running, 2 waiting · 0:12 left`` (the jobs' own ETA)."""
    running = [r for r in records if r.state in (RUNNING, PAUSED)]
    cancelling = sum(1 for r in records if r.state == CANCELLING)
    waiting = sum(1 for r in records if r.state == QUEUED)
    text = f"jobs: {len(running)} running, {waiting} waiting"
    if cancelling:
        text += f", {cancelling} cancelling"
    etas = [r.remaining() for r in running]
    etas = [eta for eta in etas if eta is not None]
    if etas:
        text += f" · {format_seconds(max(etas))} left"
    return text


def mark_failed(bar: QProgressBar) -> None:
    """Colour a failed job's bar red through its palette (a style sheet would re-style the whole bar:
    no frame, the text at the top left of the cell instead of centred like the other rows)."""
    palette = bar.palette()
    palette.setColor(QPalette.ColorRole.Highlight, QColor(FAILED_COLOUR))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor("white"))
    bar.setPalette(palette)


class JobTable(QTableWidget):
    """Shows the jobs of a :class:`JobQueue`, newest at the bottom, with per-job controls.

    Every user job gets a row as it is submitted. Housekeeping jobs (:func:`studio.jobs.is_housekeeping`)
    get one only while they still run after :data:`HOUSEKEEPING_DELAY_MS` (someone may wait on them
    and want to cancel) or when they failed; a housekeeping row leaves when its job ends well.
    ``row_added(record)`` is emitted for each row added.
    """

    row_added = Signal(object)

    def __init__(self, queue: JobQueue, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.queue = queue
        self._rows: dict[int, int] = {}
        self._unshown: dict[int, JobRecord] = {}  # housekeeping jobs that have no row (yet)
        #: what the Panel column shows for a panel's name (its title); other names are shown as they are
        self.panel_titles: dict[str, str] = {}
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Fixed)
        self.setColumnWidth(2, 180)
        self.setColumnWidth(5, 260)
        self.setColumnWidth(6, 150)
        self.setObjectName("jobTable")
        queue.job_added.connect(self._on_job_added)
        queue.job_changed.connect(self.update_record)
        self._clock = QTimer(self)
        self._clock.timeout.connect(self._tick)
        self._clock.start(500)

    def _on_job_added(self, record: JobRecord) -> None:
        if not is_housekeeping(record):
            self.add_record(record)
            return
        self._unshown[record.id] = record
        QTimer.singleShot(HOUSEKEEPING_DELAY_MS, self, lambda: self._show_if_running(record))

    def _show_if_running(self, record: JobRecord) -> None:
        if self._unshown.get(record.id) is record and record.state not in FINAL_STATES:
            self.add_record(record)

    def add_record(self, record: JobRecord) -> None:
        """Append a row for a job."""
        self._unshown.pop(record.id, None)
        row = self.rowCount()
        self.insertRow(row)
        self._rows[record.id] = row
        for column in (0, 1, 3, 4, 5):
            self.setItem(row, column, QTableWidgetItem(""))
        bar = ElidedProgressBar()
        bar.setRange(0, 1000)
        bar.setTextVisible(True)
        self.setCellWidget(row, 2, bar)
        controls = QWidget()
        layout = QHBoxLayout(controls)
        layout.setContentsMargins(2, 0, 2, 0)
        pause = QPushButton("Pause")
        pause.setObjectName(f"pause-{record.id}")
        pause.clicked.connect(lambda _=False, r=record: self._toggle_pause(r))
        cancel = QPushButton("Cancel")
        cancel.setObjectName(f"cancel-{record.id}")
        cancel.clicked.connect(lambda _=False, i=record.id: self.queue.cancel(i))
        layout.addWidget(pause)
        layout.addWidget(cancel)
        self.setCellWidget(row, 6, controls)
        self.update_record(record)
        self.scrollToBottom()
        self.row_added.emit(record)

    def _toggle_pause(self, record: JobRecord) -> None:
        if record.state == PAUSED:
            self.queue.resume(record.id)
        elif record.state == RUNNING:
            self.queue.pause(record.id)

    def cancel_button(self, job_id: int) -> QPushButton:
        """The Cancel button of a job's row (for tests)."""
        return self.cellWidget(self._rows[job_id], 6).findChild(QPushButton, f"cancel-{job_id}")

    def update_record(self, record: JobRecord) -> None:
        """Refresh one row from its record (a housekeeping job's row appears when it fails and leaves
        when it ends well)."""
        if record.id in self._unshown and record.state in FINAL_STATES:
            del self._unshown[record.id]
            if record.state == FAILED:
                self.add_record(record)
            return
        row = self._rows.get(record.id)
        if row is None:
            return
        if record.state in (DONE, CANCELLED) and is_housekeeping(record):
            self._remove_row(record.id)
            return
        self.item(row, 0).setText(record.title)
        self.item(row, 1).setText(self.panel_titles.get(record.panel, record.panel))
        bar: QProgressBar = self.cellWidget(row, 2)
        if record.state == QUEUED:
            text = record.message or "waiting for a free slot"
        elif record.state == CANCELLING:
            text = f"{percent(record.fraction)}%  cancelling…"
        elif record.state in (CANCELLED, FAILED):
            text = record.message  # "cancelled at 35%", "cancelled before it started", "failed"
        else:
            text = f"{percent(record.fraction)}%  {record.message}".strip()
        set_progress_later(bar, int(record.fraction * 1000), text)
        self.item(row, 3).setText(format_seconds(record.elapsed() if record.started else None))
        self.item(row, 4).setText(format_seconds(record.remaining()))
        status = self.item(row, 5)
        status.setText(status_text(record))
        status.setToolTip(record.details or record.error or record.state)
        if record.state == FAILED:
            status.setForeground(Qt.GlobalColor.red)
            mark_failed(bar)
        controls = self.cellWidget(row, 6)
        final = record.state in FINAL_STATES
        for button in controls.findChildren(QPushButton):
            button.setEnabled(not final and record.state != CANCELLING)
            if button.objectName().startswith("pause"):
                button.setText("Resume" if record.state == PAUSED else "Pause")
                button.setEnabled(record.state in (RUNNING, PAUSED))

    def clear_finished(self) -> None:
        """Remove the rows of jobs that have ended (done, cancelled or failed)."""
        for record in self.queue.records():
            if record.id in self._rows and record.state in FINAL_STATES:
                self._remove_row(record.id)

    def _remove_row(self, job_id: int) -> None:
        row = self._rows.pop(job_id)
        self.removeRow(row)
        self._rows = {k: (r - 1 if r > row else r) for k, r in self._rows.items()}

    def shown_jobs(self) -> list[int]:
        """The ids of the jobs that have a row, top to bottom."""
        return sorted(self._rows, key=self._rows.get)

    def _tick(self) -> None:
        for record in self.queue.records():
            if record.state in ACTIVE_STATES:
                self.update_record(record)
