"""Pinhole cameras in the OpenCV convention (x right, y down, z forward).

``viewmat`` is the 4x4 world-to-camera matrix; ``K`` the 3x3 intrinsics in pixels with pixel
centres at +0.5 (pixel (0, 0) covers [0, 1) x [0, 1)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Camera", "fibonacci_cameras", "frame_camera", "intrinsics", "look_at", "orbit_camera", "scene_frame"]


def intrinsics(width: int, height: int, fov_x_deg: float = 50.0) -> torch.Tensor:
    """(3,3) K with f_x = f_y = W / (2 tan(fov_x/2)) and the principal point at the image centre."""
    f = width / (2.0 * math.tan(math.radians(fov_x_deg) / 2.0))
    return torch.tensor([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def look_at(eye, target, up=(0.0, -1.0, 0.0)) -> torch.Tensor:
    """World-to-camera (4,4) float64 matrix for a camera at ``eye`` looking at ``target``.

    OpenCV convention: camera z points to the target, camera y points roughly along -``up``
    (image y runs down). Raises ValueError when eye == target or up is parallel to the view.
    """
    eye = np.asarray(eye, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - eye
    norm = np.linalg.norm(forward)
    if norm < 1e-12:
        raise ValueError("look_at: eye and target coincide")
    forward /= norm
    up = np.asarray(up, dtype=np.float64)
    right = np.cross(-up, forward)  # x = y cross z with y ~ -up
    if np.linalg.norm(right) < 1e-9:
        right = np.cross(-up + np.array([1e-3, 2e-3, 3e-3]), forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])  # rows: camera axes in world coords
    view = np.eye(4)
    view[:3, :3] = rot
    view[:3, 3] = -rot @ eye
    return torch.from_numpy(view)


@dataclass
class Camera:
    """A pinhole camera: K (3,3), viewmat (4,4) world->camera, image size in pixels."""

    K: torch.Tensor
    viewmat: torch.Tensor
    width: int
    height: int

    @property
    def centre(self) -> torch.Tensor:
        """Camera centre in world coordinates, (3,)."""
        rot = self.viewmat[:3, :3]
        return -rot.T @ self.viewmat[:3, 3]

    def to(self, dtype=torch.float32, device="cpu") -> Camera:
        """Copy with tensors converted."""
        return Camera(self.K.to(device, dtype), self.viewmat.to(device, dtype), self.width, self.height)

    def scaled(self, factor: float) -> Camera:
        """Same view at ``factor`` times the resolution."""
        k = self.K.clone()
        k[:2] *= factor
        return Camera(k, self.viewmat.clone(), max(1, round(self.width * factor)), max(1, round(self.height * factor)))

    def as_dict(self) -> dict:
        """JSON-able description."""
        return {"K": self.K.tolist(), "viewmat": self.viewmat.tolist(), "width": self.width, "height": self.height}

    @classmethod
    def from_dict(cls, data: dict) -> Camera:
        """Inverse of :meth:`as_dict`; ValueError (one line) when a field is missing or malformed."""
        if not isinstance(data, dict):
            raise ValueError("a camera must be an object with K, viewmat, width and height")
        matrices = []
        for key, shape in (("K", (3, 3)), ("viewmat", (4, 4))):
            try:
                value = np.asarray(data.get(key), dtype=np.float64)
            except (TypeError, ValueError, OverflowError):
                value = np.zeros(0)
            if value.shape != shape or not np.all(np.isfinite(value)):
                raise ValueError(f"camera {key} must be a {shape[0]}x{shape[1]} matrix of finite numbers")
            matrices.append(torch.from_numpy(value.copy()))
        size = [data.get("width"), data.get("height")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 1 << 16 for v in size):
            raise ValueError("camera width and height must be whole numbers from 1 to 65536")
        return cls(matrices[0], matrices[1], int(size[0]), int(size[1]))


def orbit_camera(azimuth_deg: float, elevation_deg: float, radius: float, target=(0.0, 0.0, 0.0),
                 width: int = 256, height: int = 256, fov_x_deg: float = 50.0, up=(0.0, -1.0, 0.0)) -> Camera:
    """A camera on a sphere of ``radius`` around ``target`` looking at it.

    Azimuth is measured around ``up`` from the direction of the first axis perpendicular to it,
    elevation towards ``up``. With the default up = -y (COLMAP/OpenCV worlds), azimuth 0,
    elevation 0 looks along +z.
    """
    up = np.asarray(up, dtype=np.float64)
    up = up / np.linalg.norm(up)
    ref = np.array([0.0, 0.0, 1.0]) if abs(up[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    a = ref - up * (ref @ up)
    a /= np.linalg.norm(a)
    b = np.cross(up, a)
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    offset = -math.cos(el) * (math.cos(az) * a + math.sin(az) * b) + math.sin(el) * up  # target -> eye
    eye = np.asarray(target, dtype=np.float64) + offset * radius
    return Camera(intrinsics(width, height, fov_x_deg), look_at(eye, target, up), int(width), int(height))


def fibonacci_cameras(count: int, radius: float, target=(0.0, 0.0, 0.0), width: int = 64, height: int = 64,
                      fov_x_deg: float = 50.0, up=(0.0, -1.0, 0.0)) -> list[Camera]:
    """``count`` cameras spread over a sphere (Fibonacci lattice, elevations in ±60°) looking at ``target``."""
    cams = []
    golden = math.pi * (3.0 - math.sqrt(5.0))
    for i in range(count):
        el = math.degrees(math.asin(((i + 0.5) / count * 2 - 1) * math.sin(math.radians(60))))
        az = math.degrees(i * golden) % 360.0
        cams.append(orbit_camera(az, el, radius, target, width, height, fov_x_deg, up))
    return cams


def scene_frame(means, robust: bool = True) -> tuple[np.ndarray, float]:
    """(centre (3,), radius) of a point set: median centre and 95th-percentile distance when robust."""
    m = np.asarray(means.detach().cpu() if torch.is_tensor(means) else means, dtype=np.float64)
    if m.size == 0:
        return np.zeros(3), 1.0
    centre = np.median(m, 0) if robust else m.mean(0)
    dist = np.linalg.norm(m - centre, axis=1)
    radius = float(np.percentile(dist, 95) if robust else dist.max())
    return centre, max(radius, 1e-6)


def frame_camera(means, azimuth_deg: float = 0.0, elevation_deg: float = 0.0, width: int = 256, height: int = 256,
                 fov_x_deg: float = 50.0, up=(0.0, -1.0, 0.0), distance_factor: float = 1.1) -> Camera:
    """An orbit camera that frames the points ``means (N,3)``: the bounding sphere fills the view.

    Raises ValueError for a field of view outside (0°, 180°), a distance factor that is not a positive
    number or an angle that is not finite."""
    if not 0.0 < fov_x_deg < 180.0:  # NaN fails too
        raise ValueError(f"the field of view must be between 0 and 180 degrees (got {fov_x_deg})")
    if not (distance_factor > 0.0 and math.isfinite(distance_factor)):
        raise ValueError(f"the camera distance must be a positive number (got {distance_factor})")
    if not (math.isfinite(azimuth_deg) and math.isfinite(elevation_deg)):
        raise ValueError(f"the orbit angles must be finite numbers (got {azimuth_deg}, {elevation_deg})")
    centre, radius = scene_frame(means)
    fov = math.radians(min(fov_x_deg, fov_x_deg * height / width if width > height else fov_x_deg))
    distance = distance_factor * radius / math.sin(fov / 2)
    return orbit_camera(azimuth_deg, elevation_deg, distance, centre, width, height, fov_x_deg, up)
