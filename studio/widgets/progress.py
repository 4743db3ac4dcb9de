"""Progress bars that never repaint synchronously."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QProgressBar


def set_progress_later(bar: QProgressBar, value: int, text: str | None = None) -> None:
    """Set ``bar`` to ``value`` (and its ``text`` format) without the synchronous repaint of
    ``QProgressBar.setValue``: in a window holding an OpenGL view that repaint recomposes, and may
    redraw, the whole window on the GUI thread. The bar is painted with the next ordinary update."""
    bar.setUpdatesEnabled(False)
    try:
        bar.setValue(value)
        if text is not None:
            bar.setFormat(text)
    finally:
        bar.setUpdatesEnabled(True)  # schedules an ordinary (queued) update


class ElidedProgressBar(QProgressBar):
    """A progress bar whose text never wraps: it is cut with "…" to the bar's width (the style would
    break it onto a second line, half hidden in a table row); the whole text is the tooltip."""

    #: room kept free on each side of the text (pixels)
    PADDING = 4

    def text(self) -> str:
        """The format's text (``%p`` etc. filled in by Qt), cut to the width the bar shows."""
        full = super().text()
        room = self.contentsRect().width() - 2 * self.PADDING
        return self.fontMetrics().elidedText(full, Qt.TextElideMode.ElideRight, max(room, 0))

    def setFormat(self, text: str) -> None:
        """Set the text format; the tooltip shows it whole."""
        super().setFormat(text)
        self.setToolTip(text)
