"""Progressive CPU frames of the splat view (worker thread, no OpenGL needed)."""

import time

import numpy as np
import pytest

from engines.render.camera import frame_camera
from engines.render.preview import Cancelled, preview_scene, render_preview
from engines.render.synthetic import sphere_scene
from panels.render.cpu_view import ProgressiveRenderer, is_software_renderer


def _wait(renderer, full: bool, timeout=90.0):  # the first call may compile the kernels
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        got = renderer.take()
        if got is not None and got[1] == full:
            return got[0]
        time.sleep(0.002)
    raise AssertionError("no frame")


class _FrozenClock:
    """The ``time`` module as panels.render.cpu_view sees it, with ``monotonic`` moved by the test
    only: whether the camera moves or rests does not depend on how fast a loaded machine runs."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


def test_coarse_while_moving_then_full_frame(monkeypatch):
    from panels.render import cpu_view

    clock = _FrozenClock()
    monkeypatch.setattr(cpu_view, "time", clock)
    scene = sphere_scene(300, footprint=0.2)
    prep = preview_scene(scene)
    renderer = ProgressiveRenderer(threads=1)
    try:
        renderer.set_scene(prep, (0.1, 0.1, 0.1))
        cams = [frame_camera(scene.means, az, 10, 120, 90) for az in (0, 20, 40)]
        for cam in cams:  # moving (the clock stands still): coarse frames at a reduced size, never a full one
            renderer.request(cam.K.numpy(), cam.viewmat.numpy(), 120, 90)
            coarse = _wait(renderer, full=False)
            assert coarse.shape[0] < 90 and coarse.shape[1] < 120
        assert renderer.busy
        clock.now += renderer.settle_time + 1.0  # the camera has rested long enough
        full = _wait(renderer, full=True)  # at rest: the full frame of the last camera
        assert not renderer.busy
        cam = cams[-1]
        np.testing.assert_array_equal(full, render_preview(prep, cam.K, cam.viewmat, 120, 90, (0.1, 0.1, 0.1)))
        assert len(renderer.frame_times) >= 4
        assert [f for f, _, _ in renderer.frame_times[:3]] == [False] * 3  # no full frame before the rest
    finally:
        renderer.close()


def test_hidpi_view_coarse_at_logical_pixel_counts_then_still_then_device_frame(monkeypatch):
    """A view on a screen of pixel ratio 2 asks for 240x180 device pixels: coarse frames keep the
    pixel counts of the 120x90 logical size, at rest a still frame of the logical size comes first,
    then the full frame in device pixels - each equal to render_preview at its size."""
    from engines.render import preview
    from panels.render import cpu_view

    clock = _FrozenClock()
    monkeypatch.setattr(cpu_view, "time", clock)
    made = []  # every frame the worker renders: (image, scale)
    monkeypatch.setattr(preview, "render_preview",
                        lambda *a, **k: made.append((render_preview(*a, **k), k["scale"])) or made[-1][0])
    scene = sphere_scene(300, footprint=0.05)
    prep = preview_scene(scene)
    renderer = ProgressiveRenderer(threads=1)
    try:
        renderer.set_scene(prep, (0.1, 0.1, 0.1))
        logical = frame_camera(scene.means, 20, 10, 120, 90)
        device = logical.K.numpy().astype(np.float64).copy()
        device[:2] *= 2
        renderer.request(device, logical.viewmat.numpy(), 240, 180, ratio=2.0)
        scale = renderer.scale
        coarse = _wait(renderer, full=False)
        assert coarse.shape[:2] == (round(90 * scale), round(120 * scale))  # as at ratio 1
        clock.now += renderer.settle_time + 1.0
        full = _wait(renderer, full=True)
        (still, still_scale), (last, full_scale) = made[-2:]
        assert (still_scale, full_scale) == (0.5, 1.0) and last is full
        np.testing.assert_array_equal(still, render_preview(prep, logical.K, logical.viewmat, 120, 90, (0.1, 0.1, 0.1)))
        np.testing.assert_array_equal(full, render_preview(prep, device, logical.viewmat, 240, 180, (0.1, 0.1, 0.1)))
        assert not renderer.busy and [f for f, _, _ in renderer.frame_times[-2:]] == [True, True]
    finally:
        renderer.close()


def test_device_frame_size_is_capped():
    from panels.render.cpu_view import MAX_FRAME_PIXELS, device_frame_size

    assert device_frame_size(800, 600, 2.0) == (1600, 1200, 2.0)
    assert device_frame_size(800, 600, 1.0) == (800, 600, 1.0)
    w, h, r = device_frame_size(2000, 1200, 2.0)  # 9.6 Mpx at ratio 2: lowered to the cap
    assert 1.0 < r < 2.0 and w * h <= MAX_FRAME_PIXELS * 1.001 and abs(w / h - 2000 / 1200) < 0.01
    assert device_frame_size(4000, 3000, 2.0) == (4000, 3000, 1.0)  # never below the logical size


def test_software_renderer_names():
    assert is_software_renderer("llvmpipe (LLVM 15.0.6, 256 bits)")
    assert is_software_renderer("Mesa softpipe") and is_software_renderer("Google SwiftShader")
    assert not is_software_renderer("NVIDIA GeForce RTX 3060/PCIe/SSE2")
    assert not is_software_renderer("AMD Radeon Pro 5500M OpenGL Engine")


def _views(scene, size=(160, 120)):
    from panels.render.cpu_view import _View

    cams = [frame_camera(scene.means, az, 10, *size) for az in (0, 30)]
    return [_View(c.K.numpy().astype(np.float64), c.viewmat.numpy().astype(np.float64), *size, 1) for c in cams]


def test_at_rest_the_full_frame_comes_next_and_stale_coarse_frames_are_aborted():
    scene = sphere_scene(200, footprint=0.2)
    renderer = ProgressiveRenderer(threads=1)
    renderer.close()  # logic only: no worker
    a, b = _views(scene)
    renderer._prep, renderer._generation = preview_scene(scene), 1
    with renderer._cond:
        renderer._wanted, renderer._changed_at, renderer._coarse_for = b, time.monotonic() - 1.0, None
        assert renderer._next_job() == (b, renderer.FULL)  # resting: no coarse frame of b is queued first
        renderer._changed_at = time.monotonic()
        assert renderer._next_job() == (b, renderer.COARSE)  # moving: coarse
    flag = np.zeros(1, np.int8)
    renderer._job = (a, False, flag)  # a coarse frame of the older camera a in flight
    renderer.take()
    assert flag[0] == 0  # still moving: it finishes and is shown
    renderer._changed_at = time.monotonic() - 1.0
    renderer.take()
    assert flag[0] == 1  # camera at rest: the stale coarse frame gives way to the full frame
    flag = np.zeros(1, np.int8)
    renderer._job = (b, False, flag)
    renderer.take()
    assert flag[0] == 0  # a coarse frame of the resting camera itself is not thrown away
    renderer._job = (b, True, flag)
    renderer.request(a.K, a.view, a.width, a.height)
    assert flag[0] == 1  # a full frame is aborted by the next camera at once


def test_full_frame_in_flight_is_aborted_by_a_new_camera():
    scene = sphere_scene(20000, footprint=0.6)
    prep = preview_scene(scene)
    renderer = ProgressiveRenderer(threads=1)
    try:
        renderer.SETTLE = 0.0
        renderer.set_scene(prep)
        a, b = _views(scene, (640, 480))
        renderer.request(a.K, a.view, a.width, a.height)
        end = time.monotonic() + 20
        while (renderer._job is None or not renderer._job[1]) and time.monotonic() < end:
            time.sleep(0.001)
        assert renderer._job is not None and renderer._job[1]  # the full frame of a is being rendered
        renderer.request(b.K, b.view, b.width, b.height)
        assert renderer.wait_full(30)
        assert renderer.aborted >= 1
        full = _wait(renderer, full=True)
        np.testing.assert_array_equal(full, render_preview(prep, b.K, b.view, 640, 480))
    finally:
        renderer.close()


def test_coarse_level_follows_the_frame_time():
    renderer = ProgressiveRenderer(threads=1)
    renderer.close()
    for _ in range(40):  # contended CPU: every frame takes 4x the target
        renderer._adapt(4 * renderer.TARGET)
    assert renderer.scale == renderer.MIN_SCALE and renderer.stride >= 8
    for _ in range(60):  # quiet again: all splats, larger frames
        renderer._adapt(0.1 * renderer.TARGET)
    assert renderer.stride == 1 and renderer.scale > 0.3


def test_abort_flag_stops_a_frame():
    scene = sphere_scene(200, footprint=0.2)
    cam = frame_camera(scene.means, 0, 10, 40, 30)
    with pytest.raises(Cancelled):
        render_preview(preview_scene(scene), cam.K, cam.viewmat, 40, 30, abort=np.ones(1, np.int8))


def test_rest_waits_longer_when_camera_updates_come_slowly():
    scene = sphere_scene(50, footprint=0.2)
    renderer = ProgressiveRenderer(threads=1)
    renderer.close()  # logic only
    a, b = _views(scene)
    for k in range(6):  # a move drawn at 60 Hz: the rest threshold stays SETTLE
        view = (a, b)[k % 2]
        renderer.request(view.K, view.view, view.width, view.height)
        time.sleep(0.005)
    assert renderer.settle_time == renderer.SETTLE
    for k in range(8):  # a loaded machine drawing every 100 ms: a pause of 120 ms is not a rest
        view = (a, b)[k % 2]
        renderer.request(view.K, view.view, view.width, view.height)
        time.sleep(0.1)
    assert 0.2 < renderer.settle_time <= 0.31


def test_a_hidden_view_renders_nothing_and_its_frame_in_flight_is_aborted(qtbot):
    from qtpy.QtWidgets import QWidget

    from panels.render.cpu_view import PauseWhenHidden

    scene = sphere_scene(60_000, footprint=0.05)  # a full frame takes a good part of a second
    renderer = ProgressiveRenderer(threads=1)
    widget = QWidget()
    qtbot.addWidget(widget)
    PauseWhenHidden(widget, renderer)
    try:
        renderer.SETTLE = 0.0
        renderer.set_scene(preview_scene(scene))
        cam = frame_camera(scene.means, 15, 10, 640, 480)
        renderer.request(cam.K.numpy(), cam.viewmat.numpy(), 640, 480)
        _wait(renderer, full=True)  # the view renders while shown (never shown yet: not paused either)
        widget.show()
        qtbot.waitExposed(widget)
        cam = frame_camera(scene.means, 60, 10, 640, 480)
        renderer.request(cam.K.numpy(), cam.viewmat.numpy(), 640, 480)  # a full frame starts at once
        widget.hide()  # e.g. the Fit tab shown: the frame in flight stops, no new one starts
        aborted, frames = renderer.aborted, len(renderer.frame_times)
        time.sleep(0.5)
        assert renderer.take() is None and renderer.busy
        assert len(renderer.frame_times) == frames and renderer.aborted <= aborted + 1
        widget.show()  # shown again: the latest camera's full frame comes
        full = _wait(renderer, full=True)
        np.testing.assert_array_equal(full, render_preview(renderer._prep, cam.K, cam.viewmat, 640, 480))
    finally:
        renderer.close()
