"""Running diffusers pipelines with live previews and cancel (no Qt).

The pipeline runs on a helper thread; its ``callback_on_step_end`` hands each step's
latents to the job generator, which yields Progress and a cheap latent -> RGB Preview.
Cancel (closing the job or a :class:`CancelToken`) raises inside the callback, so the
pipeline stops at the next step and nothing is decoded or returned.
"""

from __future__ import annotations

import queue
import threading

import numpy as np
import torch

from engines.generation.samplers import make_scheduler
from engines.jobs import CancelToken, JobCancelled, Preview, Progress

__all__ = ["LATENT_RGB_FACTORS", "feathered_mask", "img2img_steps", "latents_to_rgb", "run_pipeline_job"]

# Linear latent -> RGB projections (weights-free previews), as used by InvokeAI's step_callback.
LATENT_RGB_FACTORS = {
    "sd": (
        [[0.3444, 0.1385, 0.0670], [0.1247, 0.4027, 0.1494], [-0.3192, 0.2513, 0.2103], [-0.1307, -0.1874, -0.7445]],
        None,
    ),
    "sdxl": (
        [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]],
        [0.1084, -0.0175, -0.0011],
    ),
}


def latents_to_rgb(latents: torch.Tensor, family: str = "sd") -> np.ndarray:
    """``(B, C, h, w)`` latents -> ``(B, h, w, 3)`` uint8 preview.

    4-channel latents use the linear factors of ``family`` (``sd`` or ``sdxl``); 3-channel
    tensors are taken as RGB in [-1, 1]; others show their first three channels, each
    normalised to its own range.
    """
    lat = latents.detach().float().cpu()
    if lat.ndim == 3:  # packed / sequence latents: no spatial layout to show
        side = int(np.sqrt(lat.shape[1]))
        lat = lat[:, : side * side].transpose(1, 2).reshape(lat.shape[0], -1, side, side)
    channels = lat.shape[1]
    if channels == 4:
        factors, bias = LATENT_RGB_FACTORS.get(family, LATENT_RGB_FACTORS["sd"])
        rgb = torch.einsum("bchw,cr->bhwr", lat, torch.tensor(factors))
        if bias is not None:
            rgb = rgb + torch.tensor(bias)
        rgb = (rgb + 1) / 2
    elif channels == 3:
        rgb = (lat.permute(0, 2, 3, 1) + 1) / 2
    else:
        rgb = lat[:, : min(3, channels)].permute(0, 2, 3, 1)
        lo = rgb.amin(dim=(1, 2), keepdim=True)
        hi = rgb.amax(dim=(1, 2), keepdim=True)
        rgb = (rgb - lo) / (hi - lo + 1e-8)
        if rgb.shape[3] < 3:
            rgb = rgb[..., :1].repeat(1, 1, 1, 3)
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def img2img_steps(steps: int, strength: float) -> int:
    """Scheduler steps for an img2img run so at least one denoising step remains.

    diffusers runs ``int(steps * strength)`` steps; below one step (e.g. strength 0.05 with
    20 steps) its timestep list is empty and it crashes, so the schedule is made finer.
    """
    n = max(1, int(steps))
    while strength > 0 and int(n * strength) < 1:
        n += 1
    return n


def feathered_mask(mask: np.ndarray, blur: float) -> np.ndarray:
    """``(H, W)`` mask in [0, 1] -> blend weight for pasting the generated pixels back.

    The edge is feathered *inward* over ``blur`` pixels (linear ramp on the distance to the
    kept region), so pixels outside the mask get weight 0 and keep the original exactly.
    """
    m = np.clip(np.asarray(mask, dtype=np.float64), 0, 1)
    if blur <= 0:
        return m
    from scipy.ndimage import distance_transform_edt

    inside = m > 0.5
    if not inside.any():
        return m * 0
    if inside.all():
        return m
    ramp = np.clip(distance_transform_edt(inside) / (float(blur) + 1.0), 0, 1)  # edge pixel: 1 / (blur + 1)
    return m * ramp


class _Stop(Exception):
    """Raised in the pipeline callback to abandon a cancelled run."""


