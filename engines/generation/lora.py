"""LoRA files applied to a model for one run, fused or unfused, then taken out exactly (no Qt, no peft).

Layouts read from ``.safetensors``:

- kohya / A1111: ``lora_unet_<module path with _>.lora_down.weight`` / ``.lora_up.weight`` /
  ``.alpha``; ``lora_te_`` (``lora_te1_``, ``lora_te2_``) for the text encoder(s);
  ``lora_transformer_`` for DiT / Flux transformers.
- diffusers / PEFT: ``unet.<module>.lora_A.weight`` / ``lora_B.weight`` (or
  ``.lora.down.weight`` / ``.lora.up.weight``), prefixes ``unet``, ``transformer``,
  ``text_encoder``, ``text_encoder_2``; optional ``<module>.alpha``.

Two modes (:func:`applied_loras`):

- ``fused``: ``W += weight * (alpha / rank) * up @ down`` (convolutions flattened); several files
  stack with their own weights; the original tensors are put back bit for bit when the run ends.
- ``unfused``: the weights are never touched; a forward hook adds ``s * up(down(x))`` to each
  matched layer's output (``Linear`` and ``Conv2d``; the down convolution uses the layer's own
  stride / padding), and the hooks are removed when the run ends.

:func:`lora_trigger_words` lists the words a LoRA was trained with (kohya ``ss_tag_frequency``,
``modelspec.trigger_phrase``) from the file header only.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from engines.generation.model_checks import ModelError
from engines.generation.params import LORA_MODES

if TYPE_CHECKING:  # torch is imported where it is used: the GUI parses LoRA lists without it
    import torch

__all__ = ["LORA_MODES", "applied_loras", "lora_deltas", "lora_factors", "lora_trigger_words", "parse_lora_list"]

_KOHYA_PREFIX = {"lora_unet_": "unet", "lora_transformer_": "transformer", "lora_te_": "text_encoder",
                 "lora_te1_": "text_encoder", "lora_te2_": "text_encoder_2"}
MAX_LORA_BYTES = 4 << 30
MAX_TRIGGER_WORDS = 40


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


def _component_modules(components: dict) -> dict:
    """``{(component, module key with _): module}`` of every module that has a weight."""
    modules = {}
    for comp, model in components.items():
        for name, mod in (model.named_modules() if model is not None else ()):
            if hasattr(mod, "weight"):
                modules[(comp, name.replace(".", "_"))] = mod
                if comp.startswith("text_encoder") and not name.startswith("text_model"):
                    # LoRA files name CLIP layers text_model.*; transformers 5 dropped that level
                    modules[(comp, "text_model_" + name.replace(".", "_"))] = mod
    return modules


def lora_factors(path: str | os.PathLike, components: dict, weight: float = 1.0) -> list:
    """``[(module, up, down, scale)]`` that LoRA file ``path`` adds to ``components``
    (``{"unet": module, "text_encoder": module, ...}``); ``scale`` includes ``weight`` and
    ``alpha / rank``. ModelError when the file is unreadable or its layers do not fit."""
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
    modules = _component_modules(components)
    factors, missing = [], 0
    for key, parts in _groups(state).items():
        if "up" not in parts or "down" not in parts:
            continue
        module = modules.get(key)
        if module is None:
            missing += 1
            continue
        up, down = parts["up"].float(), parts["down"].float()
        if up.dim() < 2 or down.dim() < 2 or 0 in (*up.shape, *down.shape) or \
                ("alpha" in parts and parts["alpha"].numel() != 1):
            raise ModelError(f"LoRA {path.name}: {key[1]} has malformed factors (up {tuple(up.shape)}, "
                             f"down {tuple(down.shape)})")
        rank = down.shape[0]
        scale = float(parts["alpha"]) / rank if "alpha" in parts else 1.0
        if not math.isfinite(scale):
            raise ModelError(f"LoRA {path.name}: {key[1]} has a non-finite alpha")
        param = module.weight
        numel = up.shape[0] * down[0].numel()
        if up.flatten(1).shape[1] != rank or numel != param.numel():
            shape = (up.shape[0], *down.shape[1:])
            raise ModelError(f"LoRA {path.name}: {key[1]} has shape {tuple(shape)}, the model's is "
                             f"{tuple(param.shape)} (a LoRA for another model?)")
        factors.append((module, up, down, weight * scale))
    if not factors:
        raise ModelError(f"LoRA {path.name}: none of its layers match this model")
    if missing:
        raise ModelError(f"LoRA {path.name}: {missing} of its layers match no module of this model "
                         f"(a LoRA for another model family?)")
    return factors


def lora_deltas(path: str | os.PathLike, components: dict, weight: float = 1.0) -> dict:
    """``{parameter tensor id: (parameter, delta)}`` that LoRA file ``path`` adds to ``components``
    when fused. ModelError when nothing matches."""
    deltas = {}
    for module, up, down, scale in lora_factors(path, components, weight):
        param = module.weight
        delta = (up.flatten(1) @ down.flatten(1)) * scale
        deltas[id(param)] = (param, delta.reshape(param.shape).to(param.dtype))
    return deltas


def _low_rank_forward(module, up: torch.Tensor, down: torch.Tensor, scale: float):
    """``x -> scale * up(down(x))`` for ``module`` (Linear or Conv2d), the weights untouched."""
    import torch
    import torch.nn.functional as F

    param = module.weight
    up = up.to(param.device, param.dtype)
    down = down.to(param.device, param.dtype)
    rank = down.shape[0]
    if isinstance(module, torch.nn.Linear):
        down2, up2 = down.reshape(rank, -1), up.reshape(up.shape[0], rank)
        return lambda x: F.linear(F.linear(x, down2), up2) * scale
    if isinstance(module, torch.nn.Conv2d):
        kernel = down.reshape(rank, *param.shape[1:])
        if module.groups == 1 and module.padding_mode == "zeros" and up[0].numel() == rank:
            up4 = up.reshape(up.shape[0], rank, 1, 1)
            return lambda x: F.conv2d(F.conv2d(x, kernel, None, module.stride, module.padding, module.dilation),
                                      up4) * scale
        dense = (up.flatten(1) @ down.flatten(1)).reshape(param.shape) * scale
        return lambda x: module._conv_forward(x, dense, None)
    raise ModelError(f"unfused LoRA works on Linear and Conv2d layers, not {type(module).__name__}; "
                     f"use the fused mode")


@contextlib.contextmanager
def applied_loras(components: dict, loras: list, mode: str = "fused"):
    """Apply ``loras`` (``[(path, weight)]``) to ``components`` inside the block, merged into the
    weights (``mode="fused"``, restored exactly afterwards) or as forward hooks (``"unfused"``,
    weights never touched). Yields the number of layers changed."""
    if mode not in LORA_MODES:
        raise ValueError(f"LoRA mode must be one of {', '.join(LORA_MODES)} (got {mode!r})")
    import torch

    if not loras:
        yield 0
        return
    if mode == "unfused":
        factors = [f for path, weight in loras for f in lora_factors(path, components, weight)]
        extras = [(module, _low_rank_forward(module, up, down, scale)) for module, up, down, scale in factors]
        handles = []
        try:
            for module, extra in extras:
                handles.append(module.register_forward_hook(
                    lambda _mod, args, output, extra=extra: output + extra(args[0])))
            yield len({id(module) for module, _extra in extras})
        finally:
            for handle in handles:
                handle.remove()
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


def lora_trigger_words(path: str | os.PathLike, limit: int = MAX_TRIGGER_WORDS) -> list[str]:
    """The trigger words stored in a LoRA file's header (the tensors are not read).

    ``modelspec.trigger_phrase`` (comma separated) comes first, then kohya's training tags
    (``ss_tag_frequency``: ``{dataset: {tag: count}}``) by total count, most frequent first;
    at most ``limit`` words, duplicates removed. ``[]`` when the file carries none;
    ValueError when it is not a readable ``.safetensors`` file.
    """
    import json

    from engines.generation.safetensors_header import safetensors_metadata

    meta = safetensors_metadata(path)
    words: list[str] = []
    for phrase in (meta.get("modelspec.trigger_phrase") or "").split(","):
        words.append(phrase.strip())
    counts: dict = {}
    try:
        frequency = json.loads(meta.get("ss_tag_frequency") or "{}")
    except json.JSONDecodeError:
        frequency = {}
    for tags in (frequency.values() if isinstance(frequency, dict) else ()):
        for tag, count in (tags.items() if isinstance(tags, dict) else ()):
            if isinstance(count, (int, float)):
                counts[str(tag).strip()] = counts.get(str(tag).strip(), 0) + count
    words += [tag for tag, _count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    seen, out = set(), []
    for word in words:
        if word and word.lower() not in seen and len(word) <= 200:
            seen.add(word.lower())
            out.append(word)
    return out[: max(0, int(limit))]
