"""Score distillation into 3D (engines/distill3d): estimators against hand computations, gradients,
seeded reproducibility, export layout, cancel, and a short run that makes the front view read as the digit."""

import math
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from engines.distill3d import DistillSettings, distill_job
from engines.distill3d.estimators import reparameterised_loss, sdi_gradient, sds_gradient, sds_weight, sjc_gradient
from engines.distill3d.priors import FlowPixelPrior
from engines.distill3d.scene3d import init_ellipsoid, render_params
from engines.generation.models import ModelInfo
from engines.jobs import Preview, Progress, run_job


class PointMassVelocity(torch.nn.Module):
    """The exact rectified-flow velocity of a data distribution that is a point mass at ``x0``.

    With z_t = (1 − t) x0 + t ε the true velocity is v = ε − x0 = (z_t − x0)/t.
    """

    def __init__(self, x0):
        super().__init__()
        self.x0 = x0
        self.config = SimpleNamespace(in_channels=x0.shape[1], num_class_embeds=11)
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, z_t, timestep, class_labels=None):
        t = (timestep / 1000.0).view(-1, 1, 1, 1)
        return SimpleNamespace(sample=(z_t - self.x0) / t)


def point_mass_prior(x0):
    info = ModelInfo(name="point", path="", kind="own", prediction_type="flow", conditioning="class",
                     class_names=[str(i) for i in range(10)], null_class=10, channels=1, size=(8, 8))
    return FlowPixelPrior(PointMassVelocity(x0), info)


def test_flow_prior_recovers_the_true_noise_and_sds_matches_hand_computation():
    gen = torch.Generator().manual_seed(1)
    x0 = torch.rand(1, 1, 8, 8, generator=gen) * 2 - 1
    z = torch.rand(3, 1, 8, 8, generator=gen) * 2 - 1
    eps = torch.randn(3, 1, 8, 8, generator=gen)
    t = torch.tensor([0.2, 0.5, 0.9])
    prior = point_mass_prior(x0)
    cond = prior.condition(4)
    # ε̂ = z_t + (1 − t) v̂ must be the true noise when the clean image is the data point
    z_t = (1 - t).view(-1, 1, 1, 1) * x0 + t.view(-1, 1, 1, 1) * eps
    assert torch.allclose(prior.predict_eps(z_t, t, cond, 1.0), eps, atol=1e-5)
    # SDS: g = w (ε̂ − ε) = w (1 − t)/t (z − x0) with w = t²/((1 − t)² + t²)
    g, _ = sds_gradient(prior, z, cond, t, eps, guidance=1.0)
    tt = t.view(-1, 1, 1, 1)
    w = tt ** 2 / ((1 - tt) ** 2 + tt ** 2)
    assert torch.allclose(g, w * (1 - tt) / tt * (z - x0), atol=1e-5)
    assert torch.allclose(sds_weight(1 - t, t), (w.flatten()))
    # SJC with PAAS: −mean (D − y)/σ, σ = t/(1 − t), D = x0 exactly → (1 − t)/t (z − x0) for any draws
    noises = torch.randn(5, 3, 1, 8, 8, generator=gen)
    g_sjc, _ = sjc_gradient(prior, z, cond, t, noises, guidance=1.0)
    assert torch.allclose(g_sjc, (1 - tt) / tt * (z - x0), atol=1e-4)
    # SDI: the deterministic inversion of the exact ODE reproduces the noise that maps z to z_t
    g_sdi, info = sdi_gradient(prior, x0.expand(3, -1, -1, -1), cond, t, 1.0, inversion_steps=3)
    assert torch.allclose(g_sdi, torch.zeros_like(g_sdi), atol=1e-4)


def test_reparameterised_loss_pushes_exactly_g_through_the_renderer():
    gen = torch.Generator().manual_seed(0)
    params = {k: torch.nn.Parameter(v) for k, v in init_ellipsoid(60, (0.5, 0.7, 0.3), "gaussians", 0, 0.3, gen).items()}
    with torch.no_grad():
        params["log_scales"] += 0.4 * torch.randn(params["log_scales"].shape, generator=gen)  # anisotropic
        params["quats"] += 0.3 * torch.randn(params["quats"].shape, generator=gen)
    from engines.distill3d.cameras import fixed_view

    cam = fixed_view(20.0, 10.0, 2.5, 40.0, 16, 16).camera
    image, _, _ = render_params(params, cam, torch.zeros(3))
    z = image.permute(2, 0, 1)[None].mean(1, keepdim=True) * 2 - 1
    g = torch.randn(z.shape, generator=gen)
    loss = reparameterised_loss(z, g)
    names = list(params)
    by_loss = torch.autograd.grad(loss, [params[n] for n in names], retain_graph=True)
    by_hand = torch.autograd.grad(z, [params[n] for n in names], grad_outputs=g / z.shape[0])
    for name, a, b in zip(names, by_loss, by_hand):
        assert torch.allclose(a, b, atol=1e-6), name
        assert float(a.abs().sum()) > 0, f"no gradient reaches {name}"


