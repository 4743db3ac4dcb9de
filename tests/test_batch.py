"""The batch layer on the serial executor: specs, RD tables, failures, cancel, CLI (no Ray needed)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engines.batch import MANIFEST, Batch, SerialExecutor, TaskSpec, batch_job, make_executor
from engines.batch.spec import pack_folder, unpack_folder
from engines.batch.sweeps import parse_int_list, rd_batch, rd_tables
from engines.jobs import CancelToken, JobCancelled, Preview, Progress, run_job
from studio.cli import main

SPECS = [{"codec": "jpeg", "label": "jpeg", "options": {}}, {"codec": "webp", "label": "webp", "options": {}}]
QUALITIES = [30, 50, 70, 90]


@pytest.fixture()
def images(tmp_path):
    from engines.codec.images import sample_image

    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("astronaut", "coffee"):
        Image.fromarray(sample_image(name)[100:196, 100:196]).save(folder / f"{name}.png")
    return folder


def test_parse_int_list():
    assert parse_int_list("0-3") == [0, 1, 2, 3]
    assert parse_int_list("4,10,25") == [4, 10, 25]
    assert parse_int_list("1,5-7") == [1, 5, 6, 7]
    assert parse_int_list(7) == [7]
    for bad in ("a", "5-2", "1,,2"):
        with pytest.raises(ValueError):
            parse_int_list(bad)


def test_task_spec_checks():
    with pytest.raises(ValueError):
        TaskSpec("bad/id", "codec.rd", {})
    with pytest.raises(TypeError):
        TaskSpec("x", "codec.rd", {"array": np.zeros(2)})
    with pytest.raises(ValueError):
        Batch("b", [TaskSpec("a", "k", {}), TaskSpec("a", "k", {})])
    with pytest.raises(ValueError):
        make_executor("tcp:/nowhere")
    assert make_executor("10.0.0.1:6379").name == "10.0.0.1:6379"
    assert make_executor(None).name == "serial"


def test_pack_folder_is_deterministic_and_round_trips(tmp_path):
    src = tmp_path / "model"
    (src / "sub").mkdir(parents=True)
    (src / "a.json").write_text('{"x": 1}')
    (src / "sub" / "w.bin").write_bytes(bytes(range(256)) * 10)
    first = pack_folder(src)
    (src / "a.json").touch()  # a newer mtime must not change the bytes
    assert pack_folder(src) == first
    out = unpack_folder(first, tmp_path / "copy")
    assert (out / "a.json").read_text() == '{"x": 1}'
    assert (out / "sub" / "w.bin").read_bytes() == bytes(range(256)) * 10


def test_serial_rd_batch_matches_the_sweep_job_and_writes_tables(images, tmp_path):
    from engines.codec.images import load_image
    from engines.codec.rd import bd_table, curves_from_rows, rd_sweep_job

    paths = sorted(str(p) for p in images.iterdir())
    batch = rd_batch(paths, SPECS, QUALITIES, with_ms_ssim=False, keep_streams=True)
    assert len(batch.tasks) == 2 * 2 * 4
    events = []
    report = run_job(batch_job(batch, SerialExecutor(), tmp_path / "out"), events.append)
    assert report.summary == {"done": 16, "failed": 0, "cancelled": 0}
    rows = [r["row"] for r in report.records()]
    reference = run_job(rd_sweep_job([(Path(p).name, load_image(p)) for p in paths], SPECS, QUALITIES, with_ms_ssim=False))
    for got, ref in zip(rows, reference):
        assert (got["image"], got["label"], got["quality"], got["bytes"]) == (ref["image"], ref["label"], ref["quality"], ref["bytes"])
        assert got["psnr_rgb"] == pytest.approx(ref["psnr_rgb"], abs=1e-12)
    # the kept streams are the encoded files; their sizes are the rows' byte counts
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    for entry in manifest["tasks"].values():
        (file,) = entry["files"]
        assert (tmp_path / "out" / file["name"]).stat().st_size == entry["record"]["row"]["bytes"] == file["bytes"]
        assert entry["host"] and entry["seconds"] >= 0 and entry["params"]["quality"] in QUALITIES
    tables = rd_tables(rows)
    bd, expected = json.loads(tables["rd.json"])["bd"], bd_table(curves_from_rows(reference))
    assert [r["codec"] for r in bd] == ["jpeg", "webp"]
    for got, ref in zip(bd, expected):
        for key in ("bd_rate_cubic", "bd_psnr_cubic", "bd_rate_pchip", "bd_psnr_pchip"):
            assert got[key] == pytest.approx(ref[key], rel=1e-9)
    assert bd[1]["bd_rate_pchip"] < -5  # webp needs fewer bits than jpeg here
    bd_lines = tables["bd.csv"].decode().splitlines()
    assert bd_lines[0].startswith("image,codec,anchor,bd_rate_cubic") and len(bd_lines) == 1 + 2 + 2 * 2
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].done == progress[-1].total == 16 and "ETA" in progress[-1].message


def test_failed_task_is_reported_and_the_others_finish(images, tmp_path):
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    paths = sorted(str(p) for p in images.iterdir())
    batch = rd_batch(paths, SPECS[:1], QUALITIES, with_ms_ssim=False)
    logs = []
    report = run_job(batch_job(batch, SerialExecutor(), tmp_path / "out"), logs.append)
    assert report.summary == {"done": 8, "failed": 4, "cancelled": 0}
    for entry in report.failed:
        assert entry["params"]["image_name"] == "broken.png"
        assert "broken.png is not a readable image" in entry["error"]
    assert sum("failed" in getattr(e, "message", "") and "broken.png" in e.message for e in logs) == 4
    saved = json.loads(report.manifest.read_text())
    assert saved["counts"]["failed"] == 4


def test_cancel_leaves_only_complete_files(images, tmp_path):
    paths = sorted(str(p) for p in images.iterdir())
    batch = rd_batch(paths, SPECS, QUALITIES, with_ms_ssim=False, keep_streams=True)
    folder = tmp_path / "out"
    token, finished = CancelToken(), []

    def on_event(event):
        if isinstance(event, Preview):
            finished.append(event.data["task"])
            if len(finished) == 3:
                token.cancel()

    with pytest.raises(JobCancelled):
        run_job(batch_job(batch, SerialExecutor(), folder, cancel=token), on_event)
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["counts"] == {"done": 3, "failed": 0, "cancelled": 13}
    listed = {f["name"]: f for e in manifest["tasks"].values() for f in e["files"]}
    on_disk = {p.name for p in folder.iterdir()} - {MANIFEST}
    assert on_disk == set(listed)  # no partial or unlisted file
    import hashlib

    for name, info in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == info["sha256"]


def test_codec_rd_cli_batch_over_a_folder(images, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["codec", "rd", str(images), "--codecs", "jpeg", "webp", "--qualities", "30,50,70,90",
                 "--out", str(out), "--no-ms-ssim", "--executor", "serial", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["counts"]["done"] == 16 and result["rows"] == 16
    assert sorted(p.name for p in out.iterdir()) == ["batch.json", "bd.csv", "rd.csv", "rd.json"]
    assert len((out / "rd.csv").read_text().splitlines()) == 17
    # the same folder again without --force: refused before any work
    assert main(["codec", "rd", str(images), "--out", str(out), "--executor", "serial"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["codec", "rd", str(images), "--out", str(tmp_path / "x"), "--executor", "nowhere"]) == 2
    assert "unknown executor" in capsys.readouterr().err


def test_generation_sweep_equals_single_generation(tmp_path, capsys):
    code = main(["generate", "image", "--seeds", "3-4", "--samplers", "ddim", "--steps", "3", "--class", "7",
                 "--out", str(tmp_path / "sweep"), "--json"])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["generate", "image", "--seed", "4", "--sampler", "ddim", "--steps", "3", "--class", "7",
                 "--out", str(tmp_path / "one"), "--json"]) == 0
    sweep = np.asarray(Image.open(tmp_path / "sweep" / "gen-ddim-3steps-s4.png"))
    single = np.asarray(Image.open(tmp_path / "one" / "gen-4.png"))
    assert np.array_equal(sweep, single)
    record = json.loads(Image.open(tmp_path / "sweep" / "gen-ddim-3steps-s4.png").text["spectra-studio"])
    assert record["parameters"]["seed"] == 4 and record["parameters"]["model"] == "digits-flow"
    assert "created" not in record and len(record["inputs"]["model"]) == 64
    assert main(["generate", "image", "--seeds", "1-x", "--out", str(tmp_path / "bad")]) == 2


def test_classify_batch_equals_single_classification(tmp_path, capsys):
    import nibabel as nib

    for seed in (0, 1):
        assert main(["volume", "phantom", "--size", "24", "--seed", str(seed), "--out", str(tmp_path / f"p{seed}.nii.gz"),
                     "--labels", str(tmp_path / f"l{seed}.nii.gz")]) == 0
    labels = np.asarray(nib.load(str(tmp_path / "l0.nii.gz")).dataobj).transpose(2, 1, 0)
    strokes = {"classes": [{"name": "air"}, {"name": "tissue"}, {"name": "bone"}], "strokes": []}
    for cls, label in ((0, 0), (1, 1), (2, 3)):
        strokes["strokes"].append({"class": cls, "voxels": np.argwhere(labels == label)[::29][:15].tolist()})
    (tmp_path / "s.json").write_text(json.dumps(strokes))
    capsys.readouterr()
    args = ["--strokes", str(tmp_path / "s.json"), "--method", "similarity", "--json"]
    assert main(["volume", "classify", str(tmp_path / "p0.nii.gz"), str(tmp_path / "p1.nii.gz"), *args,
                 "--out", str(tmp_path / "batch")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["labels"] == ["000-p0-labels.nii.gz", "001-p1-labels.nii.gz"]
    assert main(["volume", "classify", str(tmp_path / "p1.nii.gz"), *args, "--out", str(tmp_path / "one.nii.gz")]) == 0
    batch = np.asarray(nib.load(str(tmp_path / "batch" / "001-p1-labels.nii.gz")).dataobj)
    single = np.asarray(nib.load(str(tmp_path / "one.nii.gz")).dataobj)
    assert np.array_equal(batch, single) and len(np.unique(single)) >= 3
    assert (tmp_path / "batch" / "001-p1-labels.nii.gz.json").exists()


def test_fit_batch_equals_single_fit(images, tmp_path, capsys):
    opts = ["--count", "20", "--steps", "6", "--max-size", "16", "--seed", "3", "--json"]
    assert main(["render", "fit", str(images / "astronaut.png"), str(images / "coffee.png"), *opts,
                 "--out", str(tmp_path / "fits")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["counts"]["done"] == 2 and set(result["psnr_db"]) == {"000-astronaut.ply", "001-coffee.ply"}
    assert main(["render", "fit", str(images / "coffee.png"), *opts, "--out", str(tmp_path / "one.ply")]) == 0
    assert (tmp_path / "fits" / "001-coffee.ply").read_bytes() == (tmp_path / "one.ply").read_bytes()


def test_preferences_choose_where_batches_run(qtbot, tmp_path):
    from studio.settings import StudioSettings
    from studio.widgets.settings_dialog import SettingsDialog

    settings = StudioSettings(str(tmp_path / "s.ini"))
    assert settings.executor_spec() == ("serial", None)
    dialog = SettingsDialog(settings, ["cpu"])
    qtbot.addWidget(dialog)
    assert not dialog.address.isEnabled() and not dialog.workers.isEnabled()
    dialog.executor.setCurrentIndex(dialog.executor.findData("cluster"))
    assert dialog.address.isEnabled() and dialog.workers.isEnabled()
    dialog.address.setText(" ray://head:10001 ")
    dialog.workers.setValue(3)
    dialog.store(settings)
    again = StudioSettings(str(tmp_path / "s.ini"))
    assert again.executor_spec() == ("ray://head:10001", 3)
    assert make_executor(*again.executor_spec()).name == "ray://head:10001"
    again.executor = "local"
    assert again.executor_spec() == ("local", 3)


def test_generate_3d_batch_equals_single_distillation(tmp_path, capsys):
    opts = ["--steps", "3", "--count", "40", "--views", "1", "--json"]
    assert main(["generate", "3d", "--classes", "1,4", *opts, "--out", str(tmp_path / "scenes")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["scenes"] == ["3d-c1-s0.ply", "3d-c4-s0.ply"]
    assert main(["generate", "3d", "--class", "4", *opts, "--out", str(tmp_path / "one.ply")]) == 0
    assert (tmp_path / "scenes" / "3d-c4-s0.ply").read_bytes() == (tmp_path / "one.ply").read_bytes()
    sidecar = json.loads((tmp_path / "scenes" / "3d-c4-s0.ply.json").read_text())
    assert sidecar["parameters"]["class_label"] == 4 and sidecar["parameters"]["model"] == "digits-flow"
    assert main(["generate", "3d", "--classes", "1", "--turntable", "t.webp", "--out", str(tmp_path / "x")]) == 2


def test_ray_executors_without_ray_say_how_to_install_it(monkeypatch, images, tmp_path, capsys):
    import engines.batch.executors as executors

    monkeypatch.setattr(executors, "ray_available", lambda: False)
    code = main(["codec", "rd", str(images), "--out", str(tmp_path / "b"), "--executor", "local", "--no-ms-ssim"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == 'error: Ray is not installed: pip install -e ".[cluster]" (or use --executor serial)'
    assert not (tmp_path / "b").exists()
