"""Tiny random-weight diffusers pipelines built offline from configs (for tests and demos).

Mirrors diffusers' own test components (``get_dummy_components``) but with a hand-written
CLIP BPE vocabulary, so nothing is downloaded. The results are noise, not pictures: these
models exercise loading, samplers, callbacks and cancel, not quality.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["TINY_WORDS", "build_tiny_flux_pipeline", "build_tiny_sd_pipeline", "build_tiny_sdxl_pipeline",
           "write_tiny_clip_tokenizer"]

TINY_WORDS = ["a", "photo", "of", "cat", "dog", "red", "blue", "house", "tree", "digit"]


def write_tiny_clip_tokenizer(folder: str | os.PathLike, max_length: int = 77) -> Path:
    """Write ``vocab.json`` / ``merges.txt`` / tokenizer config for a tiny CLIP BPE tokenizer.

    Vocabulary: ``<|startoftext|>`` (0), ``<|endoftext|>`` (1), the letters a-z with and
    without the ``</w>`` word-end marker, and whole words from :data:`TINY_WORDS` built by
    merges; unknown text maps to ``<|endoftext|>``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = ["<|startoftext|>", "<|endoftext|>"] + letters + [c + "</w>" for c in letters]
    merges = []
    for word in TINY_WORDS:
        if len(word) < 2:
            continue
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            merges.append(f"{current} {piece}")
            current = current + piece
            if current not in vocab:
                vocab.append(current)
    seen, unique = set(), []
    for m in merges:
        if m not in seen:
            seen.add(m)
            unique.append(m)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, indent=0))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(unique) + "\n")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": max_length,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "do_lower_case": True,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {k: config[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token")}, indent=2))
    return folder


def build_tiny_sd_pipeline(folder: str | os.PathLike, seed: int = 0, scheduler: str = "DDIMScheduler",
                           prediction_type: str = "epsilon"):
    """Build a random-weight ``StableDiffusionPipeline`` (~0.1 M params, 32x32 px) and save it.

    ``folder`` receives ``model_index.json`` and one subfolder per component; returns the
    pipeline. ``scheduler``: diffusers scheduler class name (e.g. ``LCMScheduler`` for a
    "distilled" test model).
    """
    import diffusers
    import torch
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8, norm_num_groups=2, attention_head_dim=2,
    )
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, norm_num_groups=2,
    )
    tok_dir = write_tiny_clip_tokenizer(folder.with_name(folder.name + ".tokenizer-src"))
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    text_config = CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=8, intermediate_size=16,
        layer_norm_eps=1e-5, num_attention_heads=2, num_hidden_layers=2, vocab_size=len(tokenizer),
        max_position_embeddings=77,
    )
    text_encoder = CLIPTextModel(text_config)
    sched_cls = getattr(diffusers, scheduler)
    sched = sched_cls(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, clip_sample=False,
                      prediction_type=prediction_type)
    pipe = StableDiffusionPipeline(
        unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=sched,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    import shutil

    shutil.rmtree(tok_dir, ignore_errors=True)
    return pipe


def build_tiny_flux_pipeline(folder: str | os.PathLike, seed: int = 0):
    """Build a random-weight ``FluxPipeline`` (tiny transformer, 2-block VAE, 32x32 px) and save it.

    As diffusers' Flux tests, but offline: the T5 encoder reads the same tiny CLIP BPE vocabulary
    (``tokenizer_2`` is a CLIP tokenizer), so no SentencePiece model is needed. Returns the pipeline.
    """
    import shutil

    import torch
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel

    folder = Path(folder)
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8,
        num_attention_heads=2, joint_attention_dim=16, pooled_projection_dim=8, axes_dims_rope=[2, 2, 4],
    )
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, norm_num_groups=2,
        sample_size=32, shift_factor=0.0609, scaling_factor=1.5035, use_quant_conv=False, use_post_quant_conv=False,
    )
    tok_dir = write_tiny_clip_tokenizer(folder.with_name(folder.name + ".tokenizer-src"))
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=8, intermediate_size=16, layer_norm_eps=1e-5,
        num_attention_heads=2, num_hidden_layers=2, vocab_size=len(tokenizer), max_position_embeddings=77,
        projection_dim=8))
    text_encoder_2 = T5EncoderModel(T5Config(
        vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        relative_attention_num_buckets=8, pad_token_id=1, eos_token_id=1, decoder_start_token_id=0))
    scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_image_seq_len=16,
                                                max_image_seq_len=256, base_shift=0.5, max_shift=1.15)
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer, transformer=transformer)
    pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(tok_dir, ignore_errors=True)
    return pipe


def build_tiny_sdxl_pipeline(folder: str | os.PathLike, seed: int = 0):
    """Build a random-weight ``StableDiffusionXLPipeline`` with two text encoders and save it.

    As diffusers' SDXL tests, offline and smaller: ``text_encoder`` (CLIP, width 8) and
    ``text_encoder_2`` (CLIP with projection, width 12) have different widths, like the real
    CLIP-L (768) and OpenCLIP-G (1280), so an embedding loaded into the wrong one fails.
    Returns the pipeline.
    """
    import shutil

    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder = Path(folder)
    torch.manual_seed(seed)
    time_dim, width_1, width_2 = 8, 8, 12
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=time_dim, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * time_dim + width_2, cross_attention_dim=width_1 + width_2,
        norm_num_groups=2,
    )
    vae = AutoencoderKL(
        block_out_channels=[4, 8], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4, norm_num_groups=2,
        sample_size=32,
    )
    tok_dir = write_tiny_clip_tokenizer(folder.with_name(folder.name + ".tokenizer-src"))
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    tokenizer_2 = CLIPTokenizer.from_pretrained(str(tok_dir), local_files_only=True)

    def clip_config(width: int) -> CLIPTextConfig:
        return CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=width,
                              intermediate_size=2 * width, layer_norm_eps=1e-5, num_attention_heads=2,
                              num_hidden_layers=2, vocab_size=len(tokenizer), max_position_embeddings=77,
                              projection_dim=width)

    text_encoder = CLIPTextModel(clip_config(width_1))
    text_encoder_2 = CLIPTextModelWithProjection(clip_config(width_2))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler)
    pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(tok_dir, ignore_errors=True)
    return pipe
