"""Random orbit cameras for score distillation (threestudio ``uncond.py`` style, OpenCV worlds, up = −y).

Azimuth 0, elevation 0 is the *front* view: the camera sits on −z and looks along +z, image x
runs along world +x and image "up" along world −y. Positive elevation lifts the camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engines.render.camera import Camera, orbit_camera

__all__ = ["OrbitSampler", "ViewSample", "fixed_view"]


@dataclass
class ViewSample:
    """One sampled view: the camera and the orbit angles it was drawn at (degrees)."""

    camera: Camera
    azimuth: float
    elevation: float


@dataclass
class OrbitSampler:
    """Draws cameras on an orbit: azimuth/elevation ranges (°), radius, fov (°), jitter.

    ``jitter`` perturbs the radius by ±jitter·radius and the look-at point by N(0, (jitter·radius/4)²).
    """

    azimuth: tuple = (-60.0, 60.0)
    elevation: tuple = (-5.0, 25.0)
    radius: float = 2.5
    fov: float = 40.0
    jitter: float = 0.05
    width: int = 32
    height: int = 32

    def sample(self, count: int, generator: torch.Generator) -> list[ViewSample]:
        """``count`` views; the azimuth range is stratified so every step covers it."""
        u = torch.rand(count, 4, generator=generator, dtype=torch.float64)
        centre_noise = torch.randn(count, 3, generator=generator, dtype=torch.float64)
        lo, hi = self.azimuth
        views = []
        for i in range(count):
            az = lo + (hi - lo) * (i + float(u[i, 0])) / count
            el = self.elevation[0] + (self.elevation[1] - self.elevation[0]) * float(u[i, 1])
            radius = self.radius * (1.0 + self.jitter * (2.0 * float(u[i, 2]) - 1.0))
            target = (centre_noise[i] * self.jitter * self.radius / 4.0).tolist()
            cam = orbit_camera(az, el, radius, target, self.width, self.height, self.fov)
            views.append(ViewSample(cam.to(torch.float32), az, el))
        return views

    def view(self, azimuth: float, elevation: float, width: int | None = None, height: int | None = None) -> ViewSample:
        """The un-jittered view at (azimuth, elevation), optionally at another size."""
        return fixed_view(azimuth, elevation, self.radius, self.fov, width or self.width, height or self.height)


def fixed_view(azimuth: float, elevation: float, radius: float, fov: float, width: int, height: int) -> ViewSample:
    """An orbit view looking at the origin."""
    return ViewSample(orbit_camera(azimuth, elevation, radius, (0.0, 0.0, 0.0), width, height, fov).to(torch.float32),
                      azimuth, elevation)
