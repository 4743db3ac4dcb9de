"""ControlNet for Stable-Diffusion-family UNets, attached to whatever loop calls the UNet (no Qt).

Loading (never downloads): a diffusers folder (``config.json`` + ``diffusion_pytorch_model.safetensors``,
or such a ``controlnet/`` subfolder) with ``ControlNetModel.from_pretrained(local_files_only=True)``,
or one ``.safetensors`` file whose config is derived from the base model's UNet
(``ControlNetModel.from_unet``; the conditioning-embedding channels are read from the tensors)
in diffusers or original LDM (``control_model.*``, converted with diffusers' own converter) tensor
names. A ControlNet made for another base model (cross-attention width, block channels) is refused
with one clear message, before any weights are read when the config says so.

Attaching: :func:`attached_controlnet` registers a forward pre-hook on the UNet. At every UNet call
(every denoising step of txt2img, img2img and inpainting pipelines alike, both CFG halves in one
batch) it runs the ControlNet on the same latents, timestep and text embeddings with the control
image, scaled by ``scale``, and hands ``down_block_additional_residuals`` /
``mid_block_additional_residual`` to the UNet, for the steps ``i`` with
``start <= i / n`` and ``(i + 1) / n <= end`` (diffusers' ``controlnet_keep`` rule), so the result
equals diffusers' ``StableDiffusionControlNetPipeline``. Flux / SD3 transformers and the
pixel-space digits models have no such UNet: they are refused.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import numpy as np

from engines.generation.model_checks import ModelError, check_state_dict, check_weight_file_size, read_config_json

__all__ = ["ControlSchedule", "attached_controlnet", "check_controlnet_fits", "control_factor", "controlnet_weights_file",
           "load_controlnet", "read_control_image"]

_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")
_cache: dict = {}
_cache_lock = threading.Lock()


def controlnet_weights_file(path: str | os.PathLike) -> Path:
    """The ``.safetensors`` file holding a ControlNet's weights (the file itself, or the one in a
    diffusers folder); ModelError when there is none (pickled ``.bin`` weights are never loaded)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".safetensors":
            raise ModelError(f"ControlNet {path.name}: only .safetensors files are read (not pickles)")
        return path
    if path.is_dir():
        for folder in (path, path / "controlnet"):
            for name in _WEIGHT_NAMES:
                if (folder / name).is_file():
                    return folder / name
        raise ModelError(f"ControlNet folder {path.name} has no diffusion_pytorch_model.safetensors")
    raise ModelError(f"ControlNet not found: {path}")


def check_controlnet_fits(cn_config: dict, unet_config: dict, name: str) -> None:
    """ModelError when a ControlNet config cannot drive a UNet with ``unet_config``."""
    def get(config, key, default=None):
        value = config.get(key, default)
        return list(value) if isinstance(value, (list, tuple)) else value

    checks = [
        ("cross-attention width", get(cn_config, "cross_attention_dim", 1280), get(unet_config, "cross_attention_dim", 1280)),
        ("block channels", get(cn_config, "block_out_channels"), get(unet_config, "block_out_channels")),
        ("layers per block", get(cn_config, "layers_per_block", 2), get(unet_config, "layers_per_block", 2)),
        ("down blocks", len(get(cn_config, "down_block_types", []) or []), len(get(unet_config, "down_block_types", []) or [])),
    ]
    for what, theirs, ours in checks:
        if theirs != ours:
            raise ModelError(f"ControlNet {name} does not match the base model: its {what} {theirs} vs the "
                             f"model's {ours} (a ControlNet for another model family?)")
    cn_in, unet_in = cn_config.get("in_channels", 4), unet_config.get("in_channels", 4)
    if cn_in != unet_in and not (unet_in == 9 and cn_in == 4):  # inpainting UNets take 4 latent + 5 mask channels
        raise ModelError(f"ControlNet {name} takes {cn_in} latent channels, the model {unet_in}")


def _cond_embedding_channels(shapes: dict) -> tuple[list[int], int]:
    """``(conditioning_embedding_out_channels, conditioning_channels)`` read from diffusers tensor shapes."""
    first = shapes.get("controlnet_cond_embedding.conv_in.weight")
    if first is None or len(first) != 4:
        raise ModelError("has no controlnet_cond_embedding tensors (not a ControlNet?)")
    channels = [int(first[0])]
    k = 1
    while f"controlnet_cond_embedding.blocks.{k}.weight" in shapes:
        channels.append(int(shapes[f"controlnet_cond_embedding.blocks.{k}.weight"][0]))
        k += 2
    return channels, int(first[1])


def _read_state(path: Path, name: str) -> dict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for broken files
        raise ModelError(f"ControlNet {name} is not a readable .safetensors file ({_first_line(exc)})") from None


