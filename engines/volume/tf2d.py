"""2-D transfer functions over (intensity, gradient magnitude), producing RGBA volumes.

A :class:`TransferFunction2D` is a list of widgets, each a colour and a peak opacity over a
region of the (v, |∇v|) plane: ``"rect"`` (constant inside a box) or ``"gauss"`` (ParaView's
box: α = a·exp(−((v − v₀)²/2σ_v² + (g − g₀)²/2σ_g²))). Overlapping widgets combine as
α = 1 − Π(1 − αᵢ) with colour Σ αᵢcᵢ / Σ αᵢ. The result is a pre-classified RGBA volume
that a renderer composites with opacity correction (its ``reference_step``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TransferFunction2D", "Widget2D", "gradient_magnitude", "joint_histogram", "rgba_volume_2d"]


def gradient_magnitude(data: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
    """|∇v| of a ``(Z, Y, X)`` volume by central differences (one-sided at the border), in
    value units per mm (``spacing`` in z, y, x mm). float32, same shape."""
    data = np.asarray(data, dtype=np.float32)
    grads = np.gradient(data, *[float(s) for s in spacing])
    out = np.zeros(data.shape, dtype=np.float32)
    for g in grads:
        out += g * g
    return np.sqrt(out, out=out)


def joint_histogram(values: np.ndarray, gmag: np.ndarray, bins=(256, 128), value_range=None, gradient_range=None) -> tuple:
    """2-D histogram of (value, |∇v|). Returns ``(log1p counts (bins_v, bins_g), v_edges, g_edges)``."""
    values = np.asarray(values).ravel()
    gmag = np.asarray(gmag).ravel()
    if value_range is None:
        value_range = (float(values.min()), float(values.max()))
    if gradient_range is None:
        gradient_range = (0.0, float(np.percentile(gmag, 99.5)) or 1.0)
    counts, v_edges, g_edges = np.histogram2d(values, gmag, bins=bins, range=[value_range, gradient_range])
    return np.log1p(counts), v_edges, g_edges


@dataclass
class Widget2D:
    """One region of the (value, gradient) plane.

    ``center`` = (v₀, g₀); ``size`` = (half-width in v, half-width in g) for ``rect``, or
    (σ_v, σ_g) for ``gauss``; ``color`` (r, g, b) in [0, 1]; ``opacity`` peak α in [0, 1].
    """

    kind: str = "gauss"
    center: tuple = (0.0, 0.0)
    size: tuple = (100.0, 50.0)
    color: tuple = (1.0, 1.0, 1.0)
    opacity: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in ("rect", "gauss"):
            raise ValueError(f"widget kind must be 'rect' or 'gauss', got {self.kind!r}")
        self.center = tuple(float(v) for v in self.center)
        self.size = tuple(float(v) for v in self.size)
        self.color = tuple(float(v) for v in self.color)
        self.opacity = float(self.opacity)
        if len(self.center) != 2 or len(self.size) != 2 or len(self.color) != 3:
            raise ValueError("widget needs center (v, g), size (sv, sg) and color (r, g, b)")
        if min(self.size) <= 0:
            raise ValueError("widget size must be positive")
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError("widget opacity must be in [0, 1]")

    def alpha(self, values: np.ndarray, gmag: np.ndarray) -> np.ndarray:
        """Opacity of this widget at each (value, gradient) pair (float32, broadcast shape)."""
        dv = (np.asarray(values, dtype=np.float32) - self.center[0]) / self.size[0]
        dg = (np.asarray(gmag, dtype=np.float32) - self.center[1]) / self.size[1]
        if self.kind == "rect":
            inside = (np.abs(dv) <= 1.0) & (np.abs(dg) <= 1.0)
            return inside.astype(np.float32) * np.float32(self.opacity)
        return np.float32(self.opacity) * np.exp(-0.5 * (dv * dv + dg * dg)).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-able dict."""
        return {"kind": self.kind, "center": list(self.center), "size": list(self.size),
                "color": list(self.color), "opacity": self.opacity}


@dataclass
class TransferFunction2D:
    """A list of :class:`Widget2D` plus the reference step Δs₀ (voxels) the opacities are for."""

    widgets: list = field(default_factory=list)
    reference_step: float = 1.0
    name: str = "2D TF"

    def __post_init__(self) -> None:
        self.widgets = [w if isinstance(w, Widget2D) else Widget2D(**w) for w in self.widgets]

    def classify(self, values: np.ndarray, gmag: np.ndarray) -> np.ndarray:
        """Non-premultiplied RGBA ``(*shape, 4)`` float32 for arrays of values and gradients."""
        values = np.asarray(values, dtype=np.float32)
        shape = np.broadcast(values, gmag).shape
        transparency = np.ones(shape, dtype=np.float32)
        weighted = np.zeros(shape + (3,), dtype=np.float32)
        weight = np.zeros(shape, dtype=np.float32)
        for widget in self.widgets:
            a = widget.alpha(values, gmag)
            transparency *= 1.0 - a
            weighted += a[..., None] * np.asarray(widget.color, dtype=np.float32)
            weight += a
        out = np.zeros(shape + (4,), dtype=np.float32)
        np.divide(weighted, weight[..., None], out=out[..., :3], where=weight[..., None] > 0)
        out[..., 3] = 1.0 - transparency
        return out

    def to_dict(self) -> dict:
        """JSON-able dict (format tag ``spectra-studio-tf2d``)."""
        return {"format": "spectra-studio-tf2d", "version": 1, "name": self.name,
                "reference_step": self.reference_step, "widgets": [w.to_dict() for w in self.widgets]}

    @classmethod
    def from_dict(cls, data: dict) -> TransferFunction2D:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(data, dict) or "widgets" not in data:
            raise ValueError("not a 2-D transfer-function JSON (needs 'widgets')")
        return cls(widgets=list(data["widgets"]), reference_step=float(data.get("reference_step", 1.0)),
                   name=str(data.get("name", "2D TF")))


def rgba_volume_2d(data: np.ndarray, spacing, tf: TransferFunction2D, gmag: np.ndarray | None = None) -> np.ndarray:
    """Classify a ``(Z, Y, X)`` volume with a 2-D TF → ``(Z, Y, X, 4)`` float32 RGBA."""
    if gmag is None:
        gmag = gradient_magnitude(data, spacing)
    return tf.classify(np.asarray(data, dtype=np.float32), gmag)
