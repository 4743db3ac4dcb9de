"""The shipped config skeletons (SD 1.x, SD 2.x, SDXL base) for single-file checkpoints.

Each skeleton's configs must load into the diffusers/transformers classes named by its
``model_index.json`` with no unknown field, build models of the published sizes (on the meta
device, nothing allocated), be picked by family detection for checkpoints of that family, and
— shrunk to tiny sizes with the same structure — run through the engine as a real pipeline."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from engines.generation.models import SKELETONS_DIR, ModelError, checkpoint_family, inspect_model

FAMILIES = ["sd15", "sd2", "sdxl-base"]
# parameter counts of the published checkpoints' components (SD 1.5, SD 2.1, SDXL base 1.0)
PUBLISHED_PARAMS = {
    "sd15": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd2": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    "sdxl-base": {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480,
                  "text_encoder_2": 694_659_840},
}
EXPECTED = {  # pipeline class, prediction type, default size, scheduler class
    "sd15": ("StableDiffusionPipeline", "epsilon", (512, 512), "PNDMScheduler"),
    "sd2": ("StableDiffusionPipeline", "v_prediction", (768, 768), "DDIMScheduler"),
    "sdxl-base": ("StableDiffusionXLPipeline", "epsilon", (1024, 1024), "EulerDiscreteScheduler"),
}


def components(family):
    index = json.loads((SKELETONS_DIR / family / "model_index.json").read_text())
    return {k: v for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and v[0] is not None}


def component_class(library, name):
    import diffusers
    import transformers

    return getattr(diffusers if library == "diffusers" else transformers, name)


def load_component_config(family, comp, library, name):
    """(class, config) with unknown fields reported: diffusers via extract_init_dict, transformers via to_dict."""
    cls = component_class(library, name)
    folder = SKELETONS_DIR / family / comp
    if library == "diffusers":
        config = cls.load_config(folder)
        _init, unused, _hidden = cls.extract_init_dict(config)
        unknown = {k for k in unused if not k.startswith("_")}
        return cls, config, unknown
    raw = json.loads((folder / "config.json").read_text())
    config = cls.config_class.from_pretrained(folder)
    known = set(cls.config_class().to_dict()) | {"architectures", "torch_dtype", "dtype"}
    return cls, config, set(raw) - known


@pytest.mark.parametrize("family", FAMILIES)
def test_skeleton_configs_load_into_the_right_classes(family):
    pipe_cls, prediction, _size, sched_cls = EXPECTED[family]
    index = json.loads((SKELETONS_DIR / family / "model_index.json").read_text())
    assert index["_class_name"] == pipe_cls
    import diffusers

    expected_modules, _optional = getattr(diffusers, pipe_cls)._get_signature_keys(getattr(diffusers, pipe_cls))
    comps = components(family)
    assert {k for k in expected_modules if k not in ("safety_checker", "feature_extractor", "image_encoder")} == set(comps)
    for comp, (library, name) in comps.items():
        if name == "CLIPTokenizer":
            cfg = json.loads((SKELETONS_DIR / family / comp / "tokenizer_config.json").read_text())
            assert cfg["tokenizer_class"] == "CLIPTokenizer"
            continue
        if comp == "scheduler":
            cls = component_class(library, name)
            config = cls.load_config(SKELETONS_DIR / family / "scheduler")
            _init, unused, _ = cls.extract_init_dict(config)
            assert not {k for k in unused if not k.startswith("_")}, (family, comp, unused)
            assert name == sched_cls and cls.from_config(config).config.prediction_type == prediction
            continue
        cls, config, unknown = load_component_config(family, comp, library, name)
        assert not unknown, (family, comp, unknown)
        with torch.device("meta"):  # full size, nothing allocated
            model = cls.from_config(config) if library == "diffusers" else cls(config)
        assert type(model).__name__ == name
        assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMS[family][comp], (family, comp)


@pytest.mark.parametrize("family", ["sd15", "sd2"])
def test_full_size_ldm_layout_round_trips_and_is_detected(family):
    """The skeleton UNet/VAE in LDM names (real SD layout: 4 levels, 2 layers) converts back exactly."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    from engines.generation.ldm_layout import unet_to_ldm, vae_to_ldm

    skel = SKELETONS_DIR / family
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(skel / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(skel / "vae"))
    ckpt = {**unet_to_ldm(unet.state_dict(), unet.config), **vae_to_ldm(vae.state_dict(), vae.config)}
    for name in ("model.diffusion_model.output_blocks.2.1.conv.weight", "model.diffusion_model.output_blocks.5.2.conv.weight",
                 "model.diffusion_model.input_blocks.3.0.op.weight", "model.diffusion_model.output_blocks.11.1.proj_out.weight",
                 "first_stage_model.decoder.up.0.block.2.norm1.weight", "first_stage_model.encoder.down.3.block.1.conv2.weight"):
        assert name in ckpt, name  # tensor names of the real SD checkpoints
    for converted, model in ((convert_ldm_unet_checkpoint(ckpt, unet.config), unet),
                             (convert_ldm_vae_checkpoint(ckpt, vae.config), vae)):
        original = model.state_dict()
        assert set(converted) == set(original)
        assert all(converted[k].shape == original[k].shape for k in original)
    keys = {k: tuple(v.shape) for k, v in ckpt.items()}
    assert checkpoint_family(keys) == {"sd15": "v1", "sd2": "v2"}[family]


