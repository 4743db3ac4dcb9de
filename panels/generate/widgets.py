"""Small widgets of the Generate panel: image view, input slots with a mask brush, history strip."""

from __future__ import annotations

import math

import numpy as np
from qtpy.QtCore import QPointF, QSize, Qt, Signal
from qtpy.QtGui import QIcon, QImage, QPainter, QPixmap
from qtpy.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp)"


def to_qimage(image: np.ndarray) -> QImage:
    """``(H, W, 3)`` or ``(H, W)`` uint8 -> a QImage that owns its pixels."""
    array = np.ascontiguousarray(image)
    if array.ndim == 2:
        array = np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2))
    h, w = array.shape[:2]
    return QImage(array.data, w, h, 3 * w, QImage.Format_RGB888).copy()


def device_pixmap(image: np.ndarray, size: QSize, ratio: float) -> QPixmap:
    """``image`` fitted into ``size`` logical pixels at ``ratio`` device pixels per logical one (sharp on
    a HiDPI screen, where a pixmap of logical size is enlarged again): pixelated when enlarged more
    than twice, smooth otherwise."""
    pix = QPixmap.fromImage(to_qimage(image))
    target = size * ratio
    mode = Qt.FastTransformation if pix.width() < target.width() / 2 else Qt.SmoothTransformation
    pix = pix.scaled(target, Qt.KeepAspectRatio, mode)
    pix.setDevicePixelRatio(ratio)
    return pix


def qimage_to_array(image: QImage) -> np.ndarray:
    """A QImage -> ``(H, W, 3)`` uint8."""
    image = image.convertToFormat(QImage.Format_RGB888)
    w, h = image.width(), image.height()
    ptr = image.constBits()
    data = np.frombuffer(ptr, dtype=np.uint8, count=image.bytesPerLine() * h).reshape(h, image.bytesPerLine())
    return data[:, : 3 * w].reshape(h, w, 3).copy()


