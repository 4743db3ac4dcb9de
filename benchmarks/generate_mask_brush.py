"""GUI-thread cost of one mask-brush step on the Generate panel's input canvas (180 px), by image
size: the canvas today (the disc's bounding box only; the thumbnail and the shown mask updated
block by block) against the brush as it was (a full-image disc and a full-image blend and pixmap
per step), same run, ratio printed.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/generate_mask_brush.py [--steps 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_API", "pyside6")


def old_brush_step(canvas, x: float, y: float) -> None:
    """The step as it was: a disc over the whole image, then the whole image blended and converted."""
    from qtpy.QtCore import Qt
    from qtpy.QtGui import QPixmap

    from panels.generate.widgets import to_qimage

    mask, image = canvas._mask, canvas._image
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w]
    mask[(xx + 0.5 - x) ** 2 + (yy + 0.5 - y) ** 2 <= canvas.brush ** 2] = 1.0
    shown = image.astype(np.float32)
    alpha = 0.55 * mask[:, :, None]
    shown = shown * (1 - alpha) + np.array([230.0, 40.0, 60.0]) * alpha
    pix = QPixmap.fromImage(to_qimage(shown.astype(np.uint8)))
    canvas.setPixmap(pix.scaled(canvas.size(), Qt.KeepAspectRatio, Qt.FastTransformation))


def main() -> None:
    """Time both brushes per image size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from panels.generate.widgets import MaskCanvas

    print(f"one brush step (ms, median of {args.steps}; canvas 180 px, brush radius 6 px)")
    print(f"{'image':>11} {'before':>8} {'now':>8} {'ratio':>7}")
    for side in (512, 1024, 2048, 4096):
        image = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
        times = {}
        for name in ("before", "now"):
            canvas = MaskCanvas()
            canvas.show()
            canvas.set_image(image)
            canvas.brush = 6.0
            steps = []
            for i in range(args.steps):
                x, y = side * 0.2 + i * 5.0, side * 0.5
                start = time.perf_counter()
                if name == "now":
                    canvas.paint_at(x, y)
                else:
                    old_brush_step(canvas, x, y)
                app.processEvents()
                steps.append(1000.0 * (time.perf_counter() - start))
            times[name] = float(np.median(steps))
            canvas.close()
        print(f"{side:>5}×{side:<5} {times['before']:8.1f} {times['now']:8.2f} {times['before'] / times['now']:6.0f}×")


if __name__ == "__main__":
    main()
