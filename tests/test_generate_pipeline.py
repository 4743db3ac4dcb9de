"""Diffusers pipelines through the studio's loading path: a tiny Stable Diffusion pipeline
built offline from configs (random weights, hand-written tokenizer), every offered sampler,
step previews via callback_on_step_end, cancel, seeds, img2img and inpainting."""

import numpy as np
import pytest

pytest.importorskip("transformers")

from engines.generation.api import GenerationParams, generate_job
from engines.generation.models import clear_cache, inspect_model, scan_models
from engines.generation.pipelines import latents_to_rgb
from engines.jobs import CancelToken, JobCancelled, Preview, Progress, run_job


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    from engines.generation.tiny import build_tiny_sd_pipeline

    root = tmp_path_factory.mktemp("models")
    build_tiny_sd_pipeline(root / "tiny-sd")
    yield root / "tiny-sd"
    clear_cache()


def run(folder, events=None, cancel=None, init=None, mask=None, **kw):
    params = GenerationParams(model=str(folder), **{"prompt": "a photo of a cat", "steps": 3, "seed": 1,
                                                      "height": 32, "width": 32, **kw})
    return run_job(generate_job(params, init=init, mask=mask, cancel=cancel),
                   events.append if events is not None else None)


def test_tokenizer_and_folder_layout(tiny_sd):
    from transformers import CLIPTokenizer

    for part in ("model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tiny_sd / part).exists()
    tok = CLIPTokenizer.from_pretrained(tiny_sd / "tokenizer", local_files_only=True)
    ids = tok("a photo of a cat").input_ids
    assert tok.convert_ids_to_tokens(ids) == ["<|startoftext|>", "a</w>", "photo</w>", "of</w>", "a</w>",
                                              "cat</w>", "<|endoftext|>"]
    info = inspect_model(tiny_sd)
    assert info.kind == "pipeline" and info.pipeline_class == "StableDiffusionPipeline"
    assert info.conditioning == "text" and info.prediction_type == "epsilon" and info.size == (32, 32)
    assert "flow_euler" not in info.samplers and "lcm" not in info.samplers
    models, _ = scan_models([tiny_sd.parent])
    assert "tiny-sd" in [m.name for m in models]


def test_every_offered_sampler_generates_with_previews(tiny_sd):
    info = inspect_model(tiny_sd)
    assert {"ddim", "euler", "euler_a", "heun", "unipc", "dpmpp_2m_karras"} <= set(info.samplers)
    for sampler in info.samplers:
        events = []
        result = run(tiny_sd, events, sampler=sampler)
        previews = [e for e in events if isinstance(e, Preview)]
        steps = [e for e in events if isinstance(e, Progress) and e.message.startswith("step")]
        assert result.images.shape == (1, 32, 32, 3) and result.images.dtype == np.uint8
        assert len(previews) == len(steps) >= 3, sampler
        assert previews[0].image.shape == (16, 16, 3)  # latent resolution (VAE factor 2)
        assert steps[-1].done == steps[-1].total
        assert not any("left" in e.message for e in steps)  # one time-left estimate: the studio's own


def test_seed_reproducible_and_batch(tiny_sd):
    a = run(tiny_sd, seed=3, batch=2, sampler="ddim")
    b = run(tiny_sd, seed=3, batch=2, sampler="ddim")
    assert np.array_equal(a.images, b.images)
    c = run(tiny_sd, seed=4, batch=1, sampler="ddim")
    assert np.array_equal(c.images[0], a.images[1])  # image i of a batch uses seed + i
    assert not np.array_equal(a.images[0], a.images[1])


def test_cancel_stops_the_pipeline(tiny_sd):
    token = CancelToken()
    events = []

    def on_event(event):
        events.append(event)
        if isinstance(event, Preview):
            token.cancel()

    with pytest.raises(JobCancelled):
        run_job(generate_job(GenerationParams(model=str(tiny_sd), prompt="a dog", steps=20, seed=0, height=32,
                                              width=32, sampler="euler"), cancel=token), on_event)
    assert sum(isinstance(e, Preview) for e in events) < 5
    # closing the job (the studio's cancel) also stops it and returns nothing
    job = generate_job(GenerationParams(model=str(tiny_sd), prompt="a dog", steps=20, seed=0, height=32, width=32))
    for event in job:
        if isinstance(event, Preview):
            break
    job.close()


def test_img2img_and_inpainting_pipelines(tiny_sd):
    rng = np.random.default_rng(0)
    init = rng.random((32, 32, 3))
    out = run(tiny_sd, init=init, strength=0.5, steps=4, sampler="dpmpp_2m")
    assert out.mode == "img2img" and out.images.shape == (1, 32, 32, 3)
    mask = np.zeros((32, 32))
    mask[8:24, 8:24] = 1
    painted = run(tiny_sd, init=init, mask=mask, strength=1.0, steps=3, sampler="ddim")
    assert painted.mode == "inpaint" and painted.images.shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="ILVR"):
        run_job(generate_job(GenerationParams(model=str(tiny_sd), steps=2, ilvr_n=4, height=32, width=32),
                             reference=init))


