"""nerfstudio / instant-ngp ``transforms.json`` posed views.

Intrinsics ``fl_x fl_y cx cy w h`` come from the top level or from each frame (a frame's value
wins); ``camera_angle_x`` (horizontal FOV, radians) stands in for a missing ``fl_x``
(fl_x = w / (2·tan(angle/2)); fl_y = fl_x when absent; cx, cy default to the image centre).
``transform_matrix`` is camera-to-world with OpenGL/Blender camera axes (x right, y up, z back);
it becomes an OpenCV world-to-camera matrix through c2w·diag(1, −1, −1, 1), then the inverse.
Distortion (k1.., p1..) is reported, not applied; fisheye ``camera_model`` is refused. Frame
``file_path`` is relative to the JSON's folder (a missing extension tries .png, .jpg).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

__all__ = ["TransformsError", "read_transforms"]


class TransformsError(ValueError):
    """A transforms.json is missing, malformed or not supported."""


def _number(frame: dict, top: dict, key: str):
    value = frame.get(key, top.get(key))
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError) as exc:
        raise TransformsError(f"transforms.json: {key} must be a number (got {value!r})") from exc
    if not math.isfinite(value):
        raise TransformsError(f"transforms.json: {key} is not finite")
    return value


def _image_path(folder: Path, name: str) -> Path:
    path = (folder / name).resolve()
    if path.suffix == "" or not path.is_file():
        for ext in (".png", ".jpg", ".jpeg"):
            if Path(str(path) + ext).is_file():
                return Path(str(path) + ext)
    return path


def read_transforms(path: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """Frames of a transforms.json: [{"image": Path, "K": (3,3), "viewmat": (4,4), "width", "height"}]
    sorted by file name (width/height may be None: taken from the image), and notes."""
    from engines.limits import check_decoded_size

    path = Path(path)
    if path.is_dir():
        path = path / "transforms.json"
    if not path.is_file():
        raise TransformsError(f"{path} does not exist")
    check_decoded_size(path.stat().st_size * 8, path.name, TransformsError)
    try:
        top = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TransformsError(f"{path.name} is not valid JSON ({exc})") from exc
    except RecursionError:
        raise TransformsError(f"{path.name} is not valid transforms.json (nested too deeply)") from None
    except OSError as exc:
        raise TransformsError(f"cannot read {path.name}: {exc.strerror or 'read error'}") from None
    if not isinstance(top, dict) or not isinstance(top.get("frames"), list) or not top["frames"]:
        raise TransformsError(f"{path.name} has no frames")
    model = str(top.get("camera_model", "OPENCV")).upper()
    if "FISHEYE" in model or model == "EQUIRECTANGULAR":
        raise TransformsError(f"{path.name}: camera model {model} is not supported (perspective only)")
    notes = []
    if any(abs(_number({}, top, k) or 0.0) > 0 for k in ("k1", "k2", "k3", "k4", "p1", "p2")):
        notes.append("lens distortion coefficients ignored")
    frames = []
    for i, frame in enumerate(top["frames"]):
        if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
            raise TransformsError(f"{path.name}: frame {i} needs file_path and transform_matrix")
        try:
            c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TransformsError(f"{path.name}: frame {i} transform_matrix is not numeric") from exc
        if c2w.shape == (3, 4):
            c2w = np.vstack([c2w, [0.0, 0.0, 0.0, 1.0]])
        if c2w.shape != (4, 4) or not np.all(np.isfinite(c2w)) or abs(np.linalg.det(c2w[:3, :3])) < 1e-9:
            raise TransformsError(f"{path.name}: frame {i} transform_matrix is not a valid 4x4 pose")
        w, h = _number(frame, top, "w"), _number(frame, top, "h")
        fx, fy = _number(frame, top, "fl_x"), _number(frame, top, "fl_y")
        angle = _number(frame, top, "camera_angle_x")
        if fx is None and angle is None:
            raise TransformsError(f"{path.name}: frame {i} has neither fl_x nor camera_angle_x")
        c2w_cv = c2w @ np.diag([1.0, -1.0, -1.0, 1.0])  # OpenGL camera axes -> OpenCV
        frames.append({"image": _image_path(path.parent, str(frame["file_path"])), "c2w": c2w_cv,
                       "fl_x": fx, "fl_y": fy, "angle_x": angle, "cx": _number(frame, top, "cx"),
                       "cy": _number(frame, top, "cy"), "width": w, "height": h})
    frames.sort(key=lambda f: f["image"].name)
    return frames, notes


def frame_camera(frame: dict, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, viewmat) of a frame from :func:`read_transforms` for an image of ``width`` x ``height``."""
    fx = frame["fl_x"] if frame["fl_x"] is not None else width / (2 * math.tan(frame["angle_x"] / 2))
    fy = frame["fl_y"] if frame["fl_y"] is not None else fx
    cx = frame["cx"] if frame["cx"] is not None else width / 2
    cy = frame["cy"] if frame["cy"] is not None else height / 2
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return K, np.linalg.inv(frame["c2w"])
