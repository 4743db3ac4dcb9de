"""Precision / memory presets applied to a loaded model for one run (no Qt).

- ``default``: the model as loaded (fp32 on CPU, fp16 on CUDA).
- ``low-memory``: attention slicing (one head at a time) and VAE tiling (pipelines only).
- ``int8``: the denoiser's and text encoders' ``Linear`` layers as dynamically quantized int8
  (``torch.ao.quantization.quantize_dynamic``: int8 weights, activations quantized per batch), CPU.

:func:`applied_precision` yields the modules to use in place of the loaded ones and puts the
originals back afterwards (the cached model is never changed).
"""

from __future__ import annotations

import contextlib
import warnings

import torch

__all__ = ["PRESETS", "applied_precision", "module_bytes"]

PRESETS = ("default", "low-memory", "int8")
_QUANTIZED = ("unet", "transformer", "text_encoder", "text_encoder_2")


def module_bytes(module) -> int:
    """Bytes of a module's weights, counting packed int8 weights of quantized layers."""
    total = sum(t.numel() * t.element_size() for t in module.state_dict().values() if torch.is_tensor(t)
                and not t.is_quantized)
    for t in module.state_dict().values():
        if isinstance(t, tuple):  # packed (weight, bias) of a dynamic quantized Linear
            total += sum(x.numel() * x.element_size() for x in t if torch.is_tensor(x))
        elif torch.is_tensor(t) and t.is_quantized:
            total += t.numel() * t.element_size()
    return total


def _int8(module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks its quantized tensors deprecated, still supported
        return torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8, inplace=False)


@contextlib.contextmanager
def applied_precision(preset: str, pipe=None, unet=None):
    """Apply ``preset`` to a pipeline (``pipe``) or an own-loop ``unet``; yields ``{"unet": module}``
    (the module the own loop should run; empty for pipelines, which are changed in place)."""
    preset = preset or "default"
    if preset not in PRESETS:
        raise ValueError(f"unknown precision preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if preset == "default":
        yield {}
        return
    if preset == "int8":
        denoiser = unet if unet is not None else getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        device = next(denoiser.parameters()).device
        if device.type != "cpu":
            raise ValueError("the int8 preset runs on the CPU only (choose the CPU device)")
    if pipe is None:  # own loop: only the denoiser
        yield {"unet": _int8(unet)} if preset == "int8" else {}
        return
    originals = {}
    try:
        if preset == "low-memory":
            if hasattr(pipe, "enable_attention_slicing"):
                pipe.enable_attention_slicing(1)
            if getattr(pipe, "vae", None) is not None and hasattr(pipe.vae, "enable_tiling"):
                pipe.vae.enable_tiling()
        else:
            for name in _QUANTIZED:
                module = getattr(pipe, name, None)
                if module is not None:
                    originals[name] = module
                    setattr(pipe, name, _int8(module))
        yield {}
    finally:
        for name, module in originals.items():
            setattr(pipe, name, module)
        if preset == "low-memory":
            if hasattr(pipe, "disable_attention_slicing"):
                pipe.disable_attention_slicing()
            if getattr(pipe, "vae", None) is not None and hasattr(pipe.vae, "disable_tiling"):
                pipe.vae.disable_tiling()
