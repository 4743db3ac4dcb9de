"""Viewer frame rate: 100k Gaussian splats at 800x600, OpenGL splats vs progressive CPU frames, same run.

1. OpenGL path (``renderer="gl"``): frames per second for drawing only and for an orbit step
   (camera change -> re-sort + draw), off-screen rendered with ``canvas.render()``.
2. Progressive CPU path (``renderer="cpu"``, what the view uses on a software OpenGL such as
   llvmpipe): the camera orbits for ``--seconds`` (a 16 ms QTimer step, the Qt event loop running as
   in the application); counts the frames that reached the screen -> frames per second while
   orbiting, then stops and measures the time until the full-resolution frame is shown.
3. Baseline: the exact rasterizer (numba tiles) for one still of the same view.
4. The full CPU frame at the logical size and at pixel ratio 2 (what a HiDPI screen gets, drawn 1:1).
   Run with ``QT_SCALE_FACTOR=2`` to measure the view itself at pixel ratio 2 (coarse frames keep the
   logical size's pixel counts; the full frame is rendered at the device pixels).

    xvfb-run -a python benchmarks/render_viewer.py [--count 100000] [--seconds 4]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _make_canvas(app, scene, renderer: str):
    import numpy as np

    from engines.render.project import covariance_3d
    from panels.render.viewer import SplatCanvas

    canvas = SplatCanvas(renderer=renderer)
    canvas.canvas.size = (800, 600)
    canvas.canvas.show()
    app.processEvents()
    colors = np.concatenate([scene.rgb.numpy(), scene.opacities.numpy()[:, None]], 1)
    canvas.set_splats(scene.means.numpy(), colors, covariance_3d(scene.quats, scene.scales).numpy(),
                      np.zeros(len(scene), bool))
    canvas.frame_all()
    return canvas


def gl_path(app, scene, frames: int) -> tuple[float, float, str]:
    """(draw fps, orbit fps, GL_RENDERER) of the OpenGL splats."""
    canvas = _make_canvas(app, scene, "gl")
    canvas.canvas.render()  # warm-up (shader compile, buffer upload, first sort)
    t0 = time.perf_counter()
    for _ in range(frames):
        canvas.canvas.render()
    draw = (time.perf_counter() - t0) / frames
    t0 = time.perf_counter()
    for _ in range(frames):
        canvas.view.camera.azimuth += 360.0 / 90  # 4 degree steps: re-sort + draw
        canvas.canvas.render()
    orbit = (time.perf_counter() - t0) / frames
    name = canvas.gl_renderer
    canvas.canvas.close()
    del canvas
    gc.collect()  # free the GL canvas here, not in a GC pass on a worker thread
    return 1 / draw, 1 / orbit, name


def cpu_path(app, scene, seconds: float) -> dict:
    """Progressive CPU view: frames shown per second while orbiting, time to the full frame at rest."""
    canvas = _make_canvas(app, scene, "cpu")
    canvas.settle(60)  # numba compile + first full frame
    shown = []
    take = canvas._take_frame

    def counting_take(event=None):  # SplatCanvas._take_frame, recording when each frame reached the view
        result = canvas.progressive.take() if canvas.progressive else None
        if result is not None:
            shown.append((time.perf_counter(), result[1], result[0].shape))
            canvas.frame.set_frame(result[0])
            canvas.canvas.update()
        elif canvas.progressive is not None and not canvas.progressive.busy:
            canvas._cpu_timer.stop()

    canvas._cpu_timer.disconnect(take)
    canvas._cpu_timer.connect(counting_take)
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    camera = canvas.view.camera
    orbit = QTimer()  # the Qt event loop runs as in the application (blocking until events, no polling)
    orbit.setInterval(16)
    orbit.timeout.connect(lambda: setattr(camera, "azimuth", camera.azimuth + 1.0))
    t0, gui_cpu = time.perf_counter(), time.thread_time()
    orbit.start()
    QTimer.singleShot(round(1000 * seconds), loop.quit)
    loop.exec()
    orbit.stop()
    stop, gui_cpu = time.perf_counter(), time.thread_time() - gui_cpu
    moving = [s for s in shown if s[0] <= stop]
    poll = QTimer()
    poll.setInterval(2)
    poll.timeout.connect(lambda: (not canvas.progressive.busy and any(full for t, full, _ in shown if t > stop))
                         and loop.quit())
    poll.start()
    QTimer.singleShot(30_000, loop.quit)
    loop.exec()
    poll.stop()
    full_at = min((t for t, full, _ in shown if t > stop and full), default=float("nan"))
    logical = tuple(canvas.canvas.size[::-1])  # a HiDPI view shows a still frame of this size first
    still_at = min((t for t, full, shape in shown if t > stop and not full and shape[:2] == logical
                    and shape[:2] != tuple(canvas.canvas.physical_size[::-1])), default=float("nan"))
    times = [dt for full, dt, _ in canvas.progressive.frame_times if not full]
    cpu_times = [c for full, _, c in canvas.progressive.frame_times if not full]
    result = {"fps": len(moving) / (stop - t0), "to_full": full_at - stop, "to_still": still_at - stop,
              "coarse_shape": moving[-1][2] if moving else None,
              "stride": canvas.progressive.stride, "coarse_ms": 1000 * sum(times) / max(1, len(times)),
              "coarse_cpu_ms": 1000 * sum(cpu_times) / max(1, len(cpu_times)),
              "gui_cpu_ms": 1000 * gui_cpu / max(1, len(moving)),
              "full_ms": 1000 * canvas.progressive.frame_times[-1][1], "aborted": canvas.progressive.aborted,
              "full_size": "x".join(map(str, next((shape[1::-1] for t, full, shape in reversed(shown) if full), ()))),
              "settle_ms": 1000 * canvas.progressive.settle_time}
    canvas.progressive.close()
    canvas.canvas.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--frames", type=int, default=3, help="frames timed on the OpenGL path")
    parser.add_argument("--seconds", type=float, default=4.0, help="orbit duration on the CPU path")
    args = parser.parse_args()
    import numpy as np
    import torch
    from qtpy.QtWidgets import QApplication

    torch.set_num_threads(1)
    app = QApplication.instance() or QApplication([])
    from engines.jobs import run_job
    from engines.render.camera import frame_camera
    from engines.render.still import still_job
    from engines.render.synthetic import sphere_scene

    scene = sphere_scene(args.count, footprint=0.5 / np.sqrt(args.count / 1000))
    print(f"{len(scene)} splats @ 800x600 (screen pixel ratio {app.devicePixelRatio():g}), {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    draw, orbit, renderer = gl_path(app, scene, args.frames)
    print(f"OpenGL splats ({renderer}): draw {draw:.2f} fps, orbit step (re-sort + draw) {orbit:.2f} fps")
    cpu = cpu_path(app, scene, args.seconds)
    print(f"progressive CPU view: {cpu['fps']:.1f} frames/s shown while orbiting (coarse {cpu['coarse_shape']}, "
          f"splat stride {cpu['stride']}, {cpu['coarse_ms']:.0f} ms each, {cpu['coarse_cpu_ms']:.0f} ms of CPU), "
          + (f"still {cpu['to_still']:.2f} s and " if cpu['to_still'] == cpu['to_still'] else "")
          + f"full {cpu['full_size']} frame {cpu['to_full']:.2f} s after the camera stopped ({cpu['full_ms']:.0f} ms to render, "
          f"rest detected after {cpu['settle_ms']:.0f} ms); {cpu['aborted']} frames aborted; GUI thread "
          f"{cpu['gui_cpu_ms']:.0f} ms of CPU per frame shown")
    cam = frame_camera(scene.means, 30, 10, 800, 600, 45.0)
    run_job(still_job(scene, cam, "classic"))  # warm-up
    t0 = time.perf_counter()
    run_job(still_job(scene, cam, "classic"))
    exact = time.perf_counter() - t0
    print(f"exact rasterizer still: {1 / exact:.2f} fps | CPU view orbit / OpenGL orbit: {cpu['fps'] / orbit:.1f}x")
    print("full CPU frame (2 threads, median of 3): " + full_frame_cost(scene, cam))


def full_frame_cost(scene, cam) -> str:
    """The CPU view's full frame of ``cam`` (800x600) at the logical size and at pixel ratio 2."""
    import numpy as np

    from engines.render.preview import preview_scene, render_preview

    prep = preview_scene(scene)
    K, view = cam.K.numpy().astype(np.float64), cam.viewmat.numpy().astype(np.float64)
    ms = {}
    for ratio in (1, 2):
        device = K.copy()
        device[:2] *= ratio
        args = (prep, device, view, cam.width * ratio, cam.height * ratio)
        render_preview(*args, threads=2, bands=8)  # warm-up
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            render_preview(*args, threads=2, bands=8)
            times.append(time.perf_counter() - t0)
        ms[ratio] = 1000 * float(np.median(times))
    return (f"{cam.width}x{cam.height} {ms[1]:.0f} ms, {2 * cam.width}x{2 * cam.height} (pixel ratio 2, drawn 1:1) "
            f"{ms[2]:.0f} ms: {ms[2] / ms[1]:.1f}x")


if __name__ == "__main__":
    main()
