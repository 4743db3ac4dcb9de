"""COLMAP sparse models (``cameras``, ``images``, ``points3D`` as ``.bin`` or ``.txt``) as posed views.

Layouts follow COLMAP's ``format.rst`` / ``read_write_model.py``. Binary records (little-endian):
``cameras.bin`` uint64 count, then per camera int32 id, int32 model id, uint64 width, uint64 height,
float64 params (count fixed by the model); ``images.bin`` uint64 count, then int32 id, float64
qw qx qy qz tx ty tz, int32 camera id, a NUL-terminated name, uint64 point count and that many
(float64 x, float64 y, int64 point3D id); ``points3D.bin`` uint64 count, then uint64 id, float64
x y z, uint8 r g b, float64 error, uint64 track length and (int32 image id, int32 point2D index)
pairs. Poses are world-to-camera, x_cam = R(q)·X + t (Hamilton, scalar first), camera axes
x right, y down, z forward — the convention of :class:`~engines.render.camera.Camera`.

Pinhole-type models (SIMPLE_PINHOLE, PINHOLE, and the pinhole part of SIMPLE_RADIAL, RADIAL,
OPENCV, FULL_OPENCV) are used; their distortion coefficients are reported, not applied. Fisheye
and FOV models are refused. Every count is checked against the file size before looping.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["CAMERA_MODELS", "ColmapModel", "find_colmap_model", "read_colmap_model"]

# id: (name, number of params)
CAMERA_MODELS = {0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5),
                 4: ("OPENCV", 8), 5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5),
                 8: ("SIMPLE_RADIAL_FISHEYE", 4), 9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12)}
_PINHOLE_PART = {"SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV"}


class ColmapError(ValueError):
    """A COLMAP model is missing, corrupt or uses an unsupported camera model."""


@dataclass
class ColmapModel:
    """cameras: id -> (model name, width, height, params); images: list of (id, qvec wxyz, tvec,
    camera id, name) sorted by name; points (M,3) float64, colors (M,3) uint8, errors (M,)."""

    cameras: dict
    images: list
    points: np.ndarray
    colors: np.ndarray
    errors: np.ndarray
    notes: list = field(default_factory=list)


def qvec_to_rotmat(q) -> np.ndarray:
    """Hamilton quaternion (w, x, y, z) -> 3x3 rotation matrix."""
    w, x, y, z = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


class _Reader:
    """Bounds-checked little-endian reads over a file's bytes."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data, self.pos, self.name = data, 0, name

    def need(self, nbytes: int, what: str) -> None:
        if nbytes < 0 or self.pos + nbytes > len(self.data):
            raise ColmapError(f"{self.name} is truncated or corrupt ({what} needs {nbytes} bytes, "
                              f"{len(self.data) - self.pos} left)")

    def read(self, fmt: str, what: str):
        size = struct.calcsize("<" + fmt)
        self.need(size, what)
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return out

    def count(self, minimum_record: int, what: str) -> int:
        (n,) = self.read("Q", what)
        self.need(n * minimum_record, f"{n} {what}")  # the count must fit in the rest of the file
        return n

    def name_string(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise ColmapError(f"{self.name} is truncated (image name without terminator)")
        text = self.data[self.pos:end].decode("utf-8", "replace")
        self.pos = end + 1
        return text


def _model_of(model_id, name: str):
    if model_id not in CAMERA_MODELS:
        raise ColmapError(f"{name}: unknown COLMAP camera model id {model_id}")
    return CAMERA_MODELS[model_id]


def _cameras_bin(path: Path) -> dict:
    r = _Reader(path.read_bytes(), path.name)
    cams = {}
    for _ in range(r.count(24, "cameras")):
        cam_id, model_id, width, height = r.read("iiQQ", "camera")
        model, nparams = _model_of(model_id, path.name)
        cams[cam_id] = (model, int(width), int(height), np.array(r.read("d" * nparams, "camera params")))
    return cams


def _images_bin(path: Path) -> list:
    r = _Reader(path.read_bytes(), path.name)
    images = []
    for _ in range(r.count(64 + 1 + 8, "images")):
        rec = r.read("idddddddi", "image")
        name = r.name_string()
        (npts,) = r.read("Q", "point count")
        r.need(24 * npts, f"{npts} image points")
        r.pos += 24 * npts
        images.append((rec[0], np.array(rec[1:5]), np.array(rec[5:8]), rec[8], name))
    return images


def _points_bin(path: Path):
    r = _Reader(path.read_bytes(), path.name)
    n = r.count(43 + 8, "points")
    xyz, rgb, err = np.zeros((n, 3)), np.zeros((n, 3), np.uint8), np.zeros(n)
    for i in range(n):
        rec = r.read("QdddBBBd", "point")
        xyz[i], rgb[i], err[i] = rec[1:4], rec[4:7], rec[7]
        (track,) = r.read("Q", "track length")
        r.need(8 * track, f"track of {track}")
        r.pos += 8 * track
    return xyz, rgb, err


def _lines(path: Path) -> list[list[str]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line.split())
    return out


def _cameras_txt(path: Path) -> dict:
    cams = {}
    names = {name: (i, n) for i, (name, n) in CAMERA_MODELS.items()}
    for row in _lines(path):
        try:
            cam_id, model, width, height = int(row[0]), row[1], int(row[2]), int(row[3])
            if model not in names:
                raise ColmapError(f"{path.name}: unknown camera model {model!r}")
            params = np.array([float(v) for v in row[4:]])
        except (IndexError, ValueError) as exc:
            raise ColmapError(f"{path.name}: unreadable camera line {' '.join(row)[:60]!r}") from exc
        if len(params) != names[model][1]:
            raise ColmapError(f"{path.name}: camera {cam_id} ({model}) needs {names[model][1]} parameters")
        cams[cam_id] = (model, width, height, params)
    return cams


def _images_txt(path: Path) -> list:
    rows = [line for line in path.read_text(errors="replace").splitlines() if not line.startswith("#")]
    images = []
    i = 0
    while i < len(rows):
        row = rows[i].split()
        if not row:  # blank line outside an image/points pair
            i += 1
            continue
        try:
            images.append((int(row[0]), np.array([float(v) for v in row[1:5]]),
                           np.array([float(v) for v in row[5:8]]), int(row[8]), " ".join(row[9:])))
        except (IndexError, ValueError) as exc:
            raise ColmapError(f"{path.name}: unreadable image line {rows[i][:60]!r}") from exc
        i += 2  # the image line, then its (possibly empty) points line
    return images


def _points_txt(path: Path):
    rows = _lines(path)
    try:
        xyz = np.array([[float(v) for v in r[1:4]] for r in rows]).reshape(-1, 3)
        rgb = np.array([[int(v) for v in r[4:7]] for r in rows], np.int64).reshape(-1, 3)
        err = np.array([float(r[7]) for r in rows])
        if rgb.size and (rgb.min() < 0 or rgb.max() > 255):
            raise ValueError("colour out of 0..255")
    except (IndexError, ValueError, OverflowError) as exc:
        raise ColmapError(f"{path.name}: unreadable point line") from exc
    return xyz, rgb.astype(np.uint8), err


def find_colmap_model(folder: str | os.PathLike) -> Path | None:
    """The folder holding cameras/images(.bin|.txt): ``folder`` itself, ``sparse/0`` or ``sparse``."""
    folder = Path(folder)
    for candidate in (folder, folder / "sparse" / "0", folder / "sparse"):
        if any((candidate / f"cameras{ext}").is_file() and (candidate / f"images{ext}").is_file()
               for ext in (".bin", ".txt")):
            return candidate
    return None


def read_colmap_model(folder: str | os.PathLike) -> ColmapModel:
    """Read a sparse model (binary preferred over text). Raises :class:`ColmapError` (one clear line)."""
    from engines.limits import check_decoded_size

    model_dir = find_colmap_model(folder)
    if model_dir is None:
        raise ColmapError(f"{Path(folder).name}: no COLMAP model (cameras.bin/txt + images.bin/txt) found")
    ext = ".bin" if (model_dir / "cameras.bin").is_file() and (model_dir / "images.bin").is_file() else ".txt"
    for name in ("cameras", "images", "points3D"):
        part = model_dir / f"{name}{ext}"
        if part.is_file():  # text parsing keeps whole files in memory: bound them like any decode
            check_decoded_size(part.stat().st_size * (4 if ext == ".txt" else 1), part.name, ColmapError)
    try:
        cameras = _cameras_bin(model_dir / "cameras.bin") if ext == ".bin" else _cameras_txt(model_dir / "cameras.txt")
        images = _images_bin(model_dir / "images.bin") if ext == ".bin" else _images_txt(model_dir / "images.txt")
        pts = model_dir / f"points3D{ext}"
        if pts.is_file():
            xyz, rgb, err = _points_bin(pts) if ext == ".bin" else _points_txt(pts)
        else:
            xyz, rgb, err = np.zeros((0, 3)), np.zeros((0, 3), np.uint8), np.zeros(0)
    except OSError as exc:
        raise ColmapError(f"{model_dir.name}: cannot read the COLMAP model ({exc.strerror})") from exc
    notes = []
    for cam_id, (model, width, height, params) in cameras.items():
        if not (0 < width <= 1 << 16 and 0 < height <= 1 << 16) or not np.all(np.isfinite(params)):
            raise ColmapError(f"camera {cam_id}: size {width}x{height} or its parameters are not valid")
        if model not in _PINHOLE_PART:
            raise ColmapError(f"camera {cam_id} uses the {model} model; only pinhole-type models are supported")
        extra = params[3:] if model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL") else params[4:]
        if np.any(np.abs(extra) > 0):
            notes.append(f"camera {cam_id} ({model}): distortion {np.round(extra, 4).tolist()} ignored")
    for image in images:
        if image[3] not in cameras:
            raise ColmapError(f"image {image[4]!r} refers to camera {image[3]}, which the model does not have")
    if not np.all(np.isfinite(xyz)):
        raise ColmapError("points3D holds NaN or infinite coordinates")
    return ColmapModel(cameras, sorted(images, key=lambda im: im[4]), xyz, rgb, err, notes)


def colmap_camera(model: ColmapModel, image) -> tuple:
    """(K (3,3), viewmat (4,4), width, height) of one image entry."""
    name, width, height, p = model.cameras[image[3]]
    if name in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        fx = fy = p[0]
        cx, cy = p[1], p[2]
    else:
        fx, fy, cx, cy = p[:4]
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    view = np.eye(4)
    view[:3, :3] = qvec_to_rotmat(image[1])
    view[:3, 3] = image[2]
    return K, view, width, height
