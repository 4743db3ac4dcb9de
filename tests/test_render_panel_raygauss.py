"""Render panel: RayGauss chosen for stills and fitting reaches the engines and is kept in the parameters."""

import numpy as np
import pytest

from engines.render.io import save_ply
from engines.render.rasterize import rasterize_scene
from engines.render.raygauss import raygauss_render
from engines.render.synthetic import sphere_scene
from panels.base import OpenError
from panels.render import RenderPanel
from tests.gui_helpers import open_and_wait, wait_loaded


def test_still_with_raygauss_matches_engine_and_parameters_round_trip(make_panel, qtbot, tmp_path):
    panel = make_panel(RenderPanel)
    wait_loaded(panel)
    path = tmp_path / "ball.ply"
    save_ply(path, sphere_scene(80, footprint=0.25, sh_degree=1))
    open_and_wait(panel, path)
    panel.still_scale.setValue(0.1)  # 80x60 px without a view
    panel.restore_parameters({**panel.current_parameters(), "still_renderer": "raygauss", "sh_degree": 1})
    assert panel.still_renderer.currentText() == "RayGauss (slow, no popping)"
    panel.render_still()
    qtbot.waitUntil(lambda: panel.still is not None and panel.still_handle is None, timeout=60000)
    cam = panel.still_camera
    reference, _, _ = raygauss_render(panel.scene, cam, slabs=64, background=panel.background, sh_degree=1)
    reference = reference.clamp(0, 1).numpy()
    assert panel.still.shape == reference.shape and reference.max() > 0.2
    assert np.abs(panel.still - reference).max() < 2e-3
    splat = rasterize_scene(panel.scene, cam, aa_mode="analytic", background=panel.background, sh_degree=1)[0]
    assert np.abs(panel.still - splat.numpy()).mean() > 1e-3  # not the splatting image
    assert "RayGauss" in panel.still_caption.text()
    # fitting: the renderer reaches the engine's settings; both choices are recorded and restored
    panel.restore_parameters({**panel.current_parameters(), "fit_renderer": "raygauss"})
    assert panel.fit_settings().renderer == "raygauss"
    params = panel.current_parameters()
    assert (params["still_renderer"], params["fit_renderer"]) == ("raygauss", "raygauss")
    panel.restore_parameters({**params, "still_renderer": "splat", "fit_renderer": "splat"})
    assert panel.fit_settings().renderer == "splat" and panel.still_renderer.currentText() == "Splatting"
    with pytest.raises(OpenError):
        panel.restore_parameters({**params, "fit_renderer": "pathtracer"})
