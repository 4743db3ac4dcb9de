"""Fitting jobs: multi-view refit of a known scene, photo mode with densification, spheres."""

import math

import numpy as np
import pytest
import torch

from engines.jobs import Preview, Progress, run_job
from engines.render.camera import fibonacci_cameras
from engines.render.fit import DensityControl, FitSettings, densify_enabled, evaluate, fit_job, psnr
from engines.render.scene import Gaussians, Spheres
from engines.render.synthetic import render_views, sphere_refit_problem, sphere_scene


def test_refit_known_scene_from_its_renders_reaches_30db():
    truth = sphere_scene(150, seed=0, footprint=0.15)
    cams = fibonacci_cameras(10, 3.5, width=48, height=48)
    views = render_views(truth, cams)
    g = torch.Generator().manual_seed(1)
    init = Gaussians(truth.means + 0.05 * torch.randn(150, 3, generator=g), truth.quats.clone(),
                     truth.log_scales + math.log(1.5), torch.zeros(150), torch.zeros_like(truth.sh))
    assert evaluate(init, cams, views) < 18
    events = []
    result = run_job(fit_job(views, cams, FitSettings(steps=350, densify=False, lr_means=2e-3), init=init),
                     events.append)
    assert result.final_psnr >= 30.0
    held = fibonacci_cameras(3, 3.3, width=48, height=48)  # views not used for fitting
    assert evaluate(result.scene, held, render_views(truth, held)) >= 28.0
    previews = [e for e in events if isinstance(e, Preview)]
    assert previews and {"loss", "psnr", "step"} <= set(previews[-1].data)
    assert previews[-1].image.shape == (48, 48, 3)
    assert previews[-1].data["psnr"] > previews[0].data["psnr"] + 10
    assert [e for e in events if isinstance(e, Progress)][-1].fraction == 1.0


def test_photo_mode_densifies_and_improves():
    from skimage import data, transform

    target = transform.resize(data.astronaut(), (32, 32), anti_aliasing=True).astype(np.float32)
    settings = FitSettings(count=120, steps=150, densify_every=25, max_count=600, seed=3)
    result = run_job(fit_job([target], None, settings))
    counts = [h["count"] for h in result.history]
    assert counts[-1] > counts[0]  # clone/split grew the set
    assert result.history[-1]["psnr"] > result.history[0]["psnr"] + 5
    assert result.final_psnr > 22.0
    assert result.mode == "photo" and isinstance(result.scene, Gaussians)


def test_density_control_clone_split_prune_keeps_adam_state_aligned():
    settings = FitSettings(percent_dense=0.1, grad_threshold=1.0)
    params = {"means": torch.nn.Parameter(torch.zeros(4, 3)),
              "quats": torch.nn.Parameter(torch.tensor([[1.0, 0, 0, 0]]).repeat(4, 1)),
              "log_scales": torch.nn.Parameter(torch.log(torch.tensor([0.01, 0.5, 0.01, 0.01]))[:, None].repeat(1, 3)),
              "opacity_logits": torch.nn.Parameter(torch.tensor([0.0, 0.0, 0.0, -10.0])),
              "sh": torch.nn.Parameter(torch.arange(4.0)[:, None, None].repeat(1, 1, 3))}
    opt = torch.optim.Adam([{"params": [p], "name": k} for k, p in params.items()])
    sum(p.sum() for p in params.values()).backward()
    opt.step()
    control = DensityControl(settings, extent=1.0)
    control.reset(4)
    # Gaussian 0 small + high grad -> clone; 1 large + high grad -> split; 2 low grad; 3 transparent -> prune
    control.accumulate(torch.tensor([0, 1, 2]), torch.tensor([[3.0, 0], [3.0, 0], [0.0, 0.0]]), 2, 2)
    changed = control.step(params, opt, torch.Generator().manual_seed(0))
    assert changed == {"cloned": 1, "split": 1, "pruned": 1}
    assert params["means"].shape == (5, 3)  # 0, 2, clone of 0, two halves of 1
    assert torch.round(params["sh"][:, 0, 0]).tolist() == [0.0, 2.0, 0.0, 1.0, 1.0]
    torch.testing.assert_close(params["log_scales"][3:, 0].exp(), torch.full((2,), 0.5 / 1.6), rtol=3e-3, atol=0)
    for group in opt.param_groups:
        p = group["params"][0]
        assert p is params[group["name"]]
        assert opt.state[p]["exp_avg"].shape == p.shape


def test_spheres_refit():
    n = 40
    _, cams, views, init = sphere_refit_problem(n)
    # a refit of the true count from a near-truth start: by default no density control (splits only hurt here)
    settings = FitSettings(primitive="spheres", steps=150, lr_means=2e-3, lambda_dssim=0.0)
    assert not densify_enabled(settings, init) and densify_enabled(settings, None)
    start = evaluate(init, cams, views, settings)
    result = run_job(fit_job(views, cams, settings, init=init))
    assert isinstance(result.scene, Spheres)
    assert {h["count"] for h in result.history} == {n}
    assert result.final_psnr > start + 8 and result.final_psnr > 40


