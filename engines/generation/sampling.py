"""The studio's own sampling loop for pixel-space UNet2DModel models (no Qt).

One loop serves txt2img, img2img (SDEdit strength), masked inpainting (the known region is
replaced each step by the input noised to the current level) and ILVR reference guidance
(the low-pass of the noised reference replaces the sample's low-pass each step). Schedulers
come from :mod:`engines.generation.samplers`; a rectified-flow model also runs on the VP/VE
samplers (DDIM, Euler, Heun, DPM++ Karras) through an exact conversion: a flow state at
level ``s`` is a DDPM state with ``sqrt(1-a)/sqrt(a) = s/(1-s)`` rescaled by
``1/(sqrt(a)+sqrt(1-a))``, and ``eps = x_s + (1 - s) v``, ``x0 = x_s - s v``.

Images are ``(B, C, H, W)`` tensors in [-1, 1] inside; inputs and outputs at the API are
numpy ``(H, W, 3)`` / ``(B, H, W, 3)`` in [0, 1].
"""

from __future__ import annotations

import inspect

import numpy as np
import torch
import torch.nn.functional as F

from engines.generation.samplers import make_scheduler, sampler_mode, sampler_space
from engines.jobs import CancelToken, Preview, Progress

__all__ = ["lowpass", "noise_for_seeds", "sample_own_job", "tile_images", "to_model_tensor"]


def lowpass(x: torch.Tensor, n: int) -> torch.Tensor:
    """ILVR's phi_N: average-pool by ``n`` then bilinear upsample back; ``x`` is ``(B, C, H, W)``."""
    if n <= 1:
        return x
    small = F.avg_pool2d(x, kernel_size=n, stride=n, ceil_mode=True)
    return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)


def to_model_tensor(image: np.ndarray, size: tuple, channels: int, device: str = "cpu") -> torch.Tensor:
    """``(H, W[, 3|4])`` uint8/float image -> ``(1, channels, h, w)`` float tensor in [-1, 1].

    Resized (bicubic) to ``size = (h, w)``; RGB is averaged to grey for 1-channel models.
    """
    from PIL import Image

    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    if array.dtype != np.uint8:
        array = np.asarray(array, dtype=np.float64)
        if not np.all(np.isfinite(array)):
            raise ValueError("input image contains NaN or infinite values")
        array = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    if array.ndim not in (2, 3):
        raise ValueError(f"input image must be (H, W) or (H, W, 3), got shape {array.shape}")
    pil = Image.fromarray(array)
    pil = pil.convert("L" if channels == 1 else "RGB")
    if pil.size != (size[1], size[0]):
        pil = pil.resize((size[1], size[0]), Image.BICUBIC)
    data = np.asarray(pil, dtype=np.float32) / 255.0
    if data.ndim == 2:
        data = data[:, :, None]
    if data.shape[2] != channels:
        data = np.repeat(data[:, :, :1], channels, axis=2)
    return torch.from_numpy(data).permute(2, 0, 1)[None].to(device) * 2.0 - 1.0


