"""Transfer-function files from other tools, and thumbnails.

Reads 3D Slicer ``.vp``, ParaView colormap JSON (one or several maps; colour spaces RGB, HSV,
Lab, Diverging; opacity ``Points`` with VTK midpoint/sharpness), Inviwo ``.itf`` (current and
legacy XML) and ImageVis3D ``.1dt``; writes ``.vp`` and ParaView JSON. Curves a
:class:`~engines.volume.tf.TransferFunction1D` cannot hold exactly (non-linear segments, colours
blended in Lab or Msh) are sampled densely into its piecewise-linear points.

VTK semantics follow ``vtkPiecewiseFunction::GetTable`` (midpoint, sharpness) and
``vtkColorTransferFunction`` (``vtkMath::RGBToLab`` / ``LabToRGB``, Moreland's diverging Msh
interpolation); formulas in ``/work/shared/reference/volume-exchange.md`` §3.
"""

from __future__ import annotations

import colorsys
import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from engines.volume.tf import TransferFunction1D, from_slicer_vp, to_slicer_vp

__all__ = [
    "TF_SUFFIXES",
    "TFFileError",
    "interpolate_colors",
    "lab_to_rgb",
    "paraview_map_names",
    "read_tf_file",
    "rgb_to_lab",
    "tf_thumbnail",
    "to_paraview",
    "vtk_piecewise",
    "write_tf_file",
]

#: suffixes of transfer-function files the Volume panel and CLI read
TF_SUFFIXES = (".vp", ".itf", ".1dt")
MAX_TF_BYTES = 8 * 2**20
SEGMENT_SAMPLES = 24  # points per curved segment when resampling


class TFFileError(ValueError):
    """A transfer-function file is unreadable, malformed or ambiguous (one-line message)."""


# --------------------------------------------------------------------------- VTK piecewise
def vtk_piecewise(x, nodes) -> np.ndarray:
    """Evaluate VTK's piecewise function at ``x``: ``nodes`` = (x, y, midpoint, sharpness) rows;
    a segment is shaped by its *left* node's midpoint and sharpness; clamped outside."""
    nodes = np.asarray(nodes, dtype=float).reshape(-1, 4)
    x = np.asarray(x, dtype=float)
    out = np.interp(x, nodes[:, 0], nodes[:, 1])  # clamped ends; linear segments exact
    for (x1, y1, mid, sharp), (x2, y2, _m, _s) in zip(nodes[:-1], nodes[1:]):
        inside = (x >= x1) & (x <= x2) & (x2 > x1)
        if not inside.any():
            continue
        out[inside] = _segment((x[inside] - x1) / (x2 - x1), y1, y2, mid, sharp)
    return out


def _segment(s, y1, y2, mid, sharp):
    mid = min(max(mid, 1e-5), 0.99999)
    s = np.where(s < mid, 0.5 * s / mid, 0.5 + 0.5 * (s - mid) / (1.0 - mid))
    if sharp > 0.99:
        return np.where(s < 0.5, y1, y2)
    if sharp < 0.01:
        return (1.0 - s) * y1 + s * y2
    power = 1.0 + 10.0 * sharp
    s = np.where(s < 0.5, 0.5 * (2.0 * s) ** power, 1.0 - 0.5 * (2.0 * (1.0 - s)) ** power)
    ss, sss = s * s, s * s * s
    h1, h2 = 2 * sss - 3 * ss + 1, -2 * sss + 3 * ss
    h3, h4 = sss - 2 * ss + s, sss - ss
    slope = (1.0 - sharp) * (y2 - y1)
    value = h1 * y1 + h2 * y2 + h3 * slope + h4 * slope
    return np.clip(value, min(y1, y2), max(y1, y2))


def _piecewise_points(nodes) -> list[tuple[float, float]]:
    """(x, y) points whose linear interpolation follows :func:`vtk_piecewise` (steps exact)."""
    nodes = np.asarray(nodes, dtype=float).reshape(-1, 4)
    points = [(nodes[0, 0], nodes[0, 1])]
    for (x1, y1, mid, sharp), (x2, y2, _m, _s) in zip(nodes[:-1], nodes[1:]):
        if x2 <= x1:
            points.append((x2, y2))
            continue
        if sharp > 0.99:  # a step at the midpoint
            xm = x1 + min(max(mid, 1e-5), 0.99999) * (x2 - x1)
            points += [(xm, y1), (np.nextafter(xm, x2), y2), (x2, y2)]
        elif sharp < 0.01 and abs(mid - 0.5) < 1e-9:
            points.append((x2, y2))
        else:
            xs = np.linspace(x1, x2, SEGMENT_SAMPLES + 1)[1:]
            points += list(zip(xs, _segment((xs - x1) / (x2 - x1), y1, y2, mid, sharp)))
    return [(float(a), float(b)) for a, b in points]


