"""Helpers for panel tests: open a file the way the studio does (a job) and wait for the result."""

from __future__ import annotations

from panels.base import OpenError


def open_and_wait(panel, path, timeout: float = 60.0) -> None:
    """``panel.open_file(path)`` and, when it started a job, wait for it; a failed open raises
    :class:`OpenError` with the panel's message (as a synchronous open would)."""
    failures: list[str] = []
    panel.file_open_failed.connect(lambda _path, message: failures.append(message))
    handle = panel.open_file(str(path))
    if handle is not None:
        assert panel.services.jobs.wait_all(timeout), f"opening {path} did not finish in {timeout} s"
    if failures:
        raise OpenError(failures[-1])


def wait_loaded(panel, timeout: float = 60.0) -> None:
    """Wait until the panel's background open (e.g. its bundled sample) and its follow-up jobs end."""
    assert panel.services.jobs.wait_all(timeout)
    assert not panel.loading


def models_listed(panel, timeout: float = 30.0):
    """Wait until the Generate panel's model scan (a job on the ``examine`` lane) has listed the
    models and any restored model is selected; returns the panel."""
    import time

    from qtpy.QtCore import QCoreApplication

    deadline = time.monotonic() + timeout
    while panel.scanning_models:
        assert time.monotonic() < deadline, f"the model scan did not end in {timeout} s"
        QCoreApplication.processEvents()
        time.sleep(0.005)
    return panel


def shown_gl_render_panel(panel, path) -> None:
    """Open ``path`` in a Render panel and show it at 900×600 with its OpenGL view (skips the test where
    there is no OpenGL context)."""
    import pytest

    from panels.render.cpu_canvas import CpuCanvas

    open_and_wait(panel, path)
    panel.resize(900, 600)
    panel.show()
    panel.on_shown()
    if panel.canvas is None or isinstance(panel.canvas, CpuCanvas):
        pytest.skip("no OpenGL context")
