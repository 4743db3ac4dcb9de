"""The log dock: time, level and message per line; details (tracebacks) as expandable children."""

from __future__ import annotations

import datetime as dt

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

LEVEL_COLOURS = {"warning": QColor("#d7a000"), "error": QColor("#e04040")}


class LogView(QTreeWidget):
    """Append-only log of engine messages, warnings and errors."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("logView")
        self.setColumnCount(3)
        self.setHeaderLabels(["Time", "Level", "Message"])
        self.header().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.setColumnWidth(0, 80)
        self.setColumnWidth(1, 70)
        self.setUniformRowHeights(True)

    def append(self, level: str, message: str, details: str = "") -> QTreeWidgetItem:
        """Add one entry (``details`` become a child line, e.g. a traceback)."""
        item = QTreeWidgetItem([dt.datetime.now().strftime("%H:%M:%S"), level, message])
        item.setToolTip(2, message)
        colour = LEVEL_COLOURS.get(level)
        if colour is not None:
            for column in range(3):
                item.setForeground(column, colour)
        if details:
            child = QTreeWidgetItem(["", "", details.strip()])
            child.setFlags(child.flags() | Qt.ItemFlag.ItemIsSelectable)
            item.addChild(child)
        self.addTopLevelItem(item)
        self.scrollToItem(item)
        return item

    def messages(self) -> list[tuple[str, str]]:
        """(level, message) of every entry, oldest first (for tests)."""
        return [(self.topLevelItem(i).text(1), self.topLevelItem(i).text(2)) for i in range(self.topLevelItemCount())]
