"""RayGauss (volumetric ray casting of the Gaussians): agreement with splatting, no popping, gradients."""

import math

import pytest
import torch

from engines.render.camera import Camera, orbit_camera
from engines.render.rasterize import rasterize_scene
from engines.render.raygauss import opacity_to_density, raygauss, raygauss_render
from engines.render.scene import Gaussians


def _psnr(a, b):
    return 10 * math.log10(1.0 / float(((a - b) ** 2).mean()))


def _separated_scene():
    g = torch.Generator().manual_seed(1)
    n = 12
    means = torch.stack([torch.linspace(-0.8, 0.8, 4).repeat(3), torch.linspace(-0.6, 0.6, 3).repeat_interleave(4),
                         torch.rand(n, generator=g) * 0.6 - 0.3], 1)
    scales = torch.rand(n, 3, generator=g) * 0.03 + 0.03
    return Gaussians.from_activated(means, scales, torch.rand(n, 3, generator=g), torch.rand(n, generator=g) * 0.6 + 0.3,
                                    torch.randn(n, 4, generator=g))


def test_agrees_with_splatting_on_separated_small_gaussians():
    scene = _separated_scene()
    for az in (0.0, 10.0, 35.0):
        cam = orbit_camera(az, 5.0, 3.0, width=80, height=80)
        splat, _, _ = rasterize_scene(scene, cam, backend="reference")
        ray, alpha, _ = raygauss_render(scene, cam, background=None)
        assert splat.max() > 0.5 and alpha.max() > 0.25  # the Gaussians are in view
        assert _psnr(splat, ray) > 30.0


def test_isolated_isotropic_gaussian_has_splatting_peak_alpha():
    scene = Gaussians.from_activated(torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([0.2]), torch.ones(1, 3),
                                     torch.tensor([0.7]))
    cam = orbit_camera(0.0, 0.0, 3.0, width=9, height=9)  # the centre pixel's ray goes through the mean
    _, alpha, _ = raygauss_render(scene, cam)
    assert abs(float(alpha[4, 4]) - 0.7) < 1e-4


def _crossing_pair():
    # two large, nearly opaque, overlapping Gaussians side by side in x: a camera orbiting about y
    # swaps which one is nearer when it passes azimuth 0
    means = torch.tensor([[-0.12, 0.0, 0.0], [0.12, 0.0, 0.0]])
    return Gaussians.from_activated(means, torch.tensor([0.3, 0.3]), torch.tensor([[1.0, 0.1, 0.1], [0.1, 0.1, 1.0]]),
                                    torch.tensor([0.9, 0.9]))


