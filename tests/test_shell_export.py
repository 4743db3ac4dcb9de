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


# -- data file and sidecar as a pair, the user's umask, no temporary names in messages ---------------
def test_sidecar_writer_failing_leaves_neither_file(tmp_path, provenance, monkeypatch):
    import engines.atomic_files as export  # the writing mechanism lives there

    real = export._write_temp
    calls = []

    def fail_on_second(target, writer, folder):
        calls.append(target.name)
        if len(calls) == 2:  # the sidecar
            raise ExportError(f"could not write {target.name}: No space left on device")
        return real(target, writer, folder)

    monkeypatch.setattr(export, "_write_temp", fail_on_second)
    with pytest.raises(ExportError, match="scene.ply.json: No space left"):
        save_with_sidecar(tmp_path / "scene.ply", lambda tmp: open(tmp, "wb").write(b"ply data"), provenance[0])
    assert calls == ["scene.ply", "scene.ply.json"]
    assert sorted(os.listdir(tmp_path)) == ["input.bin"]


def test_full_disk_while_writing_the_sidecar(tmp_path, provenance, monkeypatch):
    """The sidecar write hits ENOSPC: no data file without its sidecar, no temporary file left."""
    import builtins
    import errno

    real_open = builtins.open

    def full_disk_open(file, mode="r", *args, **kwargs):
        handle = real_open(file, mode, *args, **kwargs)
        if "w" in mode and ".scene.ply.json." in str(file):
            handle.close()
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return handle

    monkeypatch.setattr(builtins, "open", full_disk_open)
    with pytest.raises(ExportError) as info:
        save_with_sidecar(tmp_path / "scene.ply", lambda tmp: real_open(tmp, "wb").write(b"ply data"), provenance[0])
    message = str(info.value)
    assert message == "could not write scene.ply.json: No space left on device"
    assert ".partial" not in message
    assert sorted(os.listdir(tmp_path)) == ["input.bin"]


def test_failed_rename_of_the_sidecar_removes_the_data_file(tmp_path, provenance, monkeypatch):
    import engines.atomic_files as export  # the writing mechanism lives there

    real = os.replace

    def replace(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(5, "Input/output error")
        return real(src, dst)

    monkeypatch.setattr(export.os, "replace", replace)
    with pytest.raises(ExportError, match="scene.ply.json"):
        save_with_sidecar(tmp_path / "scene.ply", lambda tmp: open(tmp, "wb").write(b"ply"), provenance[0])
    assert sorted(os.listdir(tmp_path)) == ["input.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_exports_get_the_users_umask(tmp_path, provenance, umask):
    old = os.umask(umask)
    try:
        png = save_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8), provenance[0])
        ply = save_with_sidecar(tmp_path / "b.ply", lambda tmp: open(tmp, "wb").write(b"x"), provenance[0])
    finally:
        os.umask(old)
    for path in (png, ply, sidecar_path(ply)):
        assert (os.stat(path).st_mode & 0o777) == (0o666 & ~umask), path


def test_writer_error_never_shows_the_temporary_name(tmp_path):
    def writer(tmp):
        raise PermissionError(13, "Permission denied", tmp)

    with pytest.raises(ExportError) as info:
        atomic_write(tmp_path / "out.png", writer)
    assert str(info.value) == "could not write out.png: Permission denied"

    def encoder(tmp):
        raise RuntimeError(f"encoder failed on {tmp}")

    with pytest.raises(ExportError) as info:
        atomic_write(tmp_path / "out.png", encoder)
    assert str(info.value) == "encoder failed on out.png"
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("text, reason", [
    (json.dumps({"panel": "volume", "parameters": {}, "seed": "seven"}), "seed"),
    (json.dumps({"panel": "volume", "parameters": "mode=5"}), "parameters"),
    ("{" * 3 + "}" * 3, "not valid JSON"),
])
def test_malformed_sidecar_is_one_clear_error(tmp_path, text, reason):
    data = tmp_path / "labels.nii"
    data.write_bytes(b"x")
    sidecar_path(data).write_text(text)
    with pytest.raises(ExportError, match=reason):
        read_provenance(data)


@pytest.mark.parametrize("foreign", [{"spacing": [1, 1, 2]}, [{"panel": "volume"}]])
def test_foreign_sidecar_is_not_provenance(tmp_path, foreign):
    data = tmp_path / "vol.npy"
    data.write_bytes(b"x")
    sidecar_path(data).write_text(json.dumps(foreign))  # e.g. the npy reader's metadata
    assert read_provenance(data) is None


def test_a_folder_where_the_sidecar_goes_is_refused_before_the_old_file_is_replaced(tmp_path, provenance):
    """With force, a folder named like the sidecar made the sidecar's rename fail after the new data
    file had replaced the old one, and the data file was then removed: the old file was lost."""
    old = tmp_path / "scene.ply"
    old.write_bytes(b"old scene")
    (tmp_path / "scene.ply.json").mkdir()
    with pytest.raises(ExportError, match="scene.ply.json is a folder"):
        save_with_sidecar(old, lambda tmp: open(tmp, "wb").write(b"new"), provenance[0], force=True)
    assert old.read_bytes() == b"old scene"
    with pytest.raises(ExportError, match="is a folder"):
        save_png(tmp_path / "scene.ply.json", np.zeros((2, 2, 3), np.uint8), provenance[0], force=True)
