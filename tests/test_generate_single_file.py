"""A real single-file Stable Diffusion checkpoint, end to end and offline.

The tiny random SD pipeline from ``engines.generation.tiny`` is written as ONE ``.safetensors``
file in the original LDM/CompVis layout (``model.diffusion_model.*``, ``first_stage_model.*``,
``cond_stage_model.transformer.*``) plus a weight-free config skeleton folder; loading it through
the engine's one loading path (``from_single_file(..., config=skeleton)``) must give the same
weights and the same images as the original pipeline folder."""

import socket

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from engines.generation.api import GenerationParams, generate_job
from engines.generation.ldm_layout import pipeline_to_ldm, save_pipeline_as_single_file
from engines.generation.models import (
    ModelError,
    clear_cache,
    inspect_model,
    load_model,
    scan_models,
    skeleton_sidecar,
    write_skeleton,
)
from engines.jobs import run_job


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from engines.generation.tiny import build_tiny_sd_pipeline

    root = tmp_path_factory.mktemp("single")
    folder = root / "tiny-sd"
    pipe = build_tiny_sd_pipeline(folder, seed=3)
    ckpt_dir = root / "checkpoints"
    ckpt_dir.mkdir()
    path = ckpt_dir / "tiny-sd-ldm.safetensors"
    save_pipeline_as_single_file(pipe, path)
    write_skeleton(folder, skeleton_sidecar(path))
    yield pipe, folder, path
    clear_cache()


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_file_has_the_original_ldm_layout(tiny):
    from safetensors import safe_open

    pipe, _folder, path = tiny
    with safe_open(str(path), framework="pt") as handle:
        keys = {k: tuple(handle.get_slice(k).get_shape()) for k in handle.keys()}  # noqa: SIM118
    prefixes = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer.text_model.")
    assert all(k.startswith(prefixes) for k in keys)
    n_params = sum(len(getattr(pipe, c).state_dict()) for c in ("unet", "vae", "text_encoder"))
    assert len(keys) == n_params  # every tensor written once, none dropped
    # names and shapes as in real SD 1.x checkpoints (layers_per_block 1 -> 2 input blocks per level)
    assert keys["model.diffusion_model.input_blocks.0.0.weight"] == (4, 4, 3, 3)
    assert keys["model.diffusion_model.input_blocks.2.0.op.weight"] == (4, 4, 3, 3)  # downsampler
    assert "model.diffusion_model.input_blocks.3.1.transformer_blocks.0.attn2.to_k.weight" in keys
    assert "model.diffusion_model.middle_block.1.proj_in.weight" in keys
    assert keys["model.diffusion_model.output_blocks.1.2.conv.weight"] == (8, 8, 3, 3)  # upsampler after attention
    assert "model.diffusion_model.out.2.weight" in keys and "model.diffusion_model.time_embed.0.weight" in keys
    assert "first_stage_model.encoder.down.1.block.0.nin_shortcut.weight" in keys
    assert keys["first_stage_model.decoder.mid.attn_1.q.weight"] == (8, 8, 1, 1)  # 1x1 conv, as in LDM
    assert "first_stage_model.decoder.up.1.upsample.conv.weight" in keys  # decoder blocks numbered in reverse
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in keys


def test_diffusers_forward_conversion_reproduces_the_original_state_dicts(tiny):
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_ldm_unet_checkpoint,
        convert_ldm_vae_checkpoint,
        infer_diffusers_model_type,
    )

    pipe, _folder, _path = tiny
    ckpt = pipeline_to_ldm(pipe)
    assert infer_diffusers_model_type(ckpt) == "v1"
    converted = {
        "unet": convert_ldm_unet_checkpoint(ckpt, pipe.unet.config),
        "vae": convert_ldm_vae_checkpoint(ckpt, pipe.vae.config),
        "text_encoder": {k.removeprefix("text_model."): v for k, v in convert_ldm_clip_checkpoint(ckpt).items()},
    }
    for name, state in converted.items():
        original = getattr(pipe, name).state_dict()
        original = {k.removeprefix("text_model."): v for k, v in original.items()}
        assert set(state) == set(original), name
        for key, value in original.items():
            assert state[key].shape == value.shape and torch.equal(state[key], value), (name, key)


def test_single_file_loads_offline_and_generates_like_the_folder(tiny, no_network):
    pipe, folder, path = tiny
    info = inspect_model(path)
    assert info.kind == "single" and info.pipeline_class == "StableDiffusionPipeline"
    assert info.skeleton == str(skeleton_sidecar(path)) and info.size == (32, 32)
    assert info.conditioning == "text" and info.prediction_type == "epsilon"
    assert not any(p.suffix == ".safetensors" for p in skeleton_sidecar(path).rglob("*"))  # configs only
    # the scan lists the checkpoint once and does not mistake its skeleton for a model
    models, problems = scan_models([path.parent])
    assert [m.name for m in models if not m.shipped] == ["tiny-sd-ldm"] and problems == []

    loaded = load_model(info)
    for name in ("unet", "vae", "text_encoder"):
        got, want = getattr(loaded.pipe, name).state_dict(), getattr(pipe, name).state_dict()
        assert set(got) == set(want), name
        assert all(torch.equal(got[k], want[k]) for k in want), name
    assert type(loaded.pipe.scheduler).__name__ == type(pipe.scheduler).__name__

    def gen(model, **kw):
        params = GenerationParams(model=str(model), prompt="a red cat", negative_prompt="blue", steps=3, seed=11,
                                  sampler="dpmpp_2m", **kw)
        return run_job(generate_job(params))

    single, original = gen(path), gen(folder)
    assert single.images.shape == (1, 32, 32, 3) and single.images.std() > 1
    assert np.array_equal(single.images, original.images)
    rng = np.random.default_rng(1)
    init = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    edit_single = run_job(generate_job(GenerationParams(model=str(path), prompt="a dog", steps=4, seed=2,
                                                        sampler="ddim", strength=0.5), init=init))
    edit_folder = run_job(generate_job(GenerationParams(model=str(folder), prompt="a dog", steps=4, seed=2,
                                                        sampler="ddim", strength=0.5), init=init))
    assert edit_single.mode == "img2img" and np.array_equal(edit_single.images, edit_folder.images)


def test_broken_skeleton_and_truncated_file_fail_clearly(tiny, tmp_path):
    _pipe, folder, path = tiny
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(path.read_bytes())
    skel = write_skeleton(folder, skeleton_sidecar(copy))
    (skel / "model_index.json").unlink()
    with pytest.raises(ModelError, match="model_index.json"):
        inspect_model(copy)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelError, match="safetensors"):
        inspect_model(cut)
    with pytest.raises(ModelError, match="not a diffusers model folder"):
        write_skeleton(tmp_path, tmp_path / "x.config")


def test_checkpoint_that_fits_no_shipped_config_fails_understandably(tiny, tmp_path):
    _pipe, _folder, path = tiny
    alone = tmp_path / "my-model.safetensors"  # the tiny SD without its sidecar: guessed as SD 1.x
    alone.write_bytes(path.read_bytes())
    info = inspect_model(alone)
    assert info.skeleton.endswith("sd15")
    with pytest.raises(ModelError) as err:
        load_model(info)
    message = str(err.value)
    assert "do not fit the shipped 'sd15' model config" in message and "my-model.config/" in message
    assert "state_dict" not in message and "size mismatch" not in message and "\n" not in message
