"""diffusers -> original LDM/CompVis tensor names for Stable Diffusion 1.x-style checkpoints (no Qt).

The inverse of diffusers' single-file conversion (``diffusers.loaders.single_file_utils``:
``convert_ldm_unet_checkpoint``, ``convert_ldm_vae_checkpoint``, ``convert_ldm_clip_checkpoint``),
written generically for any ``layers_per_block`` / number of blocks, so a diffusers pipeline
(e.g. the tiny random one from :mod:`engines.generation.tiny`) can be saved as ONE
``.safetensors`` file in the layout real SD 1.x checkpoints use:

- UNet ``model.diffusion_model.*`` (``input_blocks`` / ``middle_block`` / ``output_blocks``),
- VAE ``first_stage_model.*`` (``encoder.down.i.block.j``, ``decoder.up.i`` reversed, 1x1-conv
  attention weights),
- CLIP text encoder ``cond_stage_model.transformer.text_model.*``.

Used by tests to check the single-file loading path end to end; tensors are not copied.
"""

from __future__ import annotations

import re

__all__ = ["clip_to_ldm", "controlnet_to_ldm", "pipeline_to_ldm", "save_pipeline_as_single_file", "unet_to_ldm", "vae_to_ldm"]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer."

# diffusers resnet names -> LDM ResBlock names (inverse of update_unet_resnet_ldm_to_diffusers)
_UNET_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
# diffusers VAE attention names -> LDM AttnBlock names (inverse of update_vae_attentions_ldm_to_diffusers)
_VAE_ATTN = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]


def _rename_resnet(rest: str) -> str:
    head, _, tail = rest.partition(".")
    for new, old in _UNET_RESNET:
        if head == new:
            return f"{old}.{tail}"
    return rest


def _layers_per_block(config) -> int:
    n = config["layers_per_block"]
    if isinstance(n, (list, tuple)):
        if len(set(n)) != 1:
            raise ValueError("per-block layers_per_block lists have no LDM layout")
        n = n[0]
    return int(n)


def _down_or_mid_to_ldm(key: str, n: int) -> str | None:
    """The LDM name of a down- or mid-block tensor (UNet and ControlNet alike), else None;
    ``n``: layers per block."""
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
        b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
        idx = (n + 1) * b + j + 1
        return f"input_blocks.{idx}.0.{_rename_resnet(rest)}" if kind == "resnets" else f"input_blocks.{idx}.1.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", key):
        return f"input_blocks.{(n + 1) * (int(m[1]) + 1)}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.resnets\.(\d+)\.(.+)", key):
        return f"middle_block.{2 * int(m[1])}.{_rename_resnet(m[2])}"
    if m := re.match(r"mid_block\.attentions\.0\.(.+)", key):
        return f"middle_block.1.{m[1]}"
    return None


