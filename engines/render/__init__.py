"""Gaussian-splat and sphere rendering: scene model, 3DGS file formats, differentiable
rasterizers (vectorized-torch reference and a fast numba CPU path), a Pulsar-style sphere
renderer and fitting jobs. No Qt here.

Entry points:
  :func:`engines.render.rasterize.rasterize` - Gaussians -> image (differentiable)
  :func:`engines.render.pulsar.render_spheres` - spheres -> image (differentiable)
  :func:`engines.render.io.load_scene` / :func:`engines.render.io.save_ply`
  :func:`engines.render.fit.fit_job` - fitting job (generator)
"""

from engines.render.camera import Camera, look_at, orbit_camera  # noqa: F401
from engines.render.scene import SH_C0, Gaussians, Spheres, rgb_to_sh, sh_to_rgb  # noqa: F401