def _assign(controlnet, state: dict, name: str):
    """Put the file's tensors into ``controlnet`` (built on the meta device: no memory, no random
    initialisation); every name and shape must match (ModelError otherwise)."""
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    expected = {k: tuple(v.shape) for k, v in controlnet.state_dict().items()}
    try:
        check_state_dict(shapes, expected, f"ControlNet {name}")
    except ModelError as exc:
        raise ModelError(f"{exc} (a ControlNet for another base model?)") from None
    controlnet.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in (*controlnet.parameters(), *controlnet.buffers())):
        raise ModelError(f"ControlNet {name}: some tensors were not in the file")
    return controlnet


def _load_single_file(path: Path, unet):
    """A ControlNet from one ``.safetensors`` file, its config derived from ``unet``'s."""
    import torch
    from diffusers import ControlNetModel

    state = _read_state(path, path.name)
    if any(k.startswith(("control_model.", "input_blocks.", "zero_convs.", "time_embed.")) for k in state):
        from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

        state = convert_controlnet_checkpoint(state, dict(unet.config))
        state = {k: v for k, v in state.items() if v is not None}
    try:
        channels, cond_in = _cond_embedding_channels({k: tuple(v.shape) for k, v in state.items()})
    except ModelError as exc:
        raise ModelError(f"ControlNet {path.name} {exc}") from None
    with torch.device("meta"):
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=tuple(channels),
                                               load_weights_from_unet=False, conditioning_channels=cond_in)
    return _assign(controlnet, state, path.name)


def _load_folder(weights: Path, unet):
    """A ControlNet from a diffusers folder (its config checked against ``unet`` before loading)."""
    import torch
    from diffusers import ControlNetModel

    folder = weights.parent
    config = read_config_json(folder / "config.json")
    if config.get("_class_name", "ControlNetModel") != "ControlNetModel":
        raise ModelError(f"ControlNet folder {folder.name}: config.json does not describe a ControlNetModel "
                         f"(SD-family UNet ControlNets only)")
    check_controlnet_fits(config, dict(unet.config), folder.name)
    with torch.device("meta"):
        controlnet = ControlNetModel.from_config(config)
    return _assign(controlnet, _read_state(weights, folder.name), folder.name)


def load_controlnet(path: str | os.PathLike, unet):
    """Load the ControlNet at ``path`` (folder or ``.safetensors``) for the base ``unet``; cached.

    Returns ``(controlnet, weights_sha256)``. ModelError for a missing, broken or mismatched file.
    """
    if unet is None or not hasattr(unet, "config") or "cross_attention_dim" not in unet.config:
        raise ModelError("ControlNet needs a Stable-Diffusion-family UNet model (not Flux/SD3 transformers "
                         "or the pixel-space digits models)")
    weights = controlnet_weights_file(path)
    stat = weights.stat()
    check_weight_file_size(stat.st_size, f"ControlNet {weights.name}")
    key = (str(weights.resolve()), stat.st_mtime_ns, stat.st_size, id(unet))
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    from engines.provenance import file_sha256

    try:
        if Path(path).is_dir():
            controlnet = _load_folder(weights, unet)
        else:
            controlnet = _load_single_file(weights, unet)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - diffusers / safetensors raise many types for bad files
        raise ModelError(f"ControlNet {Path(path).name} cannot be loaded ({_first_line(exc)[:160]})") from None
    check_controlnet_fits(dict(controlnet.config), dict(unet.config), Path(path).name)
    param = next(unet.parameters())
    if controlnet.dtype != param.dtype:  # e.g. an fp16 file for an fp32 model (diffusers warns on any dtype .to())
        controlnet = controlnet.to(dtype=param.dtype)
    controlnet = controlnet.to(param.device).eval()
    entry = (controlnet, file_sha256(weights))
    with _cache_lock:
        _cache.clear()  # keep one ControlNet loaded
        _cache[key] = entry
    return entry


def control_factor(controlnet) -> int:
    """How many control-image pixels make one latent pixel (2 per conditioning-embedding stage; 8 for SD)."""
    return 2 ** (len(controlnet.config.conditioning_embedding_out_channels) - 1)


class ControlSchedule:
    """Which UNet calls of one run get the residuals: call ``i`` of ``n`` when
    ``start <= i / n`` and ``(i + 1) / n <= end`` (diffusers' rule). ``n`` comes from the
    scheduler at the first call: its timesteps after the begin index (img2img truncates)."""

    def __init__(self, scheduler_of, start: float, end: float) -> None:
        self.scheduler_of, self.start, self.end = scheduler_of, float(start), float(end)
        self.calls, self.total = 0, None
        self.active_steps: list[int] = []

    def _count(self, t) -> int:
        scheduler = self.scheduler_of()
        timesteps = getattr(scheduler, "timesteps", None)
        if timesteps is None:
            raise ValueError("ControlNet needs a scheduler with timesteps")
        begin = getattr(scheduler, "begin_index", None)
        if begin is None:  # no begin index (txt2img), or a scheduler without one: first occurrence of t
            matches = (np.asarray(timesteps, dtype=np.float64) == float(t)).nonzero()[0]
            begin = int(matches[0]) if len(matches) else 0
        return max(1, len(timesteps) - int(begin))

    def next_call(self, t) -> bool:
        """Advance to the next UNet call (timestep ``t``); True when the ControlNet acts on it."""
        if self.total is None or self.calls >= self.total:  # a new run (e.g. a hires pass) starts over
            self.total, self.calls = self._count(t), 0
        i, n = self.calls, self.total
        self.calls += 1
        active = not (i / n < self.start or (i + 1) / n > self.end)
        if active:
            self.active_steps.append(i)
        return active


