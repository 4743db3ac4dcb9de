"""Sampler registry: UI names -> diffusers scheduler objects, offered only where they suit a model.

Each entry says which *space* the scheduler's sample lives in, which the own sampling loop
needs for masked blending and ILVR:

- ``flow``: ``x = sigma * noise + (1 - sigma) * x0`` with ``sigma = t / 1000`` (FlowMatch
  schedulers, UniPC / DPM++ with ``use_flow_sigmas``); the model output is a velocity.
- ``vp``: ``x = sqrt(a) * x0 + sqrt(1 - a) * noise`` (DDIM, DPM++, UniPC, LCM on the DDPM
  ``alphas_cumprod``); the model output is epsilon (or v).
- ``ve``: ``x = x0 + s * noise`` with ``s = sqrt((1 - a) / a)`` (Euler, Euler a, Heun).

``make_scheduler(name, model_kind, base_config)`` builds a fresh scheduler; swap it into a
diffusers pipeline with ``pipe.scheduler = make_scheduler(...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["SAMPLERS", "SamplerSpec", "UnknownSampler", "make_scheduler", "sampler_space", "samplers_for"]


class UnknownSampler(ValueError):
    """A sampler name that does not exist or does not suit the model."""


@dataclass(frozen=True)
class SamplerSpec:
    """One menu entry.

    ``native``: prediction kinds the scheduler runs on directly (``"flow"``, ``"epsilon"``,
    ``"v_prediction"``); ``adapted``: kinds the own loop can convert to (a flow model seen as an
    epsilon model on the DDPM schedule); ``distilled_only``: offer only for consistency-distilled
    models; ``kwargs``: constructor overrides.
    """

    name: str
    label: str
    class_name: str
    space: str
    native: tuple = ()
    adapted: tuple = ()
    distilled_only: bool = False
    kwargs: dict = field(default_factory=dict)
    flow_kwargs: dict = field(default_factory=dict)


_VP_NATIVE = ("epsilon", "v_prediction")

SAMPLERS: dict[str, SamplerSpec] = {
    spec.name: spec
    for spec in [
        SamplerSpec("flow_euler", "Flow Euler", "FlowMatchEulerDiscreteScheduler", "flow", native=("flow",)),
        SamplerSpec("flow_heun", "Flow Heun", "FlowMatchHeunDiscreteScheduler", "flow", native=("flow",)),
        SamplerSpec(
            "unipc", "UniPC", "UniPCMultistepScheduler", "vp", native=_VP_NATIVE + ("flow",),
            flow_kwargs={"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": 1.0},
        ),
        SamplerSpec(
            "dpmpp_2m", "DPM++ 2M", "DPMSolverMultistepScheduler", "vp", native=_VP_NATIVE + ("flow",),
            kwargs={"algorithm_type": "dpmsolver++", "solver_order": 2},
            flow_kwargs={"use_flow_sigmas": True, "prediction_type": "flow_prediction", "flow_shift": 1.0},
        ),
        SamplerSpec(
            "dpmpp_2m_karras", "DPM++ 2M Karras", "DPMSolverMultistepScheduler", "vp", native=_VP_NATIVE,
            adapted=("flow",), kwargs={"algorithm_type": "dpmsolver++", "solver_order": 2, "use_karras_sigmas": True},
        ),
        SamplerSpec("ddim", "DDIM", "DDIMScheduler", "vp", native=_VP_NATIVE, adapted=("flow",),
                    kwargs={"set_alpha_to_one": True, "timestep_spacing": "trailing"}),
        SamplerSpec("euler", "Euler", "EulerDiscreteScheduler", "ve", native=_VP_NATIVE, adapted=("flow",),
                    kwargs={"timestep_spacing": "trailing"}),
        SamplerSpec("euler_a", "Euler ancestral", "EulerAncestralDiscreteScheduler", "ve", native=_VP_NATIVE,
                    adapted=("flow",), kwargs={"timestep_spacing": "trailing"}),
        SamplerSpec("heun", "Heun", "HeunDiscreteScheduler", "ve", native=_VP_NATIVE, adapted=("flow",),
                    kwargs={"timestep_spacing": "trailing"}),
        SamplerSpec("lcm", "LCM", "LCMScheduler", "vp", native=_VP_NATIVE, distilled_only=True),
    ]
}

# The DDPM training schedule a flow model is mapped onto when it runs with a VP/VE sampler.
DDPM_DEFAULTS = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
                 "prediction_type": "epsilon", "clip_sample": False}


# Pipelines (by class-name prefix) whose ``__call__`` hands the scheduler a custom ``sigmas``
# schedule (and ``mu``) unless its config has ``use_flow_sigmas``: other schedulers whose
# ``set_timesteps`` takes no ``sigmas`` crash there.
CUSTOM_SIGMA_PIPELINES = ("Flux", "Chroma", "QwenImage", "Lumina2", "HiDream", "CogView4", "SanaSprint")


def _takes_custom_sigmas(class_name: str) -> bool:
    """True when diffusers scheduler ``class_name``'s ``set_timesteps`` accepts ``sigmas``."""
    import inspect

    import diffusers

    cls = getattr(diffusers, class_name)
    return "sigmas" in inspect.signature(cls.set_timesteps).parameters