def write_fake_checkpoint(path, names):
    from safetensors.torch import save_file

    save_file({k: torch.zeros(shape, dtype=torch.float16) for k, shape in names.items()}, str(path))
    return path


def test_family_detection_picks_the_shipped_skeleton(tmp_path):
    unet_key = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
    cases = {
        "sd15": {unet_key: (320, 768), "model.diffusion_model.output_blocks.11.0.skip_connection.weight": (320, 640, 1, 1),
                 "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (77, 768)},
        "sd2": {unet_key: (320, 1024), "cond_stage_model.model.token_embedding.weight": (4, 1024)},
        "sdxl-base": {"model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": (640, 2048),
                      "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": (1280,)},
    }
    for family, names in cases.items():
        info = inspect_model(write_fake_checkpoint(tmp_path / f"{family}-model.safetensors", names))
        pipe_cls, prediction, size, _sched = EXPECTED[family]
        assert Path(info.skeleton).name == family and info.kind == "single"
        assert (info.pipeline_class, info.prediction_type, info.size) == (pipe_cls, prediction, size)
        assert info.conditioning == "text" and info.default_sampler in info.samplers
    # families without a shipped skeleton are named in the message
    refiner = write_fake_checkpoint(tmp_path / "refiner.safetensors", {
        "model.diffusion_model.input_blocks.0.0.weight": (384, 4, 3, 3),
        "conditioner.embedders.0.model.transformer.resblocks.9.mlp.c_proj.bias": (1280,)})
    with pytest.raises(ModelError, match="xl_refiner.*refiner.config"):
        inspect_model(refiner)
    inpaint = write_fake_checkpoint(tmp_path / "inpaint.safetensors", {
        "model.diffusion_model.input_blocks.0.0.weight": (320, 9, 3, 3)})
    with pytest.raises(ModelError, match="inpainting"):
        inspect_model(inpaint)


def tiny_overrides(family, comp, config):
    """The same structure (block types, flags, class) at toy sizes."""
    config = dict(config)
    if comp == "unet":
        n = len(config["block_out_channels"])
        config.update(block_out_channels=[8 * min(i + 1, 2) for i in range(n)], layers_per_block=1, norm_num_groups=2,
                      sample_size=8, transformer_layers_per_block=1,
                      attention_head_dim=[2] * n if isinstance(config["attention_head_dim"], list) else 2,
                      cross_attention_dim=16 if family == "sdxl-base" else 8)
        if config.get("addition_embed_type") == "text_time":
            config.update(addition_time_embed_dim=4, projection_class_embeddings_input_dim=8 + 6 * 4)
    elif comp == "vae":
        n = len(config["block_out_channels"])
        config.update(block_out_channels=[4] + [8] * (n - 1), layers_per_block=1, norm_num_groups=2, sample_size=64)
    else:  # CLIP text encoders
        config.update(hidden_size=8, intermediate_size=16, num_attention_heads=2, num_hidden_layers=2, projection_dim=8)
    return config


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_pipeline_with_skeleton_structure_runs_in_the_engine(family, tmp_path):
    import diffusers

    from engines.generation.api import GenerationParams, generate_job
    from engines.generation.clip_vocab import clip_tokenizer
    from engines.generation.models import clear_cache
    from engines.jobs import Preview, run_job

    torch.manual_seed(0)
    skel_meta = json.loads((SKELETONS_DIR / family / "skeleton.json").read_text())
    pads = skel_meta.get("pad_tokens", {})
    index = json.loads((SKELETONS_DIR / family / "model_index.json").read_text())
    parts = {}
    for comp, (library, name) in components(family).items():
        cls = component_class(library, name)
        if name == "CLIPTokenizer":
            parts[comp] = clip_tokenizer(pad_token=pads.get(comp, "<|endoftext|>"))
        elif comp == "scheduler":
            parts[comp] = cls.from_config(cls.load_config(SKELETONS_DIR / family / "scheduler"))
        elif library == "diffusers":
            parts[comp] = cls.from_config(tiny_overrides(family, comp, cls.load_config(SKELETONS_DIR / family / comp)))
        else:
            raw = json.loads((SKELETONS_DIR / family / comp / "config.json").read_text())
            parts[comp] = cls(cls.config_class(**tiny_overrides(family, comp, raw)))
    pipe_cls = getattr(diffusers, index["_class_name"])
    extra = {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False} \
        if pipe_cls is diffusers.StableDiffusionPipeline else {}
    pipe = pipe_cls(**parts, **extra)
    folder = tmp_path / f"tiny-{family}"
    pipe.save_pretrained(folder, safe_serialization=True)
    info = inspect_model(folder)
    assert (info.pipeline_class, info.prediction_type) == EXPECTED[family][:2]
    events = []
    result = run_job(generate_job(GenerationParams(model=str(folder), prompt="a photo of a cat", steps=2, seed=4,
                                                   height=64, width=64)), events.append)
    clear_cache()
    assert result.images.shape == (1, 64, 64, 3) and result.images.std() > 0
    assert result.params["sampler"] == info.default_sampler
    previews = [e for e in events if isinstance(e, Preview)]
    assert previews and previews[-1].image.shape == (8, 8, 3)
    assert np.isfinite(result.images).all()
