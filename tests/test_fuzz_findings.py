"""What the fuzzer found in the loaders added to it (tests/fuzz/model_targets.py, file_targets.py):
each hostile input ends in the loader's one clear error, naming the file, before any big allocation."""

import json
import os

import numpy as np
import pytest
import torch


def test_learned_codec_model_with_renamed_or_reshaped_tensors_is_refused(tmp_path):
    from engines.codec.learned import LearnedCodecError, load_model, save_model
    from engines.codec.learned_model import build_model

    torch.manual_seed(0)
    model = build_model("hyperprior", 8, 8)
    good = save_model(model, tmp_path / "good.pt", {"lambda": 0.01})
    loaded, config = load_model(str(good))
    assert (config["kind"], config["N"], config["M"]) == ("hyperprior", 8, 8)
    for name, value in loaded.state_dict().items():
        torch.testing.assert_close(value, model.state_dict()[name])
    blob = torch.load(good, weights_only=True)
    first = sorted(blob["state"])[0]
    blob["state"][first + "_x"] = blob["state"].pop(first)  # no silent random weights for a renamed tensor
    torch.save(blob, tmp_path / "renamed.pt")
    with pytest.raises(LearnedCodecError, match=r"renamed.pt does not fit .* 1 tensors missing, 1 unexpected"):
        load_model(str(tmp_path / "renamed.pt"))
    blob = torch.load(good, weights_only=True)
    blob["config"]["N"] = "8"
    torch.save(blob, tmp_path / "text.pt")
    with pytest.raises(LearnedCodecError, match="whole numbers N and M"):
        load_model(str(tmp_path / "text.pt"))
    torch.save(torch.zeros(3), tmp_path / "tensor.pt")
    with pytest.raises(LearnedCodecError, match="no 'config' and 'state'"):
        load_model(str(tmp_path / "tensor.pt"))
    (tmp_path / "junk.pt").write_bytes(good.read_bytes()[:200])
    with pytest.raises(LearnedCodecError, match="junk.pt is not a readable learned-codec model file") as info:
        load_model(str(tmp_path / "junk.pt"))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("data, message", [
    ({"classes": [7], "strokes": []}, "each class must be a name"),
    ({"classes": ["a"], "strokes": ["x"]}, "each stroke must be an object"),
    ({"classes": ["a"], "strokes": [{"class": 0, "voxels": [[{}, 1, 2]]}]}, "list of \\[z, y, x\\] triples"),
    ({"classes": ["a"], "strokes": [{"class": True, "voxels": [[0, 1, 2]]}]}, "unknown class"),
    ({"classes": [{"name": "a", "color": "red"}], "strokes": []}, "color must be 3"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
])
def test_malformed_strokes_file_one_clear_error(tmp_path, data, message):
    from engines.volume.classify import load_strokes

    path = tmp_path / "strokes.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(ValueError, match=message) as info:
        load_strokes(path)
    assert str(info.value).startswith("strokes.json")


def test_strokes_path_that_is_a_folder_or_a_fifo_is_refused_without_reading(tmp_path):
    from engines.volume.classify import load_strokes

    (tmp_path / "dir.json").mkdir()
    os.mkfifo(tmp_path / "pipe.json")  # reading it would block for ever
    for name in ("dir.json", "pipe.json"):
        with pytest.raises(ValueError, match=f"{name} is not a regular file"):
            load_strokes(tmp_path / name)


def test_cameras_json_with_malformed_matrices_names_the_frame(tmp_path):
    from engines.render.camera import fibonacci_cameras
    from engines.render.synthetic import load_views, save_views

    cams = fibonacci_cameras(2, 3.0, width=8, height=6)
    folder = save_views(tmp_path / "views", [np.zeros((6, 8, 3))] * 2, cams)
    images, loaded = load_views(folder)
    torch.testing.assert_close(loaded[1].viewmat, cams[1].viewmat.double())
    meta = json.loads((folder / "cameras.json").read_text())
    for bad, message in [({"K": [[1, 0], [0, 1]]}, "K must be a 3x3"), ({"viewmat": [["x"] * 4] * 4}, "viewmat must be"),
                         ({"width": 0}, "width and height"), ({"file": 3}, "needs a 'file'")]:
        frames = [dict(meta["frames"][0]), dict(meta["frames"][1], **bad)]
        (folder / "cameras.json").write_text(json.dumps({"frames": frames}))
        with pytest.raises(ValueError, match=f"cameras.json: frame 1.*{message}"):
            load_views(folder)


def test_tiff_claiming_more_pixels_than_its_raw_strip_holds_is_refused_before_decoding(tmp_path):
    import struct

    import tifffile

    from engines.codec.images import load_image
    from engines.imagefile import ImageFileError

    pixels = np.arange(16 * 24 * 3, dtype=np.uint8).reshape(16, 24, 3)
    path = tmp_path / "photo.tif"
    tifffile.imwrite(path, pixels, photometric="rgb")
    np.testing.assert_array_equal(load_image(path), pixels)  # a valid raw RGB TIFF still opens
    data = bytearray(path.read_bytes())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for k in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * k
        if struct.unpack_from("<H", data, entry)[0] == 257:  # ImageLength: 16 -> 16 M rows
            struct.pack_into("<I", data, entry + 8, 1 << 24)
    path.write_bytes(bytes(data))
    with pytest.raises(ImageFileError, match="photo.tif is truncated or corrupt: a 24×16777216 TIFF needs"):
        load_image(path)


def test_lora_with_empty_or_scalar_factors_fails_clearly(tmp_path):
    from safetensors.torch import save_file

    from engines.generation.lora import lora_factors
    from engines.generation.model_checks import ModelError

    layer = torch.nn.Linear(4, 4)
    for name, tensors in [("empty", {"lora_unet_q.lora_down.weight": torch.zeros(0), "lora_unet_q.lora_up.weight": torch.zeros(4, 2)}),
                          ("alpha", {"lora_unet_q.lora_down.weight": torch.zeros(2, 4), "lora_unet_q.lora_up.weight": torch.zeros(4, 2),
                                     "lora_unet_q.alpha": torch.zeros(3)})]:
        save_file(tensors, str(tmp_path / f"{name}.safetensors"))
        with pytest.raises(ModelError, match=f"LoRA {name}.safetensors: .*malformed factors"):
            lora_factors(tmp_path / f"{name}.safetensors", {"unet": torch.nn.ModuleDict({"q": layer})})
