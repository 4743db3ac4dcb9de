"""The job queue: worker threads, progress, cancel, pause, errors, one job at a time per device."""

import threading
import time

import pytest

from engines.jobs import CancelToken, JobCancelled, Log, Preview, Progress, run_job
from studio.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobQueue


def counting_job(steps, record, delay=0.01, fail_at=None, error=ValueError):
    record["thread"] = threading.get_ident()
    record["done"] = 0
    try:
        for i in range(steps):
            time.sleep(delay)
            if fail_at is not None and i == fail_at:
                raise error(f"step {i} exploded")
            record["done"] = i + 1
            yield Progress(i + 1, steps, f"step {i + 1}")
            yield Preview(image=None, data={"step": i + 1})
        yield Log("all steps done")
        return sum(range(steps))
    finally:
        record["closed"] = True


def test_run_job_returns_result_and_events():
    events = []
    record = {}
    assert run_job(counting_job(5, record, delay=0), events.append) == 10
    assert [e.done for e in events if isinstance(e, Progress)] == [1, 2, 3, 4, 5]
    assert record["closed"]


def test_run_job_cancel_token_stops_between_yields():
    token = CancelToken()
    record = {}

    def on_event(event):
        if isinstance(event, Progress) and event.done == 2:
            token.cancel()

    with pytest.raises(JobCancelled):
        run_job(counting_job(50, record, delay=0), on_event, token)
    assert record["done"] == 2 and record["closed"]


def test_job_runs_on_worker_thread_and_reports_progress(qtbot):
    queue = JobQueue()
    record, events, results = {}, [], []
    handle = queue.submit("count", "test", lambda: counting_job(10, record), on_event=events.append,
                          on_result=results.append)
    assert queue.wait_all(30)
    assert handle.state == DONE
    assert results == [45]
    assert record["thread"] != threading.get_ident()
    fractions = [e.fraction for e in events if isinstance(e, Progress)]
    assert fractions and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    assert handle.record.fraction == 1.0


def test_cancel_midway_stops_the_generator(qtbot):
    queue = JobQueue()
    record, results, cancelled = {}, [], []
    handle = queue.submit("slow", "test", lambda: counting_job(400, record, delay=0.01),
                          on_result=results.append, on_cancel=lambda: cancelled.append(True))
    qtbot.waitUntil(lambda: record.get("done", 0) >= 3, timeout=10000)
    handle.cancel()
    assert queue.wait_all(30)
    assert handle.state == CANCELLED
    assert results == [] and cancelled == [True]
    assert 3 <= record["done"] < 400
    assert record["closed"]  # the generator's finally ran (closed cleanly)
    stopped_at = record["done"]
    time.sleep(0.1)
    assert record["done"] == stopped_at


@pytest.mark.parametrize("error", [ValueError, RuntimeError, ZeroDivisionError])
def test_exception_reaches_error_signal_and_app_stays_usable(qtbot, error):
    queue = JobQueue()
    failed, logs, errors = [], [], []
    queue.failed.connect(failed.append)
    queue.log.connect(lambda level, message, details: logs.append((level, message, details)))
    handle = queue.submit("boom", "test", lambda: counting_job(10, {}, fail_at=3, error=error),
                          on_error=errors.append)
    assert queue.wait_all(30)
    assert handle.state == FAILED
    assert "step 3 exploded" in handle.record.error
    assert failed and errors and failed[0] is handle.record
    assert any(level == "error" and "step 3 exploded" in msg and "Traceback" in details
               for level, msg, details in logs)
    # the queue still runs jobs afterwards
    ok = queue.submit("after", "test", lambda: counting_job(3, {}))
    assert queue.wait_all(30) and ok.state == DONE


def test_one_running_job_per_device_others_wait(qtbot):
    queue = JobQueue(max_running=1)
    first_rec, second_rec = {}, {}
    first = queue.submit("first", "test", lambda: counting_job(30, first_rec, delay=0.01), device="cpu")
    second = queue.submit("second", "test", lambda: counting_job(3, second_rec), device="cpu")
    other = queue.submit("other device", "test", lambda: counting_job(3, {}), device="cuda")
    assert second.state == QUEUED
    qtbot.waitUntil(lambda: first_rec.get("done", 0) >= 1, timeout=10000)
    assert second.state == QUEUED and "done" not in second_rec
    assert queue.wait_all(30)
    assert first.state == second.state == other.state == DONE
    assert first.record.ended <= second.record.started


