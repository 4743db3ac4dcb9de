"""Precision presets: int8 dynamic quantization stays close to fp32 (digits model and tiny SD)
with a smaller denoiser, low-memory (attention slicing, VAE tiling) matches the default, and the
cached model is unchanged afterwards."""

import numpy as np
import pytest
import torch

from engines.generation.api import GenerationParams, generate_job
from engines.generation.precision import applied_precision, module_bytes
from engines.jobs import run_job


def gen(**kw):
    return run_job(generate_job(GenerationParams(**{"steps": 4, "seed": 2, "batch": 2, **kw}))).images


def test_int8_on_the_digits_model_is_close_and_smaller():
    from engines.generation.models import load_model, resolve_model

    full = gen(model="digits-flow", class_label=5)
    quant = gen(model="digits-flow", class_label=5, precision="int8")
    diff = np.abs(full.astype(int) - quant)
    assert 0 < diff.mean() < 8  # quantized, yet the same picture
    assert np.array_equal(gen(model="digits-flow", class_label=5), full)  # the cached model is unchanged
    unet = load_model(resolve_model("digits-flow")).unet
    with applied_precision("int8", unet=unet) as replaced:
        assert module_bytes(replaced["unet"]) < module_bytes(unet)
    assert all(type(m) is not torch.ao.nn.quantized.dynamic.Linear for m in unet.modules())
    with pytest.raises(ValueError, match="precision"):
        gen(model="digits-flow", precision="fp4")


def test_pipeline_presets(tmp_path):
    pytest.importorskip("transformers")
    from engines.generation.models import clear_cache
    from engines.generation.tiny import build_tiny_sd_pipeline

    build_tiny_sd_pipeline(tmp_path / "tiny-sd")
    model = str(tmp_path / "tiny-sd")
    base = gen(model=model, prompt="a cat", batch=1, sampler="ddim")
    low = gen(model=model, prompt="a cat", batch=1, sampler="ddim", precision="low-memory")
    assert np.abs(low.astype(int) - base).max() <= 1
    quant = gen(model=model, prompt="a cat", batch=1, sampler="ddim", precision="int8")
    assert np.abs(quant.astype(int) - base).mean() < 8
    assert np.array_equal(gen(model=model, prompt="a cat", batch=1, sampler="ddim"), base)
    clear_cache()


def test_hires_fix_upscales_and_refines_reproducibly():
    from PIL import Image

    base = run_job(generate_job(GenerationParams(model="digits-flow", class_label=3, steps=4, seed=7, batch=2)))
    kept = run_job(generate_job(GenerationParams(model="digits-flow", class_label=3, steps=4, seed=7, batch=2,
                                                 hires_scale=2, hires_strength=0.0)))
    assert kept.images.shape == (2, 64, 64, 3) and kept.mode == "txt2img+hires"
    for small, big in zip(base.images, kept.images):  # strength 0: exactly the bicubic upscale
        assert np.array_equal(big, np.asarray(Image.fromarray(small).resize((64, 64), Image.BICUBIC)))
    refined = run_job(generate_job(GenerationParams(model="digits-flow", class_label=3, steps=4, seed=7, batch=2,
                                                    hires_scale=2, hires_strength=0.6)))
    assert np.abs(refined.images.astype(int) - kept.images).mean() > 1
    alone = run_job(generate_job(GenerationParams(model="digits-flow", class_label=3, steps=4, seed=8, batch=1,
                                                  hires_scale=2, hires_strength=0.6)))
    assert np.array_equal(alone.images[0], refined.images[1])  # each image from its own seed
    assert refined.params["hires_scale"] == 2.0 and refined.params["width"] == 32
