"""Export service: provenance in PNG chunks and sidecars, atomic writes, no overwrite without force."""

import hashlib
import json
import os

import numpy as np
import pytest
from PIL import Image

from studio.export import (
    ExportError,
    FileExistsErrorNoForce,
    atomic_write,
    make_provenance,
    read_provenance,
    save_png,
    save_with_sidecar,
    sidecar_path,
)


@pytest.fixture
def provenance(tmp_path):
    source = tmp_path / "input.bin"
    source.write_bytes(b"spectra" * 100)
    return make_provenance(
        "generate", "flow-unet", {"steps": 10, "cfg": 2.5, "sampler": "unipc", "size": (32, 32)},
        seed=1234, device="cpu", inputs=[source],
    ), source


def test_png_carries_provenance_and_pixels(tmp_path, provenance):
    record, source = provenance
    image = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    path = save_png(tmp_path / "out.png", image, record)
    with Image.open(path) as reopened:
        assert np.array_equal(np.asarray(reopened), image)
        chunk = json.loads(reopened.text["spectra-studio"])
    assert chunk == json.loads(json.dumps(record))
    restored = read_provenance(path)
    assert restored["panel"] == "generate" and restored["seed"] == 1234 and restored["device"] == "cpu"
    assert restored["parameters"] == {"steps": 10, "cfg": 2.5, "sampler": "unipc", "size": [32, 32]}
    expected_hash = hashlib.sha256(source.read_bytes()).hexdigest()
    assert restored["inputs"] == {str(source): expected_hash}
    assert restored["app_version"]


def test_float_images_are_scaled(tmp_path, provenance):
    image = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    path = save_png(tmp_path / "grey.png", image, provenance[0])
    pixels = np.asarray(Image.open(path))
    assert pixels[0, 0] == 0 and pixels[-1, -1] == 255


def test_existing_file_needs_force(tmp_path, provenance):
    path = tmp_path / "out.png"
    save_png(path, np.zeros((4, 4, 3), np.uint8), provenance[0])
    before = path.read_bytes()
    with pytest.raises(FileExistsErrorNoForce):
        save_png(path, np.ones((4, 4, 3), np.uint8), provenance[0])
    assert path.read_bytes() == before
    save_png(path, np.ones((4, 4, 3), np.uint8), provenance[0], force=True)
    assert np.asarray(Image.open(path)).max() == 1


def test_failing_writer_leaves_no_partial_file(tmp_path):
    target = tmp_path / "scene.ply"

    def writer(tmp):
        with open(tmp, "wb") as handle:
            handle.write(b"ply\nformat binary_little_endian 1.0\n" + b"\0" * 1000)
        raise OSError("disk full")

    with pytest.raises(ExportError, match="could not write scene.ply: disk full"):
        atomic_write(target, writer)
    assert os.listdir(tmp_path) == []


def test_failing_writer_keeps_previous_version(tmp_path):
    target = tmp_path / "data.bin"
    target.write_bytes(b"old contents")

    def writer(tmp):
        open(tmp, "wb").write(b"half")
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError):
        atomic_write(target, writer, force=True)
    assert target.read_bytes() == b"old contents"
    assert sorted(os.listdir(tmp_path)) == ["data.bin"]


def test_nan_image_is_refused_before_writing(tmp_path, provenance):
    image = np.full((4, 4, 3), np.nan)
    with pytest.raises(ExportError, match="NaN"):
        save_png(tmp_path / "nan.png", image, provenance[0])
    assert os.listdir(tmp_path) == ["input.bin"]


def test_wrong_shape_is_refused(tmp_path, provenance):
    with pytest.raises(ExportError, match="shape"):
        save_png(tmp_path / "x.png", np.zeros((2, 3, 4, 5)), provenance[0])


def test_sidecar_for_other_formats(tmp_path, provenance):
    record = provenance[0]
    path = save_with_sidecar(tmp_path / "scene.ply", lambda tmp: open(tmp, "wb").write(b"ply data"), record)
    assert path.read_bytes() == b"ply data"
    assert json.loads(sidecar_path(path).read_text()) == json.loads(json.dumps(record))
    assert read_provenance(path)["engine"] == "flow-unet"
    with pytest.raises(FileExistsErrorNoForce):
        save_with_sidecar(path, lambda tmp: open(tmp, "wb").write(b"new"), record)
    assert path.read_bytes() == b"ply data"


def test_plain_png_has_no_provenance_and_corrupt_png_is_an_error(tmp_path):
    plain = tmp_path / "plain.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(plain)
    assert read_provenance(plain) is None
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(plain.read_bytes()[:30])
    with pytest.raises(ExportError, match="corrupt.png is not a readable image"):
        read_provenance(corrupt)
