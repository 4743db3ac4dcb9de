"""The VAE chooser: a VAE folder, a diffusers-named and an LDM-named single file all decode
exactly as a model saved with that VAE does; the model's own VAE is back after the run."""

import shutil

import numpy as np
import pytest
from safetensors.torch import save_file

pytest.importorskip("transformers")

from engines.generation.api import GenerationParams, generate_job
from engines.generation.ldm_layout import vae_to_ldm
from engines.generation.model_checks import ModelError
from engines.generation.models import clear_cache
from engines.jobs import run_job


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from engines.generation.tiny import build_tiny_sd_pipeline

    root = tmp_path_factory.mktemp("vae")
    build_tiny_sd_pipeline(root / "base", seed=0)
    other = build_tiny_sd_pipeline(root / "other", seed=7)  # same architecture, other weights
    swapped = root / "swapped"
    shutil.copytree(root / "base", swapped)
    shutil.rmtree(swapped / "vae")
    shutil.copytree(root / "other" / "vae", swapped / "vae")
    state = {k: v.contiguous() for k, v in other.vae.state_dict().items()}
    save_file(state, str(root / "vae-diffusers.safetensors"))
    ldm = {k.removeprefix("first_stage_model."): v.contiguous() for k, v in vae_to_ldm(state, other.vae.config).items()}
    assert any(k.startswith("encoder.down.") for k in ldm)
    save_file(ldm, str(root / "vae-ldm.safetensors"))  # as standalone VAE files (vae-ft-mse...) are named
    yield root
    clear_cache()


def gen(model, vae=""):
    return run_job(generate_job(GenerationParams(model=str(model), prompt="a blue house", steps=2, seed=8,
                                                 sampler="ddim", vae=vae)))


def test_vae_folder_and_files_match_a_model_saved_with_that_vae(models):
    plain = gen(models / "base").images
    want = gen(models / "swapped").images
    assert np.abs(want.astype(int) - plain).max() > 0
    for vae in (models / "other" / "vae", models / "other", models / "vae-diffusers.safetensors",
                models / "vae-ldm.safetensors"):
        result = gen(models / "base", str(vae))
        assert np.array_equal(result.images, want), vae
        assert result.params["vae"] == str(vae)
    assert np.array_equal(gen(models / "base").images, plain)  # the model's own VAE is back


def test_vae_that_does_not_fit_fails_clearly(models, tmp_path):
    bad = tmp_path / "bad.safetensors"
    import torch

    save_file({"decoder.conv_in.weight": torch.zeros(3, 3)}, str(bad))
    with pytest.raises(ModelError, match="VAE bad.safetensors"):
        gen(models / "base", str(bad))
    with pytest.raises(ModelError, match="VAE not found"):
        gen(models / "base", str(tmp_path / "none.safetensors"))
