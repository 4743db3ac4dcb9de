"""The settings of a 3D distillation (no Qt, no torch): :class:`DistillSettings`, the names its
fields take and :func:`validate`. Light to import, so the ``generate 3d`` CLI and the panel read
their defaults and choices from here at start-up; :mod:`engines.distill3d.job` (which runs them)
re-exports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["BACKGROUNDS", "LIMITS", "METHODS", "PRIMITIVES", "WEIGHTINGS", "DistillSettings", "validate"]

#: score-distillation estimators (:mod:`engines.distill3d.estimators`, :mod:`engines.distill3d.vsd`)
METHODS = ("sds", "sjc", "vsd", "esd", "sdi")
#: SDS weightings w(t) (:func:`engines.distill3d.estimators.sds_weight`)
WEIGHTINGS = ("dreamfusion", "uniform", "fantasia3d")
#: what the scene is made of
PRIMITIVES = ("gaussians", "spheres")
#: the renders' background: one colour, a random colour per view, or a learned colour
BACKGROUNDS = ("fixed", "random", "learned")
#: bounds of the counts that set a run's memory and time: field -> (lowest, highest)
LIMITS = {"steps": (1, 100_000), "count": (1, 100_000), "max_count": (1, 100_000), "views_per_step": (1, 16),
          "sjc_samples": (1, 16), "particles": (1, 16), "sdi_inversion_steps": (1, 100), "render_size": (0, 512),
          "preview_size": (8, 512), "preview_every": (1, 100_000), "densify_every": (1, 100_000),
          "seed": (0, 2**63 - 1)}


@dataclass
class DistillSettings:
    """Every knob of a distillation run (all JSON-able; stored in the provenance)."""

    model: str = "digits-flow"
    class_label: int | None = None
    prompt: str = ""
    negative_prompt: str = ""
    method: str = "sds"
    steps: int = 1000
    guidance: float = 10.0  # diffusers CFG convention: ε_u + guidance·(ε_c − ε_u)
    weighting: str = "dreamfusion"
    t_min: float = 0.02
    t_max: float = 0.98
    t_max_end: float = 0.5  # annealed linearly from t_max to this over the run (= t_max: no anneal)
    sjc_samples: int = 2  # PAAS noise draws per view
    # SJC's lowest t: its uniform weighting lets the small-noise steps (where a render is furthest out of
    # the denoiser's distribution) dominate; 0.02 failed class 3 (0.50 front-arc), 0.1 reaches 1.00
    sjc_t_min: float = 0.1
    sdi_inversion_steps: int = 3
    esd_lambda: float = 0.5  # ESD: weight of the camera-conditioned score (1 = VSD)
    vsd_lr: float = 1e-3
    particles: int = 1
    primitive: str = "gaussians"
    count: int = 1000
    sh_degree: int = 0
    init_radii: tuple = (0.55, 0.75, 0.25)
    init_opacity: float = 0.1
    azimuth: tuple = (-60.0, 60.0)
    elevation: tuple = (-5.0, 25.0)
    radius: float = 2.5
    fov: float = 40.0
    jitter: float = 0.05
    views_per_step: int = 2  # 2 stratified views: half the cost of 4, same front-arc accuracy (benchmark)
    render_size: int = 0  # 0 = the prior's native size
    background: str = "fixed"  # fixed | random | learned
    background_color: tuple = (0.0, 0.0, 0.0)
    lr_means: float = 2e-3
    lr_means_final: float = 2e-4
    lr_scales: float = 1e-2
    lr_quats: float = 5e-3
    lr_opacity: float = 5e-2
    lr_sh: float = 2e-2
    lr_colors: float = 5e-2
    lambda_opacity: float = 1e-3
    lambda_scale: float = 1e-1
    max_scale: float = 0.12
    densify: bool = True
    densify_from: float = 0.1
    densify_until: float = 0.6
    densify_every: int = 100
    grad_threshold: float = 2e-3
    prune_opacity: float = 0.01
    max_count: int = 2000  # densify cap: the rasterizer's cost grows with the count
    lambda_rgb: float = 1000.0  # image -> 3D: reference view losses
    lambda_mask: float = 100.0
    fourier: bool = False  # image -> 3D: score distillation on the Fourier amplitude of novel views
    seed: int = 0
    preview_every: int = 25
    preview_size: int = 64

    @classmethod
    def from_dict(cls, data: dict) -> DistillSettings:
        """Inverse of ``asdict`` (unknown keys ignored, lists turned back into tuples)."""
        names = {f.name for f in fields(cls)}
        clean = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
        return cls(**clean)


def validate(s: DistillSettings) -> None:
    """Raise ValueError with one clear sentence for bad settings."""
    if s.method not in METHODS:
        raise ValueError(f"unknown method {s.method!r}; use one of {', '.join(METHODS)}")
    for name, (lo, hi) in LIMITS.items():
        value = getattr(s, name)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ValueError(f"{name} must be a whole number from {lo} to {hi:,} (got {value!r})")
    if s.primitive not in PRIMITIVES:
        raise ValueError(f"primitive must be {' or '.join(repr(p) for p in PRIMITIVES)}")
    if s.sh_degree not in (0, 1):
        raise ValueError("sh_degree must be 0 or 1")
    if s.background not in BACKGROUNDS:
        raise ValueError(f"background must be {', '.join(BACKGROUNDS[:-1])} or {BACKGROUNDS[-1]}")
    if s.weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {s.weighting!r}; use one of {', '.join(WEIGHTINGS)}")
    if not 0.0 < s.t_min < s.t_max < 1.0 or not s.t_min < s.t_max_end < 1.0:
        raise ValueError("need 0 < t_min < t_max < 1 and t_min < t_max_end < 1")
    if s.method == "sjc" and not 0.0 < s.sjc_t_min < min(s.t_max, s.t_max_end):
        raise ValueError("need 0 < sjc_t_min < t_max and sjc_t_min < t_max_end")
    for f in fields(s):
        value = getattr(s, f.name)
        if any(isinstance(v, float) and not math.isfinite(v) for v in (value if isinstance(value, tuple) else (value,))):
            raise ValueError(f"{f.name} must be a finite number")
