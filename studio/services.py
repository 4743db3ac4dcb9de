"""What the studio offers every panel: the job queue, the log, notifications, settings, device."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QObject, Signal

from studio.jobs import JobQueue


class StudioServices(QObject):
    """Handed to each panel as ``self.services``.

    ``jobs``      the :class:`~studio.jobs.JobQueue`
    ``log(...)``  append to the log dock
    ``notify(...)`` non-modal message (toast + status bar)
    ``send_to(panel, kind, payload)`` give data to another panel and switch to it
    ``device()``  the compute device engines should use now
    """

    message = Signal(str, str, str)  # level, text, details
    notification = Signal(str, str)  # level, text
    send_requested = Signal(str, str, object)  # panel, kind, payload

    def __init__(self, jobs: JobQueue | None = None, settings: Any = None) -> None:
        super().__init__()
        self.jobs = jobs or JobQueue()
        self.settings = settings
        self.jobs.log.connect(self.message)

    def log(self, text: str, level: str = "info", details: str = "") -> None:
        """Write a line to the log dock."""
        self.message.emit(level, text, details)

    def notify(self, text: str, level: str = "info", details: str = "") -> None:
        """Show a non-modal notification (and log it). An error shown from a failed job's ``on_error``
        is that failure's one message: the queue shows none of its own, and the log line carries the
        job's traceback."""
        if level == "error":
            job_details = self.jobs.failure_reported()
            details = details or job_details
        self.message.emit(level, text, details)
        self.notification.emit(level, text)

    def send_to(self, panel: str, kind: str, payload: Any) -> None:
        """Ask the main window to give ``payload`` to ``panel`` and show that panel."""
        self.send_requested.emit(panel, kind, payload)

    def device(self) -> str:
        """The device engines should use (settings override, else cuda → mps → cpu)."""
        from engines.device import get_device

        return get_device()