@contextlib.contextmanager
def attached_controlnet(unet, controlnet, control: np.ndarray, scale: float = 1.0, start: float = 0.0,
                        end: float = 1.0, scheduler_of=None):
    """Inside the block every call of ``unet`` gets ControlNet residuals for ``control``
    (``(H, W, 3)`` uint8, already pre-processed, of the latent size times
    :func:`control_factor`).

    ``scheduler_of()``: the scheduler of the running pipeline (for the step fraction).
    Yields the :class:`ControlSchedule` (its ``active_steps`` list the calls that got residuals).
    With tiled denoising (``unet`` a :class:`~engines.generation.tiling.TiledDenoiser`) every tile
    gets the residuals of its own crop of the control image.
    ``scale`` 0 attaches nothing (the output is bit-identical to a run without ControlNet).
    """
    import torch

    schedule = ControlSchedule(scheduler_of or (lambda: None), start, end)
    if scale == 0 or controlnet is None:
        yield schedule
        return
    param = next(controlnet.parameters())
    image = np.ascontiguousarray(np.asarray(control, dtype=np.uint8)[:, :, :3])
    cond = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]  # as diffusers' processor
    cond = cond.to(param.device, param.dtype)
    channels = int(controlnet.config.in_channels)
    needs_added = controlnet.config.get("addition_embed_type") is not None
    from engines.generation.tiling import TiledDenoiser, tile_starts

    tiled = isinstance(unet, TiledDenoiser)
    state: dict = {"active": False, "tiles": [], "full": (1, 1)}

    def step_hook(_module, args, kwargs):
        # once per denoiser call: is this step inside [start, end], and which tiles follow
        sample = args[0] if args else kwargs["sample"]
        state["active"] = schedule.next_call(args[1] if len(args) > 1 else kwargs["timestep"])
        h, w = sample.shape[-2:]
        if tiled:  # the order TiledDenoiser runs its tiles in
            th, tw = min(unet.tile, h), min(unet.tile, w)
            state["tiles"] = [(slice(y, y + th), slice(x, x + tw)) for y in tile_starts(h, unet.tile, unet.overlap)
                              for x in tile_starts(w, unet.tile, unet.overlap)]
        else:
            state["tiles"] = [(slice(0, h), slice(0, w))]
        state["full"] = (h, w)

    def residual_hook(_module, args, kwargs):
        # once per UNet call (per tile when tiled): the ControlNet on the same input, its control crop
        rows, cols = state["tiles"].pop(0) if state["tiles"] else (slice(None), slice(None))
        if not state["active"]:
            return None
        sample = args[0] if args else kwargs["sample"]
        t = args[1] if len(args) > 1 else kwargs["timestep"]
        f = cond.shape[-2] // state["full"][0]  # control pixels per latent pixel
        crop = cond if rows.start is None else cond[..., rows.start * f:rows.stop * f, cols.start * f:cols.stop * f]
        # as diffusers' ControlNet pipelines: SDXL ControlNets take the pooled text and size embeddings too
        extra = {"added_cond_kwargs": kwargs["added_cond_kwargs"]} if needs_added and kwargs.get("added_cond_kwargs") else {}
        with torch.no_grad():
            down, mid = controlnet(
                sample[:, :channels], t, encoder_hidden_states=kwargs["encoder_hidden_states"],
                controlnet_cond=crop.repeat(sample.shape[0], 1, 1, 1), conditioning_scale=float(scale),
                guess_mode=False, return_dict=False, **extra)
        kwargs = dict(kwargs, down_block_additional_residuals=down, mid_block_additional_residual=mid)
        return args, kwargs

    handles = [unet.register_forward_pre_hook(step_hook, with_kwargs=True)]
    handles.append((unet.model if tiled else unet).register_forward_pre_hook(residual_hook, with_kwargs=True))
    try:
        yield schedule
    finally:
        for handle in handles:
            handle.remove()


def read_control_image(path: str | os.PathLike) -> np.ndarray:
    """A control image file as an array: 16-bit / float depth maps keep their values, anything
    else becomes ``(H, W, 3)`` uint8 RGB. ValueError for a missing, broken or oversized file."""
    from engines.imagefile import ImageFileError, open_image

    try:
        image = open_image(path)
    except ImageFileError as exc:
        raise ValueError(f"control image: {exc}") from None
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(image, dtype=np.uint16)
    if image.mode in ("I", "F"):
        return np.asarray(image, dtype=np.float64) / (65535.0 if image.mode == "I" else 1.0)
    return np.asarray(image.convert("RGB"))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"