def test_no_popping_when_two_gaussians_swap_depth_order():
    scene = _crossing_pair()
    angles = [-0.5 + 0.1 * i for i in range(11)]  # 0.1 degree steps across the swap
    splat_steps, ray_steps = [], []
    prev_s = prev_r = None
    for az in angles:
        cam = orbit_camera(az, 0.0, 3.0, width=48, height=48)
        s, _, _ = rasterize_scene(scene, cam, backend="reference")
        r, _, _ = raygauss_render(scene, cam, slabs=48)
        if prev_s is not None:
            splat_steps.append(float((s - prev_s).abs().max()))
            ray_steps.append(float((r - prev_r).abs().max()))
        prev_s, prev_r = s, r
    splat_jump, splat_smooth = max(splat_steps), sorted(splat_steps)[len(splat_steps) // 2]
    ray_jump = max(ray_steps)
    assert splat_jump > 0.15  # splatting pops at the swap ...
    assert splat_jump > 10 * splat_smooth  # ... far above its ordinary step-to-step change
    assert ray_jump < 0.005  # RayGauss changes smoothly across the swap
    assert ray_jump < splat_jump / 10


@pytest.mark.parametrize("tile", [None, 2])  # 2: blocks of 2x2 rays each cull the Gaussians they miss
def test_gradients_reach_every_parameter_and_match_finite_differences(tile):
    torch.manual_seed(0)
    means = torch.tensor([[0.05, -0.03, 0.0], [-0.06, 0.04, 0.1]], dtype=torch.float64, requires_grad=True)
    quats = torch.tensor([[0.9, 0.1, -0.2, 0.3], [0.8, -0.3, 0.2, 0.1]], dtype=torch.float64, requires_grad=True)
    log_scales = torch.tensor([[-1.6, -1.9, -1.7], [-1.8, -1.5, -2.0]], dtype=torch.float64, requires_grad=True)
    logits = torch.tensor([0.5, -0.2], dtype=torch.float64, requires_grad=True)
    colors = torch.tensor([[0.9, 0.2, 0.1], [0.1, 0.6, 0.9]], dtype=torch.float64, requires_grad=True)
    cam = orbit_camera(7.0, 4.0, 2.0, width=5, height=4, fov_x_deg=20.0).to(torch.float64)

    def render(means, quats, log_scales, logits, colors):
        scales = log_scales.exp()
        dens = opacity_to_density(torch.sigmoid(logits), scales)
        img, alpha = raygauss(means, quats, scales, dens, colors, cam.viewmat, cam.K, cam.width, cam.height, slabs=6,
                              tile=tile)
        return torch.cat([img.reshape(-1), alpha.reshape(-1)])

    inputs = (means, quats, log_scales, logits, colors)
    out = render(*inputs)
    assert float(out[-20:].detach().max()) > 0.2  # the tiny image sees both Gaussians
    grads = torch.autograd.grad(out.square().sum(), inputs)
    for g in grads:
        assert torch.isfinite(g).all() and float(g.abs().max()) > 1e-4
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_tile_culling_keeps_the_image_and_gradients():
    g = torch.Generator().manual_seed(4)
    n = 300  # spread over and beyond the view, some behind the camera
    means = ((torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([4.0, 3.0, 8.0])).double().requires_grad_()
    scales = torch.rand(n, 3, generator=g, dtype=torch.float64) * 0.08 + 0.02
    colors = torch.rand(n, 3, generator=g, dtype=torch.float64)
    dens = opacity_to_density(torch.rand(n, generator=g, dtype=torch.float64) * 0.7 + 0.2, scales)
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    cam = orbit_camera(0.0, 0.0, 3.0, width=48, height=40, fov_x_deg=60.0).to(torch.float64)
    results = []
    for tile in (None, 8, 5):
        img, alpha = raygauss(means, quats, scales, dens, colors, cam.viewmat, cam.K, 48, 40, slabs=16, tile=tile)
        (grad,) = torch.autograd.grad((img.square().sum() + alpha.sum()), means)
        results.append((img.detach(), alpha.detach(), grad))
    assert float(results[0][1].mean()) > 0.2 and float(results[0][1].min()) < 0.05  # covered and empty pixels
    for img, alpha, grad in results[1:]:  # float64: only the summation order differs
        torch.testing.assert_close(img, results[0][0], atol=1e-12, rtol=0)
        torch.testing.assert_close(alpha, results[0][1], atol=1e-12, rtol=0)
        torch.testing.assert_close(grad, results[0][2], atol=1e-9, rtol=1e-9)


def test_chunking_does_not_change_the_image():
    scene = _separated_scene()
    cam = orbit_camera(20.0, 0.0, 3.0, width=40, height=30)
    whole, _, _ = raygauss_render(scene, cam, chunk_elements=10**9)
    parts, _, _ = raygauss_render(scene, cam, chunk_elements=5_000)
    assert torch.allclose(whole, parts, atol=1e-6)


@pytest.mark.parametrize("background", [None, (0.2, 0.4, 0.6)])
def test_empty_view_is_background(background):
    scene = Gaussians.from_activated(torch.tensor([[0.0, 0.0, -10.0]]), torch.tensor([0.1]), torch.ones(1, 3),
                                     torch.tensor([0.5]))
    cam = orbit_camera(0.0, 0.0, 3.0, width=6, height=5)  # the Gaussian is behind the camera
    img, alpha, _ = raygauss_render(scene, cam, background=background)
    expect = torch.zeros(3) if background is None else torch.tensor(background)
    assert torch.allclose(img, expect.expand(5, 6, 3)) and float(alpha.max()) < 1e-6


def test_still_job_tiles_match_the_one_call_render():
    from engines.jobs import run_job
    from engines.render.raygauss import raygauss_still_job

    scene = _separated_scene()
    cam = orbit_camera(15.0, 5.0, 3.0, width=70, height=50)
    image, coverage, visible = run_job(raygauss_still_job(scene, cam, (0.1, 0.2, 0.3), slabs=32, tile=16))
    whole, alpha, _ = raygauss_render(scene, cam, slabs=32, background=(0.1, 0.2, 0.3))
    assert visible == 12 and abs(coverage - float(alpha.mean())) < 1e-4
    assert float(abs(torch.from_numpy(image) - whole.clamp(0, 1)).max()) < 2e-3


def test_cli_image_mode_raygauss(tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from engines.render.io import save_ply
    from engines.render.synthetic import sphere_scene
    from studio.cli import main
    from studio.export import read_provenance

    scene_file = tmp_path / "scene.ply"
    scene = sphere_scene(300, footprint=0.1, sh_degree=1)
    save_ply(scene_file, scene)
    out = tmp_path / "ray.png"
    assert main(["render", "image", str(scene_file), "--size", "48,40", "--mode", "raygauss", "--slabs", "32",
                 "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "raygauss"
    prov = read_provenance(out)
    assert prov["parameters"]["mode"] == "raygauss" and prov["parameters"]["slabs"] == 32
    ray = np.asarray(Image.open(out)).astype(float) / 255
    splat, _, _ = rasterize_scene(scene, Camera.from_dict(prov["parameters"]["camera"]), backend="reference")
    assert ray.shape == (40, 48, 3) and ray.std() > 0.05
    psnr = 10 * np.log10(1 / ((ray - splat.clamp(0, 1).numpy()) ** 2).mean())
    assert psnr > 25  # same scene and camera; volumetric vs splatted image formation
    assert main(["render", "image", str(scene_file), "--mode", "raygauss", "--slabs", "1",
                 "--out", str(tmp_path / "bad.png")]) == 2
    assert not (tmp_path / "bad.png").exists()


def test_fit_through_raygauss_improves_a_perturbed_scene():
    from engines.jobs import run_job
    from engines.render.camera import fibonacci_cameras
    from engines.render.fit import FitSettings, evaluate, fit_job
    from engines.render.synthetic import sphere_scene

    truth = sphere_scene(40, seed=0, footprint=0.3)
    cams = fibonacci_cameras(6, 3.5, width=20, height=20)
    settings = FitSettings(steps=80, densify=False, lr_means=2e-3, renderer="raygauss", raygauss_slabs=16)
    views = [render_image.numpy() for render_image in
             (raygauss_render(truth, c.to(torch.float32), slabs=16)[0].clamp(0, 1) for c in cams)]
    g = torch.Generator().manual_seed(1)
    init = Gaussians(truth.means + 0.05 * torch.randn(40, 3, generator=g), truth.quats.clone(),
                     truth.log_scales + 0.3, torch.zeros(40), torch.zeros_like(truth.sh))
    before = evaluate(init, cams, views, settings)
    result = run_job(fit_job(views, cams, settings, init=init))
    assert result.final_psnr > before + 5, (before, result.final_psnr)
    with pytest.raises(ValueError, match="renderer"):
        run_job(fit_job(views, cams, FitSettings(renderer="nope"), init=init))