def read_image_file(path: str) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8; ValueError with a clear message if unreadable."""
    from engines.imagefile import RGB_COPY_BYTES, open_image

    return np.asarray(open_image(path, extra_bytes_per_pixel=RGB_COPY_BYTES).convert("RGB"))


class ImageView(QLabel):
    """Shows one image scaled to fit (pixelated when enlarged), or a hint when empty."""

    def __init__(self, hint: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: np.ndarray | None = None
        self._hint = hint
        self.setAlignment(Qt.AlignCenter)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setStyleSheet("QLabel { background: #1e1e1e; color: #9e9e9e; border-radius: 6px; }")
        self.setText(hint)

    def image(self) -> np.ndarray | None:
        """The image shown, ``(H, W, 3)`` uint8, or None."""
        return self._image

    def set_image(self, image: np.ndarray | None) -> None:
        """Show ``image`` (``(H, W, 3)`` uint8) or the hint when None."""
        self._image = None if image is None else np.asarray(image)
        self._refresh()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._refresh()

    def _refresh(self) -> None:
        if self._image is None:
            self.setPixmap(QPixmap())
            self.setText(self._hint)
            return
        self.setPixmap(device_pixmap(self._image, self.size() - QSize(8, 8), self.devicePixelRatioF()))


class MaskCanvas(QLabel):
    """An input image with a paintable mask (left button paints "regenerate", right erases)."""

    changed = Signal()

    def __init__(self, hint: str = "Drop, paste or open\nan input image", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hint = hint
        self._image: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self.brush = 4.0  # radius in image pixels
        self._image_shared = True  # _image may be the caller's array (copied before a sketch draws into it)
        # (step, the image subsampled by step for display, the mask's max over each step × step block)
        self._thumb: tuple[int, np.ndarray, np.ndarray] | None = None
        self._shown: QImage | None = None  # what paintEvent draws at _shown_at (see _compose)
        self._shown_at = QPointF()
        self.mode = "off"  # "off", "mask" (paint the region to regenerate) or "sketch" (draw into the image)
        self.setFixedSize(180, 180)
        self.setAlignment(Qt.AlignCenter)
        self.setStyleSheet("QLabel { background: #2b2b2b; color: #9e9e9e; border: 1px dashed #666; }")
        self.setText(hint)

    def image(self) -> np.ndarray | None:
        return self._image

    def mask(self) -> np.ndarray | None:
        """``(H, W)`` float32 in [0, 1] (1 = regenerate), or None when nothing is painted."""
        if self._mask is None or not self._mask.any():
            return None
        return self._mask

    def set_image(self, image: np.ndarray | None) -> None:
        self._image = None if image is None else np.asarray(image, dtype=np.uint8)
        self._image_shared, self._thumb = True, None
        self._mask = None if image is None else np.zeros(self._image.shape[:2], np.float32)
        self._refresh()
        self.changed.emit()

    def set_mask(self, mask: np.ndarray | None) -> None:
        if self._image is None:
            return
        self._mask = np.zeros(self._image.shape[:2], np.float32) if mask is None else np.clip(
            np.asarray(mask, np.float32), 0, 1)
        self._thumb = None
        self._refresh()
        self.changed.emit()

    def invert_mask(self) -> None:
        if self._mask is not None:
            self.set_mask(1.0 - self._mask)

    def _geometry(self):
        """``(scale, ox, oy)``: image pixel ``(x, y)`` is drawn over the logical rectangle from
        ``(ox + x·scale, oy + y·scale)``, ``scale`` wide and high (the image fitted and centred)."""
        h, w = self._image.shape[:2]
        scale = min(self.width() / w, self.height() / h)
        ox = (self.width() - w * scale) / 2
        oy = (self.height() - h * scale) / 2
        return scale, ox, oy

    def image_position(self, pos: QPointF) -> tuple[float, float]:
        """Image coordinates ``(x, y)`` under a pointer at logical widget position ``pos``: taken at the
        centre of the device pixel under it, with the same mapping the picture is drawn with
        (:func:`device_samples`), so the pixel painted is the one shown there at any pixel ratio."""
        scale, ox, oy = self._geometry()
        ratio = self.devicePixelRatioF()
        px = (math.floor(pos.x() * ratio) + 0.5) / ratio
        py = (math.floor(pos.y() * ratio) + 0.5) / ratio
        return (px - ox) / scale, (py - oy) / scale

    def shown_image(self) -> QImage | None:
        """The picture drawn: one pixel per device pixel of the fitted image (mask blended in)."""
        return self._shown

    def paintEvent(self, event) -> None:  # Qt override
        super().paintEvent(event)  # frame and background (and the hint when there is no image)
        if self._image is None:
            return
        if self._shown is None or self._shown.devicePixelRatio() != self.devicePixelRatioF():
            self._compose()  # first paint, or the window moved to a screen of another pixel ratio
        painter = QPainter(self)
        painter.drawImage(self._shown_at, self._shown)  # unscaled: device pixel for device pixel
        painter.end()

    def paint_at(self, x: float, y: float, value: float = 1.0, target: str = "mask") -> None:
        """Paint a disc of radius :attr:`brush` at image coordinates ``(x, y)``.

        ``target="mask"``: set the mask to ``value`` (1 = regenerate); ``"sketch"``: set the
        image pixels to ``value`` (1 = white, 0 = black).
        """
        if self._mask is None:
            return
        h, w = self._mask.shape
        r = self.brush
        y0, y1 = max(0, int(np.floor(y - r))), min(h, int(np.ceil(y + r)) + 1)  # the disc's bounding box only:
        x0, x1 = max(0, int(np.floor(x - r))), min(w, int(np.ceil(x + r)) + 1)  # a brush step costs O(brush²)
        if y0 >= y1 or x0 >= x1:
            return
        yy, xx = np.mgrid[y0:y1, x0:x1]
        disc = (xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= r ** 2
        if target == "sketch":
            if self._image_shared:  # the caller's array is never drawn into
                self._image, self._image_shared = self._image.copy(), False
            self._image[y0:y1, x0:x1][disc] = round(255 * value)
            self._thumb = None
        else:
            self._mask[y0:y1, x0:x1][disc] = value
            if self._thumb is not None:  # the shown mask: only the blocks the disc touched
                step = self._thumb[0]
                self._shown_mask_blocks(y0 // step, (y1 - 1) // step + 1, x0 // step, (x1 - 1) // step + 1)
        self._refresh()
        self.changed.emit()

    def _shown_mask_blocks(self, by0: int, by1: int, bx0: int, bx1: int) -> None:
        """Recompute the shown mask's blocks [by0:by1, bx0:bx1] (each: the max of its step × step pixels)."""
        step, _image, shown = self._thumb
        by1, bx1 = min(by1, shown.shape[0]), min(bx1, shown.shape[1])
        part = self._mask[by0 * step: by1 * step, bx0 * step: bx1 * step]
        rows, cols = (by1 - by0) * step, (bx1 - bx0) * step
        if part.shape != (rows, cols):  # the last blocks overhang the image
            part = np.pad(part, ((0, rows - part.shape[0]), (0, cols - part.shape[1])))
        shown[by0:by1, bx0:bx1] = part.reshape(by1 - by0, step, bx1 - bx0, step).max(axis=(1, 3))

    def _event_paint(self, event) -> None:
        if self.mode not in ("mask", "sketch") or self._image is None:
            return
        pos = event.position() if hasattr(event, "position") else QPointF(event.pos())
        value = 0.0 if event.buttons() & Qt.RightButton else 1.0
        self.paint_at(*self.image_position(pos), value, self.mode)

    def mousePressEvent(self, event) -> None:
        self._event_paint(event)

    def mouseMoveEvent(self, event) -> None:
        self._event_paint(event)

    def _refresh(self) -> None:
        if self._image is None:
            self._shown = None
            self.setText(self.hint)
            return
        if self.text():
            self.setText("")
        self._compose()
        self.update()

    def _compose(self) -> None:
        """The picture to draw, one pixel per device pixel: sampled from the image subsampled to about
        the display's resolution (so a brush step on a large image costs what a small one does), the
        mask blended in."""
        h, w = self._image.shape[:2]
        ratio = self.devicePixelRatioF()
        step = max(1, int(min(h / (self.height() * ratio), w / (self.width() * ratio))))
        if self._thumb is None or self._thumb[0] != step:
            thumb = self._image[::step, ::step].astype(np.float32)
            self._thumb = (step, thumb, np.zeros(thumb.shape[:2], np.float32))
            if self._mask is not None:
                self._shown_mask_blocks(0, thumb.shape[0], 0, thumb.shape[1])
        _step, thumb, mask = self._thumb
        scale, ox, oy = self._geometry()
        y0, rows = device_samples(round(self.height() * ratio), oy, scale, ratio, h)
        x0, cols = device_samples(round(self.width() * ratio), ox, scale, ratio, w)
        rows, cols = rows // step, cols // step
        shown = thumb[rows][:, cols]
        mask = mask[rows][:, cols]
        if mask.any():
            red = np.array([230.0, 40.0, 60.0], np.float32)
            alpha = 0.55 * mask[:, :, None]
            shown = shown * (1 - alpha) + red * alpha
        self._shown = to_qimage(shown.astype(np.uint8))
        self._shown.setDevicePixelRatio(ratio)
        self._shown_at = QPointF(x0 / ratio, y0 / ratio)


