"""Weight-only quantized Linear / Conv2d layers in plain torch (no Qt).

- ``fp8``: weights stored as ``torch.float8_e4m3fn`` with one fp32 scale per output channel
  (``scale = amax / 448``, the largest e4m3 value), about 1 byte per weight (~4x less than fp32).
- ``int4``: weights rounded to signed 4-bit integers in [-8, 7] with one fp16 scale per group of
  :data:`INT4_GROUP` consecutive input weights (``scale = amax / 7``), two nibbles packed per
  byte, about 4.5 bits per weight (~7x less than fp32).

Both are dequantized to the activation dtype inside ``forward`` (activations stay float):
they save weight memory, not compute. :func:`quantized_copy` returns a copy of a module with
its layers replaced; unquantized parameters are shared with the original, not copied.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FP8_MAX", "INT4_GROUP", "WeightOnlyConv2d", "WeightOnlyLinear", "dequantize", "quantize", "quantized_copy"]

FP8_MAX = 448.0
INT4_GROUP = 32
KINDS = ("fp8", "int4")


def quantize(weight: torch.Tensor, kind: str) -> dict:
    """Quantize a ``(out, ...)`` weight; returns the tensors :func:`dequantize` needs."""
    w = weight.detach().float().reshape(weight.shape[0], -1)
    if kind == "fp8":
        scale = (w.abs().amax(dim=1, keepdim=True) / FP8_MAX).clamp_min(1e-12)
        return {"q": (w / scale).to(torch.float8_e4m3fn), "scale": scale}
    if kind != "int4":
        raise ValueError(f"unknown weight quantization {kind!r}; choose one of {', '.join(KINDS)}")
    cols = w.shape[1]
    padded = -(-cols // INT4_GROUP) * INT4_GROUP
    groups = F.pad(w, (0, padded - cols)).reshape(w.shape[0], -1, INT4_GROUP)
    scale = (groups.abs().amax(dim=2, keepdim=True) / 7.0).clamp_min(1e-8).half()
    q = torch.round(groups / scale.float()).clamp(-8, 7).to(torch.int16) + 8  # 0..15
    q = q.reshape(w.shape[0], padded).to(torch.uint8)
    packed = q[:, 0::2] | (q[:, 1::2] << 4)
    return {"q": packed, "scale": scale}


def dequantize(q: torch.Tensor, scale: torch.Tensor, shape: tuple, kind: str, dtype=torch.float32) -> torch.Tensor:
    """The float weight of ``shape`` stored by :func:`quantize`."""
    out = shape[0]
    cols = 1
    for n in shape[1:]:
        cols *= n
    if kind == "fp8":
        w = q.to(torch.float32) * scale
    else:
        nibbles = torch.stack([q & 0x0F, q >> 4], dim=2).reshape(out, -1, INT4_GROUP)
        w = ((nibbles.to(torch.int16) - 8).to(torch.float32) * scale.float()).reshape(out, -1)[:, :cols]
    return w.reshape(shape).to(dtype)


class _WeightOnly(nn.Module):
    """Holds a quantized weight (buffers ``qweight``, ``wscale``) and an optional float bias."""

    def __init__(self, layer: nn.Module, kind: str) -> None:
        super().__init__()
        stored = quantize(layer.weight, kind)
        self.kind = kind
        self.weight_shape = tuple(layer.weight.shape)
        self.register_buffer("qweight", stored["q"])
        self.register_buffer("wscale", stored["scale"])
        self.bias = layer.bias  # shared with the original layer, not copied

    def dequantized_weight(self, dtype=torch.float32) -> torch.Tensor:
        """The float weight this layer computes with."""
        return dequantize(self.qweight, self.wscale, self.weight_shape, self.kind, dtype)


class WeightOnlyLinear(_WeightOnly):
    """``nn.Linear`` with an fp8 / int4 weight, dequantized in forward."""

    def __init__(self, layer: nn.Linear, kind: str) -> None:
        super().__init__(layer, kind)
        self.in_features, self.out_features = layer.in_features, layer.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``F.linear`` with the dequantized weight."""
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.dequantized_weight(x.dtype), bias)


class WeightOnlyConv2d(_WeightOnly):
    """``nn.Conv2d`` (zero padding) with an fp8 / int4 weight, dequantized in forward."""

    def __init__(self, layer: nn.Conv2d, kind: str) -> None:
        super().__init__(layer, kind)
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        self.kernel_size, self.stride, self.padding = layer.kernel_size, layer.stride, layer.padding
        self.dilation, self.groups = layer.dilation, layer.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``F.conv2d`` with the dequantized weight."""
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.conv2d(x, self.dequantized_weight(x.dtype), bias, self.stride, self.padding, self.dilation,
                        self.groups)


def _replacement(module: nn.Module, kind: str) -> nn.Module | None:
    if type(module) is nn.Linear:
        return WeightOnlyLinear(module, kind)
    if type(module) is nn.Conv2d and module.padding_mode == "zeros":
        return WeightOnlyConv2d(module, kind)
    return None


def quantized_copy(module: nn.Module, kind: str) -> nn.Module:
    """A copy of ``module`` whose ``Linear``/``Conv2d`` layers are weight-only ``kind`` layers.

    The module tree is copied shallowly: every other parameter and buffer is shared with
    ``module`` (which is left unchanged), so only the quantized weights take new memory.
    Forward hooks registered on the original layers (unfused LoRA) run on the copies too.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown weight quantization {kind!r}; choose one of {', '.join(KINDS)}")
    replaced = _replacement(module, kind)
    new = copy.copy(module) if replaced is None else replaced
    for hooks in ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
                  "_forward_pre_hooks_with_kwargs"):  # hooks (unfused LoRA) carry over; own dicts, not shared
        if hasattr(module, hooks):
            setattr(new, hooks, type(getattr(module, hooks))(getattr(module, hooks)))
    if replaced is not None:
        return replaced
    new._parameters = dict(module._parameters)
    new._buffers = dict(module._buffers)
    new._modules = {name: None if child is None else quantized_copy(child, kind)
                    for name, child in module._modules.items()}
    return new
