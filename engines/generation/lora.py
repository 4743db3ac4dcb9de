"""LoRA files merged into a model's weights for one run, then taken out exactly (no Qt, no peft).

Layouts read from ``.safetensors``:

- kohya / A1111: ``lora_unet_<module path with _>.lora_down.weight`` / ``.lora_up.weight`` /
  ``.alpha``; ``lora_te_`` (``lora_te1_``, ``lora_te2_``) for the text encoder(s);
  ``lora_transformer_`` for DiT / Flux transformers.
- diffusers / PEFT: ``unet.<module>.lora_A.weight`` / ``lora_B.weight`` (or
  ``.lora.down.weight`` / ``.lora.up.weight``), prefixes ``unet``, ``transformer``,
  ``text_encoder``, ``text_encoder_2``; optional ``<module>.alpha``.

The merge is ``W += weight * (alpha / rank) * up @ down`` (convolutions flattened); several
files stack with their own weights. :func:`applied_loras` keeps the original tensors and puts
them back bit for bit when the run ends (the cached model is never left changed).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

import torch

from engines.generation.model_checks import ModelError

__all__ = ["applied_loras", "lora_deltas", "parse_lora_list"]

_KOHYA_PREFIX = {"lora_unet_": "unet", "lora_transformer_": "transformer", "lora_te_": "text_encoder",
                 "lora_te1_": "text_encoder", "lora_te2_": "text_encoder_2"}
MAX_LORA_BYTES = 4 << 30


def parse_lora_list(text: str) -> list[tuple[str, float]]:
    """``"a.safetensors=0.8;b.safetensors"`` -> ``[("a.safetensors", 0.8), ("b.safetensors", 1.0)]``."""
    out = []
    for part in (text or "").split(";"):
        part = part.strip()
        if not part:
            continue
        path, weight = part, 1.0
        match = re.fullmatch(r"(.+)=([-+0-9.eE]+)", part)
        if match:
            path, weight = match.group(1), float(match.group(2))
        if not -10.0 <= weight <= 10.0:
            raise ValueError(f"LoRA weight must be in -10..10 (got {weight})")
        out.append((path.strip(), weight))
    return out


def _groups(state: dict) -> dict:
    """``{(component, module key): {"up", "down", "alpha"}}``; module key uses ``_`` (kohya) or ``.``."""
    groups: dict = {}
    for key, tensor in state.items():
        for prefix, component in sorted(_KOHYA_PREFIX.items(), key=lambda kv: -len(kv[0])):
            if key.startswith(prefix):
                module, _, rest = key[len(prefix):].partition(".")
                part = {"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}.get(rest)
                if part:
                    groups.setdefault((component, module.replace(".", "_")), {})[part] = tensor
                break
        else:
            component, _, rest = key.partition(".")
            for suffix, part in ((".lora_A.weight", "down"), (".lora_B.weight", "up"), (".lora.down.weight", "down"),
                                 (".lora.up.weight", "up"), (".alpha", "alpha")):
                if rest.endswith(suffix):
                    module = rest[: -len(suffix)]
                    groups.setdefault((component, module.replace(".", "_")), {})[part] = tensor
                    break
    return groups


def lora_deltas(path: str | os.PathLike, components: dict, weight: float = 1.0) -> dict:
    """``{parameter tensor id: (parameter, delta)}`` that LoRA file ``path`` adds to ``components``
    (``{"unet": module, "text_encoder": module, ...}``). ModelError when nothing matches."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"LoRA not found: {path}")
    if path.stat().st_size > MAX_LORA_BYTES:
        raise ModelError(f"LoRA {path.name} is too large")
    try:
        state = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types for broken files
        raise ModelError(f"LoRA {path.name} is not a readable .safetensors file ({str(exc)[:80]})") from None
    modules = {}
    for comp, model in components.items():
        for name, mod in (model.named_modules() if model is not None else ()):
            if hasattr(mod, "weight"):
                modules[(comp, name.replace(".", "_"))] = mod
                if comp.startswith("text_encoder") and not name.startswith("text_model"):
                    # LoRA files name CLIP layers text_model.*; transformers 5 dropped that level
                    modules[(comp, "text_model_" + name.replace(".", "_"))] = mod
    deltas, missing = {}, 0
    for key, parts in _groups(state).items():
        if "up" not in parts or "down" not in parts:
            continue
        module = modules.get(key)
        if module is None:
            missing += 1
            continue
        up, down = parts["up"].float(), parts["down"].float()
        rank = down.shape[0]
        scale = float(parts["alpha"]) / rank if "alpha" in parts else 1.0
        param = module.weight
        delta = (up.flatten(1) @ down.flatten(1)) * (weight * scale)
        if delta.numel() != param.numel():
            raise ModelError(f"LoRA {path.name}: {key[1]} has shape {tuple(delta.shape)}, the model's is "
                             f"{tuple(param.shape)} (a LoRA for another model?)")
        deltas[id(param)] = (param, delta.reshape(param.shape).to(param.dtype))
    if not deltas:
        raise ModelError(f"LoRA {path.name}: none of its layers match this model")
    if missing:
        raise ModelError(f"LoRA {path.name}: {missing} of its layers match no module of this model "
                         f"(a LoRA for another model family?)")
    return deltas


@contextlib.contextmanager
def applied_loras(components: dict, loras: list):
    """Merge ``loras`` (``[(path, weight)]``) into ``components`` inside the block; the original
    weights are restored exactly afterwards. Yields the number of layers changed."""
    if not loras:
        yield 0
        return
    total: dict = {}
    for path, weight in loras:
        for key, (param, delta) in lora_deltas(path, components, weight).items():
            if key in total:
                total[key] = (param, total[key][1] + delta)
            else:
                total[key] = (param, delta)
    originals = {key: param.detach().clone() for key, (param, _delta) in total.items()}
    try:
        with torch.no_grad():
            for param, delta in total.values():
                param.add_(delta)
        yield len(total)
    finally:
        with torch.no_grad():
            for key, (param, _delta) in total.items():
                param.copy_(originals[key])