def mask_tensor(mask: np.ndarray, size: tuple, device: str = "cpu") -> torch.Tensor:
    """``(H, W)`` mask (bool, uint8 0/255 or float [0,1]; 1 = regenerate) -> ``(1, 1, h, w)`` in [0, 1]."""
    from PIL import Image

    array = np.asarray(mask)
    if array.ndim == 3:
        array = array[:, :, :3].mean(axis=2) if array.shape[2] >= 3 else array[:, :, 0]
    if array.dtype == bool:
        array = array.astype(np.float32)
    elif array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    array = np.asarray(array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError("mask contains NaN or infinite values")
    pil = Image.fromarray(np.clip(array, 0, 1) * 255.0).convert("F")
    if pil.size != (size[1], size[0]):
        pil = pil.resize((size[1], size[0]), Image.BILINEAR)
    data = np.clip(np.asarray(pil, dtype=np.float32) / 255.0, 0, 1)
    return torch.from_numpy(data)[None, None].to(device)


def noise_for_seeds(seeds: list, shape: tuple, device: str = "cpu") -> torch.Tensor:
    """``(len(seeds), *shape)`` standard normal noise; image ``i`` depends only on ``seeds[i]``."""
    out = []
    for seed in seeds:
        gen = torch.Generator("cpu").manual_seed(int(seed) & 0xFFFFFFFFFFFFFFFF)
        out.append(torch.randn(shape, generator=gen))
    return torch.stack(out).to(device)


def tile_images(images: np.ndarray) -> np.ndarray:
    """``(B, H, W, 3)`` uint8 -> one ``(rows*H, cols*W, 3)`` grid (near-square)."""
    b, h, w, c = images.shape
    cols = int(np.ceil(np.sqrt(b)))
    rows = int(np.ceil(b / cols))
    grid = np.zeros((rows * h, cols * w, c), dtype=images.dtype)
    for i in range(b):
        r, q = divmod(i, cols)
        grid[r * h:(r + 1) * h, q * w:(q + 1) * w] = images[i]
    return grid


def to_uint8_rgb(x: torch.Tensor) -> np.ndarray:
    """``(B, C, H, W)`` in [-1, 1] -> ``(B, H, W, 3)`` uint8."""
    x = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    if x.shape[3] == 1:
        x = np.repeat(x, 3, axis=3)
    return x[..., :3]


class _Levels:
    """Noise levels of a VP schedule: ``s(t) = sqrt((1 - a_t) / a_t)``, log-interpolated at float t."""

    def __init__(self, scheduler) -> None:
        acp = scheduler.alphas_cumprod.double().cpu().numpy()
        self.log_s = np.log(np.sqrt((1 - acp) / acp))

    def sigma(self, t: float) -> float:
        """VE noise level at training timestep ``t``."""
        return float(np.exp(np.interp(float(t), np.arange(len(self.log_s)), self.log_s)))


def _noise_to(x0: torch.Tensor, noise: torch.Tensor, t: float | None, space: str, levels: _Levels | None) -> torch.Tensor:
    """``x0`` noised with ``noise`` to the level of timestep ``t`` in ``space`` (``t is None`` = clean)."""
    if t is None:
        return x0
    if space == "flow":
        s = float(t) / 1000.0
        return s * noise + (1 - s) * x0
    s = levels.sigma(t)
    if space == "ve":
        return x0 + s * noise
    return (x0 + s * noise) / np.sqrt(1 + s * s)


def _cancel_hooks(unet, cancel: CancelToken | None) -> list:
    """Check ``cancel`` before each UNet block, so a cancel stops inside a (slow) forward pass."""
    if cancel is None:
        return []
    blocks = [*getattr(unet, "down_blocks", []), getattr(unet, "mid_block", None), *getattr(unet, "up_blocks", [])]

    def check(_module, _inputs):
        cancel.raise_if_cancelled()

    return [block.register_forward_pre_hook(check) for block in blocks if block is not None]


def sample_own_job(
    unet,
    scheduler_config: dict,
    prediction_type: str,
    sampler: str,
    steps: int,
    seeds: list,
    size: tuple,
    class_labels: list | None = None,
    null_class: int | None = None,
    cfg: float = 1.0,
    init: torch.Tensor | None = None,
    strength: float = 1.0,
    mask: torch.Tensor | None = None,
    reference: torch.Tensor | None = None,
    ilvr_n: int = 0,
    cancel: CancelToken | None = None,
    preview_every: int = 1,
):
    """Job: sample ``len(seeds)`` images with a pixel-space ``UNet2DModel``.

    ``size``: ``(h, w)`` pixels. ``class_labels``: one label per image (None entries or
    ``None`` = unconditional/null); CFG ``out = u + cfg (c - u)`` when ``cfg != 1`` and a null
    class exists. ``init``: ``(1, C, h, w)`` in [-1, 1] for img2img/inpainting with SDEdit
    ``strength`` in [0, 1] (0 returns ``init``, 1 ignores it); ``mask``: ``(1, 1, h, w)``,
    1 = regenerate; ``reference``: ``(1, C, h, w)`` for ILVR with factor ``ilvr_n`` (>= 2).
    Yields Progress and Preview (predicted x0 grid) per step; returns ``(B, C, h, w)`` in [-1, 1].
    """
    device = next(unet.parameters()).device
    channels = unet.config.in_channels
    batch = len(seeds)
    h, w = int(size[0]), int(size[1])
    mode = sampler_mode(sampler, prediction_type)
    space = sampler_space(sampler, prediction_type)
    scheduler = make_scheduler(sampler, prediction_type, scheduler_config)
    scheduler.set_timesteps(int(steps), device=device)
    levels = _Levels(scheduler) if space != "flow" else None
    step_accepts_generator = "generator" in inspect.signature(scheduler.step).parameters
    # one generator per image for the per-step noise (Euler a, ILVR), so image i of a batch is
    # exactly the image ``seeds[i]`` gives alone
    step_gen = [torch.Generator("cpu").manual_seed(int(seed) + 7919) for seed in seeds]
    ref_gen = [torch.Generator("cpu").manual_seed(int(seed) + 104729) for seed in seeds]

    noise = noise_for_seeds(seeds, (channels, h, w), "cpu").to(device)
    timesteps = scheduler.timesteps
    if init is not None:
        init = init.to(device).expand(batch, -1, -1, -1)
        strength = float(min(max(strength, 0.0), 1.0))
        init_steps = min(int(steps * strength), steps)
        if init_steps == 0:
            yield Progress(1, 1, "strength 0: input returned unchanged")
            return init.clone()
        t_start = (steps - init_steps) * scheduler.order
        timesteps = timesteps[t_start:]
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(t_start)
        if init_steps >= steps:
            x = noise * float(getattr(scheduler, "init_noise_sigma", 1.0))
        else:
            x = _noise_to(init, noise, float(timesteps[0]), space, levels)
    else:
        x = noise * float(getattr(scheduler, "init_noise_sigma", 1.0))
    if mask is not None:
        if init is None:
            raise ValueError("inpainting needs an input image as well as a mask")
        mask = mask.to(device)
    if reference is not None:
        if ilvr_n < 2:
            raise ValueError("ILVR needs a factor N of at least 2")
        reference = reference.to(device).expand(batch, -1, -1, -1)

    has_classes = getattr(unet.config, "num_class_embeds", None) is not None
    labels = uncond = None
    use_cfg = False
    if has_classes:
        null = null_class if null_class is not None else unet.config.num_class_embeds - 1
        given = class_labels if class_labels is not None else [None] * batch
        labels = torch.tensor([null if c is None else int(c) for c in given], device=device)
        uncond = torch.full_like(labels, null)
        use_cfg = cfg != 1.0 and any(c is not None for c in given)

    def one_image(x_in: torch.Tensor, t_model: torch.Tensor, i: int) -> torch.Tensor:
        t_one = t_model.reshape(1) if t_model.numel() == 1 else t_model[i:i + 1]
        if not has_classes:
            return unet(x_in, t_one).sample
        if use_cfg:
            both = unet(torch.cat([x_in, x_in]), torch.cat([t_one, t_one]),
                        class_labels=torch.cat([uncond[i:i + 1], labels[i:i + 1]])).sample
            out_u, out_c = both.chunk(2)
            return out_u + cfg * (out_c - out_u)
        return unet(x_in, t_one, class_labels=labels[i:i + 1]).sample

    def velocity_or_eps(x_in: torch.Tensor, t_model: torch.Tensor) -> torch.Tensor:
        # image by image: batched convolutions round differently from single ones, and image i of
        # a batch must equal the image its seed gives alone, bit for bit
        return torch.cat([one_image(x_in[i:i + 1], t_model, i) for i in range(batch)])

    total = len(timesteps)
    hooks = _cancel_hooks(unet, cancel)
    try:
        with torch.inference_mode():
            for i, t in enumerate(timesteps):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                x_in = scheduler.scale_model_input(x, t) if hasattr(scheduler, "scale_model_input") else x
                tf = float(t)
                if prediction_type == "flow" and mode == "native":
                    s = tf / 1000.0
                    v = velocity_or_eps(x_in, torch.tensor(tf, device=device, dtype=torch.float32))
                    out, x0 = v, x_in - s * v
                elif prediction_type == "flow":
                    sv = levels.sigma(tf)
                    s = sv / (1 + sv)
                    c = np.sqrt(1 + sv * sv) / (1 + sv)
                    x_rf = x_in * c
                    v = velocity_or_eps(x_rf, torch.tensor(1000.0 * s, device=device, dtype=torch.float32))
                    out, x0 = x_rf + (1 - s) * v, x_rf - s * v
                else:
                    sv = levels.sigma(tf)
                    a = 1.0 / (1 + sv * sv)
                    out = velocity_or_eps(x_in, t.to(device) if torch.is_tensor(t) else torch.tensor(tf, device=device))
                    if prediction_type == "v_prediction":
                        x0 = np.sqrt(a) * x_in - np.sqrt(1 - a) * out
                    else:
                        x0 = (x_in - np.sqrt(1 - a) * out) / np.sqrt(a)
                kwargs = {"generator": step_gen} if step_accepts_generator else {}
                x = scheduler.step(out, t, x, **kwargs).prev_sample
                t_next = float(timesteps[i + 1]) if i + 1 < total else None
                if reference is not None:
                    ref_noise = torch.stack([torch.randn(reference.shape[1:], generator=g) for g in ref_gen])
                    y = _noise_to(reference, ref_noise.to(device), t_next, space, levels)
                    x = x - lowpass(x, ilvr_n) + lowpass(y, ilvr_n)
                if mask is not None:
                    known = _noise_to(init, noise, t_next, space, levels)
                    x = mask * x + (1 - mask) * known
                yield Progress(i + 1, total, f"step {i + 1}/{total}")  # the time left is the studio's one estimate
                if preview_every and ((i + 1) % preview_every == 0 or i + 1 == total):
                    yield Preview(tile_images(to_uint8_rgb(x0)), {"step": i + 1, "total": total}, f"step {i + 1}/{total}")
    finally:
        for hook in hooks:
            hook.remove()
    return x.clamp(-1, 1)
