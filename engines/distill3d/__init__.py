"""Text/class/image → 3D by score distillation of a 2D prior into Gaussians or spheres (no Qt).

Modules: :mod:`settings` (:class:`DistillSettings` and its choices; light, no torch),
:mod:`priors` (ε̂ from the shipped flow model or a diffusers latent pipeline),
:mod:`estimators` (SDS, SJC, SDI), :mod:`vsd` (VSD / ESD camera-conditioned copy),
:mod:`cameras` (random orbits), :mod:`scene3d` (parameters, rendering), :mod:`reference`
(image → 3D inputs), :mod:`job` (the distillation job), :mod:`turntable` (frames, eval views).

Importing the package (or :mod:`settings`) does not import torch: the job's names are loaded
from :mod:`job` on first use.
"""

from __future__ import annotations

import importlib

from engines.distill3d.settings import METHODS, DistillSettings

__all__ = ["METHODS", "DistillResult", "DistillSettings", "distill_job", "provenance_parameters"]

_FROM_JOB = ("DistillResult", "distill_job", "provenance_parameters")


def __getattr__(name: str):
    """The job's names (torch) are imported when first asked for."""
    if name in _FROM_JOB:
        return getattr(importlib.import_module("engines.distill3d.job"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