# --------------------------------------------------------------------------- colour spaces
def rgb_to_lab(rgb) -> np.ndarray:
    """``vtkMath::RGBToLab``: sRGB (0–1, gamma-encoded) → CIELAB with VTK's white (0.9505, 1, 1.089)."""
    rgb = np.asarray(rgb, dtype=float)
    lin = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = lin @ m.T / np.array([0.9505, 1.0, 1.089])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)


def lab_to_rgb(lab) -> np.ndarray:
    """Inverse of :func:`rgb_to_lab` (``vtkMath::LabToRGB``), clipped to [0, 1]."""
    lab = np.asarray(lab, dtype=float)
    fy = (lab[..., 0] + 16.0) / 116.0
    f = np.stack([lab[..., 1] / 500.0 + fy, fy, fy - lab[..., 2] / 200.0], -1)
    xyz = np.where(f**3 > 0.008856, f**3, (f - 16.0 / 116.0) / 7.787) * np.array([0.9505, 1.0, 1.089])
    m = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
    lin = xyz @ m.T
    rgb = np.where(lin > 0.0031308, 1.055 * np.abs(lin) ** (1 / 2.4) - 0.055, 12.92 * lin)
    return np.clip(rgb, 0.0, 1.0)


def _msh(rgb) -> np.ndarray:
    lab = rgb_to_lab(rgb)
    m = float(np.linalg.norm(lab))
    return np.array([m, math.acos(lab[0] / m) if m > 0 else 0.0, math.atan2(lab[2], lab[1])])


def _msh_to_rgb(msh) -> np.ndarray:
    m, s, h = msh
    return lab_to_rgb(np.array([m * math.cos(s), m * math.sin(s) * math.cos(h), m * math.sin(s) * math.sin(h)]))


def _adjust_hue(msh, unsaturated_m: float) -> float:
    m, s, h = msh
    if m >= unsaturated_m - 0.1:
        return h
    spin = s * math.sqrt(unsaturated_m**2 - m**2) / (m * math.sin(s))
    return h + spin if h > -0.3 * math.pi else h - spin


def _diverging(rgb1, rgb2, t: float) -> np.ndarray:
    msh1, msh2 = _msh(rgb1), _msh(rgb2)
    hue_gap = abs(msh1[2] - msh2[2])
    hue_gap = min(hue_gap, 2 * math.pi - hue_gap)
    if msh1[1] > 0.05 and msh2[1] > 0.05 and hue_gap > 0.33 * math.pi:
        mid = max(msh1[0], msh2[0], 88.0)
        if t < 0.5:
            msh2, t = np.array([mid, 0.0, 0.0]), 2.0 * t
        else:
            msh1, t = np.array([mid, 0.0, 0.0]), 2.0 * t - 1.0
    if msh1[1] < 0.05 and msh2[1] > 0.05:
        msh1[2] = _adjust_hue(msh2, msh1[0])
    elif msh2[1] < 0.05 and msh1[1] > 0.05:
        msh2[2] = _adjust_hue(msh1, msh2[0])
    return _msh_to_rgb((1.0 - t) * msh1 + t * msh2)


def interpolate_colors(rgb1, rgb2, t: float, space: str) -> np.ndarray:
    """Colour at fraction ``t`` between two RGB colours, blended in ``space`` as
    ``vtkColorTransferFunction`` does: RGB, HSV (shortest hue path), Lab, Diverging (Msh), Step."""
    rgb1, rgb2 = np.asarray(rgb1, dtype=float), np.asarray(rgb2, dtype=float)
    space = space.lower()
    if space == "hsv":
        h1, s1, v1 = colorsys.rgb_to_hsv(*rgb1)
        h2, s2, v2 = colorsys.rgb_to_hsv(*rgb2)
        if abs(h2 - h1) > 0.5:  # wrap the short way round
            h1, h2 = (h1 + 1.0, h2) if h1 < h2 else (h1, h2 + 1.0)
        h = ((1 - t) * h1 + t * h2) % 1.0
        return np.array(colorsys.hsv_to_rgb(h, (1 - t) * s1 + t * s2, (1 - t) * v1 + t * v2))
    if space in ("lab", "lab/ciede2000", "ciede2000"):
        return lab_to_rgb((1 - t) * rgb_to_lab(rgb1) + t * rgb_to_lab(rgb2))
    if space == "diverging":
        return _diverging(rgb1, rgb2, t)
    if space == "step":
        return rgb1.copy() if t < 0.5 else rgb2.copy()
    return (1 - t) * rgb1 + t * rgb2


