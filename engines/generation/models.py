"""Finding and loading generation models through one path (no Qt, never downloads).

Three kinds of model, all described by :class:`ModelInfo` and loaded by :func:`load_model`:

- ``own``: a diffusers folder holding a pixel-space ``UNet2DModel`` (``unet/``) and a scheduler,
  e.g. the shipped ``digits-flow`` model (which also has ``spectra_model.json`` describing its
  class conditioning) or a DDPM folder such as ``google/ddpm-cifar10-32`` saved locally.
  These run in the studio's own sampling loop (:mod:`engines.generation.sampling`).
- ``pipeline``: any other local diffusers pipeline folder (``model_index.json``: Stable
  Diffusion 1.x/2.x, SDXL, PixArt, SD3, Flux ...), loaded with ``DiffusionPipeline.from_pretrained``.
- ``single``: one ``.safetensors`` checkpoint in the original LDM layout plus a config skeleton
  folder (a diffusers folder without weights), loaded with ``from_single_file(file,
  config=skeleton)`` so no hub access is needed. The skeleton is ``<name>.config/`` next to the
  file when present (:func:`write_skeleton` makes one from any diffusers folder), otherwise the
  shipped one in ``assets/generation/`` for the family diffusers detects (:func:`checkpoint_family`:
  ``sd15`` for SD 1.x, ``sd2`` for SD 2.x 768 v-prediction, ``sdxl-base`` for SDXL base 1.0).

Every loader passes ``local_files_only=True``.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engines.generation.model_checks import (
    ModelError,
    check_meta,
    check_state_dict,
    check_unet_config,
    check_weight_file_size,
    read_config_json,
    sample_size,
    unet_parameter_count,
    weights_must_match,
)
from engines.generation.samplers import samplers_for

__all__ = [
    "SHIPPED_MODELS_DIR",
    "SKELETONS_DIR",
    "LoadedModel",
    "ModelError",
    "ModelInfo",
    "checkpoint_family",
    "clear_cache",
    "inspect_model",
    "load_model",
    "resolve_model",
    "scan_models",
    "skeleton_sidecar",
    "write_skeleton",
]

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_MODELS_DIR = ROOT / "assets" / "models"
SKELETONS_DIR = ROOT / "assets" / "generation"
DEFAULT_MODEL = "digits-flow"

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the studio never fetches from a hub




@dataclass
class ModelInfo:
    """What the UI and CLI need to know about a model without loading its weights.

    ``kind``: ``own`` | ``pipeline`` | ``single``; ``prediction_type``: ``flow`` |
    ``epsilon`` | ``v_prediction``; ``conditioning``: ``class`` | ``text`` | ``none``;
    ``size``: default ``(height, width)`` in pixels; ``samplers``: names that suit it.
    """

    name: str
    path: str
    kind: str
    pipeline_class: str = ""
    prediction_type: str = "epsilon"
    conditioning: str = "none"
    class_names: list = field(default_factory=list)
    null_class: int | None = None
    channels: int = 3
    size: tuple = (512, 512)
    samplers: list = field(default_factory=list)
    default_sampler: str = ""
    default_steps: int = 20
    default_cfg: float = 7.0
    distilled: bool = False
    skeleton: str = ""
    shipped: bool = False
    description: str = ""

    def to_dict(self) -> dict:
        """JSON-able form."""
        data = asdict(self)
        data["size"] = list(self.size)
        return data


def _component(index: dict, key: str) -> list | None:
    """A ``model_index.json`` component entry ``[library, class]`` (None when absent)."""
    entry = index.get(key)
    if not isinstance(entry, list):
        return None  # flags such as requires_safety_checker
    if len(entry) != 2 or not all(v is None or isinstance(v, str) for v in entry):
        raise ModelError(f"model_index.json: '{key}' must be a [library, class] pair, got {json.dumps(entry)[:40]}")
    return entry


def _scheduler_kind(scheduler_config: dict) -> tuple[str, bool]:
    """(prediction_type, distilled) from a scheduler config."""
    cls = str(scheduler_config.get("_class_name", "") or "")
    distilled = cls in ("LCMScheduler", "TCDScheduler", "FlowMatchLCMScheduler")
    if cls.startswith("FlowMatch") or scheduler_config.get("prediction_type") == "flow_prediction":
        return "flow", distilled
    prediction = scheduler_config.get("prediction_type", "epsilon") or "epsilon"
    if not isinstance(prediction, str):
        raise ModelError(f"scheduler_config.json: prediction_type must be text, got {prediction!r:.40}")
    return prediction, distilled


def _folder_info(folder: Path, shipped: bool = False) -> ModelInfo:
    try:
        return _folder_info_checked(folder, shipped)
    except ModelError as exc:
        text = str(exc)
        raise ModelError(text if text.startswith(folder.name) else f"{folder.name}: {text}") from None


def _folder_info_checked(folder: Path, shipped: bool) -> ModelInfo:
    index = read_config_json(folder / "model_index.json")
    sched_path = folder / "scheduler" / "scheduler_config.json"
    sched = read_config_json(sched_path) if sched_path.exists() else {}
    prediction, distilled = _scheduler_kind(sched)
    meta_path = folder / "spectra_model.json"
    unet_entry = _component(index, "unet")
    is_pixel_unet = unet_entry is not None and unet_entry[-1] == "UNet2DModel" and "vae" not in index
    if meta_path.exists() or is_pixel_unet:
        meta = check_meta(read_config_json(meta_path), "spectra_model.json") if meta_path.exists() else {}
        unet_cfg = check_unet_config(read_config_json(folder / "unet" / "config.json"), "unet/config.json")
        size = sample_size(unet_cfg, "unet/config.json")
        prediction = meta.get("prediction_type", prediction)
        n_classes = meta.get("num_classes")
        conditioning = "class" if n_classes else "none"
        samplers = samplers_for(prediction, own_loop=True, distilled=distilled)
        return ModelInfo(
            name=folder.name, path=str(folder), kind="own", pipeline_class=index.get("_class_name", ""),
            prediction_type=prediction, conditioning=conditioning,
            class_names=list(meta.get("class_names") or [str(i) for i in range(n_classes or 0)]),
            null_class=meta.get("null_class"), channels=int(unet_cfg.get("in_channels", 3)), size=size,
            samplers=samplers, default_sampler=meta.get("default_sampler", samplers[0] if samplers else ""),
            default_steps=int(meta.get("default_steps", 20)), default_cfg=float(meta.get("default_cfg", 1.0 if not n_classes else 3.0)),
            distilled=distilled, shipped=shipped, description=meta.get("description", "pixel-space UNet"),
        )
    cls_name = index.get("_class_name", "")
    if not cls_name or not isinstance(cls_name, str):
        raise ModelError(f"{folder.name}: model_index.json names no pipeline class")
    for key in index:
        value = None if key.startswith("_") else _component(index, key)
        if value is None or value[0] is None:
            continue
        if not (folder / key).is_dir():
            raise ModelError(f"{folder.name}: component folder '{key}/' listed in model_index.json is missing")
    text = any(k in index for k in ("text_encoder", "text_encoder_2", "tokenizer"))
    size = _pipeline_default_size(folder, index)
    samplers = samplers_for(prediction, own_loop=False, distilled=distilled, pipeline_class=cls_name)
    default = "flow_euler" if prediction == "flow" else ("lcm" if distilled else "dpmpp_2m_karras")
    return ModelInfo(
        name=folder.name, path=str(folder), kind="pipeline", pipeline_class=cls_name,
        prediction_type=prediction, conditioning="text" if text else "none", size=size,
        samplers=samplers, default_sampler=default if default in samplers else (samplers[0] if samplers else ""),
        default_steps=4 if distilled else (28 if prediction == "flow" else 25),
        default_cfg=1.5 if distilled else (4.5 if prediction == "flow" else 7.0), distilled=distilled,
        shipped=shipped, description=f"diffusers {cls_name}",
    )


def _pipeline_default_size(folder: Path, index: dict) -> tuple:
    """Default output size: denoiser sample_size x VAE scale factor, else the VAE's own
    ``sample_size`` (Flux transformers carry none), else 512."""
    scale = 8
    vae_cfg = folder / "vae" / "config.json"
    if vae_cfg.exists():
        blocks = read_config_json(vae_cfg).get("block_out_channels", [0, 0, 0, 0])
        if not isinstance(blocks, list) or not 1 <= len(blocks) <= 8:
            raise ModelError("vae/config.json: block_out_channels must be a list of 1 to 8 channel counts")
        scale = 2 ** (len(blocks) - 1)
    for comp in ("unet", "transformer"):
        cfg = folder / comp / "config.json"
        if cfg.exists():
            config = read_config_json(cfg)
            if config.get("sample_size"):
                h, w = sample_size(config, f"{comp}/config.json")
                return (h * scale, w * scale)
    if vae_cfg.exists():
        config = read_config_json(vae_cfg)
        if config.get("sample_size"):
            return sample_size(config, "vae/config.json")
    return (512, 512)


def _safetensors_keys(path: Path) -> dict:
    """Tensor names -> shapes from a .safetensors header (no weights read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118 - safe_open is not a dict
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for broken files
        raise ModelError(f"{path.name}: not a readable .safetensors file ({exc})") from None


# diffusers' model type (single_file_utils.infer_diffusers_model_type) -> shipped skeleton folder
SKELETON_FAMILIES = {"v1": "sd15", "v2": "sd2", "xl_base": "sdxl-base"}


def skeleton_sidecar(path: str | os.PathLike) -> Path:
    """The per-checkpoint skeleton folder that takes precedence: ``name.safetensors`` -> ``name.config/``."""
    return Path(path).with_suffix(".config")


def checkpoint_family(keys: dict) -> str:
    """diffusers' model type (``v1``, ``v2``, ``xl_base``, ``xl_refiner``, ``inpainting`` ...) of an
    original-layout checkpoint, from its tensor names -> shapes only (meta tensors, nothing read)."""
    import torch
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    with torch.device("meta"):
        fake = {k: torch.empty(shape) for k, shape in keys.items()}
    try:
        kind = infer_diffusers_model_type(fake) or "unknown"
    except Exception:  # noqa: BLE001 - diffusers' detector assumes some tensors exist
        return "unknown"
    if kind == "v1" and not any(k.startswith("model.diffusion_model.") for k in keys):
        return "unknown"  # diffusers' fallback answer, but there is no SD UNet in the file
    return kind


def _skeleton_for(path: Path, keys: dict) -> Path:
    """Pick the config skeleton folder matching a single-file checkpoint's tensor names.

    Order: a ``<name>.config/`` folder next to the file (any diffusers folder without weights,
    see :func:`write_skeleton`), then the shipped skeleton for the family diffusers detects
    (:data:`SKELETON_FAMILIES`), then shipped skeletons of diffusers-named ``UNet2DModel`` files.
    """
    sidecar = skeleton_sidecar(path)
    if sidecar.is_dir():
        if not (sidecar / "model_index.json").exists():
            raise ModelError(f"{path.name}: config folder {sidecar.name}/ has no model_index.json")
        return sidecar
    ldm = any(k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.", "conditioner."))
              for k in keys)
    if not ldm:
        for skel in sorted(SKELETONS_DIR.glob("*")):
            unet_cfg = skel / "unet" / "config.json"
            if (skel / "skeleton.json").exists() and unet_cfg.exists() and _matches_unet2d(unet_cfg, keys):
                return skel
        raise ModelError(f"{path.name}: unrecognised checkpoint layout (no config skeleton in {SKELETONS_DIR} matches)")
    kind = checkpoint_family(keys)
    family = SKELETON_FAMILIES.get(kind)
    if family is None:
        raise ModelError(f"{path.name}: a {kind!r} checkpoint has no shipped config skeleton; put its diffusers "
                         f"configs (no weights) in {sidecar.name}/ next to it")
    skel = SKELETONS_DIR / family
    if not skel.is_dir():
        raise ModelError(f"{path.name}: looks like {family} but the config skeleton {skel} is missing")
    return skel


def write_skeleton(model_folder: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a diffusers folder's configs and tokenizer files (``*.json``, ``*.txt``), no weights, to ``dst``.

    The result is a config skeleton: put it next to ``name.safetensors`` as ``name.config/``.
    """
    import shutil

    src, dst = Path(model_folder), Path(dst)
    if not (src / "model_index.json").exists():
        raise ModelError(f"{src} is not a diffusers model folder (no model_index.json)")
    for item in src.rglob("*"):
        if item.is_file() and item.suffix in (".json", ".txt") and not item.name.endswith(".index.json"):
            target = dst / item.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(item, target)
    return dst


def _matches_unet2d(config_path: Path, keys: dict) -> bool:
    """True if a diffusers-named UNet2DModel state dict has exactly the shapes of this config."""
    import torch
    from diffusers import UNet2DModel

    if "conv_in.weight" not in keys:
        return False
    try:
        config = check_unet_config(read_config_json(config_path), str(config_path))
        if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
            return False
        with torch.device("meta"):
            model = UNet2DModel.from_config(config)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError):
        return False
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return expected == keys


def _single_info(path: Path) -> ModelInfo:
    keys = _safetensors_keys(path)
    skel = _skeleton_for(path, keys)
    info = _folder_info(skel)
    info.name = path.stem
    info.path = str(path)
    info.skeleton = str(skel)
    info.kind = "single" if info.kind == "pipeline" else "own-single"
    info.shipped = False
    return info


def inspect_model(path: str | os.PathLike, shipped: bool = False) -> ModelInfo:
    """Describe the model at ``path`` (folder or ``.safetensors`` file) without loading weights.

    Raises :class:`ModelError` with a one-line reason when it is missing or not a model.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    if path.is_dir():
        if not (path / "model_index.json").exists():
            raise ModelError(f"{path} is not a diffusers model folder (no model_index.json)")
        return _folder_info(path, shipped=shipped)
    if path.suffix.lower() == ".safetensors":
        if not path.is_file():
            raise ModelError(f"{path.name} is not a regular file")
        check_weight_file_size(path.stat().st_size, path.name)
        return _single_info(path)
    raise ModelError(f"{path.name}: unsupported model file (use a diffusers folder or a .safetensors checkpoint)")


def scan_models(folders=()) -> tuple[list[ModelInfo], list[str]]:
    """All models in the shipped folder and in ``folders`` (each scanned two levels deep).

    Returns ``(models, problems)``: ``problems`` are one-line messages for broken candidates.
    """
    found: list[ModelInfo] = []
    problems: list[str] = []
    seen = set()

    def visit(candidate: Path, shipped: bool) -> None:
        key = str(candidate.resolve())
        if key in seen:
            return
        seen.add(key)
        try:
            found.append(inspect_model(candidate, shipped=shipped))
        except ModelError as exc:
            problems.append(str(exc))

    roots = [(SHIPPED_MODELS_DIR, True)] + [(Path(f), False) for f in folders if f]
    for root, shipped in roots:
        if not root.is_dir():
            if not shipped:
                problems.append(f"model folder not found: {root}")
            continue
        if (root / "model_index.json").exists():
            visit(root, shipped)
            continue
        for child in sorted(root.iterdir()):
            if child.name.startswith(".") or child.name.endswith((".partial", ".old")):
                continue
            if child.suffix == ".config" and child.with_suffix(".safetensors").exists():
                continue  # the config skeleton of a single-file checkpoint, not a model
            if child.is_dir() and (child / "model_index.json").exists() or child.is_file() and child.suffix.lower() == ".safetensors":
                visit(child, shipped)
            elif child.is_dir():
                for grandchild in sorted(child.iterdir()):
                    if grandchild.is_dir() and (grandchild / "model_index.json").exists():
                        visit(grandchild, shipped)
    return found, problems


def resolve_model(name_or_path: str | None, folders=(), scanned: list[ModelInfo] | None = None) -> ModelInfo:
    """The model called ``name_or_path`` (a path, or a name found by :func:`scan_models`).

    ``None`` or ``""`` means the shipped default model. ``scanned``: the models a scan of
    ``folders`` already found (the name is looked up there instead of scanning again).
    """
    name = name_or_path or DEFAULT_MODEL
    candidate = Path(name).expanduser()
    looks_like_path = os.sep in name or name.endswith(".safetensors") or name.startswith((".", "~"))
    if looks_like_path and not candidate.exists():
        raise ModelError(f"model not found: {candidate}")
    if candidate.exists():
        return inspect_model(candidate, shipped=candidate.resolve().parent == SHIPPED_MODELS_DIR.resolve())
    models = scanned if scanned is not None else scan_models(folders)[0]
    for info in models:
        if info.name == name:
            return info
    known = ", ".join(m.name for m in models) or "none"
    raise ModelError(f"unknown model {name!r} (known: {known})")


def _unet_weights(folder: Path) -> Path:
    """The UNet weights file of a diffusers folder (``.safetensors`` only: pickles are never loaded)."""
    unet = folder / "unet"
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"):
        if (unet / name).exists():
            return unet / name
    if any(unet.glob("*.bin")):
        raise ModelError(f"{folder.name}: unet/ holds only pickled .bin weights; convert them to .safetensors")
    raise ModelError(f"{folder.name}: unet/ has no diffusion_pytorch_model.safetensors")


def _load_unet(config_path: Path, weights: Path, name: str):
    """Build a ``UNet2DModel`` from a validated config and load ``weights`` strictly: every tensor
    name and shape must match the model (no silently random weights)."""
    from diffusers import UNet2DModel
    from safetensors import safe_open
    from safetensors.torch import load_file

    config = check_unet_config(read_config_json(config_path), f"{name}: unet/config.json")
    unet_parameter_count(config, f"{name}: unet/config.json")  # size check on the meta device
    if not weights.is_file():
        raise ModelError(f"{name}: weights file {weights.name} is missing or not a regular file")
    check_weight_file_size(weights.stat().st_size, f"{name}: {weights.name}")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            shapes = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for broken files
        raise ModelError(f"{name}: {weights.name} is not a readable .safetensors file ({_first_line(exc)})") from None
    unet = UNet2DModel.from_config(config)
    check_state_dict(shapes, {k: tuple(v.shape) for k, v in unet.state_dict().items()}, f"{name}: {weights.name}")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # noqa: BLE001 - truncated tensor data
        raise ModelError(f"{name}: {weights.name} is truncated or corrupt ({_first_line(exc)})") from None
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise ModelError(f"{name}: {weights.name} holds NaN or infinite values in {key}")
    unet.load_state_dict(state, strict=True)
    return unet


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"


@dataclass
class LoadedModel:
    """A loaded model: ``unet`` + ``scheduler_config`` for own-loop models, ``pipe`` otherwise;
    ``precision``: ``default`` (weights as loaded) or the quantized preset its modules already have."""

    info: ModelInfo
    device: str
    unet: object = None
    scheduler_config: dict = field(default_factory=dict)
    pipe: object = None
    precision: str = "default"


_cache: dict = {}
_cache_lock = threading.Lock()
_CACHE_SIZE = 2


def clear_cache() -> None:
    """Forget every cached loaded model."""
    with _cache_lock:
        _cache.clear()


def load_model(info: ModelInfo, device: str = "cpu", precision: str = "") -> LoadedModel:
    """Load ``info`` onto ``device`` (cached; the two most recent models stay loaded).

    ``precision`` ``int8`` / ``fp8`` / ``int4``: the model with its denoiser and text encoders
    quantized once (:func:`~engines.generation.precision.quantized_model_parts`), cached *instead
    of* the full-precision weights, which are dropped; any other value: the model as loaded. One
    variant of a model is cached at a time, so going back to the default reloads it from disk.
    Raises :class:`ModelError` when weights or configs are missing or broken, ValueError when the
    preset cannot run on ``device``.
    """
    from engines.generation.precision import QUANTIZED_PRESETS

    preset = precision if precision in QUANTIZED_PRESETS else "default"
    model_key = (info.path, info.skeleton, device)
    key = (*model_key, preset)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        full = _cache.pop((*model_key, "default"), None)
        for other in [k for k in _cache if k[:3] == model_key]:
            del _cache[other]  # the other quantized variant goes before this one is made
        if full is None:
            full = _load_uncached(info, device)
        loaded = full if preset == "default" else _quantized(full, preset)
        del full  # a quantized variant keeps no reference to the full-precision weights
        while len(_cache) >= _CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = loaded
        return loaded


def _quantized(full: LoadedModel, preset: str) -> LoadedModel:
    """``full`` as a new LoadedModel whose denoiser / text encoders are quantized by ``preset``."""
    from engines.generation.precision import quantized_model_parts

    pipe, unet = quantized_model_parts(preset, full.pipe, full.unet if full.pipe is None else None)
    return LoadedModel(full.info, full.device, unet=unet if full.pipe is None else None,
                       scheduler_config=full.scheduler_config, pipe=pipe, precision=preset)


def _load_uncached(info: ModelInfo, device: str) -> LoadedModel:
    from diffusers.utils import logging as dlogging

    dlogging.disable_progress_bar()

    try:
        if info.kind in ("own", "own-single"):
            folder = Path(info.path if info.kind == "own" else info.skeleton)
            weights = _unet_weights(folder) if info.kind == "own" else Path(info.path)
            unet = _load_unet(folder / "unet" / "config.json", weights, info.name)
            sched = read_config_json(folder / "scheduler" / "scheduler_config.json")
            return LoadedModel(info, device, unet=unet.to(device).eval(), scheduler_config=sched)
        import diffusers
        import torch

        dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
        if info.kind == "pipeline":
            with weights_must_match(info.name):
                pipe = diffusers.DiffusionPipeline.from_pretrained(info.path, local_files_only=True,
                                                                   low_cpu_mem_usage=False, dtype=dtype)
        else:
            cls = getattr(diffusers, info.pipeline_class, None)
            if cls is None or not hasattr(cls, "from_single_file"):
                raise ModelError(f"{info.name}: pipeline {info.pipeline_class} cannot load single files")
            extra = {}
            skeleton_meta = Path(info.skeleton) / "skeleton.json"
            meta = read_config_json(skeleton_meta) if skeleton_meta.exists() else {}
            if meta.get("tokenizer") == "clip-bpe":  # vocabulary built from the shipped CLIP merges
                from engines.generation.clip_vocab import clip_tokenizer

                index = read_config_json(Path(info.skeleton) / "model_index.json")
                pads = meta.get("pad_tokens", {})
                for comp in ("tokenizer", "tokenizer_2"):
                    if isinstance(index.get(comp), list) and index[comp][0] is not None:
                        extra[comp] = clip_tokenizer(pad_token=pads.get(comp, "<|endoftext|>"))
            try:
                with weights_must_match(info.name):
                    pipe = cls.from_single_file(info.path, config=info.skeleton, local_files_only=True,
                                                low_cpu_mem_usage=False, dtype=dtype, **extra)
            except Exception as exc:  # incl. ModelError from weights_must_match
                if Path(info.skeleton).parent.resolve() != SKELETONS_DIR.resolve():
                    raise
                # the family guess picked a shipped config, but this checkpoint is another size or variant
                raise ModelError(
                    f"{info.name}: its tensors do not fit the shipped '{Path(info.skeleton).name}' model config "
                    f"(a different size or variant of that family); put this model's diffusers configs (no weights) "
                    f"in {skeleton_sidecar(info.path).name}/ next to it") from exc
        pipe = pipe.to(device)
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
        return LoadedModel(info, device, pipe=pipe)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"cannot load model {info.name!r}: {_first_line(exc)}") from exc