def test_cancel_queued_job_never_starts(qtbot):
    queue = JobQueue(max_running=1)
    rec = {}
    queue.submit("first", "test", lambda: counting_job(20, {}, delay=0.01))
    waiting = queue.submit("waiting", "test", lambda: counting_job(3, rec))
    waiting.cancel()
    assert queue.wait_all(30)
    assert waiting.state == CANCELLED and rec == {}


def test_pause_and_resume(qtbot):
    queue = JobQueue()
    rec = {}
    handle = queue.submit("pausable", "test", lambda: counting_job(200, rec, delay=0.005))
    qtbot.waitUntil(lambda: rec.get("done", 0) >= 2, timeout=10000)
    handle.pause()
    qtbot.waitUntil(lambda: handle.state == "paused", timeout=10000)
    frozen = rec["done"]
    qtbot.wait(200)
    assert rec["done"] == frozen
    handle.resume()
    qtbot.waitUntil(lambda: handle.state == RUNNING, timeout=10000)
    assert queue.wait_all(30) and handle.state == DONE and rec["done"] == 200


def test_fast_previews_are_throttled_but_last_one_arrives(qtbot):
    def chatty():
        for i in range(5000):
            yield Preview(data={"i": i})
        return "ok"

    queue = JobQueue()
    seen = []
    queue.submit("chatty", "test", chatty, on_event=seen.append)
    assert queue.wait_all(30)
    assert seen[-1].data["i"] == 4999
    assert len(seen) < 5000


def test_panel_callback_error_is_logged_not_raised(qtbot):
    queue = JobQueue()
    logs = []
    queue.log.connect(lambda level, message, details: logs.append((level, message)))

    def bad_callback(result):
        raise KeyError("missing")

    handle = queue.submit("ok", "test", lambda: counting_job(2, {}), on_result=bad_callback)
    assert queue.wait_all(30)
    assert handle.state == DONE
    assert any(level == "error" and "missing" in message for level, message in logs)


# -- the truthful queue ------------------------------------------------------------------------------
def stubborn_job(release: threading.Event, record: dict):
    """Yields once, then blocks (no yield) until ``release`` is set: a cancel must wait for it."""
    try:
        yield Progress(1, 4, "first quarter")
        record["blocked"] = True
        release.wait(20)
        yield Progress(2, 4, "half")
        return "finished"
    finally:
        record["closed"] = True


def test_job_is_queued_until_a_pool_thread_really_starts_it(qtbot):
    from qtpy.QtCore import QThreadPool

    pool = QThreadPool.globalInstance()
    saved = pool.maxThreadCount()
    pool.setMaxThreadCount(1)
    try:
        queue = JobQueue(max_running=1)
        release, rec = threading.Event(), {}
        first = queue.submit("first", "test", lambda: stubborn_job(release, rec), device="cpu")
        second = queue.submit("other device", "test", lambda: counting_job(2, {}), device="cuda")
        qtbot.waitUntil(lambda: rec.get("blocked", False), timeout=10000)
        qtbot.wait(100)
        # the second job has its device slot, but no thread: it is waiting, not running
        assert first.state == RUNNING and second.state == QUEUED and second.record.started is None
        release.set()
        assert queue.wait_all(30) and first.state == second.state == DONE
        assert second.record.started >= first.record.ended - 0.05
    finally:
        pool.setMaxThreadCount(saved)


def test_cancelling_until_the_generator_really_stopped(qtbot):
    from studio.jobs import CANCELLING

    queue = JobQueue()
    release, rec, cancelled = threading.Event(), {}, []
    handle = queue.submit("stubborn", "test", lambda: stubborn_job(release, rec), on_cancel=lambda: cancelled.append(1))
    qtbot.waitUntil(lambda: rec.get("blocked", False), timeout=10000)
    handle.cancel()
    qtbot.wait(200)
    assert handle.state == CANCELLING and "closed" not in rec and cancelled == []
    assert handle.record.remaining() is None
    release.set()
    qtbot.waitUntil(lambda: handle.state == CANCELLED, timeout=10000)
    assert rec["closed"] and cancelled == [1] and handle.record.remaining() is None


def test_cancelled_job_frees_its_slot_only_when_stopped(qtbot):
    queue = JobQueue(max_running=1)
    release, rec, nxt = threading.Event(), {}, {}
    first = queue.submit("stubborn", "test", lambda: stubborn_job(release, rec))
    second = queue.submit("next", "test", lambda: counting_job(2, nxt))
    qtbot.waitUntil(lambda: rec.get("blocked", False), timeout=10000)
    first.cancel()
    qtbot.wait(200)
    assert second.state == QUEUED and nxt == {}  # the device is still busy with the stopping job
    release.set()
    assert queue.wait_all(30) and first.state == CANCELLED and second.state == DONE