def _color_points(rgb_points: list[tuple], space: str) -> list[tuple]:
    """Dense (x, r, g, b) points for a colour list blended in ``space`` (RGB stays as given)."""
    if space.lower() == "rgb" or len(rgb_points) < 2:
        return rgb_points
    out = [rgb_points[0]]
    for (x1, *c1), (x2, *c2) in zip(rgb_points[:-1], rgb_points[1:]):
        if x2 <= x1:
            out.append((x2, *c2))
            continue
        for t in np.linspace(0.0, 1.0, SEGMENT_SAMPLES + 1)[1:]:
            rgb = interpolate_colors(c1, c2, float(t), space)
            out.append((x1 + t * (x2 - x1), *(float(v) for v in rgb)))
    return out


# --------------------------------------------------------------------------- ParaView
def _paraview_items(data) -> list[dict]:
    items = data if isinstance(data, list) else [data]
    items = [item for item in items if isinstance(item, dict) and "RGBPoints" in item]
    if not items:
        raise TFFileError("no ParaView colour map (an object with RGBPoints) in the file")
    return items


def paraview_map_names(data) -> list[str]:
    """Names of the colour maps in a ParaView preset JSON (parsed or text)."""
    if isinstance(data, (str, bytes)):
        data = json.loads(data)
    return [str(item.get("Name", f"map {i + 1}")) for i, item in enumerate(_paraview_items(data))]


def _flat(values, width: int, what: str) -> list[tuple]:
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise TFFileError(f"ParaView {what} must be a flat list of numbers") from exc
    if not numbers or len(numbers) % width or not all(math.isfinite(v) for v in numbers):
        raise TFFileError(f"ParaView {what} needs a multiple of {width} finite numbers, got {len(numbers)}")
    return [tuple(numbers[i:i + width]) for i in range(0, len(numbers), width)]


def from_paraview(data, map_name: str | None = None) -> TransferFunction1D:
    """One map of a ParaView preset JSON as a TF. With several maps ``map_name`` must pick one
    (a :class:`TFFileError` lists the names otherwise). Colours follow ``ColorSpace``; opacity
    ``Points`` (x, α, midpoint, sharpness) follow VTK; without ``Points`` opacity ramps 0 → 1."""
    items = _paraview_items(data)
    names = [str(item.get("Name", f"map {i + 1}")) for i, item in enumerate(items)]
    if map_name is None:
        if len(items) > 1:
            raise TFFileError(f"the file holds {len(items)} colour maps ({', '.join(names[:8])}"
                              f"{', …' if len(names) > 8 else ''}); choose one")
        item = items[0]
    elif map_name in names:
        item = items[names.index(map_name)]
    else:
        raise TFFileError(f"no colour map named {map_name!r}; the file holds {', '.join(names[:8])}")
    color = sorted(_flat(item["RGBPoints"], 4, "RGBPoints"), key=lambda p: p[0])
    if not all(0.0 <= c <= 1.0 for p in color for c in p[1:]):
        raise TFFileError("ParaView RGBPoints colours must be in [0, 1]")
    space = str(item.get("ColorSpace", "RGB"))
    if item.get("Points"):
        nodes = sorted(_flat(item["Points"], 4, "Points"), key=lambda p: p[0])
        if not all(0.0 <= p[1] <= 1.0 for p in nodes):
            raise TFFileError("ParaView opacity Points must have opacities in [0, 1]")
        opacity = _piecewise_points(nodes)
    else:
        opacity = [(color[0][0], 0.0), (color[-1][0], 1.0)]
    return TransferFunction1D(color=_color_points(color, space), opacity=opacity,
                              name=str(item.get("Name", "ParaView")))


