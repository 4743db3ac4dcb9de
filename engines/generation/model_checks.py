"""Validation of model folders before anything is built from them (no Qt, no torch at import).

A model folder is a handful of JSON files written by people and tools; a loader must not turn
a config that is a list, ``num_classes = "x"`` or ``block_out_channels = [10**6]`` into an
AttributeError, a 180-second loop or a 7 GB allocation. These helpers check types and ranges
of the fields the studio reads, estimate the UNet's size on the ``meta`` device (no memory)
and compare it with the decoded-size limit, and check that a checkpoint's tensors are exactly
the model's (never silently random weights). Every problem raises :class:`ModelError`.
"""

from __future__ import annotations

import json
import math
import numbers
from contextlib import contextmanager
from pathlib import Path

from engines.limits import check_decoded_size, format_bytes

__all__ = ["ModelError", "check_meta", "check_state_dict", "check_unet_config", "check_weight_file_size",
           "read_config_json", "sample_size", "unet_parameter_count", "weights_must_match"]

MAX_CLASSES = 100_000
MAX_CHANNELS = 8192
MAX_SAMPLE_SIZE = 8192


class ModelError(ValueError):
    """A model is missing, broken or of an unsupported kind (the message says which)."""


def _error(message: str) -> ModelError:
    return ModelError(message)


def _int(value, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, float)):
        raise _error(f"{what} must be a whole number, got {value!r:.40}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise _error(f"{what} must be a whole number, got {value!r}")
    if not lo <= int(value) <= hi:
        raise _error(f"{what} must be between {lo} and {hi}, got {int(value)}")
    return int(value)


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise _error(f"{what} must be a finite number, got {value!r:.40}")
    return float(value)


def _str(value, what: str) -> str:
    if not isinstance(value, str):
        raise _error(f"{what} must be text, got {value!r:.40}")
    return value


_MAX_CONFIG_BYTES = 4 << 20


def read_config_json(path: Path) -> dict:
    """A model config file as a dict (ModelError if missing, not a small regular file, not JSON or not an object)."""
    try:
        if not path.is_file():
            raise FileNotFoundError(path)
        if path.stat().st_size > _MAX_CONFIG_BYTES:
            raise ModelError(f"{path.parent.name}/{path.name} is too large for a config file")
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path.parent.name}: missing {path.name}") from None
    except (OSError, ValueError, RecursionError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else "not JSON"
        raise ModelError(f"{path.parent.name}/{path.name}: unreadable JSON ({text})") from None
    if not isinstance(data, dict):
        kind = "list" if isinstance(data, list) else "string" if isinstance(data, str) else "null" if data is None \
            else "single value"
        raise ModelError(f"{path.parent.name}/{path.name} must hold a JSON object, not a {kind}")
    return data


def check_meta(meta: dict, where: str) -> dict:
    """Validate ``spectra_model.json`` fields (``where`` names the folder in messages); returns ``meta``."""
    n = meta.get("num_classes")
    if n is not None:
        n = _int(n, f"{where}: num_classes", 0, MAX_CLASSES)
    names = meta.get("class_names")
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(x, (str, int)) for x in names):
            raise _error(f"{where}: class_names must be a list of names")
        if n is not None and len(names) != n:
            raise _error(f"{where}: {len(names)} class_names for num_classes = {n}")
        if len(names) > MAX_CLASSES:
            raise _error(f"{where}: more than {MAX_CLASSES} class names")
    if meta.get("null_class") is not None:
        _int(meta["null_class"], f"{where}: null_class", 0, MAX_CLASSES)
    for key, lo, hi in (("default_steps", 1, 10_000), ("channels", 1, 64)):
        if key in meta:
            _int(meta[key], f"{where}: {key}", lo, hi)
    if "default_cfg" in meta:
        _number(meta["default_cfg"], f"{where}: default_cfg")
    for key in ("prediction_type", "default_sampler", "description"):
        if key in meta:
            _str(meta[key], f"{where}: {key}")
    return meta


