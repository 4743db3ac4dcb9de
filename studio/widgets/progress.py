"""Progress bars that never repaint synchronously."""

from __future__ import annotations

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
