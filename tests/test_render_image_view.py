"""The Fit tab keeps its layout while a fit reports progress (no re-layout of the plot per step)."""

import numpy as np

from engines.jobs import Preview, Progress


def test_fit_progress_does_not_resize_the_views_or_the_plot(window, qtbot):
    window.resize(1400, 900)
    window.show_panel("render")
    render = window.panel("render")
    render.receive("image", (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8))
    render.tabs.setCurrentIndex(1)  # the Fit tab
    qtbot.wait(50)
    sizes = []
    for step in range(1, 13):  # what a running fit sends: a progress text per step, a preview every few
        render._fit_event(Progress(step, 40, f"step {step}/40  PSNR {9 + step * 0.37:.2f} dB"))
        if step % 3 == 0:
            image = np.full((64, 64, 3), step / 13, np.float32)
            render._fit_event(Preview(image=image, data={"step": step, "psnr": 9 + step * 0.37, "loss": 1 / step}))
        qtbot.wait(10)
        sizes.append((render.current_view.size().toTuple(), render.plot.size().toTuple()))
    assert len(set(sizes[1:])) == 1, sizes  # was: the views lost 2 px per step, the plot re-laid out each time
    (view_w, view_h), (plot_w, plot_h) = sizes[-1]
    assert view_h > plot_h  # the layout's 3 : 2 stretch decides, not the pixmap
