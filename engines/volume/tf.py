"""1-D transfer functions: colour and opacity control points over the value range.

A :class:`TransferFunction1D` maps a scalar (e.g. HU) to non-premultiplied RGBA. Opacities
are authored for a reference sampling step ``reference_step`` (Δs₀, in voxels); every
renderer applies :func:`correct_opacity` (α' = 1 − (1 − α)^(Δs/Δs₀)) for its actual step.

Presets: all 25 of 3D Slicer's volume-rendering presets (``assets/volume/presets.json``); files:
own JSON (:meth:`TransferFunction1D.save`); other tools' formats in :mod:`engines.volume.tf_exchange`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FORMAT_TAG",
    "TransferFunction1D",
    "correct_opacity",
    "default_tf",
    "from_paraview_json",
    "from_slicer_vp",
    "load_tf",
    "parse_slicer_list",
    "preset",
    "preset_names",
    "to_slicer_vp",
]

FORMAT_TAG = "spectra-studio-tf1d"
PRESETS_PATH = Path(__file__).resolve().parents[2] / "assets" / "volume" / "presets.json"


def correct_opacity(alpha, step: float, reference_step: float = 1.0):
    """Opacity for sampling step ``step`` of an opacity authored at ``reference_step``:
    α' = 1 − (1 − α)^(step / reference_step). Works on numpy arrays and torch tensors."""
    ratio = float(step) / float(reference_step)
    if hasattr(alpha, "clamp"):  # torch
        return 1.0 - (1.0 - alpha.clamp(0.0, 1.0)) ** ratio
    alpha = np.clip(np.asarray(alpha, dtype=np.float64), 0.0, 1.0)
    return 1.0 - (1.0 - alpha) ** ratio


def _points(values: Sequence, width: int, what: str) -> list[tuple]:
    out = []
    for item in values:
        item = tuple(float(v) for v in item)
        if len(item) != width or not all(np.isfinite(item)):
            raise ValueError(f"each {what} point needs {width} finite numbers, got {item}")
        out.append(item)
    if not out:
        raise ValueError(f"a transfer function needs at least one {what} point")
    out.sort(key=lambda p: p[0])
    return out