def _family(pipe) -> str:
    name = type(pipe).__name__
    return "sdxl" if "XL" in name else "sd"


def run_pipeline_job(
    pipe,
    prediction_type: str,
    sampler: str,
    steps: int,
    seeds: list,
    prompt: str = "",
    negative_prompt: str = "",
    cfg: float = 7.0,
    size: tuple | None = None,
    init: np.ndarray | None = None,
    strength: float = 1.0,
    mask: np.ndarray | None = None,
    cancel: CancelToken | None = None,
    preview_every: int = 1,
    mask_blur: float = 4.0,
    paste_back: bool = True,
    init_latents: torch.Tensor | None = None,
    latents_out: bool = False,
):
    """Job: run a diffusers pipeline (txt2img, or img2img / inpainting derived with ``from_pipe``).

    ``init``: ``(H, W, 3)`` float image in [0, 1]; ``mask``: ``(H, W)`` float, 1 = regenerate.
    ``strength`` 0 returns the input unchanged; inpainting pastes the original back outside
    the mask (``paste_back``) with the edge feathered inward over ``mask_blur`` pixels.
    ``size``: ``(height, width)``. ``init_latents``: ``(1, C, h, w)`` scaled VAE latents used as
    the img2img input instead of ``init`` (never encoded); ``latents_out``: return the final
    latents ``(B, C, h, w)`` (a tensor, not decoded) instead of images.
    Yields Progress and Preview per step; returns ``(B, H, W, 3)`` float images in [0, 1].
    Raises :class:`JobCancelled` if cancelled.
    """
    from PIL import Image

    if sampler:
        # always derive from the model's own scheduler config: the pipeline is cached, and a config
        # taken from the previously swapped-in scheduler has lost keys the next class needs
        # (e.g. DPM++ has no clip_sample, so a DDIM built from it would clip latents)
        base = getattr(pipe, "_spectra_base_scheduler_config", None)
        if base is None:
            base = dict(pipe.scheduler.config)
            pipe._spectra_base_scheduler_config = base
        pipe.scheduler = make_scheduler(sampler, prediction_type, base)
    runner = pipe
    kwargs = {}
    if init_latents is not None:
        if init is not None or mask is not None:
            raise ValueError("input latents replace the input image and take no mask")
        if getattr(pipe, "unet", None) is None or getattr(getattr(pipe, "vae", None), "config", None) is None:
            raise ValueError("latent hires fix needs a UNet + VAE pipeline (SD-style); use the pixel mode")
        if init_latents.shape[1] != 4 or pipe.vae.config.latent_channels != 4:
            raise ValueError("latent hires fix needs 4-channel VAE latents; use the pixel mode")
        if strength <= 0:  # nothing to regenerate: decode the upscaled latents once
            yield Progress(1, 1, "strength 0: upscaled latents decoded")
            with torch.inference_mode():
                lat = init_latents.to(pipe.vae.device, pipe.vae.dtype) / pipe.vae.config.scaling_factor
                decoded = pipe.vae.decode(lat).sample
            if latents_out:
                return init_latents.repeat(len(seeds), 1, 1, 1)
            image = pipe.image_processor.postprocess(decoded, output_type="np")
            return np.repeat(np.clip(np.asarray(image, dtype=np.float32), 0, 1), len(seeds), axis=0)
    if init is not None and strength <= 0:  # SDEdit at strength 0: nothing is regenerated
        yield Progress(1, 1, "strength 0: input kept")
        image = Image.fromarray((np.clip(init, 0, 1) * 255).round().astype(np.uint8))
        if size and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.BICUBIC)
        kept = np.asarray(image, dtype=np.float32) / 255.0
        return np.repeat(kept[None], len(seeds), axis=0)
    if init_latents is not None:
        from diffusers import AutoPipelineForImage2Image

        kwargs["image"] = init_latents
        kwargs["strength"] = float(strength)
        runner = AutoPipelineForImage2Image.from_pipe(pipe)
        runner.set_progress_bar_config(disable=True)
        steps = img2img_steps(steps, strength)
        total = max(1, min(int(steps * strength), steps))
    elif init is not None:
        from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

        image = Image.fromarray((np.clip(init, 0, 1) * 255).round().astype(np.uint8))
        if size:
            image = image.resize((size[1], size[0]), Image.BICUBIC)
        kwargs["image"] = image
        kwargs["strength"] = float(strength)
        if mask is not None:
            runner = AutoPipelineForInpainting.from_pipe(pipe)
            m = Image.fromarray((np.clip(mask, 0, 1) * 255).round().astype(np.uint8)).convert("L")
            kwargs["mask_image"] = m.resize(image.size, Image.NEAREST)
        else:
            runner = AutoPipelineForImage2Image.from_pipe(pipe)
        runner.set_progress_bar_config(disable=True)
        steps = img2img_steps(steps, strength)
        total = max(1, min(int(steps * strength), steps))
    else:
        total = int(steps)
    import inspect

    accepted = set(inspect.signature(runner.__call__).parameters)
    if "callback_on_step_end" not in accepted:
        raise ValueError(f"{type(runner).__name__} has no step callback; it cannot run with previews")
    if "prompt" in accepted:
        kwargs["prompt"] = prompt
        if "negative_prompt" in accepted and negative_prompt:
            kwargs["negative_prompt"] = negative_prompt
    if "guidance_scale" in accepted:
        kwargs["guidance_scale"] = float(cfg)
    if size and init is None and "height" in accepted:
        kwargs["height"], kwargs["width"] = int(size[0]), int(size[1])
    if "num_images_per_prompt" in accepted:
        kwargs["num_images_per_prompt"] = len(seeds)
    kwargs["generator"] = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
    kwargs["num_inference_steps"] = int(steps)
    kwargs["output_type"] = "latent" if latents_out else "np"
    tensor_inputs = [n for n in ("latents",) if n in getattr(runner, "_callback_tensor_inputs", [])]
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    family = _family(pipe)

    def callback(p, step_index, timestep, callback_kwargs):
        if stop.is_set() or (cancel is not None and cancel.cancelled):
            p._interrupt = True
            raise _Stop()
        preview = None
        if "latents" in callback_kwargs and preview_every and (step_index + 1) % preview_every == 0:
            preview = latents_to_rgb(callback_kwargs["latents"], family)
        events.put(("step", (step_index + 1, int(getattr(p, "_num_timesteps", 0) or total)), preview))
        return {}

    def work():
        try:
            with torch.inference_mode():
                out = runner(**kwargs, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=tensor_inputs)
            events.put(("done", out, None))
        except _Stop:
            events.put(("cancelled", None, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the job thread and re-raised there
            events.put(("error", exc, None))

    thread = threading.Thread(target=work, name="diffusers-pipeline", daemon=True)
    thread.start()
    try:
        while True:
            kind, value, preview = events.get()
            if kind == "step":
                value, total = value
                # no time-left text here: the studio's job table computes the one estimate from progress
                yield Progress(min(value, total), total, f"step {value}/{total}")
                if preview is not None:
                    from engines.generation.sampling import tile_images

                    yield Preview(tile_images(preview), {"step": value, "total": total}, f"step {value}/{total}")
            elif kind == "done" and latents_out:
                return value.images.detach().float().cpu()
            elif kind == "done":
                images = np.asarray(value.images, dtype=np.float32)
                if images.ndim == 3:
                    images = images[..., None].repeat(3, axis=3)
                images = np.clip(images, 0, 1)
                if mask is not None and paste_back:
                    original = np.asarray(kwargs["image"], dtype=np.float32) / 255.0
                    weight = feathered_mask(np.asarray(kwargs["mask_image"], dtype=np.float32) / 255.0, mask_blur)
                    if images.shape[1:3] == original.shape[:2]:
                        weight = weight.astype(np.float32)[None, :, :, None]
                        images = weight * images + (1 - weight) * original[None]
                return images
            elif kind == "cancelled":
                raise JobCancelled("cancelled")
            else:
                message = str(value).strip().splitlines()[0] if str(value).strip() else "no details"
                raise ValueError(f"pipeline failed: {message}") from value
    finally:
        stop.set()
        thread.join(timeout=60)
