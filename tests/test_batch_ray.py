"""The batch layer on a local Ray cluster (2 CPUs, one per module): same bytes as serial,
failures isolated, cancel clean. Skipped when the optional ``ray`` package is missing."""

import hashlib
import json
import shutil
import tempfile

import pytest
from PIL import Image

ray = pytest.importorskip("ray")

from engines.batch import MANIFEST, RayExecutor, SerialExecutor, batch_job
from engines.batch.executors import code_runtime_env
from engines.batch.sweeps import generation_batch, rd_batch
from engines.jobs import Preview, run_job

pytestmark = pytest.mark.ray

SPECS = [{"codec": "jpeg", "label": "jpeg", "options": {}}, {"codec": "webp", "label": "webp", "options": {}}]
TIMING = ("encode_s", "decode_s")


@pytest.fixture(scope="module")
def cluster():
    """One local Ray instance for the module: 2 CPUs, no dashboard, its own temp folder."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must stay < 108 chars
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False,
             runtime_env=code_runtime_env())
    yield
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from engines.codec.images import sample_image

    folder = tmp_path_factory.mktemp("images")
    for name in ("astronaut", "coffee"):
        Image.fromarray(sample_image(name)[100:196, 100:196]).save(folder / f"{name}.png")
    return sorted(str(p) for p in folder.iterdir())


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name != MANIFEST}


def _model_folder():
    from engines.generation.models import resolve_model

    return resolve_model("digits-flow").path


@pytest.mark.slow
def test_ray_batch_gives_the_same_bytes_as_serial(cluster, images, tmp_path):
    rd = rd_batch(images, SPECS, [30, 60], with_ms_ssim=False, keep_streams=True)
    gen = generation_batch({"class_label": 5}, [0, 1], ["ddim"], [3], "digits-flow", _model_folder())
    for batch in (rd, gen):
        serial = run_job(batch_job(batch, SerialExecutor(), tmp_path / f"{batch.name}-serial"))
        on_ray = run_job(batch_job(batch, RayExecutor(), tmp_path / f"{batch.name}-ray"))
        assert serial.summary["done"] == on_ray.summary["done"] == len(batch.tasks)
        assert on_ray.executor["executor"] == "local" and on_ray.executor["workers"] == 2
        a, b = _files(tmp_path / f"{batch.name}-serial"), _files(tmp_path / f"{batch.name}-ray")
        assert len(a) == len(batch.tasks) and a == b  # byte-identical outputs
        for tid in serial.tasks:
            ra, rb = serial.tasks[tid]["record"], on_ray.tasks[tid]["record"]
            if "row" in ra:
                ra = {k: v for k, v in ra["row"].items() if k not in TIMING}
                rb = {k: v for k, v in rb["row"].items() if k not in TIMING}
            assert ra == rb
            assert on_ray.tasks[tid]["host"] and on_ray.tasks[tid]["pid"] != serial.tasks[tid]["pid"]


def test_one_failing_task_is_reported_while_the_others_finish(cluster, images, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    batch = rd_batch([images[0], str(broken)], SPECS[:1], [30, 50, 70], with_ms_ssim=False, keep_streams=True)
    report = run_job(batch_job(batch, RayExecutor(), tmp_path / "out"))
    assert report.summary == {"done": 3, "failed": 3, "cancelled": 0}
    saved = json.loads((tmp_path / "out" / MANIFEST).read_text())
    for entry in saved["tasks"].values():
        if entry["params"]["image_name"] == "broken.png":
            assert entry["status"] == "failed" and entry["error"].startswith("broken.png is ")
        else:
            assert entry["status"] == "done" and (tmp_path / "out" / entry["files"][0]["name"]).is_file()


def test_cancel_stops_pending_tasks_and_leaves_no_partial_file(cluster, tmp_path):
    gen = generation_batch({"class_label": 2}, list(range(12)), ["flow_euler"], [6], "digits-flow", _model_folder())
    folder = tmp_path / "out"
    job = batch_job(gen, RayExecutor(), folder)
    for event in job:
        if isinstance(event, Preview):
            break  # the first image landed: cancel the rest
    job.close()
    saved = json.loads((folder / MANIFEST).read_text())
    assert saved["counts"]["done"] >= 1 and saved["counts"]["cancelled"] >= 6
    assert saved["counts"]["done"] + saved["counts"]["cancelled"] == 12
    listed = {f["name"]: f["sha256"] for e in saved["tasks"].values() for f in e["files"]}
    assert set(_files(folder)) == set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
        with Image.open(folder / name) as im:
            im.load()
    # the cluster is still usable after a cancel
    again = run_job(batch_job(gen.__class__("again", gen.tasks[:2]), RayExecutor(), tmp_path / "again"))
    assert again.summary["done"] == 2


def test_codec_panel_rd_sweep_runs_on_the_executor_from_the_preferences(cluster, make_panel, qtbot, tmp_path):
    pytest.importorskip("pytestqt")
    from engines.codec.images import sample_image
    from engines.codec.rd import rd_sweep_job
    from panels.codec import CodecPanel
    from studio.settings import StudioSettings

    panel = make_panel(CodecPanel)
    settings = StudioSettings(str(tmp_path / "s.ini"))
    settings.executor = "local"
    panel.services.settings = settings
    image = sample_image("coffee")[:96, :128].copy()
    panel.receive("image", image)
    for name, box in panel.rd_checks.items():
        box.setChecked(name in ("jpeg", "webp"))
    panel.rd_qualities.setText("30,50,70,90")
    panel.run_rd()
    assert "on local" in panel._handles["rd"].record.name
    qtbot.waitUntil(lambda: bool(panel.bd_rows), timeout=180000)
    reference = run_job(rd_sweep_job([(panel.image_name or "image", image)], panel.rd_specs(), [30, 50, 70, 90]))
    assert [(r["label"], r["quality"], r["bytes"]) for r in panel.rd_rows] == \
        [(r["label"], r["quality"], r["bytes"]) for r in reference]
    assert [r["psnr_rgb"] for r in panel.rd_rows] == [r["psnr_rgb"] for r in reference]
    assert panel.bd_table.rowCount() == 2
