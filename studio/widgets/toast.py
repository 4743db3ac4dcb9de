"""A non-modal notification that appears over the bottom-right corner and fades after a while."""

from __future__ import annotations

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QLabel, QWidget

STYLES = {
    "info": "background:#2d6cdf;color:white;",
    "warning": "background:#b07800;color:white;",
    "error": "background:#c0392b;color:white;",
}


class Toast(QLabel):
    """Shows one message at a time over its parent; never takes focus, never blocks."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("toast")
        self.setWordWrap(True)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, False)
        self.setMaximumWidth(460)
        self.hide()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.hide)

    def show_message(self, text: str, level: str = "info", seconds: float = 6.0) -> None:
        """Display ``text`` for ``seconds``."""
        self.setStyleSheet(STYLES.get(level, STYLES["info"]) + "padding:10px;border-radius:6px;")
        self.setText(text)
        self.adjustSize()
        parent = self.parentWidget()
        self.move(parent.width() - self.width() - 16, parent.height() - self.height() - 16)
        self.show()
        self.raise_()
        self._timer.start(int(seconds * 1000))

    def mousePressEvent(self, event) -> None:
        """Click to dismiss."""
        self.hide()
