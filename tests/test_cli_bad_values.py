"""Out-of-range, non-finite and clashing values on every panel's CLI: one ``error:`` line, exit 2,
nothing written (and nothing overwritten), and the refusal comes before the long work."""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from PIL import Image

from studio.cli import main


def _splat(path):
    """A 3-Gaussian .splat scene written from the format's description (32-byte records)."""
    rows = [struct.pack("<3f3f4B4B", x, 0.0, 1.0, 0.1, 0.1, 0.1, 200, 100, 50, 255, 255, 128, 128, 128)
            for x in (-0.2, 0.0, 0.2)]
    path.write_bytes(b"".join(rows))
    return path


def _png(path, size):
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(path)
    return path


def _refused(capsys, tmp_path, argv, text):
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], err
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before  # nothing new, nothing changed


@pytest.mark.parametrize("extra, text", [
    (["--fov", "0"], "field of view must be between 0 and 180"),
    (["--fov", "180"], "field of view must be between 0 and 180"),
    (["--fov", "nan"], "field of view"),
    (["--distance", "-1"], "camera distance must be a positive number"),
    (["--distance", "nan"], "camera distance"),
    (["--orbit", "nan,0"], "orbit angles must be finite"),
])
def test_render_image_refuses_bad_cameras(tmp_path, capsys, extra, text):
    scene = _splat(tmp_path / "s.splat")
    _refused(capsys, tmp_path, ["render", "image", str(scene), "--out", str(tmp_path / "o.png"), *extra], text)


def test_render_fit_refuses_a_count_beyond_the_cap(tmp_path, capsys):
    photo = _png(tmp_path / "p.png", 16)
    _refused(capsys, tmp_path, ["render", "fit", str(photo), "--count", "3000000", "--steps", "1",
                                "--out", str(tmp_path / "o.ply")], "at most 2,000,000")


def test_fit_job_refuses_a_count_beyond_the_cap():
    from engines.render.fit import MAX_PRIMITIVES, FitSettings, fit_job

    job = fit_job([np.zeros((8, 8, 3), np.uint8)], None, FitSettings(count=10, max_count=MAX_PRIMITIVES + 1))
    with pytest.raises(ValueError, match="at most 2,000,000"):
        next(job)


@pytest.mark.parametrize("extra, text", [
    (["--zoom", "0"], "zoom must be a positive number"),
    (["--zoom", "nan"], "zoom must be a positive number"),
    (["--step", "1e-9"], "step must be a number of voxels from 0.05"),
    (["--view", "nan,nan"], "view angles must be finite"),
])
def test_volume_render_refuses_bad_views(tmp_path, capsys, extra, text):
    _refused(capsys, tmp_path, ["volume", "render", "phantom:16", "--size", "16", "--out", str(tmp_path / "o.png"),
                                *extra], text)


def test_volume_render_checks_the_output_first(tmp_path, capsys):
    _refused(capsys, tmp_path, ["volume", "render", "phantom:16", "--out", str(tmp_path / "o.txt")],
             "must end in .png")
    existing = tmp_path / "x.png"
    existing.write_bytes(b"keep")
    _refused(capsys, tmp_path, ["volume", "render", "phantom:16", "--out", str(existing)], "exists")
    _refused(capsys, tmp_path, ["volume", "render", "phantom:16", "--out", str(existing / "o.png")],
             "is a file, not a folder")


def test_volume_phantom_checks_both_outputs_before_writing_either(tmp_path, capsys):
    labels = tmp_path / "labels.nii.gz"
    labels.write_bytes(b"keep")
    _refused(capsys, tmp_path, ["volume", "phantom", "--size", "16", "--out", str(tmp_path / "ct.nii.gz"),
                                "--labels", str(labels)], "exists")
    (tmp_path / "ct.nii.gz.json").write_text("{}")  # a sidecar left from before counts too
    _refused(capsys, tmp_path, ["volume", "phantom", "--size", "16", "--out", str(tmp_path / "ct.nii.gz")],
             "ct.nii.gz.json exists")


