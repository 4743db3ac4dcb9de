"""A quantized preset replaces the cached full-precision model (quantized once, the fp32 weights
dropped), gives the same images as quantizing the full model for the run, and the default preset
reloads the full model from disk."""

import numpy as np
import pytest
import torch

from engines.generation import models
from engines.generation.api import GenerationParams, generate_job
from engines.generation.models import clear_cache, load_model, resolve_model
from engines.generation.precision import applied_precision, module_bytes, quantized_model_parts
from engines.jobs import run_job


def gen(**kw):
    return run_job(generate_job(GenerationParams(**{"model": "digits-flow", "class_label": 4, "steps": 3, "seed": 5,
                                                    "batch": 1, **kw}))).images


def _variants(info):
    return sorted(k[3] for k in models._cache if k[0] == info.path)


def test_quantized_preset_is_cached_instead_of_the_full_model():
    info = resolve_model("digits-flow")
    clear_cache()
    full_images = gen()
    full_bytes = module_bytes(load_model(info).unet)
    assert _variants(info) == ["default"]
    int8 = gen(precision="int8")
    assert _variants(info) == ["int8"]  # the fp32 model is no longer held by the cache
    cached = load_model(info, "cpu", "int8")
    assert cached.precision == "int8" and module_bytes(cached.unet) < full_bytes
    assert any(type(m) is torch.ao.nn.quantized.dynamic.Linear for m in cached.unet.modules())
    assert np.array_equal(gen(precision="int8"), int8) and load_model(info, "cpu", "int8") is cached
    fp8 = gen(precision="fp8")  # another preset: made from a fresh full model, the int8 copy dropped
    assert _variants(info) == ["fp8"] and not np.array_equal(fp8, int8)
    assert module_bytes(load_model(info, "cpu", "fp8").unet) < full_bytes / 2.5
    assert np.array_equal(gen(), full_images) and _variants(info) == ["default"]  # reloaded from disk
    clear_cache()


@pytest.mark.parametrize("preset", ["int8", "fp8", "int4"])
def test_cached_quantized_model_equals_quantizing_for_the_run(preset):
    info = resolve_model("digits-flow")
    full = models._load_uncached(info, "cpu")
    _pipe, once = quantized_model_parts(preset, unet=full.unet)
    x = torch.randn(2, full.unet.config.in_channels, 32, 32, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([10, 500])
    extra = {"class_labels": torch.tensor([1, 2])} if full.unet.config.num_class_embeds else {}
    with torch.no_grad(), applied_precision(preset, unet=full.unet) as replaced:
        assert torch.equal(once(x, t, **extra).sample, replaced["unet"](x, t, **extra).sample)
    assert all(type(m) is not torch.ao.nn.quantized.dynamic.Linear for m in full.unet.modules())  # untouched
    with pytest.raises(ValueError, match="does not quantize"):
        quantized_model_parts("low-memory", unet=full.unet)


def test_quantized_pipeline_is_a_new_object_and_the_full_one_is_unchanged(tmp_path):
    pytest.importorskip("transformers")
    from engines.generation.tiny import build_tiny_sd_pipeline

    build_tiny_sd_pipeline(tmp_path / "tiny-sd")
    info = resolve_model(str(tmp_path / "tiny-sd"))
    full = models._load_uncached(info, "cpu")
    weight = full.pipe.unet.conv_in.weight.clone()
    pipe, _ = quantized_model_parts("int4", pipe=full.pipe)
    assert pipe is not full.pipe and pipe.unet is not full.pipe.unet and pipe.vae is full.pipe.vae
    assert pipe.text_encoder is not full.pipe.text_encoder
    assert type(full.pipe.unet.conv_in) is torch.nn.Conv2d and torch.equal(full.pipe.unet.conv_in.weight, weight)
    unet, text_encoder = full.pipe.unet, full.pipe.text_encoder
    with applied_precision("int4", pipe=full.pipe):  # for one run: the same quantized parts, swapped in place
        for name in ("unet", "text_encoder"):
            ours, cached = getattr(full.pipe, name).state_dict(), getattr(pipe, name).state_dict()
            assert ours.keys() == cached.keys() and all(torch.equal(ours[k], cached[k]) for k in ours)
        assert full.pipe.unet is not unet and full.pipe.vae is pipe.vae
    assert full.pipe.unet is unet and full.pipe.text_encoder is text_encoder  # put back
    base = dict(model=str(tmp_path / "tiny-sd"), prompt="a cat", sampler="ddim", class_label=None)
    clear_cache()
    plain = gen(**base)
    quant = gen(**base, precision="int4")
    assert _variants(info) == ["int4"] and 0 < np.abs(quant.astype(int) - plain).mean() < 8
    assert np.array_equal(gen(**base), plain)
    clear_cache()
