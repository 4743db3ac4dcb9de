"""Job threads run below the GUI thread's CPU priority (Linux nice), and so do the threads they start."""

import os
import sys
import threading

import pytest

from engines.jobs import Progress, run_job, wait_in_thread
from engines.thread_priority import background_nice, lower_current_thread

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _in_new_thread(fn):
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("value", fn()))
    thread.start()
    thread.join(30)
    return box["value"]


def test_lowered_thread_and_its_children_run_at_the_background_nice_the_caller_does_not():
    before = _nice()

    def lowered():
        assert lower_current_thread()
        child = _in_new_thread(_nice)  # a helper thread it starts inherits the priority
        return _nice(), child

    own, child = _in_new_thread(lowered)
    assert own == child == max(before, background_nice()) == max(before, 10)
    assert _nice() == before  # the calling (GUI) thread is untouched


def test_setting_zero_leaves_threads_alone(monkeypatch):
    monkeypatch.setenv("SPECTRA_BACKGROUND_NICE", "0")
    before = _nice()
    assert _in_new_thread(lambda: (lower_current_thread(), _nice())) == (False, before)


def test_wait_in_thread_helper_keeps_the_job_priority():
    def job():
        lower_current_thread()
        return (yield from wait_in_thread(_nice, announce=Progress(0, 1, "measuring")))

    assert _in_new_thread(lambda: run_job(job())) == max(_nice(), 10)


def test_studio_jobs_run_below_the_gui_thread(qtbot):
    from studio.jobs import DONE, JobQueue

    gui = _nice()

    def job():
        yield Progress(0, 1, "measuring")
        return _nice()

    queue = JobQueue()
    results = []
    handle = queue.submit("nice", "test", job, on_result=results.append)
    assert queue.wait_all(30)
    assert handle.state == DONE and results == [max(gui, 10)]
    assert _nice() == gui


def test_the_views_own_worker_threads_run_below_the_gui_thread():
    """Threads that are no jobs but work in the background also give way to the GUI thread: the Render
    CPU view's frame thread and its preview pool (they ran at the GUI thread's priority and took the CPU
    from it while a fit ran) and the GL view's sort pool."""
    import numpy as np

    from engines.render.camera import frame_camera
    from engines.render.preview import preview_scene
    from engines.render.synthetic import sphere_scene
    from panels.render.cpu_view import ProgressiveRenderer

    if background_nice() <= 0:
        pytest.skip("SPECTRA_BACKGROUND_NICE=0")
    gui = _nice()
    scene = sphere_scene(3000, footprint=0.05)
    cam = frame_camera(scene.means, 0.0, 0.0, 320, 240)
    renderer = ProgressiveRenderer(threads=2)
    try:
        renderer.set_scene(preview_scene(scene))
        renderer.request(cam.K.numpy(), cam.viewmat.numpy(), 320, 240)
        assert renderer.wait_full(60)
        workers = [t for t in threading.enumerate() if t.name == "splat-cpu-view" or t.name.startswith("preview")]
        assert any(t.name.startswith("preview") for t in workers)  # two threads: the pool rendered bands
        for thread in workers:
            assert os.getpriority(os.PRIO_PROCESS, thread.native_id) >= background_nice(), thread.name
    finally:
        renderer.close()
    assert _nice() == gui  # this thread untouched
