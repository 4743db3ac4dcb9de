"""Rows of controls that wrap onto a second line in a narrow window instead of widening it."""

from __future__ import annotations

from qtpy.QtCore import QRect, QTimer
from qtpy.QtWidgets import QHBoxLayout, QLabel, QLayout, QWidget
from superqt import QFlowLayout

#: the gap between two controls of a row, and between its lines (px)
ROW_SPACING = 6


def labelled(text: str, widget: QWidget) -> QWidget:
    """``text`` and ``widget`` side by side in one widget: a wrapping row keeps them on one line, and
    the label is centred on the control (a flow layout aligns its items' tops)."""
    pair = QWidget()
    layout = QHBoxLayout(pair)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(4)
    layout.addWidget(QLabel(text))
    layout.addWidget(widget)
    return pair


class CachedFlowLayout(QFlowLayout):
    """superqt's QFlowLayout (laid out in Python) that lays its items out again only when the width or
    an item's size hint or visibility changed. Qt asks a height-for-width layout for its height many
    times per pass and invalidates every nested layout whenever the window relays out (a status text
    changed, a progress bar moved): the Render panel's rows were laid out 3,500 times in a 2-second fit
    (~0.3 s of the GUI thread)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._heights: dict[int, int] = {}
        self._heights_for: tuple | None = None  # the items' sizes the heights were computed with
        self._placed: tuple | None = None  # (rect, items' sizes) the items were last placed for
        self._key_turn: tuple | None = None  # the items' sizes, read in this event-loop turn

    def _items_key(self) -> tuple:
        """The items' size hints and visibility, read once per event-loop turn (a change posts a layout
        request, handled in a later turn, which reads them again)."""
        if self._key_turn is None:
            self._key_turn = tuple((item.sizeHint(), item.isEmpty()) for item in self._item_list)
            QTimer.singleShot(0, self._next_turn)
        return self._key_turn

    def _next_turn(self) -> None:
        self._key_turn = None

    def heightForWidth(self, width: int) -> int:  # noqa: N802 - Qt's name
        key = self._items_key()
        if key != self._heights_for:
            self._heights, self._heights_for = {}, key
        height = self._heights.get(width)
        if height is None:
            height = self._heights[width] = super().heightForWidth(width)
        return height

    def setGeometry(self, rect: QRect) -> None:  # noqa: N802
        placed = (QRect(rect), self._items_key())
        if placed == self._placed:
            QLayout.setGeometry(self, rect)
            return
        super().setGeometry(rect)
        self._placed = placed


def flow_row(*items: QWidget | tuple[str, QWidget]) -> QFlowLayout:
    """A row of ``items`` (widgets, or ``(label text, widget)`` pairs, see :func:`labelled`) that wraps."""
    row = CachedFlowLayout()
    row.setHorizontalSpacing(ROW_SPACING)  # (QFlowLayout ignores QLayout.setSpacing)
    row.setVerticalSpacing(ROW_SPACING)
    for item in items:
        row.addWidget(labelled(*item) if isinstance(item, tuple) else item)
    return row