def device_samples(count: int, offset: float, scale: float, ratio: float, size: int) -> tuple[int, np.ndarray]:
    """Nearest sampling of an image axis of ``size`` pixels drawn from logical position ``offset`` at
    ``scale`` logical pixels per image pixel, over ``count`` device pixels (``ratio`` per logical one):
    ``(first, index)``, the first device pixel that shows the image and the image pixel each device
    pixel from there on shows (the one under its centre)."""
    centres = (np.arange(count) + 0.5) / ratio
    index = np.floor((centres - offset) / scale).astype(np.int64)
    inside = np.nonzero((index >= 0) & (index < size))[0]
    if len(inside) == 0:
        return 0, np.zeros(0, np.int64)
    return int(inside[0]), index[inside[0] : inside[-1] + 1]


class ImageSlot(QWidget):
    """An image input: canvas (drop target) plus Open / Paste / Clear buttons."""

    changed = Signal()

    def __init__(self, title: str, hint: str = "Drop, paste or open\nan input image",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.path: str = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel(title)
        self.canvas = MaskCanvas(hint)
        self.canvas.changed.connect(self.changed)
        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open…")
        self.paste_button = QPushButton("Paste")
        self.clear_button = QPushButton("Clear")
        for b in (self.open_button, self.paste_button, self.clear_button):
            buttons.addWidget(b)
        self.open_button.clicked.connect(self._open)
        self.paste_button.clicked.connect(self.paste)
        self.clear_button.clicked.connect(self.clear)
        layout.addWidget(self.title)
        layout.addWidget(self.canvas, 0, Qt.AlignHCenter)
        layout.addLayout(buttons)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #e57373;")
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addWidget(self.error)

    def image(self) -> np.ndarray | None:
        return self.canvas.image()

    def set_image(self, image: np.ndarray | None, path: str = "") -> None:
        """Use ``image`` (``(H, W, 3)`` uint8) as this input; ``path`` is recorded for provenance."""
        if image is not None:
            image = np.asarray(image)
            if image.ndim == 2:
                image = np.repeat(image[:, :, None], 3, axis=2)
            if image.dtype != np.uint8:
                image = np.clip(np.rint(np.asarray(image, np.float64) * 255), 0, 255).astype(np.uint8)
            image = image[:, :, :3]
        self.path = path
        self.error.hide()
        self.canvas.set_image(image)

    def load(self, path: str) -> None:
        """Read ``path`` into the slot (ValueError if unreadable; slot unchanged)."""
        self.set_image(read_image_file(path), path)

    def clear(self) -> None:
        self.set_image(None)

    def paste(self) -> None:
        """Take an image from the clipboard, if there is one."""
        image = QApplication.clipboard().image()
        if image.isNull():
            self._show_error("The clipboard holds no image.")
            return
        self.set_image(qimage_to_array(image))

    def _open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", "", IMAGE_FILTER)
        if path:
            try:
                self.load(path)
            except ValueError as exc:
                self._show_error(str(exc))

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() or event.mimeData().hasImage():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        data = event.mimeData()
        if data.hasUrls():
            try:
                self.load(data.urls()[0].toLocalFile())
            except ValueError as exc:
                self._show_error(str(exc))
        elif data.hasImage():
            self.set_image(qimage_to_array(QImage(data.imageData())))
        event.acceptProposedAction()


class HistoryStrip(QListWidget):
    """A horizontal strip of result thumbnails; each item's data is the history entry index."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListWidget.IconMode)
        self.setFlow(QListWidget.LeftToRight)
        self.setWrapping(False)
        self.setIconSize(QSize(72, 72))
        self.setFixedHeight(112)
        self.setMovement(QListWidget.Static)
        self.setSpacing(4)
        self.setHorizontalScrollMode(QListWidget.ScrollPerPixel)
        self.empty_text = ("No results yet. Every generated image is kept here:\n"
                           "click one to view it, reuse its parameters, use it as input or export it.")

    def paintEvent(self, event) -> None:  # Qt override
        super().paintEvent(event)
        if self.count() == 0:  # empty state: say what the strip is for
            from qtpy.QtGui import QPainter

            painter = QPainter(self.viewport())
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.viewport().rect(), Qt.AlignCenter, self.empty_text)
            painter.end()

    def add(self, image: np.ndarray, label: str, tooltip: str, index: int,
            thumbnail: np.ndarray | None = None) -> QListWidgetItem:
        """Append a thumbnail of ``image`` (drawn from ``thumbnail``, a smaller copy made by a job,
        when given); returns the item."""
        pix = device_pixmap(image if thumbnail is None else thumbnail, self.iconSize(), self.devicePixelRatioF())
        icon = QIcon(pix)
        icon.addPixmap(pix, QIcon.Selected)  # the selection shows as the label highlight, not a tinted image
        item = QListWidgetItem(icon, label)
        item.setToolTip(tooltip)
        item.setData(Qt.UserRole, index)
        self.addItem(item)
        return item