def to_paraview(tf: TransferFunction1D) -> list:
    """A ParaView preset JSON array with one map (RGB colour points, linear opacity points)."""
    return [{
        "Name": tf.name,
        "ColorSpace": "RGB",
        "NanColor": [1.0, 0.0, 0.0],
        "RGBPoints": [float(v) for p in tf.color for v in p],
        "Points": [float(v) for x, a in tf.opacity for v in (x, a, 0.5, 0.0)],
        "Creator": "Spectra Studio",
    }]


# --------------------------------------------------------------------------- Inviwo / ImageVis3D
def _span(value_range) -> tuple[float, float]:
    lo, hi = (0.0, 1.0) if value_range is None else (float(value_range[0]), float(value_range[1]))
    return lo, (hi if hi > lo else lo + 1.0)


def from_inviwo_itf(text: str, value_range=None, name: str = "Inviwo") -> TransferFunction1D:
    """Inviwo ``.itf`` XML: ``<Point><pos content=t/><rgba x y z w/></Point>`` (current) or
    ``<point><pos x=t y=α/><rgba …/></point>`` (legacy); positions 0–1 span ``value_range``
    (default 0–1); zero opacity outside ``maskMin``/``maskMax``."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise TFFileError(f"not valid Inviwo XML: {exc}") from exc
    lo, hi = _span(value_range)
    stops = []
    for point in root.iter():
        if point.tag not in ("Point", "point"):
            continue
        pos, rgba = point.find("pos"), point.find("rgba")
        if pos is None or rgba is None:
            continue
        try:
            t = float(pos.get("content", pos.get("x")))
            r, g, b, a = (float(rgba.get(k)) for k in "xyzw")
        except (TypeError, ValueError) as exc:
            raise TFFileError("an Inviwo point needs a numeric pos and rgba x, y, z, w") from exc
        stops.append((t, r, g, b, a))
    if not stops:
        raise TFFileError("no transfer-function points in the Inviwo file")
    if not all(0.0 <= v <= 1.0 for s in stops for v in s[1:]) or not all(math.isfinite(s[0]) for s in stops):
        raise TFFileError("Inviwo colours and opacities must lie in [0, 1]")
    stops.sort(key=lambda s: s[0])
    color = [(lo + t * (hi - lo), r, g, b) for t, r, g, b, _a in stops]
    opacity = [(lo + t * (hi - lo), a) for t, *_rgb, a in stops]

    def mask(tag, default):
        node = root.find(tag)
        try:
            return float(node.get("content")) if node is not None else default
        except (TypeError, ValueError):
            return default

    m0, m1 = mask("maskMin", 0.0), mask("maskMax", 1.0)
    if m0 > 0.0 or m1 < 1.0:
        x0, x1 = lo + m0 * (hi - lo), lo + m1 * (hi - lo)
        inside = [(x, a) for x, a in opacity if x0 <= x <= x1]
        edge0, edge1 = float(np.interp(x0, *zip(*opacity))), float(np.interp(x1, *zip(*opacity)))
        opacity = ([(x0 - 1e-9 * (hi - lo), 0.0)] if m0 > 0 else []) + [(x0, edge0)] + inside + [(x1, edge1)] + \
            ([(x1 + 1e-9 * (hi - lo), 0.0)] if m1 < 1 else [])
    return TransferFunction1D(color=color, opacity=opacity, name=name)


def from_1dt(text: str, value_range=None, name: str = "ImageVis3D") -> TransferFunction1D:
    """ImageVis3D ``.1dt``: a count N then N lines ``r g b a`` spread evenly over ``value_range``."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    try:
        count = int(lines[0][0])
        rows = [tuple(float(v) for v in line[:4]) for line in lines[1:1 + count]]
    except (IndexError, ValueError) as exc:
        raise TFFileError("a .1dt file starts with the entry count, then r g b a per line") from exc
    if count < 2 or len(rows) != count or any(len(r) != 4 for r in rows):
        raise TFFileError(f".1dt header says {count} entries but holds {len(rows)} complete ones")
    lo, hi = _span(value_range)
    xs = np.linspace(lo, hi, count)
    return TransferFunction1D(color=[(x, *r[:3]) for x, r in zip(xs, rows)],
                              opacity=[(x, r[3]) for x, r in zip(xs, rows)], name=name)


