"""Progressive CPU frames of the splat view (worker thread, no OpenGL needed)."""

import time

import numpy as np

from engines.render.camera import frame_camera
from engines.render.preview import preview_scene, render_preview
from engines.render.synthetic import sphere_scene
from panels.render.cpu_view import ProgressiveRenderer, is_software_renderer


def _wait(renderer, full: bool, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = renderer.take()
        if got is not None and got[1] == full:
            return got[0]
        time.sleep(0.002)
    raise AssertionError("no frame")


def test_coarse_while_moving_then_full_frame():
    scene = sphere_scene(300, footprint=0.2)
    prep = preview_scene(scene)
    renderer = ProgressiveRenderer(threads=1)
    try:
        renderer.SETTLE = 0.3
        renderer.set_scene(prep, (0.1, 0.1, 0.1))
        cams = [frame_camera(scene.means, az, 10, 120, 90) for az in (0, 20, 40)]
        for cam in cams:  # moving: coarse frames at a reduced size
            renderer.request(cam.K.numpy(), cam.viewmat.numpy(), 120, 90)
            coarse = _wait(renderer, full=False)
            assert coarse.shape[0] < 90 and coarse.shape[1] < 120
        assert renderer.busy
        full = _wait(renderer, full=True)  # at rest: the full frame of the last camera
        assert not renderer.busy
        cam = cams[-1]
        np.testing.assert_array_equal(full, render_preview(prep, cam.K, cam.viewmat, 120, 90, (0.1, 0.1, 0.1)))
        assert len(renderer.frame_times) >= 4
    finally:
        renderer.close()


def test_software_renderer_names():
    assert is_software_renderer("llvmpipe (LLVM 15.0.6, 256 bits)")
    assert is_software_renderer("Mesa softpipe") and is_software_renderer("Google SwiftShader")
    assert not is_software_renderer("NVIDIA GeForce RTX 3060/PCIe/SSE2")
    assert not is_software_renderer("AMD Radeon Pro 5500M OpenGL Engine")
