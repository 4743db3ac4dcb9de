"""RD plots as images: matplotlib when installed, else a small Pillow line chart."""

from __future__ import annotations

import numpy as np

__all__ = ["render_rd_plot"]

_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def render_rd_plot(curves: dict, width: int = 900, height: int = 600, title: str = "RD curves") -> np.ndarray:
    """Draw PSNR (dB) vs bpp for ``curves`` (``{label: {"bpp": [...], "psnr": [...]}}``) with
    Pillow; returns ``(height, width, 3)`` uint8."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    left, right, top, bottom = 70, width - 200, 40, height - 60
    xs = [x for c in curves.values() for x in c["bpp"]]
    ys = [y for c in curves.values() for y in c["psnr"] if np.isfinite(y)]
    if not xs or not ys:
        d.text((20, 20), "no data", fill="black")
        return np.asarray(img)
    x0, x1 = 0.0, max(xs) * 1.05
    y0, y1 = np.floor(min(ys)) - 0.5, np.ceil(max(ys)) + 0.5

    def px(x, y):
        return left + (x - x0) / (x1 - x0) * (right - left), bottom - (y - y0) / (y1 - y0) * (bottom - top)

    d.rectangle([left, top, right, bottom], outline="black")
    for t in np.linspace(x0, x1, 6):
        X, _ = px(t, y0)
        d.line([X, bottom, X, bottom + 5], fill="black")
        d.text((X - 12, bottom + 8), f"{t:.2f}", fill="black")
    for t in np.linspace(y0, y1, 6):
        _, Y = px(x0, t)
        d.line([left - 5, Y, left, Y], fill="black")
        d.line([left, Y, right, Y], fill=(230, 230, 230))
        d.text((10, Y - 6), f"{t:.1f}", fill="black")
    d.text(((left + right) // 2 - 40, height - 30), "rate (bpp)", fill="black")
    d.text((10, 10), f"{title}   PSNR (dB) vs bpp", fill="black")
    for i, (label, c) in enumerate(curves.items()):
        color = _COLORS[i % len(_COLORS)]
        pts = [px(x, y) for x, y in zip(c["bpp"], c["psnr"]) if np.isfinite(y)]
        if len(pts) > 1:
            d.line(pts, fill=color, width=2)
        for X, Y in pts:
            d.ellipse([X - 3, Y - 3, X + 3, Y + 3], fill=color)
        d.line([right + 15, top + 20 * i + 8, right + 40, top + 20 * i + 8], fill=color, width=3)
        d.text((right + 45, top + 20 * i), label[:22], fill="black")
    return np.asarray(img)