@dataclass
class TransferFunction1D:
    """Colour points ``(x, r, g, b)`` and opacity points ``(x, α)`` (r, g, b, α in [0, 1]).

    Values between points are interpolated linearly; outside the points the end values are
    held (clamped). ``gradient_opacity`` ``(|∇v|, factor)`` points multiply α when a renderer
    uses gradients (flat 1 = off). ``shading``: ``shade``, ``ambient``, ``diffuse``,
    ``specular``, ``power`` (Slicer's material).
    """

    color: list = field(default_factory=lambda: [(0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0)])
    opacity: list = field(default_factory=lambda: [(0.0, 0.0), (1.0, 1.0)])
    name: str = "custom"
    gradient_opacity: list = field(default_factory=lambda: [(0.0, 1.0), (255.0, 1.0)])
    shading: dict = field(default_factory=lambda: {"shade": False, "ambient": 0.1, "diffuse": 0.9, "specular": 0.2, "power": 10.0})
    reference_step: float = 1.0

    def __post_init__(self) -> None:
        self.color = _points(self.color, 4, "colour")
        self.opacity = _points(self.opacity, 2, "opacity")
        self.gradient_opacity = _points(self.gradient_opacity, 2, "gradient opacity")
        for _, *rgb in self.color:
            if not all(0.0 <= c <= 1.0 for c in rgb):
                raise ValueError(f"colour components must be in [0, 1], got {rgb}")
        if not all(0.0 <= a <= 1.0 for _, a in self.opacity):
            raise ValueError("opacities must be in [0, 1]")
        if not (np.isfinite(self.reference_step) and self.reference_step > 0):
            raise ValueError("reference_step must be positive")
        self.shading = {"shade": False, "ambient": 0.1, "diffuse": 0.9, "specular": 0.2, "power": 10.0, **dict(self.shading)}

    # -- evaluation -----------------------------------------------------------------
    def x_range(self) -> tuple[float, float]:
        """Smallest and largest control-point position."""
        xs = [p[0] for p in self.color] + [p[0] for p in self.opacity]
        return min(xs), max(xs)

    def evaluate(self, values) -> np.ndarray:
        """RGBA (non-premultiplied, float32) of ``values`` (any shape) → shape ``(*values.shape, 4)``."""
        values = np.asarray(values, dtype=np.float64)
        out = np.empty(values.shape + (4,), dtype=np.float32)
        cx = np.array([p[0] for p in self.color])
        for channel in range(3):
            out[..., channel] = np.interp(values, cx, [p[channel + 1] for p in self.color])
        out[..., 3] = np.interp(values, [p[0] for p in self.opacity], [p[1] for p in self.opacity])
        return out

    def lut(self, lo: float, hi: float, size: int = 256) -> np.ndarray:
        """``(size, 4)`` float32 table sampling the TF at ``linspace(lo, hi, size)``."""
        return self.evaluate(np.linspace(lo, hi, int(size)))

    def gradient_factor(self, gradient_magnitude) -> np.ndarray:
        """Gradient-opacity multiplier for ``|∇v|`` values (same shape)."""
        g = self.gradient_opacity
        return np.interp(np.asarray(gradient_magnitude, dtype=np.float64), [p[0] for p in g], [p[1] for p in g])

    def uses_gradient_opacity(self) -> bool:
        """False when the gradient-opacity curve is flat 1 (Slicer's default)."""
        return any(abs(a - 1.0) > 1e-9 for _, a in self.gradient_opacity)

    # -- editing --------------------------------------------------------------------
    def shifted(self, delta: float) -> TransferFunction1D:
        """A copy with every inner point moved by ``delta`` (end points stay, like Slicer's Shift)."""
        def move(points):
            if len(points) <= 2:
                return [(p[0] + delta, *p[1:]) for p in points]
            lo, hi = points[0][0], points[-1][0]
            return [p if i in (0, len(points) - 1) else (min(max(p[0] + delta, lo), hi), *p[1:]) for i, p in enumerate(points)]

        return self.copy(color=move(self.color), opacity=move(self.opacity))

    def windowed(self, level: float, width: float) -> TransferFunction1D:
        """A copy whose inner points are stretched linearly onto ``[level − width/2, level + width/2]``."""
        if width <= 0:
            raise ValueError("window width must be positive")
        inner = [p[0] for pts in (self.color, self.opacity) for p in (pts[1:-1] if len(pts) > 2 else pts)]
        a, b = min(inner), max(inner)
        span = (b - a) or 1.0
        new_lo = level - width / 2.0

        def remap(points):
            out = []
            for i, p in enumerate(points):
                if len(points) > 2 and i in (0, len(points) - 1):
                    out.append(p)
                else:
                    out.append((new_lo + (p[0] - a) / span * width, *p[1:]))
            return out

        return self.copy(color=remap(self.color), opacity=remap(self.opacity))

    def window_level(self) -> tuple[float, float]:
        """``(level, width)`` of the inner points (inverse of :meth:`windowed`)."""
        inner = [p[0] for pts in (self.color, self.opacity) for p in (pts[1:-1] if len(pts) > 2 else pts)]
        a, b = min(inner), max(inner)
        return (a + b) / 2.0, max(b - a, 1e-6)

    def copy(self, **changes) -> TransferFunction1D:
        """A deep copy with ``changes`` applied."""
        data = self.to_dict()
        data.pop("format", None)
        data["color"] = changes.pop("color", self.color)
        data["opacity"] = changes.pop("opacity", self.opacity)
        data.update(changes)
        return TransferFunction1D(**{k: v for k, v in data.items() if k in _FIELDS})

    # -- files ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-able dict (format tag, name, points, gradient opacity, shading, reference step)."""
        return {
            "format": FORMAT_TAG,
            "version": 1,
            "name": self.name,
            "color": [list(p) for p in self.color],
            "opacity": [list(p) for p in self.opacity],
            "gradient_opacity": [list(p) for p in self.gradient_opacity],
            "shading": dict(self.shading),
            "reference_step": self.reference_step,
        }

    @classmethod
    def from_dict(cls, data: dict) -> TransferFunction1D:
        """Inverse of :meth:`to_dict` (raises ValueError on a malformed dict)."""
        if not isinstance(data, dict) or "color" not in data or "opacity" not in data:
            raise ValueError("not a transfer-function JSON (needs 'color' and 'opacity' lists)")
        kwargs = {k: data[k] for k in _FIELDS if k in data}
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValueError(f"malformed transfer function: {exc}") from exc

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | os.PathLike, force: bool = False, provenance: dict | None = None) -> Path:
        """Write the TF as JSON atomically via :mod:`studio.export` (with a provenance sidecar)."""
        from engines.provenance import build_record as make_provenance
        from engines.atomic_files import save_with_sidecar

        text = self.to_json().encode()
        if provenance is None:
            provenance = make_provenance("volume", "engines.volume.tf", {"tf": self.name})

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                handle.write(text)

        return save_with_sidecar(path, write, provenance, force=force)

    def to_paraview(self) -> list:
        """A ParaView colormap preset (JSON array with one object: RGBPoints + Points)."""
        from engines.volume.tf_exchange import to_paraview

        return to_paraview(self)


_FIELDS = ("color", "opacity", "name", "gradient_opacity", "shading", "reference_step")


