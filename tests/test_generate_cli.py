"""The generate CLI verbs, in process: image, edit, models, train-digits, and their errors."""

import json

import numpy as np
from PIL import Image

from studio.cli import main
from studio.export import read_provenance


def cli(capsys, *args):
    code = main(["generate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_image_writes_pngs_with_provenance(tmp_path, capsys):
    code, out, err = cli(capsys, "image", "--class", "5", "--steps", "3", "--seed", "40", "--batch", "2",
                         "--sampler", "unipc", "--out", str(tmp_path), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["seeds"] == [40, 41] and result["sampler"] == "unipc" and len(result["files"]) == 2
    record = read_provenance(tmp_path / "gen-41.png")
    assert record["parameters"]["seed"] == 41 and record["parameters"]["class_label"] == 5
    assert record["parameters"]["steps"] == 3 and record["engine"] == "generation"
    pixels = np.asarray(Image.open(tmp_path / "gen-41.png"))
    assert pixels.shape == (32, 32, 3)
    # same command again: refuses to overwrite, then --force works and reproduces the pixels
    code, _, err = cli(capsys, "image", "--class", "5", "--steps", "3", "--seed", "40", "--batch", "2",
                       "--sampler", "unipc", "--out", str(tmp_path))
    assert code == 2 and "exists" in err
    code, _, _ = cli(capsys, "image", "--class", "5", "--steps", "3", "--seed", "41", "--sampler", "unipc",
                     "--out", str(tmp_path), "--force")
    assert code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "gen-41.png")), pixels)


def test_edit_img2img_inpaint_and_ilvr(tmp_path, capsys):
    from engines.generation.digits_data import digits_32

    images, _ = digits_32()
    Image.fromarray((images[7] * 255).astype(np.uint8)).save(tmp_path / "init.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[:, :16] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    code, out, err = cli(capsys, "edit", "--init", str(tmp_path / "init.png"), "--mask", str(tmp_path / "mask.png"),
                         "--strength", "0.8", "--class", "1", "--steps", "4", "--seed", "3", "--out", str(tmp_path),
                         "--name", "inpaint", "--json")
    assert code == 0, err
    assert json.loads(out)["mode"] == "inpaint"
    record = read_provenance(tmp_path / "inpaint-3.png")
    assert set(record["inputs"]) == {str(tmp_path / "init.png"), str(tmp_path / "mask.png")}
    assert record["generation"]["input_roles"]["mask"] == str(tmp_path / "mask.png")
    result = np.asarray(Image.open(tmp_path / "inpaint-3.png"))[:, :, 0].astype(int)
    kept = np.asarray(Image.open(tmp_path / "init.png")).astype(int)
    assert np.abs(result[:, 16:] - kept[:, 16:]).max() <= 1
    code, out, err = cli(capsys, "edit", "--reference", str(tmp_path / "init.png"), "--ilvr-n", "4", "--steps", "4",
                         "--seed", "3", "--out", str(tmp_path), "--name", "ilvr", "--json")
    assert code == 0, err
    assert json.loads(out)["mode"] == "txt2img+ilvr"


def test_bad_input_gives_one_line_errors(tmp_path, capsys):
    (tmp_path / "broken.png").write_bytes(b"nope")
    cases = [
        ("edit", "--init", str(tmp_path / "missing.png"), "--out", str(tmp_path)),
        ("edit", "--init", str(tmp_path / "broken.png"), "--out", str(tmp_path)),
        ("edit", "--out", str(tmp_path)),
        ("edit", "--reference", str(tmp_path / "broken.png"), "--out", str(tmp_path)),
        ("image", "--model", "no-such-model", "--out", str(tmp_path)),
        ("image", "--class", "3", "--out", str(tmp_path / "broken.png")),  # a file, not a folder
        ("image", "--class", "3", "--sampler", "lcm", "--steps", "2", "--out", str(tmp_path)),
        ("image", "--class", "42", "--steps", "2", "--out", str(tmp_path)),
    ]
    for args in cases:
        code, _out, err = cli(capsys, *args)
        assert code != 0, args
        assert "Traceback" not in err and err.strip().count("\n") == 0, (args, err)
    assert not list(tmp_path.glob("*.partial*")) and not list(tmp_path.glob("gen-*.png"))


def test_models_lists_shipped_and_folders(tmp_path, capsys):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model_index.json").write_text("{")
    code, out, _ = cli(capsys, "models", "--model-dir", str(tmp_path), "--json")
    assert code == 0
    data = json.loads(out)
    digits = next(m for m in data["models"] if m["name"] == "digits-flow")
    assert digits["kind"] == "own" and "flow_euler" in digits["samplers"] and digits["conditioning"] == "class"
    assert any("unreadable" in p for p in data["problems"])
    presets = data["precision_presets"]
    assert presets["default"] == presets["fp8"] == presets["int4"] == "available"
    assert presets["cpu-offload"] == "available" or "CUDA" in presets["cpu-offload"]


def test_train_digits_verb_builds_a_loadable_model(tmp_path, capsys):
    out_dir = tmp_path / "mini-digits"
    code, out, err = cli(capsys, "train-digits", "--out", str(out_dir), "--steps", "2", "--batch-size", "8",
                         "--threads", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["steps"] == 2
    code, _, err = cli(capsys, "train-digits", "--out", str(out_dir), "--steps", "2")
    assert code == 2 and "exists" in err
    code, out, err = cli(capsys, "image", "--model", str(out_dir), "--class", "2", "--steps", "2", "--seed", "1",
                         "--out", str(tmp_path), "--json")
    assert code == 0, err


def test_missing_output_folder_is_created_but_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "new" / "folder"
    code, _, err = cli(capsys, "image", "--class", "2", "--steps", "2", "--seed", "1", "--out", str(target))
    assert code == 0, err
    assert (target / "gen-1.png").exists()
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    code, _, err = cli(capsys, "image", "--class", "2", "--steps", "2", "--seed", "1", "--out", str(not_a_folder))
    assert code == 2 and "is a file" in err and not_a_folder.read_text() == "x"


def test_hires_mode_tiles_and_precision_options_reach_the_provenance(tmp_path, capsys):
    code, out, err = cli(capsys, "image", "--class", "4", "--steps", "2", "--seed", "9", "--hires-scale", "1.5",
                         "--hires-mode", "latent-nearest", "--tile-size", "16", "--tile-overlap", "8",
                         "--precision", "int4", "--out", str(tmp_path), "--json")
    assert code == 0, err
    assert json.loads(out)["mode"] == "txt2img+hires"
    params = read_provenance(tmp_path / "gen-9.png")["parameters"]
    assert (params["hires_mode"], params["tile_size"], params["tile_overlap"], params["precision"]) == \
        ("latent-nearest", 16, 8, "int4")
    assert np.asarray(Image.open(tmp_path / "gen-9.png")).shape == (48, 48, 3)
    code, _, err = cli(capsys, "image", "--steps", "2", "--tile-size", "12", "--out", str(tmp_path / "x"))
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: tile size must be")


def test_option_defaults_are_the_engine_defaults():
    """``generate image`` / ``edit`` with no options run GenerationParams() (edit: strength 0.75)."""
    from dataclasses import replace

    from engines.generation.api import GenerationParams
    from studio.cli import build_parser
    from studio.cli.generate import generation_settings

    for verb, expected in (("image", GenerationParams()), ("edit", replace(GenerationParams(), strength=0.75))):
        args = build_parser().parse_args(["generate", verb])
        got = GenerationParams(model=args.model, seed=args.seed, batch=args.batch, **generation_settings(args))
        assert got == expected, verb