def test_volume_max_voxels_must_be_positive(tmp_path, capsys):
    _refused(capsys, tmp_path, ["volume", "info", "phantom:16", "--max-voxels", "0"], "--max-voxels must be at least 1")


def test_read_only_volume_renders_without_a_warning():
    from engines.volume.raycast import render

    data = np.linspace(0, 1, 8 * 8 * 8, dtype=np.float32).reshape(8, 8, 8)
    data.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = render(data, mode="mip", size=8, device="cpu")
    assert result.image.shape[:2] == (8, 8) and result.image.max() > 0


def test_codec_decode_writes_png_only(tmp_path, capsys):
    stream = tmp_path / "a.ssbc"
    assert main(["codec", "encode", str(_png(tmp_path / "p.png", 16)), "--out", str(stream)]) == 0
    capsys.readouterr()
    _refused(capsys, tmp_path, ["codec", "decode", str(stream), "--out", str(tmp_path / "o.txt")], "must end in .png")


def test_codec_tokens_and_train_refuse_bad_settings(tmp_path, capsys):
    small, big = _png(tmp_path / "s.png", 64), _png(tmp_path / "b.png", 128)
    _refused(capsys, tmp_path, ["codec", "tokens", str(small), "--eval", str(small), "--steps", "0"],
             "steps and batch must be at least 1")
    out = str(tmp_path / "m.pt")
    _refused(capsys, tmp_path, ["codec", "train", str(big), "--out", out, "--steps", "1", "--patch", "0"],
             "training crop must be a multiple of")
    _refused(capsys, tmp_path, ["codec", "train", str(big), "--out", out, "--steps", "1", "--lr", "nan"],
             "learning rate must be a number between 0 and 1")


def test_generate_refuses_an_out_inside_a_file_and_a_seed_past_64_bits(tmp_path, capsys):
    photo = _png(tmp_path / "p.png", 8)
    _refused(capsys, tmp_path, ["generate", "image", "--steps", "1", "--out", str(photo / "x")],
             "--out must be a folder, but")
    _refused(capsys, tmp_path, ["generate", "image", "--steps", "1", "--seed", str(2**64), "--out", str(tmp_path / "g")],
             "seed must be -1 (random) or 0..")


@pytest.mark.parametrize("extra, text", [
    (["--count", "1000000000"], "error: --count must be a whole number from 1 to 100,000"),
    (["--views", "100000"], "error: --views must be a whole number from 1 to 16"),  # the option, not the field
    (["--sh-degree", "3"], "error: --sh-degree must be 0 or 1"),
])
def test_generate_3d_refuses_sizes_that_exhaust_memory(tmp_path, capsys, extra, text):
    _refused(capsys, tmp_path, ["generate", "3d", "--class", "3", "--steps", "1", *extra,
                                "--out", str(tmp_path / "o.ply")], text)


def test_wrong_kind_messages_name_the_file_once_and_no_decoder_internals(tmp_path, capsys):
    png = _png(tmp_path / "p.png", 8)
    empty = tmp_path / "tf.json"
    empty.write_text("")
    folder = tmp_path / "scenes"
    folder.mkdir()
    _refused(capsys, tmp_path, ["volume", "classify", "phantom:16", "--strokes", str(png),
                                "--out", str(tmp_path / "l.nii.gz")], "p.png is not a strokes file (JSON text expected)")
    _refused(capsys, tmp_path, ["volume", "tf", str(empty), "--out", str(tmp_path / "o.json")],
             "error: tf.json is not valid JSON (Expecting value, line 1)")
    _refused(capsys, tmp_path, ["volume", "info", str(png)], "or a DICOM folder)")
    _refused(capsys, tmp_path, ["render", "image", str(folder), "--out", str(tmp_path / "o.png")],
             "scenes is a folder, not a scene file")