# --------------------------------------------------------------------------- files
def read_tf_file(path: str | os.PathLike, map_name: str | None = None, value_range=None) -> TransferFunction1D:
    """Any TF file by suffix/content: our JSON, ParaView JSON, Slicer ``.vp``, Inviwo ``.itf``,
    ``.1dt``. ``value_range`` places normalised (Inviwo, .1dt) positions. Raises
    :class:`TFFileError` with one line for anything unreadable or ambiguous."""
    path = Path(path)
    if not path.is_file():
        raise TFFileError(f"transfer function not found: {path}")
    if path.stat().st_size > MAX_TF_BYTES:
        raise TFFileError(f"{path.name} is {path.stat().st_size / 2**20:.0f} MB; transfer-function files are small")
    try:
        text = path.read_text(errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise TFFileError(f"{path.name} is not a text transfer-function file") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".vp":
            return from_slicer_vp(text, name=path.stem)
        if suffix == ".itf":
            return from_inviwo_itf(text, value_range, name=path.stem)
        if suffix == ".1dt":
            return from_1dt(text, value_range, name=path.stem)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TFFileError(f"{path.name} is not valid JSON ({exc.msg}, line {exc.lineno})") from exc
        except RecursionError:
            raise TFFileError(f"{path.name} is nested too deeply to be a transfer function") from None
        if isinstance(data, dict) and "color" in data and "opacity" in data:
            return TransferFunction1D.from_dict(data)
        return from_paraview(data, map_name)
    except TFFileError as exc:
        text = str(exc)
        raise TFFileError(text if text.startswith(path.name) else f"{path.name}: {text}") from exc
    except ValueError as exc:
        raise TFFileError(f"{path.name}: {str(exc).splitlines()[0]}") from exc


def tf_file_map_names(path: str | os.PathLike) -> list[str]:
    """The ParaView map names in ``path`` (empty for single-TF formats or unreadable files)."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file() or path.stat().st_size > MAX_TF_BYTES:
        return []
    try:
        return paraview_map_names(path.read_text())
    except (ValueError, OSError):
        return []


def write_tf_file(tf: TransferFunction1D, path: str | os.PathLike, fmt: str = "auto", force: bool = False,
                  provenance: dict | None = None) -> Path:
    """Write ``tf`` atomically (with a provenance sidecar): ``fmt`` 'vp' (Slicer), 'paraview'
    (ParaView JSON) or 'spectra' (our JSON); 'auto' picks by suffix (.vp → Slicer, names ending
    in .pv.json → ParaView, other .json → ours)."""
    from engines.provenance import build_record as make_provenance
    from engines.atomic_files import save_with_sidecar

    name = Path(path).name.lower()
    if fmt == "auto":
        fmt = "vp" if name.endswith(".vp") else "paraview" if name.endswith(".pv.json") else "spectra"
    if fmt == "vp":
        payload = to_slicer_vp(tf).encode()
    elif fmt == "paraview":
        payload = json.dumps(to_paraview(tf), indent=1).encode()
    elif fmt == "spectra":
        payload = tf.to_json().encode()
    else:
        raise TFFileError(f"unknown TF format {fmt!r}; use vp, paraview or spectra")
    if provenance is None:
        # "tf" holds the function itself (as the Volume panel's parameters do), so the file reopens with it
        provenance = make_provenance("volume", "engines.volume.tf_exchange", {"tf": tf.to_dict(), "format": fmt})

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(payload)

    return save_with_sidecar(path, write, provenance, force=force)


# --------------------------------------------------------------------------- thumbnails
def tf_thumbnail(tf: TransferFunction1D, width: int = 72, height: int = 18) -> np.ndarray:
    """An (H, W, 3) uint8 picture of ``tf`` over its inner points (± 10 %): colours composited
    over a dark background by opacity, the opacity curve drawn in white."""
    xs = sorted({p[0] for p in tf.opacity[1:-1]} | {p[0] for p in tf.color[1:-1]}) or [p[0] for p in tf.opacity]
    lo, hi = min(xs), max(xs)
    pad = 0.1 * (hi - lo) if hi > lo else 1.0
    rgba = tf.evaluate(np.linspace(lo - pad, hi + pad, width))
    alpha = np.clip(rgba[:, 3] / max(float(rgba[:, 3].max()), 1e-6), 0, 1)
    background = np.full(3, 0.12)
    row = rgba[:, :3] * (0.25 + 0.75 * alpha[:, None]) + background * (0.75 * (1 - alpha[:, None]))
    image = np.repeat(row[None], height, axis=0)
    ys = np.round((height - 2) * (1 - alpha)).astype(int)
    image[ys, np.arange(width)] = 1.0
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)