def _digits_step_grads(primitive):
    from engines.distill3d.priors import load_prior
    from engines.generation.models import resolve_model
    from engines.distill3d.cameras import fixed_view

    prior = load_prior(resolve_model("digits-flow"))
    gen = torch.Generator().manual_seed(3)
    params = {k: torch.nn.Parameter(v) for k, v in init_ellipsoid(80, (0.5, 0.7, 0.3), primitive, 0, 0.3, gen).items()}
    if primitive == "gaussians":
        with torch.no_grad():
            params["log_scales"] += 0.4 * torch.randn(params["log_scales"].shape, generator=gen)
    images = [render_params(params, fixed_view(az, 5.0, 2.5, 40.0, 32, 32).camera, torch.zeros(3))[0]
              for az in (-30.0, 30.0)]
    z = prior.encode(torch.stack(images))
    assert z.shape == (2, 1, 32, 32)
    t = torch.tensor([0.3, 0.6])
    g, _ = sds_gradient(prior, z, prior.condition(7), t, torch.randn(z.shape, generator=gen), 10.0)
    reparameterised_loss(z, g).backward()
    return params


def test_sds_gradients_reach_every_gaussian_and_sphere_parameter():
    for primitive, names in (("gaussians", ("means", "log_scales", "quats", "opacity_logits", "sh")),
                             ("spheres", ("means", "log_radii", "color_logits", "opacity_logits"))):
        params = _digits_step_grads(primitive)
        for name in names:
            grad = params[name].grad
            assert grad is not None and torch.isfinite(grad).all() and float(grad.abs().sum()) > 0, (primitive, name)


def test_same_seed_same_ply_bytes_and_reference_layout(tmp_path):
    from plyfile import PlyData

    from engines.render.io import load_ply, ply_attribute_names
    from studio.export import read_provenance
    from studio.export_3d import save_distill_outputs

    s = DistillSettings(class_label=5, steps=6, count=120, seed=11, preview_every=3)
    a = run_job(distill_job(s))
    b = run_job(distill_job(s))
    save_distill_outputs(a, tmp_path / "a.ply", tmp_path / "a.gif", frame_size=24)
    save_distill_outputs(b, tmp_path / "b.ply")
    assert (tmp_path / "a.ply").read_bytes() == (tmp_path / "b.ply").read_bytes()
    ply = PlyData.read(str(tmp_path / "a.ply"))
    assert [p.name for p in ply["vertex"].properties] == ply_attribute_names(0)
    assert ply.elements[0].count == len(a.scene)
    scene = load_ply(tmp_path / "a.ply")
    assert torch.allclose(scene.means, a.scene.means) and torch.allclose(scene.opacities, a.scene.opacities, atol=1e-6)
    record = read_provenance(tmp_path / "a.ply")
    assert record["parameters"]["class_label"] == 5 and record["parameters"]["method"] == "sds"
    assert record["seed"] == 11
    from PIL import Image

    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 36 and gif.size == (24, 24)


def test_spheres_export_and_cancel_within_a_second():
    s = DistillSettings(class_label=1, steps=500, primitive="spheres", count=60, method="sjc", sjc_samples=2)
    job = distill_job(s)
    gaps, last = [], time.monotonic()
    for event in job:
        now = time.monotonic()
        gaps.append(now - last)
        last = now
        if isinstance(event, Progress) and event.done >= 3:
            break
    job.close()  # cancellation: the generator ends at its current yield
    assert max(gaps[1:]) < 1.0
    with pytest.raises(StopIteration):
        next(job)