# --------------------------------------------------------------------------- Slicer
def parse_slicer_list(text: str, width: int) -> list[tuple]:
    """Parse a Slicer number list ``"N v1 v2 …"`` (N = count of numbers) into ``width``-tuples."""
    try:
        numbers = [float(v) for v in str(text).split()]
    except ValueError as exc:
        raise ValueError(f"not a Slicer number list: {str(text)[:40]!r}") from exc
    if not numbers:
        raise ValueError("empty Slicer number list")
    if not (numbers[0] >= 0 and float(numbers[0]).is_integer()):  # also refuses NaN and infinities
        raise ValueError(f"Slicer list count {numbers[0]} is not a whole number")
    count, values = int(numbers[0]), numbers[1:]
    if count != len(values) or count % width:
        raise ValueError(f"Slicer list says {count} numbers but holds {len(values)} (need a multiple of {width})")
    return [tuple(values[i:i + width]) for i in range(0, count, width)]


def _from_slicer_fields(name, opacity, color, gradient, shade, ambient, diffuse, specular, power) -> TransferFunction1D:
    return TransferFunction1D(
        name=name,
        opacity=parse_slicer_list(opacity, 2),
        color=parse_slicer_list(color, 4),
        gradient_opacity=parse_slicer_list(gradient, 2) if gradient else [(0.0, 1.0), (255.0, 1.0)],
        shading={"shade": bool(int(float(shade))), "ambient": float(ambient), "diffuse": float(diffuse),
                 "specular": float(specular), "power": float(power)},
    )


def from_slicer_vp(text: str, name: str = "Slicer .vp") -> TransferFunction1D:
    """Parse a 3D Slicer ``.vp`` file: lines interpolation, shade, diffuse, ambient, specular,
    specular power, scalar opacity list, gradient opacity list, colour list."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 9:
        raise ValueError(f"a Slicer .vp file has 9 lines, this one has {len(lines)}")
    _interp, shade, diffuse, ambient, specular, power, opacity, gradient, color = lines[:9]
    return _from_slicer_fields(name, opacity, color, gradient, shade, ambient, diffuse, specular, power)


def to_slicer_vp(tf: TransferFunction1D) -> str:
    """Write ``tf`` in 3D Slicer's ``.vp`` layout (inverse of :func:`from_slicer_vp`)."""
    def flat(points):
        values = [v for p in points for v in p]
        return " ".join([str(len(values))] + [f"{v:.10g}" for v in values])

    s = tf.shading
    return "\n".join([
        "1", str(int(bool(s["shade"]))), f"{s['diffuse']:g}", f"{s['ambient']:g}", f"{s['specular']:g}",
        f"{s['power']:g}", flat(tf.opacity), flat(tf.gradient_opacity), flat(tf.color),
    ]) + "\n"


# --------------------------------------------------------------------------- ParaView
def from_paraview_json(data: Any, name: str | None = None) -> TransferFunction1D:
    """Import a ParaView colormap preset (a JSON array of objects, or one object); ``name``
    picks one map when the file holds several. Colour space, midpoint and sharpness are
    honoured (see :func:`engines.volume.tf_exchange.from_paraview`)."""
    from engines.volume.tf_exchange import from_paraview

    if isinstance(data, (str, bytes)):
        data = json.loads(data)
    return from_paraview(data, name)


# --------------------------------------------------------------------------- presets
@lru_cache(maxsize=1)
def _preset_table() -> dict:
    return json.loads(PRESETS_PATH.read_text())["presets"]


def preset_names() -> list[str]:
    """Names of the bundled presets (3D Slicer values)."""
    return list(_preset_table())


def preset(name: str) -> TransferFunction1D:
    """A bundled preset by name (case-insensitive), e.g. ``preset("CT-Bone")``."""
    table = _preset_table()
    match = next((k for k in table if k.lower() == name.lower()), None)
    if match is None:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(table)}")
    p = table[match]
    return _from_slicer_fields(match, p["scalarOpacity"], p["colorTransfer"], p.get("gradientOpacity"),
                               p["shade"], p["ambient"], p["diffuse"], p["specular"], p["specularPower"])


def default_tf(lo: float, hi: float) -> TransferFunction1D:
    """A grey ramp over ``[lo, hi]`` with opacity rising from 0 (for volumes of unknown kind)."""
    span = hi - lo or 1.0
    return TransferFunction1D(
        name="Grey ramp",
        color=[(lo, 0.0, 0.0, 0.0), (hi, 1.0, 1.0, 1.0)],
        opacity=[(lo, 0.0), (lo + 0.25 * span, 0.0), (hi, 0.6)],
    )


def load_tf(spec: str | os.PathLike, map_name: str | None = None, value_range=None) -> TransferFunction1D:
    """``preset:NAME`` or a TF file: our JSON, ParaView JSON (``map_name`` picks one of several
    maps), Slicer ``.vp``, Inviwo ``.itf`` or ``.1dt`` (normalised positions span ``value_range``).
    Raises ValueError with one line."""
    from engines.volume.tf_exchange import read_tf_file

    text = os.fspath(spec)
    if text.lower().startswith("preset:"):
        return preset(text.split(":", 1)[1])
    if not Path(text).exists():
        raise ValueError(f"transfer function not found: {text} (use preset:NAME or a .json/.vp/.itf file)")
    return read_tf_file(text, map_name=map_name, value_range=value_range)
