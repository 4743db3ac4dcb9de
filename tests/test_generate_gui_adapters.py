"""The Adapters and ControlNet sections of the Generate settings (pytest-qt, offscreen): LoRA rows
with trigger words read by a job, click-to-prompt, embeddings with their token, drops of adapter
files, values into GenerationParams, and the export -> drop round trip showing restored values."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from panels.generate import GeneratePanel
from tests.gui_helpers import models_listed, open_and_wait

pytest.importorskip("transformers")

UNET_Q = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"


@pytest.fixture
def files(tmp_path_factory):
    """A tiny SD model, a LoRA that fits it (with kohya trigger-word metadata) and an embedding."""
    from engines.generation.tiny import build_tiny_sd_pipeline

    root = tmp_path_factory.mktemp("adapters")
    pipe = build_tiny_sd_pipeline(root / "models" / "tiny-sd")
    q = pipe.unet.get_submodule(UNET_Q).weight
    g = torch.Generator().manual_seed(0)
    key = "lora_unet_" + UNET_Q.replace(".", "_")
    save_file({f"{key}.lora_down.weight": torch.randn(2, q.shape[1], generator=g),
               f"{key}.lora_up.weight": torch.randn(q.shape[0], 2, generator=g)}, str(root / "inky.safetensors"),
              metadata={"ss_tag_frequency": json.dumps({"5_inky": {"inkstyle": 9, "cat": 4}})})
    save_file({"<toy>": torch.randn(8, generator=g)}, str(root / "toy.safetensors"))
    return root


@pytest.fixture
def panel(make_panel, files):
    widget = make_panel(GeneratePanel)
    models_listed(widget).add_model_folder(str(files / "models"))
    models_listed(widget).model_combo.setCurrentIndex(widget.model_combo.findData(str(files / "models" / "tiny-sd")))
    assert widget.model_info().name == "tiny-sd"
    return widget


def test_lora_rows_show_trigger_words_and_a_click_puts_them_in_the_prompt(panel, files):
    row = panel.adapters.add_lora(str(files / "inky.safetensors"), 0.8)
    assert panel.services.jobs.wait_all(30)
    assert row.words == ["inkstyle", "cat"] and "inkstyle" in row.info.text()
    panel.prompt.setPlainText("a house")
    row.info.linkActivated.emit("0")
    row.info.linkActivated.emit("0")  # twice: not repeated
    assert panel.prompt.toPlainText() == "a house, inkstyle"
    emb = panel.adapters.add_embedding(str(files / "toy.safetensors"))
    assert panel.services.jobs.wait_all(30)
    assert emb.words == ["<toy>"]
    p = panel.generation_params()
    assert (p.loras, p.embeddings, p.lora_mode) == (f"{files / 'inky.safetensors'}=0.8", str(files / "toy.safetensors"),
                                                    "fused")
    row.enable.setChecked(False)  # switched off: not in the run, but kept in the settings
    assert panel.generation_params().loras == ""
    assert panel.current_parameters()["loras_off"] == f"{files / 'inky.safetensors'}=0.8"
    row.remove.click()
    assert panel.adapters.lora_rows == [] and panel.current_parameters()["loras_off"] == ""


def test_dropped_safetensors_go_to_the_right_list(panel, files, tmp_path):
    open_and_wait(panel, files / "inky.safetensors")
    open_and_wait(panel, files / "toy.safetensors")
    assert [r.path for r in panel.adapters.lora_rows] == [str(files / "inky.safetensors")]
    assert [r.path for r in panel.adapters.embedding_rows] == [str(files / "toy.safetensors")]
    assert panel.adapters_box.isExpanded() and panel.adapters.lora_rows[0].words == ["inkstyle", "cat"]
    missing = panel.adapters.add_lora(str(tmp_path / "gone.safetensors"))
    assert panel.services.jobs.wait_all(30)
    assert "not found" in missing.info.text() or "cannot read" in missing.info.text()


def test_picked_pt_embeddings_are_checked_like_dropped_ones(panel, tmp_path, monkeypatch):
    """"Add…" under Embeddings: each picked .pt is read (weights only) by the info job; a damaged one
    or one that holds no embedding says so in its row, a real one shows its token."""
    from panels.generate import adapters

    good, damaged, other = tmp_path / "old.pt", tmp_path / "broken.pt", tmp_path / "other.pt"
    torch.save({"string_to_param": {"*": torch.zeros(1, 8)}, "name": "old"}, str(good))
    damaged.write_bytes(good.read_bytes()[:300])
    torch.save({"a": 1, "b": [2]}, str(other))
    picked = [str(good), str(damaged), str(other)]
    monkeypatch.setattr(adapters.QFileDialog, "getOpenFileNames", lambda *args, **kwargs: (picked, ""))
    assert panel.adapters.add_embedding_button.isEnabled()
    panel.adapters.add_embedding_button.click()
    assert panel.services.jobs.wait_all(30)
    rows = {Path(r.path).name: r for r in panel.adapters.embedding_rows}
    assert rows["old.pt"].words == ["old"]
    assert "broken.pt is not a readable embedding" in rows["broken.pt"].info.text() and not rows["broken.pt"].words
    assert "other.pt is not a textual-inversion embedding" in rows["other.pt"].info.text()
    assert rows["old.pt"].enable.isChecked()
    assert not rows["broken.pt"].enable.isChecked() and not rows["broken.pt"].enable.isEnabled()
    assert panel.adapters.values()["embeddings"] == str(good)  # the bad ones are not passed to a run


def test_adapter_values_are_exported_and_restored_on_drop(panel, make_panel, files, tmp_path):
    panel.adapters.add_lora(str(files / "inky.safetensors"), 0.7)
    panel.adapters.lora_mode.setCurrentIndex(panel.adapters.lora_mode.findData("unfused"))
    panel.adapters.hires_strength.setValue(0.35)
    panel.control.set_values({"control_preprocessor": "canny", "control_scale": 0.6, "control_end": 0.8})
    panel.prompt.setPlainText("a red cat")
    panel.steps_spin.setValue(2)
    panel.seed_lock.setChecked(True)
    panel.seed_spin.setValue(11)
    panel.generate()
    assert panel.services.jobs.wait_all(120)
    [entry] = panel.history
    assert entry["params"]["lora_mode"] == "unfused" and entry["params"]["loras"].endswith("inky.safetensors=0.7")
    path = tmp_path / "with-lora.png"
    panel.export(str(path))
    fresh = make_panel(GeneratePanel)
    open_and_wait(fresh, path)
    assert fresh.services.jobs.wait_all(30)
    [row] = fresh.adapters.lora_rows  # the widgets show what the image was made with
    assert row.path == str(files / "inky.safetensors") and row.weight.value() == 0.7 and row.enable.isChecked()
    assert row.words == ["inkstyle", "cat"] and fresh.adapters_box.isExpanded()
    assert fresh.adapters.lora_mode.currentData() == "unfused"
    assert fresh.adapters.hires_strength.value() == 0.35
    fresh.generate()
    assert fresh.services.jobs.wait_all(120)
    assert np.array_equal(fresh.history[-1]["image"], entry["image"])


def test_restored_precision_vae_and_hires_show_in_the_widgets(panel):
    params = panel.current_parameters()
    params.update(vae="/x/vae", precision="int8", hires_scale=2.0, hires_strength=0.4, lora_mode="unfused",
                  embeddings="/x/e.pt")
    panel.restore_parameters(params)
    a = panel.adapters
    assert (a.vae.path(), a.precision.currentData(), a.hires_scale.value(), a.hires_strength.value()) == (
        "/x/vae", "int8", 2.0, 0.4)
    assert [r.path for r in a.embedding_rows] == ["/x/e.pt"]
    panel.adapters_box.expand(animate=False)  # opening the section reads the presets from the engine
    assert panel.services.jobs.wait_all(30)
    assert {"default", "int8"} <= {a.precision.itemData(i) for i in range(a.precision.count())}
    assert a.precision.currentData() == "int8"
    a.precision.setCurrentIndex(a.precision.findData("default"))
    assert panel.generation_params().precision == ""


def test_control_section_values_thumbnail_and_preview(panel, tmp_path):
    image = np.zeros((40, 40, 3), np.uint8)
    image[10:30, 10:30] = 255
    Image.fromarray(image).save(tmp_path / "square.png")
    control = panel.control
    control.model.set_path(str(tmp_path / "cn"))
    control.set_image_path(str(tmp_path / "square.png"))
    control.preprocessor.setCurrentIndex(control.preprocessor.findData("canny"))
    control.scale.setValue(0.5)
    assert panel.services.jobs.wait_all(30)
    assert control.thumb.image is not None and control.thumb.image.shape == (40, 40, 3)
    assert control.values() == {"controlnet": str(tmp_path / "cn"), "control_image": str(tmp_path / "square.png"),
                                "control_preprocessor": "canny", "control_scale": 0.5, "control_start": 0.0,
                                "control_end": 1.0}
    params = panel.generation_params().to_dict()
    for key, value in control.values().items():
        if key in params:  # the engine fields exist once ControlNet is in GenerationParams
            assert params[key] == value
    pytest.importorskip("engines.generation.control_preprocess")
    from engines.generation.control_preprocess import prepare_control_image

    control.update_preview()
    assert panel.services.jobs.wait_all(30)
    expected = prepare_control_image(image, "canny", (32, 32))
    assert np.array_equal(control.preview.image, expected)


def test_controlnet_from_the_panel_matches_the_engine_and_is_restored_on_drop(panel, make_panel, files, tmp_path):
    from diffusers import ControlNetModel, DiffusionPipeline

    from engines.generation.api import GenerationParams, generate_job
    from engines.jobs import run_job

    unet = DiffusionPipeline.from_pretrained(str(files / "models" / "tiny-sd")).unet
    torch.manual_seed(1)
    cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(4, 8))
    with torch.no_grad():  # zero convolutions get weights, so the residuals matter
        for module in [*cn.controlnet_down_blocks, cn.controlnet_mid_block, cn.controlnet_cond_embedding.conv_out]:
            module.weight.normal_(0, 0.3)
            module.bias.normal_(0, 0.1)
    cn.save_pretrained(tmp_path / "cn", safe_serialization=True)
    control = np.zeros((32, 32, 3), np.uint8)
    control[8:24, 8:24] = 255
    Image.fromarray(control).save(tmp_path / "control.png")
    panel.control.model.set_path(str(tmp_path / "cn"))
    panel.control.set_image_path(str(tmp_path / "control.png"))
    panel.control.preprocessor.setCurrentIndex(panel.control.preprocessor.findData("scribble"))
    panel.control.scale.setValue(0.8)
    panel.control.end.setValue(0.75)
    panel.prompt.setPlainText("a red cat")
    panel.sampler_combo.setCurrentIndex(panel.sampler_combo.findData("ddim"))
    panel.steps_spin.setValue(4)
    panel.seed_lock.setChecked(True)
    panel.seed_spin.setValue(5)
    panel.generate()
    assert panel.services.jobs.wait_all(120)
    [entry] = panel.history
    base = {"model": str(files / "models" / "tiny-sd"), "prompt": "a red cat", "sampler": "ddim", "steps": 4,
            "seed": 5, "cfg": panel.cfg_spin.value()}
    engine = run_job(generate_job(GenerationParams(**base, controlnet=str(tmp_path / "cn"),
                                                   control_image=str(tmp_path / "control.png"),
                                                   control_preprocessor="scribble", control_scale=0.8,
                                                   control_end=0.75)))
    plain = run_job(generate_job(GenerationParams(**base)))
    assert np.array_equal(entry["image"], engine.images[0])
    assert np.abs(entry["image"].astype(int) - plain.images[0]).max() > 0  # the ControlNet steered the result
    panel.export(str(tmp_path / "controlled.png"))
    fresh = make_panel(GeneratePanel)
    open_and_wait(fresh, tmp_path / "controlled.png")
    assert fresh.services.jobs.wait_all(30)
    c = fresh.control
    assert (c.model.path(), c.image_path, c.preprocessor.currentData(), c.scale.value(), c.end.value()) == (
        str(tmp_path / "cn"), str(tmp_path / "control.png"), "scribble", 0.8, 0.75)
    assert fresh.control_box.isExpanded() and c.thumb.image is not None
    fresh.generate()
    assert fresh.services.jobs.wait_all(120)
    assert np.array_equal(fresh.history[-1]["image"], entry["image"])


def test_hires_mode_and_tiles_go_into_the_parameters(panel):
    a = panel.adapters
    a.set_values({"hires_mode": "latent", "tile_size": 64, "tile_overlap": 8})
    p = panel.generation_params()
    assert (p.hires_mode, p.tile_size, p.tile_overlap) == ("latent", 64, 8)
    assert a.tile_size.text() == "64 px"
    a.tile_size.setValue(0)
    assert a.tile_size.text() == "off" and panel.generation_params().tile_size == 0


def test_drawn_input_or_its_mask_becomes_the_control_image(panel):
    control = panel.control
    control.use_input()  # nothing drawn yet: a hint, no job
    assert "Draw an input image first" in control.note.text() and control.image_path == ""
    panel.new_blank_canvas()
    canvas = panel.init_slot.canvas
    canvas.brush = 3
    canvas.paint_at(10, 12, 1.0, "sketch")
    drawn = panel.init_slot.image().copy()
    control.use_input()
    assert panel.services.jobs.wait_all(30)
    assert panel.init_slot.image() is None  # the next run is not img2img
    assert control.preprocessor.currentData() == "scribble" and control.image_path
    assert np.array_equal(np.asarray(Image.open(control.image_path).convert("RGB")), drawn)
    assert np.array_equal(control.thumb.image, drawn)
    panel.init_slot.set_image(np.full((32, 32, 3), 90, np.uint8))  # a photo with a painted mask: the mask is the scribble
    canvas.brush = 4
    canvas.paint_at(20, 8)
    mask = canvas.mask().copy()
    control.use_input()
    assert panel.services.jobs.wait_all(30)
    stored = np.asarray(Image.open(control.image_path))
    assert stored.shape == (32, 32) and np.array_equal(stored > 0, mask > 0.5)


def test_dropped_model_folder_is_inspected_by_a_job(make_panel, files):
    fresh = make_panel(GeneratePanel)
    handle = fresh.open_file(str(files / "models" / "tiny-sd"))
    assert handle is not None  # read on a worker, not on the GUI thread
    assert fresh.services.jobs.wait_all(30)
    assert fresh.model_info().name == "tiny-sd" and str(files / "models" / "tiny-sd") in fresh.extra_models
