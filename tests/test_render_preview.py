"""The CPU preview splatter (interactive view without a GPU) against the exact rasterizer."""

import numpy as np
import pytest
import torch

from engines.render.camera import frame_camera, orbit_camera
from engines.render.preview import Cancelled, preview_scene, render_preview
from engines.render.rasterize import rasterize_scene
from engines.render.synthetic import sphere_scene


def _psnr(a, b):
    return 10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-20))


@pytest.mark.parametrize("az,el,scale", [(0, 0, 1.0), (70, 25, 1.0), (200, -30, 0.5), (300, 10, 0.3)])
def test_preview_matches_rasterizer(az, el, scale):
    scene = sphere_scene(300, footprint=0.2, sh_degree=2)  # view-dependent colours, overlapping splats
    base = frame_camera(scene.means, az, el, 96, 72, 50.0)
    prep = preview_scene(scene)
    bg = (0.2, 0.1, 0.3)
    image = render_preview(prep, base.K, base.viewmat, 96, 72, bg, scale=scale, threads=2, bands=5)
    cam = base.scaled(scale).to(torch.float32)
    assert image.shape == (cam.height, cam.width, 3)
    with torch.no_grad():
        exact = rasterize_scene(scene, cam, background=torch.tensor(bg))[0].clamp(0, 1).numpy()
    assert exact.std() > 0.05
    assert _psnr(image, exact) > 60
    serial = render_preview(prep, base.K, base.viewmat, 96, 72, bg, scale=scale, threads=1, bands=1)
    np.testing.assert_array_equal(serial, image)  # bands and threads do not change a bit


def test_preview_inside_scene_and_cancel():
    scene = sphere_scene(200, footprint=0.3)
    cam = orbit_camera(0, 0, 0.3, width=40, height=30)  # camera inside the sphere: near-plane culling
    image = render_preview(preview_scene(scene), cam.K, cam.viewmat, 40, 30)
    with torch.no_grad():
        exact = rasterize_scene(scene, cam.to(torch.float32))[0].clamp(0, 1).numpy()
    assert _psnr(image, exact) > 60
    with pytest.raises(Cancelled):
        render_preview(preview_scene(scene), cam.K, cam.viewmat, 40, 30, cancelled=lambda: True)


def test_subset_keeps_every_nth_splat_and_its_colours():
    scene = sphere_scene(300, footprint=0.2, sh_degree=1)
    prep = preview_scene(scene)
    sub = prep.subset(3)
    assert prep.subset(1) is prep and len(sub) == 100
    centre = np.array([0.0, 0.0, -4.0])
    np.testing.assert_array_equal(sub.colors(centre), prep.colors(centre)[::3])
    np.testing.assert_array_equal(sub.means, prep.means[::3])