def sample_size(config: dict, where: str, default=32) -> tuple[int, int]:
    """``(height, width)`` from a ``sample_size`` field (an int or a pair)."""
    size = config.get("sample_size", default)
    if isinstance(size, (list, tuple)):
        if len(size) != 2:
            raise _error(f"{where}: sample_size must be a number or a pair")
        return (_int(size[0], f"{where}: sample_size", 1, MAX_SAMPLE_SIZE), _int(size[1], f"{where}: sample_size", 1, MAX_SAMPLE_SIZE))
    side = _int(size, f"{where}: sample_size", 1, MAX_SAMPLE_SIZE)
    return (side, side)


def check_unet_config(config: dict, where: str) -> dict:
    """Validate the ``UNet2DModel`` config fields that size its modules; returns ``config``."""
    for key in ("in_channels", "out_channels"):
        if key in config:
            _int(config[key], f"{where}: {key}", 1, 64)
    sample_size(config, where)
    blocks = config.get("block_out_channels", [])
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 8:
        raise _error(f"{where}: block_out_channels must be a list of 1 to 8 channel counts")
    for b in blocks:
        _int(b, f"{where}: block_out_channels", 1, MAX_CHANNELS)
    for key in ("down_block_types", "up_block_types"):
        value = config.get(key, [])
        if not isinstance(value, list) or len(value) != len(blocks) or not all(isinstance(v, str) for v in value):
            raise _error(f"{where}: {key} must list one block type per entry of block_out_channels")
    layers = config.get("layers_per_block", 2)
    for value in layers if isinstance(layers, list) else [layers]:
        _int(value, f"{where}: layers_per_block", 1, 16)
    for key, lo, hi in (("norm_num_groups", 1, MAX_CHANNELS), ("num_class_embeds", 0, MAX_CLASSES + 1),
                        ("attention_head_dim", 1, MAX_CHANNELS)):
        if config.get(key) is not None:
            _int(config[key], f"{where}: {key}", lo, hi)
    return config


def unet_parameter_count(config: dict, where: str) -> int:
    """Parameters of the ``UNet2DModel`` ``config`` builds, counted on the meta device (no memory)."""
    import torch
    from diffusers import UNet2DModel

    try:
        with torch.device("meta"):
            model = UNet2DModel.from_config(config)
    except Exception as exc:  # noqa: BLE001 - diffusers raises ValueError, TypeError, AttributeError ... for bad configs
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid settings"
        raise _error(f"{where}: the UNet config cannot build a model ({text})") from None
    count = sum(p.numel() for p in model.parameters())
    check_decoded_size(count * 4, f"{where} (a UNet of {count:,} parameters)", ModelError)
    return count


def check_state_dict(loaded: dict, expected: dict, where: str) -> None:
    """Refuse a checkpoint whose tensor names or shapes differ from the model's.

    ``loaded`` / ``expected``: name -> shape. The message names a few of the differences.
    """
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(set(loaded) - set(expected))
    wrong = sorted(k for k in set(expected) & set(loaded) if tuple(expected[k]) != tuple(loaded[k]))
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} ({', '.join(keys[:2])}{', ...' if len(keys) > 2 else ''})")
        raise _error(f"{where}: the weights do not match the model: {'; '.join(parts)}")


def check_weight_file_size(size: int, where: str) -> None:
    """A weights file larger than the decoded-size limit is refused before reading it."""
    check_decoded_size(size, f"{where} ({format_bytes(size)} of weights)", ModelError)


@contextmanager
def weights_must_match(where: str):
    """Around ``DiffusionPipeline.from_pretrained`` / ``from_single_file``: diffusers and transformers
    only *log* a warning when checkpoint tensors are missing or unused (and initialise the missing
    ones randomly); this turns that warning into :class:`ModelError`."""
    import logging

    found: list[str] = []

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            if "newly initialized" in text or "were not used when initializing" in text:
                found.append(" ".join(text.split())[:200])

    handler = _Catch(logging.WARNING)
    loggers = [logging.getLogger(name) for name in ("diffusers", "transformers")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.WARNING:
            logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)
    if found:
        raise ModelError(f"{where}: the weights do not match the model ({found[0]})")