def test_one_eta_shared_by_table_and_status_line(qtbot, monkeypatch):
    import studio.jobs as jobs
    from studio.widgets.job_table import JobTable, format_seconds, queue_summary

    clock = [1000.0]
    monkeypatch.setattr(jobs, "_now", lambda: clock[0])
    queue = JobQueue()
    table = JobTable(queue)
    qtbot.addWidget(table)
    release, rec = threading.Event(), {}
    handle = queue.submit("eta", "test", lambda: stubborn_job(release, rec))
    qtbot.waitUntil(lambda: handle.record.fraction == 0.25, timeout=10000)
    clock[0] += 30.0  # 30 s for a quarter: 90 s left
    table.update_record(handle.record)
    assert handle.record.remaining() == pytest.approx(90.0)
    assert table.item(0, 4).text() == format_seconds(90.0) == "1:30"
    assert queue_summary(queue.records()) == "jobs: 1 running, 0 waiting · 1:30 left"
    handle.cancel()
    release.set()
    qtbot.waitUntil(lambda: handle.state == CANCELLED, timeout=10000)
    assert table.item(0, 4).text() == "–" and table.item(0, 5).text() == "cancelled"
    assert queue_summary(queue.records()) == "jobs: 0 running, 0 waiting"


def test_ended_rows_keep_no_stale_progress_text(qtbot):
    """A job cancelled while it waits for a pool thread, or cancelled mid-run, or failed: its row says
    so, with no "waiting for a worker thread", step text or time left from before."""
    from qtpy.QtCore import QThreadPool

    from studio.widgets.job_table import JobTable

    pool = QThreadPool.globalInstance()
    saved = pool.maxThreadCount()
    pool.setMaxThreadCount(1)
    try:
        queue = JobQueue(max_running=1)
        table = JobTable(queue)
        qtbot.addWidget(table)
        release, rec = threading.Event(), {}
        first = queue.submit("first", "test", lambda: stubborn_job(release, rec), device="cpu")
        waiting = queue.submit("other device", "test", lambda: counting_job(2, {}), device="cuda")
        qtbot.waitUntil(lambda: rec.get("blocked", False), timeout=10000)

        def bar(row):
            return table.cellWidget(row, 2)

        qtbot.waitUntil(lambda: bar(0).format() == "25%  first quarter", timeout=10000)
        assert waiting.state == QUEUED and bar(1).format() == "waiting for a worker thread"
        waiting.cancel()
        first.cancel()
        assert bar(0).format() == "25%  cancelling…" and table.item(0, 4).text() == "–"
        release.set()
        assert queue.wait_all(30) and first.state == waiting.state == CANCELLED
        assert bar(1).format() == waiting.record.message == "cancelled before it started"
        assert table.item(1, 3).text() == table.item(1, 4).text() == "–"
        assert bar(0).format() == first.record.message == "cancelled at 25%"
        assert table.item(0, 4).text() == "–" and table.item(0, 5).text() == "cancelled"
        failing = queue.submit("boom", "test", lambda: counting_job(5, {}, delay=0.06, fail_at=2))
        assert queue.wait_all(30) and failing.state == FAILED
        assert bar(2).format() == "failed at 40%" and table.item(2, 4).text() == "–"
        done = queue.submit("ok", "test", lambda: counting_job(2, {}))
        assert queue.wait_all(30) and done.state == DONE and bar(3).format() == "100%  step 2"
    finally:
        pool.setMaxThreadCount(saved)


def test_table_percent_is_the_figure_a_panels_progress_bar_shows(qtbot):
    """One job, one figure: the job table's text and "cancelled at N%" round down as Qt's %p does on
    a 0..1000 bar (a panel's own bar at 2.6 % shows 2 %, so the table must not say 3 %)."""
    from qtpy.QtWidgets import QProgressBar

    from studio.jobs import percent

    bar = QProgressBar()
    qtbot.addWidget(bar)
    bar.setRange(0, 1000)
    for fraction in (0.0, 0.026, 0.29, 0.335, 0.5, 0.999, 1.0):
        bar.setValue(int(fraction * 1000))
        assert bar.text() == f"{percent(fraction)}%", fraction