def test_lcm_offered_only_for_distilled(tmp_path):
    from engines.generation.tiny import build_tiny_sd_pipeline

    build_tiny_sd_pipeline(tmp_path / "tiny-lcm", scheduler="LCMScheduler")
    info = inspect_model(tmp_path / "tiny-lcm")
    assert info.distilled and "lcm" in info.samplers and info.default_sampler == "lcm"
    result = run(tmp_path / "tiny-lcm", sampler="lcm", steps=2, cfg=1.0)
    assert result.images.shape == (1, 32, 32, 3)


def test_latent_preview_projection():
    import torch

    lat = torch.zeros(1, 4, 2, 2)
    lat[0, 0] = 1.0  # first latent channel -> its RGB factor row
    rgb = latents_to_rgb(lat, "sd").astype(float) / 255
    assert np.allclose(rgb[0, 0, 0], (np.array([0.3444, 0.1385, 0.0670]) + 1) / 2, atol=1 / 255)
    grey = latents_to_rgb(torch.rand(2, 1, 3, 3))
    assert grey.shape == (2, 3, 3, 3)


def test_full_clip_tokenizer_from_shipped_merges():
    from engines.generation.clip_vocab import clip_tokenizer

    tok = clip_tokenizer()
    assert len(tok) == 49408
    # the reference ids of Stable Diffusion 1.x's tokenizer
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_single_file_sd_checkpoint_uses_skeleton(tmp_path):
    import torch
    from safetensors.torch import save_file

    from engines.generation.models import ModelError, load_model

    # only the tensor names matter for recognising the family; loading this fake fails clearly
    path = tmp_path / "my-sd15.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(320, 4, 3, 3),
               "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": torch.zeros(4, 4)},
              str(path))
    info = inspect_model(path)
    assert info.kind == "single" and info.skeleton.endswith("sd15")
    assert info.pipeline_class == "StableDiffusionPipeline" and info.conditioning == "text"
    assert info.size == (512, 512) and info.prediction_type == "epsilon"
    with pytest.raises(ModelError, match="do not fit the shipped 'sd15' model config"):
        load_model(info)
    xl = tmp_path / "xl.safetensors"
    save_file({"conditioner.embedders.1.model.ln_final.weight": torch.zeros(2)}, str(xl))
    with pytest.raises(ModelError, match="skeleton"):
        inspect_model(xl)


def test_sampler_history_does_not_change_results(tiny_sd):
    """The cached pipeline's scheduler is always rebuilt from the model's own config: DDIM after
    DPM++ (whose config has no clip_sample) must not start clipping latents."""
    clear_cache()
    first = run(tiny_sd, sampler="ddim", steps=4, seed=9)
    run(tiny_sd, sampler="dpmpp_2m", steps=2, seed=9)
    again = run(tiny_sd, sampler="ddim", steps=4, seed=9)
    assert np.array_equal(first.images, again.images)


def test_pipeline_with_a_renamed_tensor_is_refused(tiny_sd, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    from engines.generation.models import ModelError, load_model

    copy = tmp_path / "renamed-sd"
    shutil.copytree(tiny_sd, copy)
    weights = next((copy / "unet").glob("*.safetensors"))
    state = load_file(weights)
    state["conv_in.weight_renamed"] = state.pop("conv_in.weight")
    save_file(state, weights)
    with pytest.raises(ModelError, match="renamed-sd: the weights do not match the model"):
        load_model(inspect_model(copy))
