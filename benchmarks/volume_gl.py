"""vispy 3D view on a 256³ volume: frame time and TF-edit-to-redraw latency, compared with the
reference torch ray caster rendering the same frame. Needs OpenGL (``xvfb-run -a`` on a
headless box: software llvmpipe).

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python benchmarks/volume_gl.py
"""

from __future__ import annotations

import time

import numpy as np
import torch


def main() -> None:
    torch.set_num_threads(1)
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from engines.volume.phantom import make_phantom
    from engines.volume.raycast import render
    from engines.volume.tf import preset
    from panels.volume.view3d import VolumeView

    view = VolumeView()
    view.resize(512, 512)
    view.show()
    if not view.ensure_canvas():
        print(f"no OpenGL: {view.gl_error}")
        return
    view.canvas.size = (512, 512)
    volume, _ = make_phantom(256)
    tf = preset("CT-Bone")
    t0 = time.perf_counter()
    view.set_volume(volume.data, volume.spacing, volume.value_range())
    view.set_tf(tf)
    view.reset_camera()
    view.render_image()
    print(f"upload + first frame (256^3 -> 512^2): {time.perf_counter() - t0:6.2f} s")
    for step in (1.0, 2.0):
        view.set_step(step)
        view.render_image()
        times = []
        for i in range(3):
            view.view.camera.azimuth += 10
            t0 = time.perf_counter()
            view.render_image()
            times.append(time.perf_counter() - t0)
        print(f"vispy frame, step {step}: {np.median(times) * 1000:7.1f} ms")
    edits = []
    for i in range(3):
        edited = tf.shifted(20.0 * (i + 1))
        t0 = time.perf_counter()
        view.set_tf(edited)
        view.render_image()
        app.processEvents()
        edits.append(time.perf_counter() - t0)
    gl_edit = np.median(edits)
    print(f"TF edit -> redrawn frame: {gl_edit * 1000:7.1f} ms (goal 50 ms on a GPU-class renderer)")
    t0 = time.perf_counter()
    render(volume, tf=tf, size=512, shading=False, azimuth=view.view.camera.azimuth, elevation=20, device="cpu")
    t_ref = time.perf_counter() - t0
    print(f"reference torch ray caster, same frame: {t_ref:7.2f} s   ratio torch/vispy: {t_ref / gl_edit:5.1f}x")


if __name__ == "__main__":
    main()
