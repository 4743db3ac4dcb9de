"""Another VAE for a pipeline, for one run (no Qt): a diffusers ``vae`` folder (``config.json`` +
``diffusion_pytorch_model.safetensors``) or a single ``.safetensors`` file (original LDM or
diffusers tensor names, read with the model's own VAE config). Never downloads."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from engines.generation.model_checks import ModelError, read_config_json

__all__ = ["load_vae", "swapped_vae"]

_cache: dict = {}


def load_vae(path: str | os.PathLike, like):
    """Load the VAE at ``path``; ``like`` is the pipeline's VAE (its class, config and dtype)."""
    path = Path(path)
    key = (str(path.resolve()), path.stat().st_mtime if path.exists() else 0, type(like).__name__)
    if key in _cache:
        return _cache[key]
    cls = type(like)
    try:
        if path.is_dir():
            folder = path / "vae" if (path / "vae" / "config.json").exists() else path
            if not (folder / "config.json").exists():
                raise ModelError(f"VAE folder {path.name} has no config.json")
            _check_fits(folder / "config.json", like.config, path.name)
            vae = cls.from_pretrained(str(folder), local_files_only=True, low_cpu_mem_usage=False)
        elif path.is_file() and path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
            vae = cls.from_config(like.config)
            if any(k.startswith(("encoder.down.", "first_stage_model.")) for k in state):
                from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

                state = convert_ldm_vae_checkpoint(state, vae.config)
            missing, unexpected = vae.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise ModelError(f"VAE {path.name} does not fit this model's VAE "
                                 f"({len(missing)} tensors missing, {len(unexpected)} unexpected)")
        else:
            raise ModelError(f"VAE not found: {path} (use a VAE folder or a .safetensors file)")
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - diffusers / safetensors raise many types for bad files
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise ModelError(f"VAE {path.name} cannot be loaded ({text[:120]})") from None
    vae = vae.to(like.device, like.dtype).eval()
    _cache.clear()  # keep one chosen VAE loaded
    _cache[key] = vae
    return vae


#: config fields that size the VAE's modules: a swapped-in VAE must have the pipeline VAE's values
_SHAPE_FIELDS = ("in_channels", "out_channels", "latent_channels", "block_out_channels", "layers_per_block",
                 "down_block_types", "up_block_types", "norm_num_groups")


def _check_fits(config_path: Path, ours, name: str) -> None:
    """ModelError unless ``config_path`` is a small JSON object (:func:`read_config_json`) whose
    module-sizing fields equal ``ours`` (checked before any module is built, so a hostile config
    cannot build a huge model)."""
    config = read_config_json(config_path)

    def norm(value):
        return list(value) if isinstance(value, (list, tuple)) else value

    for key in _SHAPE_FIELDS:
        if key in config and norm(config[key]) != norm(ours.get(key)):
            raise ModelError(f"VAE {name} does not fit this model's VAE (its {key} {str(config[key])[:40]} "
                             f"vs {str(ours.get(key))[:40]})")


@contextlib.contextmanager
def swapped_vae(pipe, path: str):
    """Use the VAE at ``path`` (if any) in ``pipe`` inside the block; the model's own comes back after."""
    if not path:
        yield None
        return
    if pipe is None or getattr(pipe, "vae", None) is None:
        raise ModelError("this model has no VAE to replace")
    own = pipe.vae
    pipe.vae = load_vae(path, own)
    try:
        yield pipe.vae
    finally:
        pipe.vae = own
