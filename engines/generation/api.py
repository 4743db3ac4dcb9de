"""The generation entry point: parameters in, images out, as a job (no Qt).

:func:`generate_job` resolves the model (one loading path for shipped, diffusers-folder and
single-file models), fills defaults, and runs the own sampling loop or a diffusers pipeline.
:class:`GenerationParams` (:mod:`engines.generation.params`, re-exported here) round-trips
through JSON (PNG provenance and panel settings).
"""

from __future__ import annotations

import importlib
import math
import random
from dataclasses import dataclass, field

import numpy as np

from engines.generation.models import ModelInfo, load_model, resolve_model
from engines.generation.params import HIRES_MODES, MAX_SEED, GenerationParams
from engines.jobs import CancelToken, Log, Progress, wait_in_thread

__all__ = [
    "ENGINE_NAME",
    "HIRES_MODES",
    "GenerationParams",
    "GenerationResult",
    "generate_job",
    "params_from_provenance",
    "provenance_for",
    "resolve_params",
    "upscale_latents",
]

ENGINE_NAME = "generation"


@dataclass
class GenerationResult:
    """``images``: ``(B, H, W, 3)`` uint8; ``params``: the resolved parameters (actual seed,
    sampler, steps ...); ``seeds``: one per image; ``model``: :class:`ModelInfo` as a dict."""

    images: np.ndarray
    params: dict
    seeds: list
    model: dict
    seconds: float = 0.0
    device: str = "cpu"
    mode: str = "txt2img"
    extra: dict = field(default_factory=dict)


def resolve_params(params: GenerationParams, info: ModelInfo) -> GenerationParams:
    """Fill model defaults and validate; raises ValueError with a one-line reason."""
    p = GenerationParams.from_dict(params.to_dict())
    p.model = info.name if info.shipped else (params.model or info.path)
    p.sampler = p.sampler or info.default_sampler
    if p.sampler not in info.samplers:
        raise ValueError(f"sampler {p.sampler!r} does not suit model {info.name} (choose: {', '.join(info.samplers)})")
    p.steps = p.steps or info.default_steps
    if not 1 <= p.steps <= 1000:
        raise ValueError(f"steps must be 1..1000 (got {p.steps})")
    if p.cfg < 0:
        p.cfg = info.default_cfg
    if not math.isfinite(p.cfg) or p.cfg > 100:
        raise ValueError(f"cfg must be a finite number in 0..100 (got {p.cfg})")
    if not 1 <= p.batch <= 64:
        raise ValueError(f"batch must be 1..64 (got {p.batch})")
    if p.seed + p.batch - 1 > MAX_SEED:
        raise ValueError(f"seed must be -1 (random) or 0..{MAX_SEED - p.batch + 1} (got {p.seed})")
    if not (0.0 <= p.strength <= 1.0) or not math.isfinite(p.strength):
        raise ValueError(f"strength must be in 0..1 (got {p.strength})")
    if not (0.0 <= p.mask_blur <= 256.0) or not math.isfinite(p.mask_blur):
        raise ValueError(f"mask blur must be 0..256 pixels (got {p.mask_blur})")
    from engines.generation.lora import LORA_MODES
    from engines.generation.precision import PRESETS

    p.lora_mode = p.lora_mode or "fused"
    if p.lora_mode not in LORA_MODES:
        raise ValueError(f"LoRA mode must be one of {', '.join(LORA_MODES)} (got {p.lora_mode!r})")

    if p.precision and p.precision not in PRESETS:
        raise ValueError(f"precision must be one of {', '.join(PRESETS)} (got {p.precision!r})")
    if not (1.0 <= p.hires_scale <= 4.0 and 0.0 <= p.hires_strength <= 1.0):
        raise ValueError(f"hires scale must be 1..4 and its strength 0..1 (got {p.hires_scale}, {p.hires_strength})")
    p.hires_mode = p.hires_mode or "pixel"
    if p.hires_mode not in HIRES_MODES:
        raise ValueError(f"hires mode must be one of {', '.join(HIRES_MODES)} (got {p.hires_mode!r})")
    if p.tile_size and not (p.tile_size % 8 == 0 and 16 <= p.tile_size <= 1024 and 0 <= p.tile_overlap < p.tile_size):
        raise ValueError(f"tile size must be 0 (off) or a multiple of 8 in 16..1024 with an overlap 0..size-1 "
                         f"(got {p.tile_size}, overlap {p.tile_overlap})")
    _check_control(p, info)
    if p.ilvr_n and p.ilvr_n < 2:
        raise ValueError(f"ILVR factor N must be 0 (off) or at least 2 (got {p.ilvr_n})")
    p.height = p.height or int(info.size[0])
    p.width = p.width or int(info.size[1])
    if info.kind.startswith("own"):
        multiple = 8
        if p.height % multiple or p.width % multiple or not (8 <= p.height <= 1024 and 8 <= p.width <= 1024):
            raise ValueError(f"size must be a multiple of {multiple} between 8 and 1024 (got {p.width}x{p.height})")
    if info.conditioning == "class":
        if p.class_label is not None and not 0 <= p.class_label < len(info.class_names):
            raise ValueError(f"class must be 0..{len(info.class_names) - 1} (got {p.class_label})")
    elif p.class_label is not None:
        raise ValueError(f"model {info.name} is not class-conditional; use a prompt")
    if p.seed < 0:
        p.seed = random.SystemRandom().randrange(0, 2**31 - 1)
    return p


