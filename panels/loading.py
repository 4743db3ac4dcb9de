"""The loading state a panel shows while a file opens on a worker: a card over the workspace.

The card names the file, shows the job's progress and message, and lets clicks through to
nothing (the workspace under it keeps its previous content until the new data arrives).
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QFrame, QLabel, QProgressBar, QVBoxLayout, QWidget

from studio.widgets.progress import set_progress_later


class LoadingOverlay(QFrame):
    """A centred card over ``parent`` with a title, a progress bar and a message line."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("loadingOverlay")
        self.setStyleSheet(
            "#loadingOverlay { background: rgba(30, 34, 40, 225); border-radius: 10px; }"
            "#loadingOverlay QLabel { color: white; background: transparent; }"
        )
        layout = QVBoxLayout(self)
        layout.setContentsMargins(22, 18, 22, 18)
        self.title = QLabel("")
        self.title.setStyleSheet("font-weight: bold; font-size: 14px;")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)  # determinate: a busy animation would repaint (and recompose GL views) nonstop
        self.bar.setTextVisible(False)
        self.bar.setFixedWidth(320)
        self.message = QLabel("")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        for widget in (self.title, self.bar, self.message):
            layout.addWidget(widget, 0, Qt.AlignmentFlag.AlignHCenter)
        self.hide()
        parent.installEventFilter(self)

    def start(self, title: str) -> None:
        """Show the card with ``title`` and a busy bar."""
        self.title.setText(title)
        self.message.setText("starting…")
        set_progress_later(self.bar, 0)  # reset() repaints at once, and the panel under the translucent card with it
        self._place()
        self.show()
        self.raise_()

    def set_progress(self, fraction: float, message: str = "") -> None:
        """Show ``fraction`` in [0, 1] and what is being done."""
        value = int(max(0.0, min(1.0, fraction)) * 100)
        if value != self.bar.value():
            set_progress_later(self.bar, value)
        if message and message != self.message.text():
            self.message.setText(message)

    def finish(self) -> None:
        """Hide the card."""
        self.hide()

    @property
    def active(self) -> bool:
        """Whether the card is shown (a load is in flight)."""
        return not self.isHidden()

    def _place(self) -> None:
        self.adjustSize()
        parent = self.parentWidget()
        self.move(max(0, (parent.width() - self.width()) // 2), max(0, (parent.height() - self.height()) // 3))

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        """Stay centred when the panel is resized."""
        if event.type() == QEvent.Type.Resize and not self.isHidden():
            self._place()
        return False