def test_fit_rejects_bad_input_and_can_be_cancelled():
    with pytest.raises(ValueError, match="shape"):
        run_job(fit_job([np.zeros((4, 4, 2))], None))
    with pytest.raises(ValueError, match="NaN"):
        run_job(fit_job([np.full((4, 4, 3), np.nan)], None))
    with pytest.raises(ValueError, match="cameras"):
        run_job(fit_job([np.zeros((4, 4, 3))] * 2, None))
    job = fit_job([np.zeros((8, 8, 3), np.float32)], None, FitSettings(count=10, steps=1000))
    for _ in range(5):
        next(job)
    job.close()  # cancellation: no exception, generator finished
    with pytest.raises(StopIteration):
        next(job)
    assert psnr(torch.zeros(2, 2, 3), torch.full((2, 2, 3), 0.1)) == pytest.approx(20.0)


def test_mcmc_relocation_preserves_the_aggregate_opacity():
    """N copies with (α', s') integrate (1-D, through the centre) to what the single Gaussian (α, s) did."""
    from scipy import integrate

    from engines.render.fit import relocation_update

    alpha = torch.tensor([0.3, 0.8, 0.6, 0.95])
    scale = torch.tensor([[1.0, 2.0, 0.5], [1.0, 1.0, 1.0], [0.7, 0.7, 0.7], [2.0, 1.0, 1.0]])
    copies = torch.tensor([1, 2, 3, 5])
    new_a, new_s = relocation_update(alpha, scale, copies)
    assert torch.allclose(new_a[0], alpha[0]) and torch.allclose(new_s[0], scale[0])  # one copy: unchanged
    for i in range(1, 4):
        a, n, s, s2 = float(alpha[i]), int(copies[i]), float(scale[i, 0]), float(new_s[i, 0])
        assert abs(1 - (1 - float(new_a[i])) ** n - a) < 1e-6  # same opacity at the centre
        a2 = float(new_a[i])
        many = integrate.quad(lambda x, a2=a2, s2=s2, n=n: 1 - (1 - a2 * np.exp(-x * x / (2 * s2 * s2))) ** n, -50, 50)[0]
        assert abs(many - a * s * np.sqrt(2 * np.pi)) < 1e-4 * many


def test_pruning_removes_transparent_and_oversized_gaussians():
    from engines.render.fit import DensityControl, FitSettings

    n = 6
    params = {"means": torch.nn.Parameter(torch.zeros(n, 3)), "quats": torch.nn.Parameter(torch.tensor([[1.0, 0, 0, 0]] * n)),
              "log_scales": torch.nn.Parameter(torch.full((n, 3), math.log(0.001))),
              "opacity_logits": torch.nn.Parameter(torch.full((n,), 2.0)), "sh": torch.nn.Parameter(torch.zeros(n, 1, 3))}
    params["opacity_logits"].data[0] = -8.0  # transparent
    params["log_scales"].data[1, 2] = math.log(0.5)  # 0.5 > 0.1 x extent 1
    opt = torch.optim.Adam([{"params": [p], "lr": 0.01, "name": k} for k, p in params.items()])
    control = DensityControl(FitSettings(prune_screen=0.15), extent=1.0)
    control.reset(n)
    control.accumulate(torch.arange(n), torch.zeros(n, 2), 100, 100, radii=torch.tensor([1, 1, 30, 1, 1, 1]))
    assert control.step(params, opt, torch.Generator(), prune_large=False)["pruned"] == 1  # opacity only
    control.reset(5)
    control.accumulate(torch.arange(5), torch.zeros(5, 2), 100, 100, radii=torch.tensor([1, 30, 1, 1, 1]))
    assert control.step(params, opt, torch.Generator(), prune_large=True)["pruned"] == 2  # world + screen size
    assert len(params["means"]) == 3 and len(opt.param_groups[0]["params"][0]) == 3


@pytest.mark.parametrize("strategy", ["default", "mcmc"])
def test_strategies_fit_a_photo(strategy):
    from engines.jobs import Log, run_job

    yy, xx = np.mgrid[0:24, 0:24]
    target = np.stack([xx * 10, yy * 10, 255 - xx * 5], -1).astype(np.uint8)
    logs = []
    settings = FitSettings(count=60, steps=120, strategy=strategy, max_count=150, seed=1, densify_every=20)
    result = run_job(fit_job([target], None, settings), lambda e: logs.append(e.message) if isinstance(e, Log) else None)
    counts = [h["count"] for h in result.history]
    assert max(counts) <= 150 and result.final_psnr > 20
    if strategy == "mcmc":
        assert counts[-1] > 60 and any("relocated" in m for m in logs)
    else:
        pruned = sum(int(m.split("pruned ")[1].split()[0]) for m in logs if "pruned " in m)
        assert pruned > 0  # opacity resets let unused Gaussians fall under the prune threshold