def samplers_for(prediction_type: str, *, own_loop: bool = True, distilled: bool = False,
                 pipeline_class: str = "") -> list[str]:
    """Names of the samplers that suit a model.

    ``prediction_type``: ``"flow"``, ``"epsilon"`` or ``"v_prediction"``. ``own_loop``: the
    model runs in the studio's loop (so flow models can also use adapted VP samplers);
    ``distilled``: the model is consistency-distilled (LCM offered); ``pipeline_class``: the
    diffusers pipeline that runs it (pipelines that pass custom sigmas drop schedulers that
    cannot take them, e.g. Flow Heun under Flux).
    """
    custom_sigmas = not own_loop and pipeline_class.startswith(CUSTOM_SIGMA_PIPELINES)
    names = []
    for spec in SAMPLERS.values():
        if spec.distilled_only and not distilled:
            continue
        if custom_sigmas and not spec.flow_kwargs.get("use_flow_sigmas") and not _takes_custom_sigmas(spec.class_name):
            continue  # (flow-sigma schedulers are fine: those pipelines then pass no custom sigmas)
        if prediction_type in spec.native or (own_loop and prediction_type in spec.adapted):
            names.append(spec.name)
    return names


def sampler_mode(name: str, prediction_type: str) -> str:
    """How sampler ``name`` runs a model: ``"native"`` or ``"adapted"`` (flow model on a VP schedule)."""
    spec = SAMPLERS.get(name)
    if spec is None:
        raise UnknownSampler(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    if prediction_type in spec.native:
        return "native"
    if prediction_type in spec.adapted:
        return "adapted"
    raise UnknownSampler(f"sampler {name!r} does not suit a {prediction_type} model")


def sampler_space(name: str, prediction_type: str) -> str:
    """The sample space (``flow``, ``vp`` or ``ve``) of sampler ``name`` on a model of that kind."""
    spec = SAMPLERS[name]
    if prediction_type == "flow" and sampler_mode(name, prediction_type) == "native":
        return "flow"
    return spec.space


def _filtered(cls):
    """Wrap ``cls.from_config`` so keys the class does not accept are dropped silently."""
    import inspect

    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}

    class _Maker:
        @staticmethod
        def from_config(config: dict):
            return cls.from_config({k: v for k, v in config.items() if k in accepted})

    return _Maker


def make_scheduler(name: str, prediction_type: str, base_config: dict | None = None):
    """A fresh diffusers scheduler for sampler ``name`` on a ``prediction_type`` model.

    ``base_config``: the model's own scheduler config (its training schedule); used for
    native VP models. A flow model on an adapted sampler gets the standard DDPM schedule.
    Raises :class:`UnknownSampler` when the name is unknown or unsuitable.
    """
    import diffusers

    mode = sampler_mode(name, prediction_type)
    spec = SAMPLERS[name]
    cls = _filtered(getattr(diffusers, spec.class_name))
    base = dict(base_config or {})
    if prediction_type == "flow":
        if mode == "adapted":
            config = dict(DDPM_DEFAULTS)
            config.update(spec.kwargs)
            return cls.from_config(config)
        if spec.space == "flow" or spec.class_name.startswith("FlowMatch"):
            keep = {k: base[k] for k in ("num_train_timesteps", "shift", "use_dynamic_shifting", "base_shift",
                                         "max_shift", "base_image_seq_len", "max_image_seq_len") if k in base}
            keep.setdefault("num_train_timesteps", 1000)
            return cls.from_config(keep)
        config = {"num_train_timesteps": base.get("num_train_timesteps", 1000)}
        config.update(spec.kwargs)
        config.update(spec.flow_kwargs)
        if "shift" in base:
            config["flow_shift"] = base["shift"]
        if base.get("use_dynamic_shifting"):
            # Flux-style pipelines pass a resolution-dependent ``mu``; the multistep solvers accept it
            # only with dynamic shifting switched on (exponential time shift, as FlowMatch uses)
            config["use_dynamic_shifting"] = True
            config["time_shift_type"] = base.get("time_shift_type", "exponential")
        return cls.from_config(config)
    config = {k: v for k, v in base.items() if not k.startswith("_")} if base else dict(DDPM_DEFAULTS)
    for key in ("use_flow_sigmas", "flow_shift", "use_karras_sigmas", "algorithm_type", "solver_order"):
        config.pop(key, None)
    config["prediction_type"] = prediction_type
    config.setdefault("clip_sample", False)  # latent models must not clip; pixel DDPM configs say so explicitly
    config.update(spec.kwargs)
    return cls.from_config(config)
