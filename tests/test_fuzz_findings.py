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
        if struct.unpack_from("<H", data, entry)[0] == 257:  # ImageLength: 16 -> 4 M rows (fits the size limit)
            struct.pack_into("<I", data, entry + 8, 1 << 22)
    path.write_bytes(bytes(data))
    with pytest.raises(ImageFileError, match="photo.tif is truncated or corrupt: a 24×4194304 TIFF needs"):
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


def test_damaged_avif_is_one_clear_image_error_not_a_runtime_error(tmp_path):
    from PIL import Image

    from engines.codec.images import load_image
    from engines.imagefile import ImageFileError

    pixels = np.stack(np.mgrid[0:20, 0:24, 0:3], -1).sum(-1).astype(np.uint8) * 9
    path = tmp_path / "photo.avif"
    Image.fromarray(pixels).save(path, "AVIF", quality=100, subsampling="4:4:4")
    assert np.abs(load_image(path).astype(int) - pixels).max() <= 8  # the valid file opens
    data = bytearray(path.read_bytes())
    data[data.find(b"pixi") + 9] = 12  # the pixel depth libavif is told: 12 bits instead of 8
    path.write_bytes(bytes(data))
    with pytest.raises(ImageFileError, match=r"^photo.avif is a corrupt or truncated image: Failed to decode") as info:
        load_image(path)
    assert "RuntimeError" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("fmt, decoder_bytes", [("JPEG2000", 12), ("AVIF", 12)])
def test_tiny_flat_jp2_and_avif_count_their_decoders_memory_against_the_limit(tmp_path, fmt, decoder_bytes):
    from PIL import Image

    from engines.imagefile import ImageFileError, open_image
    from engines.limits import set_max_decoded_bytes

    path = tmp_path / "flat.img"
    Image.new("RGB", (1000, 800), (10, 20, 30)).save(path, fmt)
    assert path.stat().st_size < 3000  # 3.2 MB in Pillow, 9.6 MB more in the decoding library, from < 3 KB
    pillow = 1000 * 800 * 4
    try:
        set_max_decoded_bytes(pillow + 1000 * 800 * decoder_bytes)
        image = np.asarray(open_image(path).convert("RGB"))
        assert image.shape == (800, 1000, 3) and np.abs(image.astype(int) - (10, 20, 30)).max() <= 2
        set_max_decoded_bytes(2 * pillow)  # Pillow's storage alone fits, the decoder's does not
        with pytest.raises(ImageFileError, match=r"flat.img \(1000×800 RGB image\)"):
            open_image(path)
    finally:
        set_max_decoded_bytes(None)


def test_gif_with_a_huge_logical_screen_is_refused_before_decoding_its_rgb_copy(tmp_path):
    import struct
    import time

    from PIL import Image

    from engines.codec.images import load_image
    from engines.imagefile import ImageFileError
    from engines.limits import max_decoded_bytes

    pixels = np.stack(np.mgrid[0:20, 0:24], -1).sum(-1).astype(np.uint8) * 5
    path = tmp_path / "photo.gif"
    Image.fromarray(pixels).save(path)  # grey palette: the first frame decodes exactly
    np.testing.assert_array_equal(load_image(path), np.stack([pixels] * 3, -1))
    data = bytearray(path.read_bytes())
    struct.pack_into("<HH", data, 6, 30000, 16384)  # a 1 KB file whose canvas is 0.5 G palette pixels
    path.write_bytes(bytes(data))
    assert 30000 * 16384 < max_decoded_bytes() < 30000 * 16384 * 8  # fits as palette, not as palette + RGB copy
    start = time.perf_counter()
    with pytest.raises(ImageFileError, match=r"photo.gif \(30000×16384 P image\) would decode to 3.7 GiB"):
        load_image(path)
    assert time.perf_counter() - start < 1.0  # refused from the header, not after filling 0.5 GB


def test_16_bit_grey_is_scaled_as_before_and_its_float_copy_counts_against_the_limit(tmp_path):
    from PIL import Image

    from engines.codec.images import load_image
    from engines.imagefile import ImageFileError
    from engines.limits import set_max_decoded_bytes

    values = np.random.default_rng(0).integers(0, 60000, (30, 40), dtype=np.uint16)
    values[0, 0] = 60000
    path = tmp_path / "depth.png"
    Image.fromarray(values).save(path)  # Pillow holds it as I;16: 2 bytes a pixel
    expected = np.clip(values.astype(np.float64) / 60000 * 255.0, 0, 255).astype(np.uint8)
    pixels = 30 * 40
    try:
        set_max_decoded_bytes(pixels * (2 + 12))
        np.testing.assert_array_equal(load_image(path), np.stack([expected] * 3, -1))
        set_max_decoded_bytes(pixels * (2 + 12) - 1)  # what an 8-bit RGB copy would need fits, the float copy does not
        with pytest.raises(ImageFileError, match=r"depth.png \(40×30 I;16 image\) would decode to"):
            load_image(path)
    finally:
        set_max_decoded_bytes(None)


def _huge_screen_gif(path) -> None:
    """A 1 KB GIF whose logical screen is 30000 x 16384 palette pixels (fits the limit as palette
    bytes, not with the RGB copy the callers make)."""
    import struct

    from PIL import Image

    Image.fromarray(np.zeros((20, 24), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<HH", data, 6, 30000, 16384)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("reader", ["render target", "render posed image", "generate input", "generate control",
                                    "render cli", "generate cli"])
def test_every_image_reader_counts_its_rgb_copy(tmp_path, reader):
    """The callers that turn an opened image into RGB (Render's fit target and posed views, Generate's
    input and control images, the CLIs) refuse the huge-screen GIF from its header, with a clear
    message: the RGB copy counts against the decoded-size limit as it does in Codec."""
    import time

    path = tmp_path / "photo.gif"
    _huge_screen_gif(path)
    start = time.perf_counter()
    if reader == "render cli":  # the CLI prints the message and exits 2, writing nothing
        from studio.cli import main

        out = tmp_path / "fit.ply"
        assert main(["render", "fit", str(path), "--count", "10", "--steps", "1", "--out", str(out)]) == 2
        assert not out.exists() and time.perf_counter() - start < 1.0
        return
    with pytest.raises(Exception, match=r"would decode to 3.7 GiB") as info:
        from engines.jobs import run_job

        if reader == "render target":
            from panels.render.panel import _photo_job

            run_job(_photo_job(str(path), 512))
        elif reader == "render posed image":
            from engines.render.formats.posed import _open_rgb

            _open_rgb(path, None)
        elif reader == "generate input":
            from panels.generate.widgets import read_image_file

            read_image_file(str(path))
        elif reader == "generate control":
            from panels.generate.control import _thumbnail_job

            run_job(_thumbnail_job(str(path)))
        else:
            from studio.cli.generate import _read_image

            _read_image(str(path), "input")
    assert type(info.value).__name__ != "MemoryError"
    assert time.perf_counter() - start < 1.0
