"""The parameters of a generation (no Qt, no torch): :class:`GenerationParams` and the names
its fields take. Light to import, so the CLI reads its option defaults from here at start-up;
:mod:`engines.generation.api` (which runs them) re-exports both.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

__all__ = ["CONTROL_PREPROCESSORS", "HIRES_MODES", "LORA_MODES", "MAX_SEED", "PRECISION_PRESETS", "GenerationParams"]

#: how a LoRA is applied: merged into the weights for the run, or as forward hooks
LORA_MODES = ("fused", "unfused")
#: precision / memory presets (:mod:`engines.generation.precision` applies them)
PRECISION_PRESETS = ("default", "low-memory", "int8", "fp8", "int4", "cpu-offload")
#: ControlNet pre-processors that need no weights (:mod:`engines.generation.control_preprocess`)
CONTROL_PREPROCESSORS = ("none", "canny", "scribble", "depth", "tile")

#: the largest seed (torch generators take 64-bit seeds; the samplers add small offsets to a seed)
MAX_SEED = 2**64 - 2**20 - 1

# hires fix: "pixel" upscales the decoded image (bicubic) and re-encodes it; "latent" (bicubic)
# and "latent-nearest" (nearest-exact) upscale the final latents, as A1111's "Latent" upscalers
HIRES_MODES = ("pixel", "latent", "latent-nearest")


@dataclass
class GenerationParams:
    """Everything that determines a generation (besides input images).

    ``class_label``: int for class-conditional models (None = unconditional); ``sampler``,
    ``steps``, ``cfg``, ``width``/``height`` 0 or "" mean "model default"; ``seed`` < 0 means
    random (the chosen seed is recorded); image ``i`` of a batch uses ``seed + i``.
    ``strength``: SDEdit strength for img2img/inpainting (1 = ignore the input);
    ``ilvr_n``: ILVR low-pass factor (0 = off); ``mask_blur``: inpainting pastes the original
    back outside the mask, feathered inward over this many pixels; ``loras``: LoRA files merged
    for the run, ``"a.safetensors=0.8;b.safetensors"`` (weight 1 when omitted); ``lora_mode``:
    ``fused`` (merged into the weights, restored after) or ``unfused`` (forward hooks, weights
    untouched); ``embeddings``:
    textual-inversion files, ``"a.pt;b.safetensors"`` (A1111 files are used by their file name);
    ``vae``: another VAE (folder or ``.safetensors``) used instead of the model's own;
    ``precision``: ``default`` / ``low-memory`` / ``int8`` / ``fp8`` / ``int4`` / ``cpu-offload``
    (:mod:`engines.generation.precision`; ``preset_unavailable`` says why one cannot run here);
    ``hires_scale`` > 1: hires fix, each image is upscaled by this factor and refined by an
    img2img pass at ``hires_strength`` with its own seed; ``hires_mode`` (:data:`HIRES_MODES`):
    ``pixel`` upscales the image (bicubic), ``latent`` / ``latent-nearest`` the final latents
    (bicubic / nearest-exact; never decoded and re-encoded in between);
    ``tile_size`` > 0 (latent pixels, multiple of 8): the denoiser runs on overlapping tiles of
    this size blended with feathered weights (MultiDiffusion), the VAE decodes/encodes in tiles,
    so the size is bounded by memory; ``tile_overlap``: pixels shared by neighbouring tiles.
    ``controlnet``: a ControlNet (diffusers folder or ``.safetensors``) for SD-family models, driven
    by ``control_image`` (a file; or the array given to :func:`generate_job`) after the
    ``control_preprocessor`` (none|canny|scribble|depth|tile), its residuals scaled by
    ``control_scale`` and applied for the step fraction ``[control_start, control_end]``;
    ``control_options``: the pre-processor's options, ``"low=50;high=150"`` (canny ``low``, ``high``,
    ``sigma``; scribble ``threshold``, ``invert``; depth ``invert``; tile ``factor``, ``blur``).
    """

    model: str = "digits-flow"
    prompt: str = ""
    negative_prompt: str = ""
    class_label: int | None = None
    sampler: str = ""
    steps: int = 0
    cfg: float = -1.0
    seed: int = -1
    width: int = 0
    height: int = 0
    batch: int = 1
    strength: float = 1.0
    ilvr_n: int = 0
    mask_blur: float = 4.0
    loras: str = ""
    lora_mode: str = "fused"
    embeddings: str = ""
    vae: str = ""
    precision: str = ""
    hires_scale: float = 1.0
    hires_strength: float = 0.5
    hires_mode: str = "pixel"
    tile_size: int = 0
    tile_overlap: int = 16
    controlnet: str = ""
    control_image: str = ""
    control_preprocessor: str = "none"
    control_scale: float = 1.0
    control_start: float = 0.0
    control_end: float = 1.0
    control_options: str = ""

    def to_dict(self) -> dict:
        """JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GenerationParams:
        """Build from a dict, ignoring unknown keys; raises ValueError on bad types."""
        names = {f.name: f for f in fields(cls)}
        kwargs = {}
        for key, value in (data or {}).items():
            if key not in names:
                continue
            default = getattr(cls(), key)
            try:
                if key == "class_label":
                    kwargs[key] = None if value in (None, "", "none") else int(value)
                elif isinstance(default, bool):
                    kwargs[key] = bool(value)
                elif isinstance(default, int):
                    kwargs[key] = int(value)
                elif isinstance(default, float):
                    kwargs[key] = float(value)
                else:
                    kwargs[key] = "" if value is None else str(value)
            except (TypeError, ValueError):
                raise ValueError(f"parameter {key!r} has a bad value {value!r}") from None
        return cls(**kwargs)
