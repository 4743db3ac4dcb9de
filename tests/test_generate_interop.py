"""PNG metadata interop: our PNGs carry A1111's ``parameters`` text beside our JSON, and PNGs
written by A1111, InvokeAI and ComfyUI (chunks built here from those tools' documented
formats) restore the Generate panel's parameters on drop."""

import json

import numpy as np
from PIL import Image, PngImagePlugin

from engines.generation.api import GenerationParams, params_from_provenance
from engines.generation.interop import a1111_parameters, foreign_generation_params, parse_a1111
from studio.export import read_provenance, save_png
from studio.routing import RESTORE, route_path


def _png(path, **chunks):
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path, pnginfo=info)
    return path


A1111_TEXT = ("a cat, highly detailed\nwith a hat\nNegative prompt: blurry, lowres\n"
              "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.5, Seed: 1234, Size: 512x768, "
              "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.6, Version: v1.10.1")


def test_a1111_text_parses():
    p = parse_a1111(A1111_TEXT)
    assert p == {"prompt": "a cat, highly detailed\nwith a hat", "negative_prompt": "blurry, lowres",
                 "sampler": "dpmpp_2m_karras", "steps": 20, "cfg": 7.5, "seed": 1234, "width": 512, "height": 768,
                 "strength": 0.6, "model": "v1-5-pruned-emaonly"}


def test_our_parameters_round_trip_through_a1111_text():
    params = GenerationParams(model="/models/my, model", prompt="red: house, tree", negative_prompt="dog",
                              sampler="euler_a", steps=12, cfg=4.5, seed=77, width=64, height=32, strength=0.4)
    back = parse_a1111(a1111_parameters(params.to_dict()))
    for key in ("model", "prompt", "negative_prompt", "sampler", "steps", "cfg", "seed", "width", "height",
                "strength"):
        assert back[key] == getattr(params, key), key


def test_exported_png_carries_a1111_parameters_next_to_our_json(tmp_path):
    from engines.provenance import build_record

    params = GenerationParams(model="digits-flow", class_label=3, sampler="flow_euler", steps=10, cfg=3.0, seed=5,
                              width=32, height=32).to_dict()
    path = save_png(tmp_path / "x.png", np.zeros((32, 32, 3), np.uint8), build_record("generate", "generation", params))
    with Image.open(path) as image:
        text = image.info["parameters"]
    assert text.splitlines()[-1].startswith("Steps: 10, Sampler: Euler, CFG scale: 3.0, Seed: 5, Size: 32x32")
    assert read_provenance(path)["parameters"]["seed"] == 5  # our own JSON still wins


def test_a1111_png_restores_on_drop(tmp_path):
    path = _png(tmp_path / "a1111.png", parameters=A1111_TEXT)
    record = read_provenance(path)
    assert record["panel"] == "generate" and record["imported_from"] == "A1111"
    params = params_from_provenance(record)
    assert (params.seed, params.steps, params.sampler, params.width, params.height) == (1234, 20, "dpmpp_2m_karras",
                                                                                        512, 768)
    route = route_path(path, [("generate", lambda p: True), ("codec", lambda p: True)])
    assert route.action == RESTORE and route.panel == "generate"


def test_invokeai_png_restores(tmp_path):
    meta = {"generation_mode": "txt2img", "positive_prompt": "a lighthouse", "negative_prompt": "fog",
            "width": 768, "height": 512, "seed": 42, "steps": 30, "cfg_scale": 6.0, "scheduler": "dpmpp_2m_k",
            "model": {"key": "x", "hash": "blake3:..", "name": "Juggernaut XL", "base": "sdxl", "type": "main"}}
    record = read_provenance(_png(tmp_path / "invoke.png", invokeai_metadata=json.dumps(meta)))
    assert record["imported_from"] == "InvokeAI"
    assert record["parameters"] == {"prompt": "a lighthouse", "negative_prompt": "fog", "seed": 42, "steps": 30,
                                    "cfg": 6.0, "width": 768, "height": 512, "sampler": "dpmpp_2m_karras",
                                    "model": "Juggernaut XL"}


def test_comfyui_png_restores(tmp_path):
    graph = {
        "3": {"class_type": "KSampler", "inputs": {"seed": 156680208700286, "steps": 20, "cfg": 8.0,
                                                    "sampler_name": "euler_ancestral", "scheduler": "normal",
                                                    "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
                                                    "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "beautiful scenery", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
    }
    path = _png(tmp_path / "comfy.png", prompt=json.dumps(graph), workflow="{}")
    record = read_provenance(path)
    assert record["imported_from"] == "ComfyUI"
    p = params_from_provenance(record)
    assert (p.prompt, p.negative_prompt, p.seed, p.steps, p.cfg, p.sampler, p.width, p.batch, p.strength) == (
        "beautiful scenery", "text, watermark", 156680208700286, 20, 8.0, "euler_a", 512, 1, 1.0)
    assert p.model == "v1-5-pruned-emaonly.safetensors"


def test_unrelated_png_text_is_not_taken_for_parameters(tmp_path):
    assert read_provenance(_png(tmp_path / "plain.png", parameters="just a note", prompt="[1, 2")) is None
    assert foreign_generation_params({"prompt": "{\"1\": {\"class_type\": \"X\", \"inputs\": {}}}"}) is None


def test_hires_fix_round_trips_through_a1111_text():
    a1111 = parse_a1111("a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512, "
                        "Denoising strength: 0.55, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent")
    assert a1111["hires_scale"] == 2.0 and a1111["hires_strength"] == 0.55 and a1111["hires_mode"] == "latent"
    assert "strength" not in a1111  # A1111 stores the hires pass's strength there in txt2img
    for mode in ("pixel", "latent", "latent-nearest"):
        params = GenerationParams(prompt="a dog", steps=8, seed=3, width=32, height=32, hires_scale=1.5,
                                  hires_strength=0.35, hires_mode=mode)
        back = parse_a1111(a1111_parameters(params.to_dict()))
        assert (back["hires_scale"], back["hires_strength"], back["hires_mode"]) == (1.5, 0.35, mode)
    plain = parse_a1111(a1111_parameters(GenerationParams(prompt="x", steps=4, strength=0.4).to_dict()))
    assert plain["strength"] == 0.4 and "hires_scale" not in plain
