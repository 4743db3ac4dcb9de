"""Viewer frame rate: 100k Gaussian splats drawn by the OpenGL splat viewer at 800x600.

Runs the vispy canvas off-screen-rendered (``canvas.render()``) for a full turn of the camera
and prints frames per second for drawing only and for draw + depth re-sort (what an orbit
drag costs). Baseline in the same run: the exact CPU rasterizer (numba) for the same view,
which is what a viewer without OpenGL would have to do per frame. Needs a display/GL context:

    xvfb-run -a python benchmarks/render_viewer.py [--count 100000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--frames", type=int, default=20)
    args = parser.parse_args()
    import numpy as np
    import torch
    from qtpy.QtWidgets import QApplication

    torch.set_num_threads(1)
    app = QApplication.instance() or QApplication([])
    from engines.jobs import run_job
    from engines.render.project import covariance_3d
    from engines.render.still import still_job
    from engines.render.synthetic import sphere_scene
    from panels.render.viewer import SplatCanvas

    scene = sphere_scene(args.count, footprint=0.5 / np.sqrt(args.count / 1000))
    canvas = SplatCanvas()
    canvas.canvas.size = (800, 600)
    canvas.canvas.show()
    app.processEvents()
    colors = np.concatenate([scene.rgb.numpy(), scene.opacities.numpy()[:, None]], 1)
    canvas.set_splats(scene.means.numpy(), colors, covariance_3d(scene.quats, scene.scales).numpy(),
                      np.zeros(len(scene), bool))
    canvas.frame_all()
    canvas.canvas.render()  # warm-up (shader compile, buffer upload)
    t0 = time.perf_counter()
    for _ in range(args.frames):
        canvas.canvas.render()
    draw = (time.perf_counter() - t0) / args.frames
    t0 = time.perf_counter()
    for i in range(args.frames):
        canvas.view.camera.azimuth += 360.0 / args.frames  # triggers the back-to-front re-sort
        canvas.canvas.render()
    orbit = (time.perf_counter() - t0) / args.frames
    K, view = canvas.camera_matrices()
    from engines.render.camera import Camera

    cam = Camera(torch.from_numpy(K), torch.from_numpy(view), 800, 600)
    run_job(still_job(scene, cam, "classic"))  # warm-up
    t0 = time.perf_counter()
    run_job(still_job(scene, cam, "classic"))
    exact = time.perf_counter() - t0
    from vispy.gloo import gl

    renderer = gl.glGetParameter(gl.GL_RENDERER) if hasattr(gl, "glGetParameter") else "?"
    print(f"{len(scene)} splats @ 800x600 ({renderer}): draw {1 / draw:.1f} fps, orbit (re-sort + draw) "
          f"{1 / orbit:.1f} fps | exact CPU rasterizer {1 / exact:.2f} fps | viewer/exact {exact / orbit:.1f}x")
    canvas.canvas.close()


if __name__ == "__main__":
    main()
