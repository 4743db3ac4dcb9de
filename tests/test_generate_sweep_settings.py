"""A ``generate image`` sweep (--seeds / --executor) honours every setting of the single run:
LoRA, precision, ... give exactly the single runs' images and are recorded in the provenance."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

pytest.importorskip("transformers")

from engines.generation.models import clear_cache
from studio.cli import main

UNET_Q = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from engines.generation.tiny import build_tiny_sd_pipeline

    root = tmp_path_factory.mktemp("sweep")
    pipe = build_tiny_sd_pipeline(root / "tiny-sd")
    g = torch.Generator().manual_seed(0)
    q = pipe.unet.get_submodule(UNET_Q).weight
    key = f"lora_unet_{UNET_Q.replace('.', '_')}"
    save_file({f"{key}.lora_down.weight": torch.randn(2, q.shape[1], generator=g),
               f"{key}.lora_up.weight": torch.randn(q.shape[0], 2, generator=g), f"{key}.alpha": torch.tensor(1.0)},
              str(root / "style.safetensors"))
    yield root
    clear_cache()


def _images(folder, names):
    return [np.asarray(Image.open(folder / n)) for n in names]


def _single(tiny, out, seed, extra):
    assert main(["generate", "image", "--model", str(tiny / "tiny-sd"), "--prompt", "a cat", "--steps", "2",
                 "--seed", str(seed), "--out", str(out), "--json", *extra]) == 0
    return np.asarray(Image.open(out / f"gen-{seed}.png"))


def _sweep(tiny, out, extra, capsys):
    code = main(["generate", "image", "--model", str(tiny / "tiny-sd"), "--prompt", "a cat", "--steps", "2",
                 "--seeds", "1-2", "--executor", "serial", "--out", str(out), "--json", *extra])
    assert code == 0, capsys.readouterr().err
    names = ["gen-default-2steps-s1.png", "gen-default-2steps-s2.png"]
    return _images(out, names), [json.loads(Image.open(out / n).text["spectra-studio"]) for n in names]


def test_sweep_with_lora_equals_single_runs_with_it(tiny, tmp_path, capsys):
    lora = f"{tiny / 'style.safetensors'}=0.8"
    swept, records = _sweep(tiny, tmp_path / "lora", ["--lora", lora, "--lora-mode", "unfused"], capsys)
    singles = [_single(tiny, tmp_path / "one", seed, ["--lora", lora, "--lora-mode", "unfused"]) for seed in (1, 2)]
    assert all(np.array_equal(a, b) for a, b in zip(swept, singles))
    plain, _ = _sweep(tiny, tmp_path / "plain", [], capsys)
    assert all(np.abs(a.astype(int) - b).max() > 0 for a, b in zip(swept, plain))  # the LoRA reached the sweep
    params = records[0]["parameters"]
    assert params["loras"] == lora and params["lora_mode"] == "unfused" and params["seed"] == 1
    assert len(records[0]["inputs"]["lora0"]) == 64 and "created" not in records[0]
    manifest = json.loads((tmp_path / "lora" / "batch.json").read_text())
    assert any(t["params"]["generation"]["loras"] == lora for t in manifest["tasks"].values())


def test_sweep_with_int8_precision_and_hires_equals_single_runs(tiny, tmp_path, capsys):
    extra = ["--precision", "int8", "--hires-scale", "1.5", "--hires-strength", "0.5"]
    swept, records = _sweep(tiny, tmp_path / "int8", extra, capsys)
    singles = [_single(tiny, tmp_path / "one", seed, extra) for seed in (1, 2)]
    assert all(np.array_equal(a, b) for a, b in zip(swept, singles))
    height, width = records[0]["parameters"]["height"], records[0]["parameters"]["width"]
    assert swept[0].shape[:2] == (round(height * 1.5), round(width * 1.5))  # the hires pass ran in the sweep
    assert records[1]["parameters"]["precision"] == "int8" and records[1]["parameters"]["hires_scale"] == 1.5


def test_sweep_refuses_a_missing_lora_in_one_line(tiny, tmp_path, capsys):
    code = main(["generate", "image", "--model", str(tiny / "tiny-sd"), "--steps", "2", "--seeds", "1-2",
                 "--lora", str(tmp_path / "nope.safetensors"), "--out", str(tmp_path / "x")])
    assert code == 2 and "LoRA file not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_sweep_with_controlnet_equals_single_runs(tiny, tmp_path, capsys):
    from diffusers import ControlNetModel

    from engines.generation.models import load_model, resolve_model

    unet = load_model(resolve_model(str(tiny / "tiny-sd"))).pipe.unet
    torch.manual_seed(1)
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8))
    zero_convs = ("controlnet_down_blocks.", "controlnet_mid_block.", "controlnet_cond_embedding.conv_out.")
    with torch.no_grad():  # non-zero "zero convolutions", so the residuals change the image
        for name, tensor in cn.named_parameters():
            if name.startswith(zero_convs):
                tensor.normal_(0, 0.3 if name.endswith("weight") else 0.1)
    cn.save_pretrained(tmp_path / "cn-folder", safe_serialization=True)
    Image.fromarray(np.pad(np.full((16, 16, 3), 255, np.uint8), ((8, 8), (8, 8), (0, 0)))).save(tmp_path / "control.png")
    extra = ["--controlnet", str(tmp_path / "cn-folder"), "--control-image", str(tmp_path / "control.png"),
             "--control-preprocessor", "canny", "--control-scale", "0.8", "--width", "32", "--height", "32"]
    swept, records = _sweep(tiny, tmp_path / "cn", extra, capsys)
    singles = [_single(tiny, tmp_path / "one", seed, extra) for seed in (1, 2)]
    assert all(np.array_equal(a, b) for a, b in zip(swept, singles))
    plain, _ = _sweep(tiny, tmp_path / "plain", ["--width", "32", "--height", "32"], capsys)
    assert all(np.abs(a.astype(int) - b).max() > 0 for a, b in zip(swept, plain))
    params, cn_record = records[0]["parameters"], records[0]["generation"]["controlnet"]
    assert params["controlnet"] == str(tmp_path / "cn-folder") and params["control_image"] == str(tmp_path / "control.png")
    assert cn_record["path"] == params["controlnet"] and cn_record["preprocessor"] == "canny"
    assert {"model", "controlnet", "control"} <= set(records[0]["inputs"])