@pytest.mark.slow
def test_short_run_raises_the_requested_class_score_in_the_front_view():
    from engines.distill3d.turntable import orbit_views
    from engines.generation.digits_data import DigitClassifier

    clf = DigitClassifier(standardize=False)
    s = DistillSettings(class_label=0, steps=120, count=400, views_per_step=2, seed=2, densify=False)
    result = run_job(distill_job(s))
    front = orbit_views(result.scene, [(0.0, 0.0), (-30.0, 0.0), (30.0, 0.0)]).mean(3)
    from engines.render.scene import Gaussians

    gen = torch.Generator().manual_seed(s.seed)  # the starting blob: the job's first draw with the same seed
    start = init_ellipsoid(s.count, s.init_radii, "gaussians", 0, s.init_opacity, gen)

    start_scene = Gaussians(start["means"], start["quats"], start["log_scales"], start["opacity_logits"], start["sh"])
    before = clf.features(orbit_views(start_scene, [(0.0, 0.0)]).mean(3))[0, 0]
    after = clf.features(front)[:, 0]
    assert after.min() > before
    assert (clf.predict(front) == 0).all()


def test_reference_automatic_mask_and_alpha():
    from engines.distill3d.reference import prepare_reference

    yy, xx = np.mgrid[0:32, 0:32]
    ring = ((np.hypot(yy - 16, xx - 16) < 11) & (np.hypot(yy - 16, xx - 16) > 6)).astype(np.float32)
    rgb, mask = prepare_reference((np.repeat(ring[..., None], 3, 2) * 255).astype(np.uint8), (16, 16))
    assert rgb.shape == (16, 16, 3) and mask.shape == (16, 16)
    assert float(mask[8, 8]) == 0.0 and float(mask[8, 12]) > 0.9  # the ring, not its hole
    rgba = np.concatenate([np.full((32, 32, 3), 0.5, np.float32), ring[..., None]], 2)
    _, mask = prepare_reference(rgba, (32, 32))
    assert torch.allclose(mask, torch.from_numpy(ring))
    with pytest.raises(ValueError, match="uniform"):
        prepare_reference(np.zeros((32, 32, 3), np.uint8), (32, 32))


@pytest.mark.slow
def test_image_to_3d_reconstructs_a_generated_digit_in_the_mask():
    from engines.generation.api import GenerationParams, generate_job

    image = run_job(generate_job(GenerationParams(model="digits-flow", class_label=3, steps=10, seed=5))).images[0]
    s = DistillSettings(class_label=3, steps=150, count=400, views_per_step=1, seed=0)
    result = run_job(distill_job(s, reference=image))
    assert result.reference_psnr > 20.0
    assert result.history[-1]["reference_psnr"] > result.history[0]["reference_psnr"] + 10


@pytest.mark.parametrize("method", ["vsd", "esd", "sdi"])
def test_other_estimators_run_and_stay_finite(method):
    s = DistillSettings(class_label=4, steps=3, count=80, method=method, seed=1)
    result = run_job(distill_job(s))
    assert all(math.isfinite(h["loss"]) for h in result.history)
    assert torch.isfinite(result.scene.means).all()


def test_bad_settings_are_one_clear_message():
    for kw, text in ((dict(method="foo"), "unknown method"), (dict(steps=0), "steps"),
                     (dict(class_label=10), "out of range"), (dict(prompt="a cat"), "not text-conditioned")):
        with pytest.raises(ValueError, match=text):
            run_job(distill_job(DistillSettings(**kw)))


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    pytest.importorskip("transformers")
    from engines.generation.tiny import build_tiny_sd_pipeline

    folder = tmp_path_factory.mktemp("sd") / "tiny-sd"
    build_tiny_sd_pipeline(folder)
    return folder


def test_latent_path_renders_encodes_and_reaches_every_parameter(tiny_sd):
    from engines.distill3d.cameras import fixed_view
    from engines.distill3d.priors import LatentPrior, load_prior
    from engines.generation.models import inspect_model

    prior = load_prior(inspect_model(tiny_sd))
    assert isinstance(prior, LatentPrior)
    cond = prior.condition(None, "a red house")
    gen = torch.Generator().manual_seed(0)
    params = {k: torch.nn.Parameter(v) for k, v in init_ellipsoid(50, (0.5, 0.7, 0.3), "gaussians", 1, 0.4, gen).items()}
    with torch.no_grad():
        params["log_scales"] += 0.4 * torch.randn(params["log_scales"].shape, generator=gen)
        params["sh"][:, 1:] += 0.3 * torch.randn(params["sh"][:, 1:].shape, generator=gen)
    angles = [(0.0, 0.0), (150.0, 10.0)]
    images = torch.stack([render_params(params, fixed_view(az, el, 2.5, 40.0, 24, 24).camera, torch.zeros(3), 1)[0]
                          for az, el in angles])
    z = prior.encode(images)  # resized to the pipeline's 32x32 and VAE-encoded with gradient
    assert z.shape == (2, 4, 16, 16)
    t = torch.tensor([0.3, 0.7])
    g, info = sds_gradient(prior, z, cond, t, torch.randn(z.shape, generator=gen), 7.5, views=angles)
    assert torch.isfinite(g).all() and g.shape == z.shape
    reparameterised_loss(z, g).backward()
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all() and float(p.grad.abs().sum()) > 0, name
    # view-dependent prompts: the front and the back view use different text embeddings
    assert set(prior._embeds) >= {"a red house, front view", "a red house, back view", ""}