def test_a_huge_thread_count_is_refused_not_a_crash(tmp_path, capsys):
    from engines import device
    from studio.startup import detect_device

    _refused(capsys, tmp_path, ["codec", "fom", "--N", "4", "--threads", "100000"], "--threads must be from 1 to 1024")
    before = device.configured_threads()
    with pytest.raises(ValueError, match="threads must be from 1 to 1024"):
        device.set_threads(100_000)
    assert device.configured_threads() == before
    report = detect_device(None, 100_000)  # a hand-edited settings file: a warning, the window starts
    assert any("Threads setting ignored" in w for w in report["warnings"])
    assert device.configured_threads() == before


def test_codec_encode_refuses_another_formats_extension(tmp_path, capsys):
    """A JPEG stream named x.png is refused (the studio would not open it as a PNG); an unknown
    extension is only a warning."""
    photo = _png(tmp_path / "p.png", 16)
    _refused(capsys, tmp_path, ["codec", "encode", str(photo), "--codec", "jpeg", "--out", str(tmp_path / "x.png")],
             "x.png: a jpeg stream saved as .png would not open as one; use .jpg")
    _refused(capsys, tmp_path, ["codec", "encode", str(photo), "--out", str(tmp_path / "x.webp")],
             "a block stream saved as .webp")
    assert main(["codec", "encode", str(photo), "--out", str(tmp_path / "x.bin")]) == 0
    assert "warning: x.bin: a block stream is normally saved as .ssbc" in capsys.readouterr().err


def test_more_out_of_range_settings_are_refused(tmp_path, capsys):
    import json

    strokes = tmp_path / "s.json"
    strokes.write_text(json.dumps({"classes": ["a", "b"], "strokes": [{"class": 0, "voxels": [[1, 1, 1]]},
                                                                      {"class": 1, "voxels": [[9, 9, 9]]}]}))
    photo = _png(tmp_path / "p.png", 16)
    fake_model = tmp_path / "model.pt"  # an image under a model's name
    fake_model.write_bytes(photo.read_bytes())
    classify = ["volume", "classify", "phantom:16", "--strokes", str(strokes), "--out", str(tmp_path / "l.nii.gz")]
    for extra, text in ((["--feature-factor", "-1"], "feature factor must be 0 (automatic) or a stride from 1 to 5"),
                        (["--feature-factor", "100000"], "feature factor must be 0"),
                        (["--feature-model", str(fake_model)], "is not a TorchScript feature extractor: not a Torch")):
        _refused(capsys, tmp_path, [*classify, *extra], text)
    fit = ["render", "fit", str(photo), "--steps", "1", "--count", "10", "--out", str(tmp_path / "o.ply")]
    _refused(capsys, tmp_path, [*fit, "--max-count", "-5"], "--max-count must be at least 1")
    _refused(capsys, tmp_path, [*fit, "--seed", str(2**64)], "seed must be a whole number from 0 to 2^63 - 1")
    _refused(capsys, tmp_path, ["generate", "3d", "--class", "3", "--steps", "1", "--seed", "-5",
                                "--out", str(tmp_path / "o.ply")], "seed must be a whole number from 0")


def test_codec_train_refuses_a_batch_that_cannot_fit_in_memory(tmp_path, capsys):
    big = _png(tmp_path / "b.png", 128)
    _refused(capsys, tmp_path, ["codec", "train", str(big), "--out", str(tmp_path / "m.pt"), "--steps", "1",
                                "--patch", "64", "--batch", "10000000"], "use a smaller --batch or --patch")


@pytest.mark.parametrize("extra, text", [
    (["--batch-size", "0"], "batch size from 1 to 4096"),
    (["--lr", "nan"], "learning rate must be a number between 0 and 1"),
    (["--max-minutes", "-1"], "max minutes must be a positive number"),
    (["--init-from", "IMAGE"], "is not a saved digits model folder"),
])
def test_train_digits_refuses_bad_settings_before_training(tmp_path, capsys, extra, text):
    photo = _png(tmp_path / "p.png", 8)
    extra = [str(photo) if a == "IMAGE" else a for a in extra]
    _refused(capsys, tmp_path, ["generate", "train-digits", "--out", str(tmp_path / "m"), "--steps", "1", *extra], text)
