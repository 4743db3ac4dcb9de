"""Rows of controls that wrap onto a second line in a narrow window instead of widening it."""

from __future__ import annotations

from qtpy.QtWidgets import QHBoxLayout, QLabel, QWidget
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


def flow_row(*items: QWidget | tuple[str, QWidget]) -> QFlowLayout:
    """A row of ``items`` (widgets, or ``(label text, widget)`` pairs, see :func:`labelled`) that wraps."""
    row = QFlowLayout()
    row.setHorizontalSpacing(ROW_SPACING)  # (QFlowLayout ignores QLayout.setSpacing)
    row.setVerticalSpacing(ROW_SPACING)
    for item in items:
        row.addWidget(labelled(*item) if isinstance(item, tuple) else item)
    return row
