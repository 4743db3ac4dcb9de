"""Text/class/image → 3D by score distillation of a 2D prior into Gaussians or spheres (no Qt).

Modules: :mod:`priors` (ε̂ from the shipped flow model or a diffusers latent pipeline),
:mod:`estimators` (SDS, SJC, SDI), :mod:`vsd` (VSD / ESD camera-conditioned copy),
:mod:`cameras` (random orbits), :mod:`scene3d` (parameters, rendering), :mod:`reference`
(image → 3D inputs), :mod:`job` (the distillation job), :mod:`turntable` (frames, eval views).
"""

from engines.distill3d.job import METHODS, DistillResult, DistillSettings, distill_job, provenance_parameters

__all__ = ["METHODS", "DistillResult", "DistillSettings", "distill_job", "provenance_parameters"]
