"""Every panel's long job reaches a cancellation point while one uninterruptible call (a training
step, a codec call, a RayGauss tile, a forest fit, a volume read, the Ray start-up) is still running:
the job stops during that call and starts no further heavy call (no timing assertions: the blocked
call simply never returns before the job has stopped)."""

import threading

import numpy as np
import pytest
import torch

from engines.jobs import CancelToken, JobCancelled, Progress, run_job


class Gate:
    """Wraps ``real``: the first ``free`` calls run it, the next one blocks until released."""

    def __init__(self, real, free: int = 1):
        self.real, self.free = real, free
        self.calls = 0
        self.blocked = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls > self.free:
            self.blocked.set()
            self.release.wait(60)
            self.finished.set()
        return self.real(*args, **kwargs)


def cancel_while_blocked(job, gate: Gate):
    """Run ``job``; cancel at the first Progress once ``gate`` blocks; the job must stop while it still blocks."""
    token = CancelToken()

    def on_event(event):
        if gate.blocked.is_set() and isinstance(event, Progress):
            token.cancel()

    try:
        with pytest.raises(JobCancelled):
            run_job(job, on_event=on_event, cancel=token)
        assert gate.blocked.is_set() and not gate.finished.is_set()  # stopped during the call, not after it
        assert gate.calls == gate.free + 1  # and started no further call
    finally:
        gate.release.set()
    assert gate.finished.wait(60)  # the abandoned call ends in the background


def _photos(n=2, side=64):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(n)]


def test_learned_codec_training_stops_inside_a_step(monkeypatch):
    from engines.codec import learned

    gate = Gate(learned._train_step)
    monkeypatch.setattr(learned, "_train_step", gate)
    torch.set_num_threads(1)
    cancel_while_blocked(learned.train_job(_photos(), kind="hyperprior", N=8, M=8, steps=5, patch=64, batch=1), gate)


def test_tokenizer_training_stops_inside_a_step(monkeypatch):
    from engines.codec import token_lab

    gate = Gate(token_lab._train_step)
    monkeypatch.setattr(token_lab, "_train_step", gate)
    cancel_while_blocked(token_lab.train_tokenizer_job(_photos(), "fsq", 8, steps=5, patch=32, batch=2, eval_every=100),
                         gate)


def test_digits_training_stops_inside_a_step(monkeypatch, tmp_path):
    from engines.generation import train_digits

    gate = Gate(train_digits._train_step)
    monkeypatch.setattr(train_digits, "_train_step", gate)
    cancel_while_blocked(train_digits.train_digits_job(tmp_path / "digits", steps=5, batch_size=2, save_every=0,
                                                       channels=(8, 16, 16)), gate)


def test_sphere_fit_stops_inside_a_step(monkeypatch):
    from engines.render import fit

    gate = Gate(fit._spheres_loss)
    monkeypatch.setattr(fit, "_spheres_loss", gate)
    target = np.random.default_rng(0).random((24, 24, 3)).astype(np.float32)
    cancel_while_blocked(fit.fit_job([target], None, fit.FitSettings(count=30, steps=5, primitive="spheres")), gate)


def test_raygauss_still_stops_inside_a_tile(monkeypatch):
    from engines.render import raygauss
    from engines.render.camera import frame_camera
    from engines.render.scene import Gaussians

    g = torch.Generator().manual_seed(0)
    n = 40
    scene = Gaussians(torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g) - 3,
                      torch.randn(n, generator=g), torch.randn(n, 1, 3, generator=g))
    camera = frame_camera(scene.means.numpy(), 20.0, 10.0, 64, 48, 45.0)
    gate = Gate(raygauss._cast_tile, free=2)
    monkeypatch.setattr(raygauss, "_cast_tile", gate)
    cancel_while_blocked(raygauss.raygauss_still_job(scene, camera, tile=16), gate)


