"""Small Qt helpers for the render panel."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy


def to_uint8(image) -> np.ndarray:
    """(H,W,3) float [0,1] or uint8 -> contiguous uint8."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, 2)
    return np.ascontiguousarray(a[..., :3])


class ImageView(QLabel):
    """A label that shows a numpy image scaled to fit (nearest neighbour for small images)."""

    def __init__(self, placeholder: str = "", parent=None) -> None:
        super().__init__(parent)
        self.setAlignment(Qt.AlignCenter)
        self.setMinimumSize(160, 160)
        # Ignored: the layout's stretch sizes the view, never its pixmap (scaled to the view, so
        # each layout pass shrank it by its frame and resized the plot beside it: a fit re-laid
        # out its whole pyqtgraph plot on the GUI thread at every progress step)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Ignored)
        self.setStyleSheet("QLabel { background: #202020; color: #aaaaaa; border: 1px solid #444; }")
        self.placeholder = placeholder
        self.image: np.ndarray | None = None
        self.setWordWrap(True)  # the placeholder wraps in a narrow view
        self.setText(placeholder)

    def set_image(self, image) -> None:
        """Show ``image`` (None clears to the placeholder)."""
        if image is None:
            self.image = None
            self.setPixmap(QPixmap())
            self.setText(self.placeholder)
            return
        self.image = to_uint8(image)
        self._refresh()

    def _refresh(self) -> None:
        if self.image is None:
            return
        h, w = self.image.shape[:2]
        qimage = QImage(self.image.data, w, h, 3 * w, QImage.Format_RGB888).copy()
        pix = QPixmap.fromImage(qimage)
        mode = Qt.FastTransformation if max(w, h) < 256 else Qt.SmoothTransformation
        self.setPixmap(pix.scaled(max(1, self.width() - 4), max(1, self.height() - 4), Qt.KeepAspectRatio, mode))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._refresh()
