"""Every sampler offered for a model family runs on a tiny model of that family (tiny Flux
here; tiny SD and the digits model in their own test files), model default sizes come from
the model's config, pipeline img2img runs at any strength in [0, 1], and pipeline inpainting
pastes the unmasked original back with an inward-feathered edge."""

import numpy as np
import pytest

pytest.importorskip("transformers")

from engines.generation.api import GenerationParams, generate_job
from engines.generation.models import clear_cache, inspect_model
from engines.generation.pipelines import feathered_mask, img2img_steps
from engines.jobs import run_job


def _built(tmp_path_factory, builder: str, name: str):
    from engines.generation import tiny

    folder = tmp_path_factory.mktemp("models") / name
    getattr(tiny, builder)(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_flux(tmp_path_factory):
    yield _built(tmp_path_factory, "build_tiny_flux_pipeline", "tiny-flux")
    clear_cache()


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    yield _built(tmp_path_factory, "build_tiny_sd_pipeline", "tiny-sd")
    clear_cache()


def run(folder, init=None, mask=None, **kw):
    params = GenerationParams(model=str(folder), **{"prompt": "a photo of a cat", "steps": 3, "seed": 1, **kw})
    return run_job(generate_job(params, init=init, mask=mask))


def test_tiny_flux_defaults_and_every_offered_sampler_runs(tiny_flux):
    info = inspect_model(tiny_flux)
    assert info.pipeline_class == "FluxPipeline" and info.prediction_type == "flow"
    assert info.size == (32, 32)  # from the VAE config: the Flux transformer has no sample_size
    # Flow Heun's set_timesteps takes no custom sigmas, which Flux passes: not offered
    assert "flow_heun" not in info.samplers and {"flow_euler", "dpmpp_2m"} <= set(info.samplers)
    for sampler in info.samplers:
        result = run(tiny_flux, sampler=sampler)
        assert result.images.shape == (1, 32, 32, 3), sampler
        assert result.params["width"] == 32 and result.params["height"] == 32
        assert result.images.std() > 0, sampler


def test_flux_dpmpp_follows_the_dynamic_shift():
    from diffusers import DPMSolverMultistepScheduler

    from engines.generation.samplers import make_scheduler

    sched = make_scheduler("dpmpp_2m", "flow", {"use_dynamic_shifting": True, "num_train_timesteps": 1000})
    assert isinstance(sched, DPMSolverMultistepScheduler) and sched.config.use_dynamic_shifting
    sched.set_timesteps(4, mu=1.15)
    plain = make_scheduler("dpmpp_2m", "flow", {"num_train_timesteps": 1000})
    plain.set_timesteps(4)
    # exponential time shift exp(mu) / (exp(mu) + 1/s - 1) on the first sigma below 1
    s = float(plain.sigmas[1])
    assert float(sched.sigmas[1]) == pytest.approx(np.exp(1.15) / (np.exp(1.15) + 1 / s - 1), rel=1e-4)


def test_img2img_steps_never_empty():
    assert img2img_steps(20, 0.5) == 20
    assert img2img_steps(20, 0.05) == 20  # int(20 * 0.05) == 1
    assert int(img2img_steps(3, 0.05) * 0.05) == 1
    assert int(img2img_steps(4, 0.01) * 0.01) >= 1


@pytest.mark.parametrize("strength", [0.0, 0.05, 0.5, 1.0])
def test_pipeline_img2img_every_strength(tiny_sd, strength):
    rng = np.random.default_rng(0)
    init = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    out = run(tiny_sd, init=init, strength=strength, steps=3, sampler="ddim")
    assert out.images.shape == (1, 32, 32, 3) and out.mode == "img2img"
    if strength == 0:
        assert np.array_equal(out.images[0], init)  # nothing regenerated
    else:
        assert not np.array_equal(out.images[0], init)


def test_feathered_mask_stays_inside():
    mask = np.zeros((20, 20))
    mask[5:15, 5:15] = 1
    w = feathered_mask(mask, 3)
    assert np.all(w[mask == 0] == 0) and w[10, 10] == 1
    assert 0 < w[5, 10] < w[6, 10] < w[7, 10] < 1 == w[8, 10]  # ramps up over 3 px from the edge
    assert w[5, 10] == pytest.approx(0.25)
    assert np.array_equal(feathered_mask(mask, 0), mask)


@pytest.mark.parametrize("blur", [0.0, 4.0])
def test_pipeline_inpainting_keeps_the_original_outside_the_mask(tiny_sd, blur):
    rng = np.random.default_rng(1)
    init = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    mask = np.zeros((32, 32))
    mask[8:24, 8:24] = 1
    out = run(tiny_sd, init=init, mask=mask, strength=1.0, steps=3, sampler="ddim", mask_blur=blur)
    assert out.mode == "inpaint" and out.params["mask_blur"] == blur
    image = out.images[0].astype(int)
    outside = mask == 0
    assert np.array_equal(image[outside], init[outside].astype(int))  # exactly the original
    core = np.zeros_like(mask, bool)
    core[13:19, 13:19] = True
    assert np.abs(image[core] - init[core]).mean() > 10  # regenerated inside
    if blur:  # the ring just inside the edge is a blend of both
        edge = image[8, 12:20] - init[8, 12:20]
        assert np.abs(edge).mean() < np.abs(image[core] - init[core]).mean()


def _batch_matches_single(model, sampler, **kw):
    batch = run(model, seed=3, batch=3, sampler=sampler, **kw)
    alone = run(model, seed=5, batch=1, sampler=sampler, **kw)
    assert batch.seeds == [3, 4, 5]
    assert np.array_equal(batch.images[2], alone.images[0]), sampler  # bit for bit
    assert not np.array_equal(batch.images[0], batch.images[2])


def test_every_digits_sampler_reproduces_a_batch_image_from_its_seed():
    from engines.generation.models import resolve_model

    for sampler in resolve_model("digits-flow").samplers:
        _batch_matches_single("digits-flow", sampler, prompt="", class_label=7, steps=4)


@pytest.mark.parametrize("sampler", ["euler_a", "dpmpp_2m_karras"])
def test_pipeline_batch_image_reproduces_from_its_seed(tiny_sd, sampler):
    _batch_matches_single(tiny_sd, sampler, height=32, width=32)