def test_mip_3d_filter_values_and_baked_result():
    from engines.render.camera import orbit_camera
    from engines.render.fit import apply_filter_3d, filter_3d

    near, far = orbit_camera(0, 0, 4.0, width=64, height=64), orbit_camera(90, 0, 8.0, width=64, height=64)
    means = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, -20.0]])  # the second is behind the first camera's eye
    f_max = max(float(near.K[0, 0]), float(far.K[0, 0]))
    filt = filter_3d(means, [near, far])
    assert abs(float(filt[0]) - 4.0 / f_max * math.sqrt(0.2)) < 1e-6  # the closest camera that sees it
    assert float(filt[1]) == float(filt[0])  # seen by none: the largest d_min of the others
    log_s = torch.log(torch.tensor([[0.01, 0.02, 0.03]]))
    scales, opac = apply_filter_3d(log_s, torch.tensor([0.8]), torch.tensor([0.02]))
    np.testing.assert_allclose(scales.numpy(), np.sqrt(np.array([[1e-4, 4e-4, 9e-4]]) + 4e-4), rtol=1e-5)
    expect = 0.8 * np.sqrt(np.prod([1e-4, 4e-4, 9e-4]) / np.prod(np.array([1e-4, 4e-4, 9e-4]) + 4e-4))
    assert abs(float(opac[0]) - expect) < 1e-6
    truth = sphere_scene(80, footprint=0.2)
    cams = fibonacci_cameras(3, 3.5, width=24, height=24)
    targets = render_views(truth, cams)
    result = run_job(fit_job(targets, cams, FitSettings(count=60, steps=30, mip_filter3d=True, densify=False)))
    floor = filter_3d(result.scene.means, cams)
    assert torch.all(result.scene.scales.min(1).values >= floor * 0.999)  # baked: every scale ≥ its filter
    assert result.final_psnr > 15


def test_spheres_density_control_clone_split_prune_and_fit_improves():
    params = {"means": torch.nn.Parameter(torch.zeros(4, 3)),
              "log_radii": torch.nn.Parameter(torch.log(torch.tensor([0.01, 0.5, 0.01, 0.01]))),
              "color_logits": torch.nn.Parameter(torch.arange(4.0)[:, None].repeat(1, 3)),
              "opacity_logits": torch.nn.Parameter(torch.tensor([0.0, 0.0, 0.0, -10.0]))}
    opt = torch.optim.Adam([{"params": [p], "name": k} for k, p in params.items()])
    sum(p.sum() for p in params.values()).backward()
    opt.step()
    control = DensityControl(FitSettings(primitive="spheres", percent_dense=0.1, grad_threshold=1.0), extent=1.0)
    control.reset(4)
    # sphere 0 small + high grad -> clone; 1 large + high grad -> split; 2 low grad; 3 transparent -> prune
    control.accumulate(torch.tensor([0, 1, 2]), torch.tensor([[3.0, 0], [3.0, 0], [0.0, 0.0]]), 2, 2)
    assert control.step(params, opt, torch.Generator().manual_seed(0)) == {"cloned": 1, "split": 1, "pruned": 1}
    assert torch.round(params["color_logits"][:, 0]).tolist() == [0.0, 2.0, 0.0, 1.0, 1.0]
    torch.testing.assert_close(params["log_radii"][3:].exp(), torch.full((2,), 0.5 / 1.6), rtol=3e-3, atol=0)
    assert float((params["means"][3] - params["means"][4]).norm()) > 0.05  # the halves moved apart
    assert all(opt.state[g["params"][0]]["exp_avg"].shape == params[g["name"]].shape for g in opt.param_groups)
    # a photo fit with spheres: density control grows the set and fits better than the fixed count
    from skimage import data, transform

    target = transform.resize(data.astronaut(), (32, 32), anti_aliasing=True).astype(np.float32)
    results = {}
    for densify in (False, None):  # None: the default, on for a fit from scratch
        settings = FitSettings(primitive="spheres", count=60, steps=150, densify=densify, densify_every=25,
                               max_count=600, seed=3)
        results[densify] = run_job(fit_job([target], None, settings))
    counts = [h["count"] for h in results[None].history]
    assert counts[0] == 60 and counts[-1] > 2 * counts[0]
    assert {h["count"] for h in results[False].history} == {60}
    assert isinstance(results[None].scene, Spheres)
    assert results[None].final_psnr > results[False].final_psnr + 2
