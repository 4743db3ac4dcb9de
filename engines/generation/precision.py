"""Precision / memory presets applied to a loaded model for one run (no Qt).

- ``default``: the model as loaded (fp32 on CPU, fp16 on CUDA).
- ``low-memory``: attention slicing (one head at a time) and VAE tiling (pipelines only).
- ``int8``: the denoiser's and text encoders' ``Linear`` layers as dynamically quantized int8
  (``torch.ao.quantization.quantize_dynamic``: int8 weights, activations quantized per batch), CPU.
- ``fp8`` / ``int4``: weight-only quantization of the denoiser's and text encoders' ``Linear`` and
  ``Conv2d`` layers (:mod:`engines.generation.weight_quant`: fp8 e4m3 with per-output-channel
  scales, int4 with per-group scales), dequantized in forward; any device.
- ``cpu-offload``: diffusers' model CPU offload (each component moves to the GPU only while it
  runs); needs a CUDA GPU, the ``accelerate`` package and a pipeline model —
  :func:`preset_unavailable` says why it cannot run here.

:func:`applied_precision` yields the modules to use in place of the loaded ones and puts the
originals back afterwards (the cached model is never changed). :func:`quantized_model_parts`
makes the quantized denoiser / text encoders once, so the model cache
(:func:`engines.generation.models.load_model` with ``precision=``) can keep them *instead of* the
full-precision weights: that is what lowers the peak memory of the quantized presets.
"""

from __future__ import annotations

import contextlib
import warnings

import torch

from engines.generation.params import PRECISION_PRESETS

__all__ = ["PRESETS", "QUANTIZED_PRESETS", "applied_precision", "module_bytes", "preset_unavailable",
           "quantized_model_parts"]

PRESETS = PRECISION_PRESETS
#: presets that replace weights by quantized copies (the model cache can hold these instead)
QUANTIZED_PRESETS = ("int8", "fp8", "int4")
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


def preset_unavailable(preset: str, device: str = "cpu", pipeline: bool = True) -> str:
    """Why ``preset`` cannot run on ``device`` (``pipeline``: a diffusers pipeline model, not the
    own loop); an empty string when it can. For pickers that list presets as unavailable."""
    preset = preset or "default"
    if preset not in PRESETS:
        return f"unknown precision preset {preset!r}; choose one of {', '.join(PRESETS)}"
    if preset == "int8" and not str(device).startswith("cpu"):
        return "the int8 preset runs on the CPU only (choose the CPU device)"
    if preset == "cpu-offload":
        import importlib.util

        if not torch.cuda.is_available():
            return "cpu-offload needs a CUDA GPU (it keeps weights in CPU memory and moves each part to the GPU " \
                   "while it runs); this machine has none"
        if not str(device).startswith("cuda"):
            return "cpu-offload needs the CUDA device (choose the GPU)"
        if importlib.util.find_spec("accelerate") is None:
            return "cpu-offload needs the 'accelerate' package, which is not installed"
        if not pipeline:
            return "cpu-offload applies to diffusers pipeline models; this model is a single small network"
    return ""


def _weight_only(module, kind: str):
    from engines.generation.weight_quant import quantized_copy

    return quantized_copy(module, kind)


def _device_of(pipe=None, unet=None) -> torch.device:
    """The device of the denoiser (own-loop ``unet`` or the pipeline's unet / transformer)."""
    denoiser = unet if unet is not None else getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    return next(denoiser.parameters()).device if denoiser is not None else torch.device("cpu")


def _checked_quantizer(preset: str, pipe=None, unet=None):
    """The function that quantizes one module for ``preset`` (None for presets that do not
    quantize) after checking the preset can run on the model's device (ValueError otherwise)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown precision preset {preset!r}; choose one of {', '.join(PRESETS)}")
    reason = preset_unavailable(preset, _device_of(pipe, unet).type, pipeline=pipe is not None)
    if reason:
        raise ValueError(reason)
    if preset not in QUANTIZED_PRESETS:
        return None
    return _int8 if preset == "int8" else (lambda m: _weight_only(m, preset))


def _quantized_parts(pipe, quantize) -> dict:
    """``{name: quantize(module)}`` of the pipeline's denoiser and text encoders (those it has)."""
    return {name: quantize(module) for name in _QUANTIZED if (module := getattr(pipe, name, None)) is not None}


def quantized_model_parts(preset: str, pipe=None, unet=None):
    """``(pipe, unet)`` with the denoiser and text encoders quantized by ``preset`` (int8 / fp8 /
    int4) exactly as :func:`applied_precision` quantizes them for a run, as NEW objects (a shallow
    copy of the pipeline holding the quantized modules and sharing its other components); the
    inputs are not changed. Raises ValueError when the preset cannot run here or does not quantize."""
    quantize = _checked_quantizer(preset, pipe, unet)
    if quantize is None:
        raise ValueError(f"precision preset {preset!r} does not quantize weights")
    if pipe is None:
        return None, quantize(unet)
    import copy

    new = copy.copy(pipe)  # the pipeline object only: its components are shared until replaced below
    for name, module in _quantized_parts(pipe, quantize).items():
        setattr(new, name, module)
    return new, unet


@contextlib.contextmanager
def applied_precision(preset: str, pipe=None, unet=None):
    """Apply ``preset`` to a pipeline (``pipe``) or an own-loop ``unet``; yields ``{"unet": module}``
    (the module the own loop should run; empty for pipelines, which are changed in place).
    Raises ValueError with the reason when the preset cannot run here."""
    preset = preset or "default"
    if preset == "default":
        yield {}
        return
    quantize = _checked_quantizer(preset, pipe, unet)
    if pipe is None:  # own loop: only the denoiser
        yield {"unet": quantize(unet)} if quantize is not None else {}
        return
    device = _device_of(pipe, unet)
    originals = {}
    try:
        if preset == "low-memory":
            if hasattr(pipe, "enable_attention_slicing"):
                pipe.enable_attention_slicing(1)
            if getattr(pipe, "vae", None) is not None and hasattr(pipe.vae, "enable_tiling"):
                pipe.vae.enable_tiling()
        elif preset == "cpu-offload":
            pipe.enable_model_cpu_offload(device=device)
        else:
            for name, module in _quantized_parts(pipe, quantize).items():
                originals[name] = getattr(pipe, name)
                setattr(pipe, name, module)
        yield {}
    finally:
        for name, module in originals.items():
            setattr(pipe, name, module)
        if preset == "cpu-offload":
            pipe.remove_all_hooks()
            pipe.to(device)
        if preset == "low-memory":
            if hasattr(pipe, "disable_attention_slicing"):
                pipe.disable_attention_slicing()
            if getattr(pipe, "vae", None) is not None and hasattr(pipe.vae, "disable_tiling"):
                pipe.vae.disable_tiling()