def controlnet_to_ldm(state_dict: dict, config, prefix: str = "control_model.") -> dict:
    """``ControlNetModel`` state dict -> the original ControlNet (``cldm``) names: ``input_blocks``,
    ``middle_block``, ``zero_convs.i.0``, ``middle_block_out.0``, ``input_hint_block.k`` (the
    conditioning convolutions at even ``k``, ``k = 14`` last), under ``prefix``."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    def specific(key: str) -> str | None:
        if m := re.match(r"controlnet_down_blocks\.(\d+)\.(.+)", key):
            return f"zero_convs.{m[1]}.0.{m[2]}"
        if m := re.match(r"controlnet_mid_block\.(.+)", key):
            return f"middle_block_out.0.{m[1]}"
        if m := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.(.+)", key):
            return f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"
        return None

    fixed = DIFFUSERS_TO_LDM_MAPPING["controlnet"]["layers"]
    return _renamed(state_dict, fixed, _layers_per_block(config), specific, "ControlNet", prefix)


def _renamed(state_dict: dict, fixed: dict, n: int, specific, what: str, prefix: str) -> dict:
    """Rename every tensor: the ``fixed`` map, then the shared down/mid rules, then ``specific(key)``."""
    out = {}
    for key, value in state_dict.items():
        new = fixed.get(key) or _down_or_mid_to_ldm(key, n) or specific(key)
        if new is None:
            raise ValueError(f"{what} tensor {key!r} has no LDM name")
        out[prefix + new] = value
    return out


def unet_to_ldm(state_dict: dict, config) -> dict:
    """``UNet2DConditionModel`` state dict (diffusers names) -> ``model.diffusion_model.*`` names.

    ``config``: the UNet's config (``layers_per_block``, ``up_block_types``). Raises
    ValueError for a tensor name with no LDM counterpart.
    """
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    n = _layers_per_block(config)
    fixed = dict(DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"])
    if config.get("addition_embed_type") == "text_time":
        fixed.update(DIFFUSERS_TO_LDM_MAPPING["unet"]["addition_embed_type"])
    if config.get("class_embed_type") in ("timestep", "projection"):
        fixed.update(DIFFUSERS_TO_LDM_MAPPING["unet"]["class_embed_type"])
    up_has_attn = ["CrossAttn" in t or "Attn" in t for t in config["up_block_types"]]

    def specific(key: str) -> str | None:
        if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", key):
            b, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            idx = (n + 1) * b + j
            return f"output_blocks.{idx}.0.{_rename_resnet(rest)}" if kind == "resnets" else f"output_blocks.{idx}.1.{rest}"
        if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)", key):
            b = int(m[1])
            return f"output_blocks.{(n + 1) * b + n}.{2 if up_has_attn[b] else 1}.conv.{m[2]}"
        return None

    return _renamed(state_dict, fixed, n, specific, "UNet", UNET_PREFIX)


def vae_to_ldm(state_dict: dict, config) -> dict:
    """``AutoencoderKL`` state dict -> ``first_stage_model.*`` names (attention weights as 1x1 convs)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    fixed = DIFFUSERS_TO_LDM_MAPPING["vae"]
    n_up = len(config["up_block_types"])
    out = {}
    for key, value in state_dict.items():
        if key in fixed:
            new = fixed[key]
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.+)", key):
            new = f"encoder.down.{m[1]}.downsample.{m[2]}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.+)", key):
            new = f"decoder.up.{n_up - 1 - int(m[1])}.upsample.{m[2]}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", key):
            rest = m[2]
            for a, b in _VAE_ATTN:
                if rest.startswith(a):
                    rest = b + rest[len(a):]
                    break
            new = f"{m[1]}.mid.attn_1.{rest}"
            if value.ndim == 2:  # LDM stores these projections as 1x1 convolutions
                value = value[:, :, None, None]
        else:
            raise ValueError(f"VAE tensor {key!r} has no LDM name")
        out[VAE_PREFIX + new] = value
    return out


def clip_to_ldm(state_dict: dict) -> dict:
    """``CLIPTextModel`` state dict -> ``cond_stage_model.transformer.text_model.*`` names."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith("position_ids"):
            continue
        name = key if key.startswith("text_model.") else "text_model." + key
        out[CLIP_PREFIX + name] = value
    return out


def pipeline_to_ldm(pipe) -> dict:
    """One LDM-layout state dict holding a Stable Diffusion 1.x-style pipeline's UNet, VAE and text encoder."""
    state = {}
    state.update(unet_to_ldm(pipe.unet.state_dict(), pipe.unet.config))
    state.update(vae_to_ldm(pipe.vae.state_dict(), pipe.vae.config))
    state.update(clip_to_ldm(pipe.text_encoder.state_dict()))
    return state


def save_pipeline_as_single_file(pipe, path) -> None:
    """Write ``pipe`` as one ``.safetensors`` checkpoint in the original LDM layout."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in pipeline_to_ldm(pipe).items()}
    save_file(state, str(path))