def test_latent_job_runs_and_cancels(tiny_sd):
    s = DistillSettings(model=str(tiny_sd), prompt="a cat", steps=3, count=40, views_per_step=1, guidance=7.5)
    result = run_job(distill_job(s))
    assert len(result.history) == 3 and all(math.isfinite(h["loss"]) for h in result.history)
    assert torch.isfinite(result.scene.means).all()
    with pytest.raises(ValueError, match="takes --prompt"):
        run_job(distill_job(DistillSettings(model=str(tiny_sd), class_label=3, steps=2)))
    job = distill_job(DistillSettings(model=str(tiny_sd), prompt="a cat", steps=400, count=40, views_per_step=1))
    for event in job:
        if isinstance(event, Progress):
            break
    job.close()
    with pytest.raises(StopIteration):
        next(job)


def test_fourier_amplitude_option_with_a_reference():
    from engines.distill3d.job import _fourier_loss

    z = torch.randn(2, 1, 8, 8, requires_grad=True)
    g = torch.randn(2, 1, 8, 8)
    _fourier_loss(z, torch.zeros_like(g)).backward()
    assert float(z.grad.abs().max()) < 1e-5  # g = 0: the amplitude already matches its target
    image = np.zeros((32, 32, 4), np.uint8)
    image[8:24, 12:20] = 255
    s = DistillSettings(class_label=1, steps=2, count=50, views_per_step=1, fourier=True)
    result = run_job(distill_job(s, reference=image))
    assert result.reference_psnr is not None and math.isfinite(result.history[-1]["loss"])


def tiny_class_unet_prior(size=8):
    """A tiny real class-conditional diffusers UNet2DModel wrapped as a flow prior (random weights)."""
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=size, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(16, 16),
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       norm_num_groups=8, num_class_embeds=11)
    info = ModelInfo(name="tiny", path="", kind="own", prediction_type="flow", conditioning="class",
                     class_names=[str(i) for i in range(10)], null_class=10, channels=1, size=(size, size))
    return FlowPixelPrior(unet, info)


def test_vsd_copy_starts_as_the_prior_and_learns_what_each_camera_sees():
    from engines.distill3d.vsd import CameraConditionedCopy, camera_vector

    prior = tiny_class_unet_prior()
    phi = CameraConditionedCopy(prior, lr=3e-3, seed=0)
    cond = prior.condition(3)
    t = torch.full((2,), 0.6)
    z_t = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = prior.predict_eps(z_t, t, cond, 1.0)
        for angles in ([(0.0, 0.0)] * 2, [(90.0, 10.0)] * 2):  # zero-initialised camera branch: ε_φ = ε_prior
            torch.testing.assert_close(phi.eps(z_t, t, cond, camera_vector(angles)), base)
    assert all(p.requires_grad for p in phi.unet.parameters())
    assert not any(p.requires_grad for p in prior.unet.parameters())
    # the renders depend on the camera: the left half is lit from azimuth 0°, the right half from 90°
    left = -torch.ones(1, 8, 8)
    left[:, :, :4] = 1.0
    right = left.flip(-1)
    frozen = [p.clone() for p in prior.unet.parameters()]
    gen = torch.Generator().manual_seed(0)
    z = torch.stack([left, right] * 4)
    angles = [(0.0, 0.0), (90.0, 0.0)] * 4
    for _ in range(60):
        phi.train_step(z, cond, angles, gen)
    assert all(torch.equal(a, b) for a, b in zip(frozen, prior.unet.parameters()))
    # at high noise the same sample is denoised towards the left image from azimuth 0° and towards
    # the right image from 90°: the difference of the two x̂₀ points along left − right
    tt = torch.full((4,), 0.9)
    zt = 0.1 * left + 0.9 * torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        x0 = {az: zt - 0.9 * (phi.eps(zt, tt, cond, camera_vector([(az, 0.0)] * 4)) - zt) / 0.1 for az in (0.0, 90.0)}
    diff = (x0[0.0] - x0[90.0]).flatten()
    cos = float(torch.nn.functional.cosine_similarity(diff, (left - right).expand(4, -1, -1, -1).flatten(), dim=0))
    assert cos > 0.4, cos
