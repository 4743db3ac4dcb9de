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
    for preset in ("fp8", "int4"):  # weight-only: denoiser and text encoder
        out = gen(model=model, prompt="a cat", batch=1, sampler="ddim", precision=preset)
        assert 0 < np.abs(out.astype(int) - base).mean() < 8
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


def _reference_int4(w: torch.Tensor, group: int) -> torch.Tensor:
    """Independent symmetric per-group int4 round trip in numpy (no packing)."""
    a = w.detach().double().numpy().reshape(w.shape[0], -1)
    cols = a.shape[1]
    pad = (-cols) % group
    g = np.pad(a, ((0, 0), (0, pad))).reshape(a.shape[0], -1, group)
    scale = (np.abs(g).max(axis=2, keepdims=True) / 7.0).astype(np.float16).astype(np.float64)
    q = np.clip(np.round(g / scale), -8, 7)
    return torch.from_numpy((q * scale).reshape(a.shape[0], -1)[:, :cols].reshape(w.shape))


def test_weight_only_fp8_and_int4_layers():
    from engines.generation.weight_quant import INT4_GROUP, WeightOnlyConv2d, WeightOnlyLinear, quantized_copy

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.SiLU(), torch.nn.Flatten(),
                                torch.nn.Linear(32 * 8 * 8, 96), torch.nn.LayerNorm(96), torch.nn.Linear(96, 40))
    x = torch.randn(6, 3, 8, 8)
    with torch.no_grad():
        ref = model(x)
        errors, ratios = {}, {}
        for kind in ("fp8", "int4"):
            q = quantized_copy(model, kind)
            assert isinstance(q[0], WeightOnlyConv2d) and isinstance(q[3], WeightOnlyLinear)
            assert q[4].weight is model[4].weight and q[0].bias is model[0].bias  # shared, not copied
            errors[kind] = float((q(x) - ref).norm() / ref.norm())
            layers = [0, 3, 5]
            ratios[kind] = sum(model[i].weight.numel() * 4 for i in layers) / sum(
                q[i].qweight.numel() * q[i].qweight.element_size() + q[i].wscale.numel() * q[i].wscale.element_size()
                for i in layers)
        # stored int4 weights dequantize to the independent numpy reference exactly
        q4 = quantized_copy(model, "int4")
        for i in (0, 3, 5):
            assert torch.allclose(q4[i].dequantized_weight().double(), _reference_int4(model[i].weight, INT4_GROUP),
                                  rtol=0, atol=1e-6)
        # fp8: each weight within e4m3's relative step (2^-3 mantissa) of its channel's scale
        q8 = quantized_copy(model, "fp8")
        w = model[3].weight
        scale = w.abs().amax(dim=1, keepdim=True) / 448
        assert ((q8[3].dequantized_weight() - w).abs() <= torch.maximum(w.abs() / 16, scale * 2 ** -9) + 1e-9).all()
    assert 0.002 < errors["fp8"] < 0.06 and errors["fp8"] < errors["int4"] < 0.2, errors
    assert 3.9 < ratios["fp8"] <= 4.0 and 6.9 < ratios["int4"] <= 8.0, ratios
    assert type(model[3]) is torch.nn.Linear  # the original model is untouched
    assert torch.equal(model(x), ref)
    # a forward hook on an original layer (unfused LoRA) also runs on its quantized copy
    handle = model[5].register_forward_hook(lambda _m, _i, out: out + 100.0)
    with torch.no_grad():
        hooked = quantized_copy(model, "fp8")
        assert float((hooked(x) - ref).mean()) == pytest.approx(100.0, abs=0.5)
    handle.remove()
    with torch.no_grad():
        assert float((hooked(x) - ref).abs().mean()) > 50  # the copy keeps its own hooks
        assert torch.equal(model(x), ref)


def test_fp8_and_int4_presets_on_the_digits_model():
    from engines.generation.models import load_model, resolve_model

    full = gen(model="digits-flow", class_label=5)
    diffs = {}
    for preset in ("fp8", "int4"):
        out = gen(model="digits-flow", class_label=5, precision=preset)
        diffs[preset] = np.abs(full.astype(int) - out).mean()
    assert 0 < diffs["fp8"] < diffs["int4"] < 12, diffs
    assert np.array_equal(gen(model="digits-flow", class_label=5), full)  # the cached model is unchanged
    unet = load_model(resolve_model("digits-flow")).unet
    with applied_precision("int4", unet=unet) as replaced:
        assert module_bytes(replaced["unet"]) < module_bytes(unet) / 3  # norms, biases, embeddings stay fp32
    with applied_precision("fp8", unet=unet) as replaced:
        assert module_bytes(replaced["unet"]) < module_bytes(unet) / 2.5


def test_cpu_offload_is_refused_with_the_reason_on_a_cpu_only_machine(capsys, tmp_path):
    from engines.generation.precision import PRESETS, preset_unavailable
    from studio.cli import main

    assert {"fp8", "int4", "cpu-offload"} <= set(PRESETS)
    assert preset_unavailable("fp8") == "" and preset_unavailable("int4", "cuda") == ""
    assert "CPU only" in preset_unavailable("int8", "cuda")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    reason = preset_unavailable("cpu-offload")
    assert "CUDA GPU" in reason
    with pytest.raises(ValueError, match="CUDA GPU"):
        gen(model="digits-flow", precision="cpu-offload")
    code = main(["generate", "image", "--precision", "cpu-offload", "--steps", "2", "--seed", "1",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: cpu-offload needs a CUDA GPU")
    assert not (tmp_path / "out").exists()
