"""Tiled denoising (MultiDiffusion blend) and latent hires fix: the blend weights sum to one,
one tile is exactly untiled, a translation-equivariant denoiser shows no seams, and the latent
hires pass never goes through the VAE between the passes."""

import numpy as np
import pytest
import torch

from engines.generation.api import GenerationParams, generate_job
from engines.generation.tiling import TiledDenoiser, tile_starts, tile_weights
from engines.jobs import run_job


def gen(**kw):
    return run_job(generate_job(GenerationParams(**{"model": "digits-flow", "steps": 4, "seed": 7, **kw})))


@pytest.mark.parametrize("h,w,tile,overlap", [(64, 64, 32, 16), (40, 72, 24, 8), (33, 50, 16, 5), (16, 16, 32, 8)])
def test_blend_weights_cover_and_sum_to_one(h, w, tile, overlap):
    tiles = tile_weights(h, w, tile, overlap)
    total = torch.zeros(h, w, dtype=torch.float64)
    for rows, cols, weight in tiles:
        assert weight.shape == (min(tile, h), min(tile, w)) and float(weight.min()) > 0
        total[rows, cols] += weight.double()
    assert torch.allclose(total, torch.ones(h, w, dtype=torch.float64), atol=1e-6)
    ys = tile_starts(h, tile, overlap)
    assert ys[0] == 0 and ys[-1] + min(tile, h) == h
    assert all(b - a <= min(tile, h) - overlap for a, b in zip(ys, ys[1:]))  # neighbours share >= overlap


class ConvDenoiser(torch.nn.Module):
    """Translation-equivariant mock denoiser (two 3x3 convolutions), diffusers-style output."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.Tanh(),
                                       torch.nn.Conv2d(8, 4, 3, padding=1))
        self.config = {"in_channels": 4}

    def forward(self, sample, timestep, return_dict=True):
        out = self.net(sample) * (1 + float(timestep) / 1000)
        return type("Out", (), {"sample": out})() if return_dict else (out,)


def test_tiled_conv_denoiser_has_no_seams():
    model = ConvDenoiser()
    x = torch.randn(2, 4, 64, 80)
    with torch.no_grad():
        ref = model(x, 500).sample
        one = TiledDenoiser(model, 128, 16)
        assert torch.equal(one(x, 500).sample, ref) and one.tiles_run == 1  # one tile: exactly untiled
        feathered = TiledDenoiser(model, 32, 16)
        out = feathered(x, 500, return_dict=False)[0]
        hard = TiledDenoiser(model, 32, 0)(x, 500).sample  # butt-joined tiles: seams
    assert feathered.tiles_run == 3 * 4 and feathered.config == {"in_channels": 4}
    err, seam = (out - ref).abs(), (hard - ref).abs()
    scale = ref.abs().mean()
    # the outer quarter of each overlap (where the tile saw zero padding) carries almost no weight
    assert err.mean() < 1e-3 * scale and err.max() < 0.02 * scale
    assert seam.max() > 100 * err.max()


def test_one_tile_covering_the_image_equals_untiled_and_tiles_run():
    base = gen(class_label=2, batch=1).images
    assert np.array_equal(gen(class_label=2, batch=1, tile_size=32, tile_overlap=8).images, base)
    big = gen(class_label=2, batch=1, width=48, height=48, tile_size=32, tile_overlap=16)
    assert big.images.shape == (1, 48, 48, 3) and big.params["tile_size"] == 32
    with pytest.raises(ValueError, match="tile size"):
        gen(tile_size=20)
    with pytest.raises(ValueError, match="tile size"):
        gen(tile_size=16, tile_overlap=16)


def test_latent_hires_on_the_pixel_model():
    base = gen(class_label=3, batch=2)
    kept = gen(class_label=3, batch=2, hires_scale=2, hires_strength=0.0, hires_mode="latent-nearest")
    # strength 0: the float result upscaled by nearest-exact, quantized once (not via uint8 first)
    assert np.array_equal(kept.images, base.images.repeat(2, axis=1).repeat(2, axis=2))
    refined = gen(class_label=3, batch=2, hires_scale=2, hires_strength=0.6, hires_mode="latent")
    assert refined.images.shape == (2, 64, 64, 3) and refined.mode == "txt2img+hires"
    pixel = gen(class_label=3, batch=2, hires_scale=2, hires_strength=0.6)
    assert np.abs(refined.images.astype(int) - pixel.images).mean() > 0.1  # a different upscaler
    alone = gen(class_label=3, seed=8, batch=1, hires_scale=2, hires_strength=0.6, hires_mode="latent")
    assert np.array_equal(alone.images[0], refined.images[1])  # image 1 is its own seed's image
    with pytest.raises(ValueError, match="hires mode"):
        gen(hires_scale=2, hires_mode="esrgan")


def test_latent_hires_pipeline_never_decodes_between_passes(tmp_path):
    pytest.importorskip("transformers")
    from engines.generation.models import clear_cache, load_model, resolve_model
    from engines.generation.tiny import build_tiny_sd_pipeline

    build_tiny_sd_pipeline(tmp_path / "tiny-sd")
    model = str(tmp_path / "tiny-sd")
    pipe = load_model(resolve_model(model)).pipe
    calls = {"encoder": 0, "decoder": 0}
    hooks = [getattr(pipe.vae, name).register_forward_hook(
        lambda *_a, name=name: calls.__setitem__(name, calls[name] + 1)) for name in calls]
    kw = dict(model=model, prompt="a cat", sampler="ddim", steps=4, seed=5, batch=2, hires_scale=2, hires_strength=0.5)
    try:
        pixel = run_job(generate_job(GenerationParams(**kw)))
        assert calls == {"encoder": 2, "decoder": 4}  # pixel mode: decode, encode, decode per image
        calls.update(encoder=0, decoder=0)
        latent = run_job(generate_job(GenerationParams(**kw, hires_mode="latent")))
        assert calls == {"encoder": 0, "decoder": 2}  # latent mode: one decode per image, at the end
        assert latent.images.shape == pixel.images.shape == (2, 64, 64, 3)
        again = run_job(generate_job(GenerationParams(**dict(kw, seed=6, batch=1), hires_mode="latent")))
        assert np.array_equal(again.images[0], latent.images[1])
        # tiles on the hires pass: a tile as large as the latent changes nothing, the wrapper is removed after
        tiled = run_job(generate_job(GenerationParams(**kw, hires_mode="latent", tile_size=32, tile_overlap=8)))
        assert np.array_equal(tiled.images, latent.images)
        calls.update(encoder=0, decoder=0)
        small = run_job(generate_job(GenerationParams(**kw, hires_mode="latent", tile_size=16, tile_overlap=8)))
        assert calls["encoder"] == 0 and calls["decoder"] > 2 * 2  # the 32x32 hires latents decode in tiles
        assert small.images.shape == latent.images.shape and not isinstance(pipe.unet, TiledDenoiser)
        assert 0 < np.abs(small.images.astype(int) - latent.images).mean() < 40
    finally:
        for hook in hooks:
            hook.remove()
        clear_cache()