def test_compare_stops_during_the_codec_call_and_skips_the_metrics(monkeypatch):
    from engines.codec import metrics, realcodecs
    from engines.codec.tasks import compare_job

    gate = Gate(realcodecs.run_codec, free=0)
    monkeypatch.setattr(realcodecs, "run_codec", gate)
    monkeypatch.setattr(metrics, "ssim", lambda *a: pytest.fail("metrics computed after the cancel"))
    cancel_while_blocked(compare_job(_photos(1, 32)[0], "jpeg", 50.0), gate)


def test_forest_classify_stops_during_the_fit_and_never_scores(monkeypatch):
    from sklearn.ensemble import RandomForestClassifier

    from engines.volume.classify import ClassSpec, Strokes, classify_job, features_job

    data = np.random.default_rng(0).random((12, 12, 12)).astype(np.float32)
    features = run_job(features_job(data, factor=1))
    strokes = Strokes([ClassSpec("a"), ClassSpec("b")])
    strokes.add(0, np.array([[1, 1, 1], [2, 2, 2]]))
    strokes.add(1, np.array([[9, 9, 9], [10, 10, 10]]))
    gate = Gate(RandomForestClassifier.fit, free=0)
    monkeypatch.setattr(RandomForestClassifier, "fit", lambda self, *a, **k: gate(self, *a, **k))
    monkeypatch.setattr(RandomForestClassifier, "predict_proba", lambda *a: pytest.fail("scored after the cancel"))
    cancel_while_blocked(classify_job(features, strokes, method="forest", n_trees=2), gate)


def test_volume_read_stops_during_the_read_and_never_prepares(monkeypatch, tmp_path):
    from engines.volume import readers
    from panels.volume import panel

    np.save(tmp_path / "vol.npy", np.zeros((4, 5, 6), np.float32))
    gate = Gate(readers.open_volume, free=0)
    monkeypatch.setattr(readers, "open_volume", gate)
    monkeypatch.setattr(panel, "prepare_volume", lambda *a: pytest.fail("prepared after the cancel"))
    cancel_while_blocked(panel._read_job(str(tmp_path / "vol.npy"), False), gate)


def test_batch_cancelled_during_the_executor_start_up_closes_the_executor_once_started(tmp_path):
    from engines.batch.runner import batch_job
    from engines.batch.spec import Batch

    class SlowStart:
        name, startup_seconds = "slow", 0.0

        def __init__(self):
            self.closed = threading.Event()

        def start(self):
            pass

        def run(self, tasks, blobs):
            pytest.fail("tasks sent after the cancel")

        def describe(self):
            return {"name": self.name}

        def close(self):
            self.closed.set()

    executor = SlowStart()
    gate = Gate(executor.start, free=0)
    executor.start = gate
    batch = Batch("b", [])
    cancel_while_blocked(batch_job(batch, executor, tmp_path / "out", blobs={}), gate)
    assert executor.closed.wait(10)  # started after the job was cancelled: closed again, no leaked cluster


def test_energy_compaction_stops_during_a_curve(monkeypatch):
    from engines.codec import analysis

    built = []
    monkeypatch.setattr(analysis, "get_transform", lambda name, n, m: built.append(name) or name)
    gate = Gate(lambda image, tr: np.zeros(3))
    monkeypatch.setattr(analysis, "energy_compaction", gate)
    cancel_while_blocked(analysis.compaction_job(_photos(1, 32)[0], 8, 2, names=["dct", "wht", "sdct"]), gate)
    assert built == ["dct", "wht"]  # the third transform was never built: nothing ran after the cancel


def test_scene_open_stops_during_the_read_and_never_prepares_the_view(monkeypatch, tmp_path):
    from engines.render import io
    from panels.render import panel

    (tmp_path / "scene.ply").write_bytes(b"ply\n")
    gate = Gate(lambda path: None, free=0)  # the read blocks (its result is never used)
    monkeypatch.setattr(io, "load_scene", gate)
    monkeypatch.setattr(panel, "viewer_arrays", lambda *a: pytest.fail("prepared after the cancel"))
    cancel_while_blocked(panel._scene_job(str(tmp_path / "scene.ply")), gate)