def _check_control(p: GenerationParams, info: ModelInfo) -> None:
    """Validate the ControlNet parameters (ValueError with a one-line reason)."""
    from engines.generation.control_preprocess import PREPROCESSORS, parse_options

    p.control_preprocessor = p.control_preprocessor or "none"
    if p.control_preprocessor not in PREPROCESSORS:
        raise ValueError(f"control pre-processor must be one of {', '.join(PREPROCESSORS)} "
                         f"(got {p.control_preprocessor!r})")
    parse_options(p.control_preprocessor, p.control_options)
    if not (math.isfinite(p.control_scale) and 0.0 <= p.control_scale <= 5.0):
        raise ValueError(f"control scale must be 0..5 (got {p.control_scale})")
    if not (0.0 <= p.control_start < p.control_end <= 1.0):
        raise ValueError(f"control start and end must satisfy 0 <= start < end <= 1 "
                         f"(got {p.control_start}, {p.control_end})")
    if p.controlnet and info.kind.startswith("own"):
        raise ValueError(f"ControlNet needs a Stable-Diffusion-family (UNet) model; {info.name} is a "
                         f"pixel-space model without text cross-attention")


def _prepare_control(p: GenerationParams, loaded, control, size: tuple):
    """Job: load the ControlNet, read and pre-process the control image at the size the ControlNet
    needs; returns ``(controlnet, control image uint8, provenance dict, control image as read)``,
    or four None without a ControlNet."""
    if not p.controlnet:
        if control is not None or p.control_image:
            raise ValueError("a control image needs a ControlNet (--controlnet)")
        return None, None, None, None
    from engines.generation.control_preprocess import parse_options, prepare_control_image
    from engines.generation.controlnet import control_factor, load_controlnet, read_control_image

    if control is None:
        if not p.control_image:
            raise ValueError("a ControlNet needs a control image (--control-image)")
        control = yield from wait_in_thread(read_control_image, p.control_image, message="reading the control image")
    unet = getattr(loaded.pipe, "unet", None) if loaded.pipe is not None else None
    controlnet, weights_sha = yield from wait_in_thread(load_controlnet, p.controlnet, unet,
                                                        message="loading the ControlNet")
    vae_factor = int(getattr(loaded.pipe, "vae_scale_factor", 8) or 8)
    factor = control_factor(controlnet)
    if size[0] % vae_factor or size[1] % vae_factor:
        raise ValueError(f"with a ControlNet the size must be a multiple of {vae_factor} (got {size[1]}x{size[0]})")
    control_size = (size[0] // vae_factor * factor, size[1] // vae_factor * factor)
    options = parse_options(p.control_preprocessor, p.control_options)
    prepared = yield from wait_in_thread(prepare_control_image, control, p.control_preprocessor, control_size, options,
                                         message=f"pre-processing the control image ({p.control_preprocessor})")
    record = {"path": p.controlnet, "weights_sha256": weights_sha, "control_image": p.control_image,
              "control_pixel_sha256": array_sha256(np.asarray(control)),
              "prepared_pixel_sha256": array_sha256(prepared), "preprocessor": p.control_preprocessor,
              "preprocessor_options": options,
              "scale": p.control_scale, "start": p.control_start, "end": p.control_end}
    return controlnet, prepared, record, control


def generate_job(
    params: GenerationParams,
    init: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    model_folders=(),
    device: str | None = None,
    cancel: CancelToken | None = None,
    preview_every: int = 1,
    init_latents=None,
    control: np.ndarray | None = None,
):
    """Job: generate ``params.batch`` images.

    ``init``/``reference``: ``(H, W, 3)`` uint8 or float [0, 1] images (img2img/inpainting
    input, ILVR reference); ``mask``: ``(H, W)`` (1/255 = regenerate); ``init_latents``:
    ``(1, C, h, w)`` tensor in the model's sampling space (pixels in [-1, 1] for own models,
    scaled VAE latents for pipelines) used as the img2img input without encoding (latent hires).
    ``control``: the ControlNet's control image before pre-processing (default: read from
    ``params.control_image``). Yields Log, Progress, Preview; returns :class:`GenerationResult`.
    Raises ModelError / ValueError for bad input.
    """
    import time

    from engines.device import get_device

    yield Progress(0, 1, "preparing")
    device = device or (yield from wait_in_thread(get_device, message="detecting the device"))
    start = time.monotonic()
    info = resolve_model(params.model, model_folders)
    p = resolve_params(params, info)
    if init_latents is not None and (init is not None or mask is not None or reference is not None):
        raise ValueError("input latents replace the input image; no image, mask or reference with them")
    if mask is not None and init is None:
        raise ValueError("a mask needs an input image (--init)")
    if p.ilvr_n and reference is None:
        raise ValueError("ILVR needs a reference image")
    if reference is not None and not p.ilvr_n:
        raise ValueError("a reference image needs an ILVR factor N >= 2")
    # the first diffusers import and model load cannot be interrupted: they run on a helper thread
    # while this job keeps yielding, so a cancel lands at once (the load finishes and is cached)
    yield from wait_in_thread(importlib.import_module, "diffusers.models", message=f"loading {info.name}")
    from engines.generation.lora import parse_lora_list

    loras = parse_lora_list(p.loras)
    # a quantized preset runs the cached quantized model (the full weights are not kept next to it);
    # with LoRA / embeddings the full weights are adapted first and quantized for this run only
    cached_precision = "" if loras or p.embeddings else p.precision
    loaded = yield from wait_in_thread(load_model, info, device, cached_precision,
                                       message=f"loading {info.name} weights")
    yield Log(f"generating {p.batch} image(s) with {info.name}, {p.sampler}, {p.steps} steps, seed {p.seed}")
    seeds = [p.seed + i for i in range(p.batch)]
    has_init = init is not None or init_latents is not None
    mode = "txt2img" if not has_init else ("inpaint" if mask is not None else "img2img")
    if reference is not None:
        mode += "+ilvr"
    size = (p.height, p.width)
    controlnet, prepared, control_record, control_source = yield from _prepare_control(p, loaded, control, size)
    from engines.generation.lora import applied_loras

    components = {"unet": loaded.unet} if loaded.pipe is None else {
        name: getattr(loaded.pipe, name, None) for name in ("unet", "transformer", "text_encoder", "text_encoder_2")}
    from engines.generation.embeddings import loaded_embeddings, parse_embedding_list

    embeddings = parse_embedding_list(p.embeddings)
    if embeddings and loaded.pipe is None:
        raise ValueError("textual-inversion embeddings need a text-conditioned pipeline model")
    from engines.generation.precision import applied_precision
    from engines.generation.tiling import tiled_denoiser, tiled_vae
    from engines.generation.vae_swap import swapped_vae

    latent_hires = p.hires_scale > 1 and p.hires_mode != "pixel"
    latents = None
    with applied_loras(components, loras, p.lora_mode) as changed, loaded_embeddings(loaded.pipe, embeddings) as tokens, \
            swapped_vae(loaded.pipe, p.vae), applied_precision(
                p.precision if loaded.precision == "default" else "default", loaded.pipe, loaded.unet) as replaced, \
            tiled_denoiser(loaded.pipe, replaced.get("unet", loaded.unet), p.tile_size, p.tile_overlap) as denoiser, \
            tiled_vae(loaded.pipe, p.tile_size, p.tile_overlap):
        if changed:  # LoRA for this run only: merged and restored exactly after, or hooked
            yield Log(f"LoRA ({p.lora_mode}): {changed} layers changed")
        if tokens:
            yield Log("embeddings: " + ", ".join(tokens.values()))
        if info.kind.startswith("own"):
            from engines.generation.sampling import mask_tensor, sample_own_job, to_model_tensor, to_uint8_rgb

            channels = loaded.unet.config.in_channels
            init_t = to_model_tensor(init, size, channels, device) if init is not None else init_latents
            mask_t = mask_tensor(mask, size, device) if mask is not None else None
            ref_t = to_model_tensor(reference, size, channels, device) if reference is not None else None
            labels = [p.class_label] * p.batch if info.conditioning == "class" else None
            x = yield from sample_own_job(
                denoiser, loaded.scheduler_config, info.prediction_type, p.sampler, p.steps, seeds, size,
                class_labels=labels, null_class=info.null_class, cfg=p.cfg, init=init_t,
                strength=p.strength if has_init else 1.0, mask=mask_t, reference=ref_t, ilvr_n=p.ilvr_n,
                cancel=cancel, preview_every=preview_every,
            )
            images = to_uint8_rgb(x)
            latents = x if latent_hires else None
        else:
            if reference is not None:
                raise ValueError("ILVR reference guidance runs only on pixel-space models in the own loop")
            from engines.generation.pipelines import run_pipeline_job
            from engines.generation.sampling import to_model_tensor

            init_f = None
            if init is not None:
                init_f = ((to_model_tensor(init, size, 3)[0].permute(1, 2, 0).numpy() + 1) / 2)
            mask_f = None
            if mask is not None:
                from engines.generation.sampling import mask_tensor

                mask_f = mask_tensor(mask, size)[0, 0].numpy()
            from engines.generation.controlnet import attached_controlnet

            outs = []
            for k, seed in enumerate(seeds):  # one image at a time: image k equals its seed run alone, exactly
                job = run_pipeline_job(
                    loaded.pipe, info.prediction_type, p.sampler, p.steps, [seed], prompt=p.prompt,
                    negative_prompt=p.negative_prompt, cfg=p.cfg, size=size, init=init_f, strength=p.strength,
                    mask=mask_f, cancel=cancel, preview_every=preview_every, mask_blur=p.mask_blur,
                    init_latents=init_latents, latents_out=latent_hires,
                )
                with attached_controlnet(getattr(loaded.pipe, "unet", None), controlnet, prepared, p.control_scale, p.control_start,
                                         p.control_end, scheduler_of=lambda: loaded.pipe.scheduler) as schedule:
                    outs.append((yield from _batch_part(job, k, len(seeds))))
                if control_record is not None:
                    control_record["active_steps"] = list(schedule.active_steps)
            if latent_hires:  # not decoded: the hires pass continues from these latents
                import torch

                latents, images = torch.cat(outs), None
            else:
                out = np.concatenate(outs)
                images = (np.clip(out, 0, 1) * 255).round().astype(np.uint8)
    if p.hires_scale > 1:
        images = yield from _hires_fix(p, images, seeds, model_folders, device, cancel, preview_every, latents,
                                       control)
        mode += "+hires"
    torch_seconds = time.monotonic() - start
    hashes = {role: array_sha256(a) for role, a in (("init", init), ("mask", mask), ("reference", reference))
              if a is not None}
    extra = {"input_pixel_sha256": hashes}
    if control_record is not None:
        mode += "+controlnet"
        extra["controlnet"] = control_record
        extra["control_image"] = prepared  # the pre-processed control image, e.g. to show
        extra["control_source"] = control_source  # the control image as read: stored with exports
    return GenerationResult(images=images, params=p.to_dict(), seeds=seeds, model=info.to_dict(),
                            seconds=round(torch_seconds, 3), device=device, mode=mode, extra=extra)


def upscale_latents(latents, size: tuple, mode: str = "latent"):
    """``(B, C, h, w)`` latents resized to ``size = (H, W)``: bicubic for ``latent``,
    nearest-exact for ``latent-nearest`` (A1111's latent upscalers)."""
    import torch.nn.functional as F

    if mode == "latent-nearest":
        return F.interpolate(latents, size=size, mode="nearest-exact")
    return F.interpolate(latents, size=size, mode="bicubic", align_corners=False)


def _hires_fix(p: GenerationParams, images, seeds: list, model_folders, device, cancel, preview_every, latents=None,
               control=None):
    """Upscale each image by ``p.hires_scale`` (sides rounded to multiples of 8) and refine it
    with an img2img pass at ``p.hires_strength``, seeded with the image's own seed.
    ``latents`` (latent modes): the first pass's final latents, upscaled in latent space and
    passed on as they are (no decode / encode). ``control``: the ControlNet's control image."""
    from PIL import Image

    height = max(8, int(round(p.height * p.hires_scale / 8)) * 8)
    width = max(8, int(round(p.width * p.hires_scale / 8)) * 8)
    out = []
    for k, seed in enumerate(seeds):
        hp = GenerationParams.from_dict(dict(p.to_dict(), seed=seed, batch=1, width=width, height=height,
                                             strength=p.hires_strength, hires_scale=1.0))
        if latents is None:
            big = np.asarray(Image.fromarray(images[k]).resize((width, height), Image.BICUBIC))
            job = generate_job(hp, init=big, model_folders=model_folders, device=device, cancel=cancel,
                               preview_every=preview_every, control=control)
        else:
            factor = p.height // latents.shape[-2]  # pixels per latent pixel (1 for pixel-space models)
            big = upscale_latents(latents[k:k + 1], (height // factor, width // factor), p.hires_mode)
            job = generate_job(hp, init_latents=big, model_folders=model_folders, device=device, cancel=cancel,
                               preview_every=preview_every, control=control)
        result = yield from _batch_part(job, k, len(seeds))
        out.append(result.images[0])
    return np.stack(out)


def _batch_part(job, index: int, count: int):
    """Run ``job`` (image ``index`` of ``count``), rescaling its Progress to the whole batch."""
    try:
        event = next(job)
        while True:
            if isinstance(event, Progress) and count > 1 and event.total > 0:
                done = index * event.total + event.done
                event = Progress(done, count * event.total, f"image {index + 1}/{count}, {event.message}")
            event = job.send((yield event))
    except StopIteration as stop:
        return stop.value
    finally:
        job.close()  # a cancelled batch stops the running pipeline too


def array_sha256(array: np.ndarray) -> str:
    """sha256 of an input image's pixels (shape and dtype included), so pasted inputs are traceable."""
    import hashlib

    a = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{a.shape}|{a.dtype}|".encode())
    digest.update(a.tobytes())
    return digest.hexdigest()


def provenance_for(result: GenerationResult, index: int = 0, inputs: dict | None = None) -> dict:
    """Provenance record for image ``index`` of ``result``.

    ``inputs``: ``{"init": path, "mask": path, "reference": path}`` (files are hashed).
    The image's own seed is stored; its parameters restore exactly this image with batch 1.
    """
    from engines.provenance import build_record as make_provenance

    params = dict(result.params)
    params["seed"] = int(result.seeds[index])
    params["batch"] = 1
    inputs = {k: v for k, v in (inputs or {}).items() if v}
    record = make_provenance(
        "generate", ENGINE_NAME, params, seed=int(result.seeds[index]), device=result.device,
        inputs=list(inputs.values()),
        extra={"generation": {"mode": result.mode, "batch_seed": int(result.params.get("seed", result.seeds[0])),
                              "batch_index": index, "model_path": result.model.get("path"),
                              "model_kind": result.model.get("kind"), "input_roles": inputs,
                              "input_pixel_sha256": result.extra.get("input_pixel_sha256", {}),
                              **({"controlnet": result.extra["controlnet"]} if result.extra.get("controlnet") else {}),
                              "seconds": result.seconds}},
    )
    return record


def params_from_provenance(record: dict) -> GenerationParams:
    """The :class:`GenerationParams` stored in a provenance record (ValueError if not ours)."""
    if not record or record.get("panel") != "generate":
        raise ValueError("this file was not made by the Generate panel")
    return GenerationParams.from_dict(record.get("parameters") or {})
