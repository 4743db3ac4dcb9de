"""Cancel reaches a stop within 1 s while a job waits on work that cannot be interrupted."""

import threading
import time

import pytest

from engines.jobs import CancelToken, JobCancelled, Progress, run_job, wait_in_thread


def _step(fn, *args):
    def job():
        value = yield from wait_in_thread(fn, *args, message="working", poll=0.02)
        return value

    return job()


def _cancel_when(token, text, nth=1):
    """(times, on_event): cancel ``token`` at the ``nth`` Progress whose message contains ``text``."""
    asked, seen = [], []

    def on_event(event):
        if isinstance(event, Progress) and text in event.message:
            seen.append(event)
            if len(seen) == nth:
                asked.append(time.monotonic())
                token.cancel()

    return asked, on_event


def test_wait_in_thread_returns_the_value_and_raises_the_error():
    events = []
    assert run_job(_step(lambda a, b: (time.sleep(0.1), a + b)[1], 2, 3), on_event=events.append) == 5
    assert events and all(isinstance(e, Progress) and e.message == "working" for e in events)

    def broken():
        raise ValueError("bad model")

    with pytest.raises(ValueError, match="bad model"):
        run_job(_step(broken))


def test_cancel_during_a_blocking_call_stops_at_once_and_the_call_finishes():
    release, finished = threading.Event(), threading.Event()

    def slow_load():
        release.wait(10)
        finished.set()
        return "model"

    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    started = time.monotonic()
    with pytest.raises(JobCancelled):
        run_job(_step(slow_load), cancel=token)
    assert time.monotonic() - started < 1.2  # the call itself would take 10 s
    assert not finished.is_set()
    release.set()
    assert finished.wait(5)  # the abandoned call ends harmlessly in the background


def test_generate_cancel_during_a_cold_model_load(monkeypatch):
    """generate_job: the model load (uncancellable, here 3 s longer) no longer delays the cancel."""
    from engines.generation import api

    loaded = threading.Event()
    real = api.load_model

    def slow_load(info, device, *args, **kwargs):
        time.sleep(3.0)
        result = real(info, device, *args, **kwargs)
        loaded.set()
        return result

    monkeypatch.setattr(api, "load_model", slow_load)
    token = CancelToken()
    asked, on_event = _cancel_when(token, "weights")

    job = api.generate_job(api.GenerationParams(model="digits-flow", steps=2, batch=1, seed=1), device="cpu", cancel=token)
    with pytest.raises(JobCancelled):
        run_job(job, on_event=on_event, cancel=token)
    assert asked and time.monotonic() - asked[0] < 1.0
    assert not loaded.is_set()
    assert loaded.wait(60)  # the load completes in the background (and is cached by load_model)


def test_fit_cancel_while_the_kernels_load(monkeypatch):
    """fit_job loads the rasterizer kernels on a helper thread: a cancel meanwhile stops the job at once."""
    import numpy as np

    from engines.render import fit
    from engines.render import _kernels as kern
    from engines.render.rasterize import warm_kernels

    warm_kernels(("classic",))  # the real warm-up: afterwards the kernels are compiled in this process
    assert kern.forward_serial.signatures and kern.backward.signatures
    slow = threading.Event()
    monkeypatch.setattr(fit, "warm_kernels", lambda modes: slow.wait(3.0))
    token = CancelToken()
    asked, on_event = _cancel_when(token, "kernels")

    target = np.random.default_rng(0).random((24, 24, 3)).astype(np.float32)
    with pytest.raises(JobCancelled):
        run_job(fit.fit_job([target], None, fit.FitSettings(count=50, steps=5)), on_event=on_event, cancel=token)
    assert asked and time.monotonic() - asked[0] < 1.0
    slow.set()


def test_codec_encode_cancel_during_one_long_encode(monkeypatch):
    """encode_job runs the (uninterruptible) encode call on a helper thread: a cancel stops the job at once."""
    import numpy as np

    from engines.codec import blockcodec
    from engines.codec.tasks import encode_job

    slow = threading.Event()
    monkeypatch.setattr(blockcodec, "encode", lambda image, params: slow.wait(3.0))
    token = CancelToken()
    asked, on_event = _cancel_when(token, "encoding", nth=2)  # a poll while the encode runs
    image = np.zeros((32, 32, 3), np.uint8)
    with pytest.raises(JobCancelled):
        run_job(encode_job(image, blockcodec.BlockCodecParams(quality=50)), on_event=on_event, cancel=token)
    assert asked and time.monotonic() - asked[0] < 1.0
    slow.set()


def test_announce_is_yielded_before_the_call_starts_and_while_it_runs():
    """``announce=``: the step's event comes first (a close there never starts the call), then every poll."""
    calls = []
    step = Progress(1, 3, "decoding")

    def work():
        calls.append(1)
        time.sleep(0.1)
        return 7

    def job():
        return (yield from wait_in_thread(work, announce=step, poll=0.02))

    gen = job()
    assert next(gen) is step
    gen.close()  # cancelled at the announcement
    time.sleep(0.05)
    assert calls == []
    events = []
    assert run_job(job(), on_event=events.append) == 7
    assert calls == [1] and len(events) >= 2 and all(e is step for e in events)
    with pytest.raises(TypeError, match="not both"):
        next(wait_in_thread(len, "x", event=step, announce=step))
