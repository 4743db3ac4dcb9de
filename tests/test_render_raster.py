"""Differentiable rasterizer: brute-force oracle, finite-difference gradients, analytic AA, SH."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.spatial.transform import Rotation

from engines.render.camera import orbit_camera
from engines.render.rasterize import rasterize
from engines.render.reference import splat_weight
from engines.render.sh import sh_bases

MODES = ["classic", "mip", "analytic"]


def projections(image, alpha, k=6, seed=0):
    """k fixed random linear functionals of the outputs (full Jacobian checks stay cheap)."""
    flat = torch.cat([image.reshape(-1), alpha.reshape(-1)])
    mat = torch.randn(flat.numel(), k, dtype=flat.dtype, generator=torch.Generator().manual_seed(seed))
    return flat @ mat


def small_scene(n, seed, dtype=torch.float64, spread=0.5, size=(0.05, 0.25)):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) * 2 - 1) * spread
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = size[0] + (size[1] - size[0]) * torch.rand(n, 3, generator=g, dtype=dtype)
    opac = 0.3 + 0.6 * torch.rand(n, generator=g, dtype=dtype)
    colors = torch.rand(n, 3, generator=g, dtype=dtype)
    return means, quats, scales, opac, colors


def ncdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2))


def oracle(means, quats, scales, opac, colors, view, K, width, height, mode, bg):
    """Per-pixel loop over depth-sorted Gaussians, projection written independently (numpy/scipy)."""
    means, quats, scales, opac, colors = (np.asarray(t.detach(), np.float64) for t in (means, quats, scales, opac, colors))
    view, K = np.asarray(view, np.float64), np.asarray(K, np.float64)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    splats = []
    for i in range(len(means)):
        t = view[:3, :3] @ means[i] + view[:3, 3]
        if t[2] <= 0.01:
            continue
        rot = Rotation.from_quat([quats[i, 1], quats[i, 2], quats[i, 3], quats[i, 0]]).as_matrix()
        cov3 = rot @ np.diag(scales[i] ** 2) @ rot.T
        lx, ly = 1.3 * width / (2 * fx), 1.3 * height / (2 * fy)
        tx = np.clip(t[0] / t[2], -lx, lx) * t[2]
        ty = np.clip(t[1] / t[2], -ly, ly) * t[2]
        J = np.array([[fx / t[2], 0, -fx * tx / t[2] ** 2], [0, fy / t[2], -fy * ty / t[2] ** 2]])
        cov2 = J @ view[:3, :3] @ cov3 @ view[:3, :3].T @ J.T
        mean2 = np.array([fx * t[0] / t[2] + cx, fy * t[1] / t[2] + cy])
        o = opac[i]
        if mode in ("classic", "mip"):
            dil = cov2 + 0.3 * np.eye(2)
            if mode == "mip":
                o = o * max(0.005, math.sqrt(max(0.0, np.linalg.det(cov2) / np.linalg.det(dil))))
            base = dil
        else:
            base = cov2
        mid = 0.5 * np.trace(base)
        lam = mid + math.sqrt(max(0.1, mid * mid - np.linalg.det(base)))
        radius = math.ceil(3 * math.sqrt(lam))
        splats.append((t[2], mean2, base, o, colors[i], radius))
    splats.sort(key=lambda s: s[0])
    image = np.zeros((height, width, 3))
    alpha_out = np.zeros((height, width))
    for py in range(height):
        for px in range(width):
            T, c = 1.0, np.zeros(3)
            for _, mean2, cov, o, col, radius in splats:
                u = np.array([px + 0.5, py + 0.5]) - mean2
                if abs(u[0]) > radius or abs(u[1]) > radius:
                    continue
                if mode == "analytic":
                    evals, evecs = np.linalg.eigh(cov)
                    s2, s1 = np.sqrt(np.maximum(evals, 1e-12))
                    p, q = u @ evecs[:, 1], u @ evecs[:, 0]
                    w = (2 * math.pi * s1 * s2 * (ncdf((p + .5) / s1) - ncdf((p - .5) / s1))
                         * (ncdf((q + .5) / s2) - ncdf((q - .5) / s2)))
                else:
                    w = math.exp(-0.5 * u @ np.linalg.inv(cov) @ u)
                a = min(0.99, o * w)
                if a < 1 / 255:
                    continue
                if T * (1 - a) < 1e-4:
                    break
                c += a * T * col
                T *= 1 - a
            image[py, px] = c + T * bg
            alpha_out[py, px] = 1 - T
    return image, alpha_out


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", ["reference", "numba", "pairs"])
def test_matches_brute_force_oracle(mode, backend):
    scene = small_scene(25, seed=3)
    cam = orbit_camera(30, 20, 3.0, width=18, height=14, fov_x_deg=40)
    bg = np.array([0.1, 0.2, 0.3])
    image, alpha, _ = rasterize(*scene, cam.viewmat, cam.K, 18, 14, aa_mode=mode, backend=backend,
                                background=torch.tensor(bg))
    ref_image, ref_alpha = oracle(*scene, cam.viewmat, cam.K, 18, 14, mode, bg)
    assert ref_alpha.max() > 0.9  # the scene does cover the image
    np.testing.assert_allclose(image.numpy(), ref_image, atol=1e-9)
    np.testing.assert_allclose(alpha.numpy(), ref_alpha, atol=1e-9)


def test_opaque_stack_hits_transmittance_cutoff():
    """Many opaque layers: compositing must stop before T < 1e-4 in both backends."""
    n = 12
    means = torch.zeros(n, 3, dtype=torch.float64)
    means[:, 2] = torch.linspace(0, 1, n, dtype=torch.float64)
    quats = torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64).repeat(n, 1)
    scales = torch.full((n, 3), 0.5, dtype=torch.float64)
    opac = torch.full((n,), 0.999, dtype=torch.float64)
    colors = torch.rand(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    cam = orbit_camera(0, 0, 4.0, width=6, height=6)
    out = {}
    for backend in ("reference", "numba", "pairs"):
        out[backend] = rasterize(means, quats, scales, opac, colors, cam.viewmat, cam.K, 6, 6, backend=backend)[:2]
    ref = oracle(means, quats, scales, opac, colors, cam.viewmat, cam.K, 6, 6, "classic", np.zeros(3))
    centre_alpha = ref[1][3, 3]
    assert 1 - centre_alpha >= 1e-4 * 0.99 and 1 - centre_alpha < 1e-2  # stopped with T just above the cut-off
    for image, alpha in out.values():
        np.testing.assert_allclose(image.numpy(), ref[0], atol=1e-10)
        np.testing.assert_allclose(alpha.numpy(), ref[1], atol=1e-10)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("backend", ["reference", "numba", "pairs"])
def test_gradients_match_finite_differences(mode, backend):
    means, quats, scales, opac, colors = small_scene(3, seed=7, spread=0.25, size=(0.15, 0.3))
    opac = opac.clamp(max=0.6)
    cam = orbit_camera(15, 10, 3.0, width=8, height=8, fov_x_deg=25)
    bg = torch.tensor([0.3, 0.1, 0.2], dtype=torch.float64)

    def f(m, q, s, o, c):
        image, alpha, _ = rasterize(m, q, s, o, c, cam.viewmat, cam.K, 8, 8, aa_mode=mode, backend=backend,
                                    background=bg)
        return projections(image, alpha)

    inputs = tuple(t.clone().requires_grad_() for t in (means, quats, scales, opac, colors))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("backend", ["reference", "numba"])
def test_sh_gradients_degree_3(backend):
    means, quats, scales, opac, _ = small_scene(3, seed=11, spread=0.25, size=(0.15, 0.3))
    opac = opac.clamp(max=0.6)
    sh = torch.randn(3, 16, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 0.2
    cam = orbit_camera(40, -20, 3.0, width=8, height=8, fov_x_deg=25)

    def f(m, coeffs):
        image, alpha, _ = rasterize(m, quats, scales, opac, coeffs, cam.viewmat, cam.K, 8, 8, sh_degree=3,
                                    backend=backend)
        return projections(image, alpha)

    assert torch.autograd.gradcheck(f, (means.clone().requires_grad_(), sh.requires_grad_()), eps=1e-6, atol=1e-5)


def test_fast_and_reference_agree_on_larger_scene():
    scene = small_scene(300, seed=5, size=(0.01, 0.1))
    cam = orbit_camera(10, 30, 3.0, width=48, height=40)
    results = {}
    for backend in ("reference", "numba", "pairs"):
        params = [t.clone().requires_grad_() for t in scene]
        image, alpha, _ = rasterize(*params, cam.viewmat, cam.K, 48, 40, aa_mode="analytic", backend=backend)
        weights = torch.sin(torch.arange(image.numel(), dtype=image.dtype)).reshape(image.shape)
        ((image * weights).sum() + alpha.sum()).backward()
        results[backend] = (image.detach(), [p.grad for p in params])
    for fast in ("numba", "pairs"):
        np.testing.assert_allclose(results[fast][0], results["reference"][0], atol=1e-12)
        for a, b in zip(results[fast][1], results["reference"][1]):
            np.testing.assert_allclose(a, b, atol=1e-9, rtol=1e-9)


def test_float32_numba_matches_float64_reference():
    scene64 = small_scene(200, seed=9, size=(0.01, 0.08))
    cam = orbit_camera(0, 0, 3.0, width=32, height=32)
    ref = rasterize(*scene64, cam.viewmat, cam.K, 32, 32, backend="reference")[0]
    fast = rasterize(*(t.float() for t in scene64), cam.viewmat.float(), cam.K.float(), 32, 32, backend="numba")[0]
    assert fast.dtype == torch.float32
    assert (fast.double() - ref).abs().max() < 1e-3


@pytest.mark.parametrize("theta", [0.0, 0.6])
@pytest.mark.parametrize("sigmas", [(0.3, 0.2), (1.5, 0.7), (4.0, 2.5)])
def test_analytic_weight_matches_pixel_integral(theta, sigmas):
    """The analytic weight equals ∫ over the pixel square of exp(−½uᵀΣ⁻¹u) (exact when axis-aligned)."""
    s1, s2 = sigmas
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([s1**2, s2**2]) @ rot.T
    inv = np.linalg.inv(cov)
    params = torch.tensor([c, s, s1, s2], dtype=torch.float64)
    for dx, dy in [(0.0, 0.0), (0.7, -0.3), (-1.6, 2.2)]:
        numeric, _ = integrate.dblquad(lambda y, x: math.exp(-0.5 * np.array([x, y]) @ inv @ np.array([x, y])),
                                       dx - 0.5, dx + 0.5, dy - 0.5, dy + 0.5, epsabs=1e-12)
        analytic = splat_weight(torch.tensor(dx, dtype=torch.float64), torch.tensor(dy, dtype=torch.float64), params, "analytic").item()
        if theta == 0.0:
            assert analytic == pytest.approx(numeric, rel=1e-7, abs=1e-12)
        else:  # pixel window approximated as aligned with the eigenvectors (Analytic-Splatting)
            assert analytic == pytest.approx(numeric, rel=0.06, abs=1e-4)


def test_analytic_antialiasing_closer_to_supersampled_than_classic():
    """Rendering at 1/4 resolution: analytic (and mip) are closer to a box-downsampled 4x render."""
    scene = small_scene(400, seed=1, size=(0.004, 0.012))
    big = orbit_camera(0, 0, 2.5, width=128, height=128)
    small = big.scaled(0.25)
    hi = rasterize(*scene, big.viewmat, big.K, 128, 128, aa_mode="classic")[0]
    truth = hi.reshape(32, 4, 32, 4, 3).mean((1, 3))
    err = {}
    for mode in MODES:
        low = rasterize(*scene, small.viewmat, small.K, 32, 32, aa_mode=mode)[0]
        err[mode] = (low - truth).abs().mean().item()
    assert err["analytic"] < err["classic"]
    assert err["mip"] < err["classic"]


def test_sh_basis_orthonormal_and_sign_convention():
    """Y_k are orthonormal on the sphere (checks every constant) and follow the 3DGS signs."""
    x, w = np.polynomial.legendre.leggauss(40)
    phis = np.linspace(0, 2 * np.pi, 80, endpoint=False)
    ct, ph = np.meshgrid(x, phis, indexing="ij")
    st = np.sqrt(1 - ct**2)
    dirs = torch.tensor(np.stack([st * np.cos(ph), st * np.sin(ph), ct], -1))
    weights = torch.tensor(np.outer(w, np.full(80, 2 * np.pi / 80)))
    Y = sh_bases(3, dirs)
    gram = torch.einsum("abk,abl,ab->kl", Y, Y, weights)
    np.testing.assert_allclose(gram.numpy(), np.eye(16), atol=1e-10)
    d = torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    Y1 = sh_bases(1, d)[:, 1:]
    np.testing.assert_allclose(torch.diagonal(Y1).numpy(), [-0.4886025119029199, 0.4886025119029199,
                                                            -0.4886025119029199])


def test_view_dependent_colour_from_sh():
    """A single Gaussian with degree-1 SH seen from +z and −z shows the expected colour."""
    from engines.render.sh import sh_to_color

    sh = torch.zeros(1, 4, 3, dtype=torch.float64)
    sh[0, 2, 0] = 1.0  # basis 2 = +C1·z on red
    mean = torch.zeros(1, 3, dtype=torch.float64)
    front = sh_to_color(sh, mean, torch.tensor([0.0, 0.0, -2.0], dtype=torch.float64))  # d = +z
    back = sh_to_color(sh, mean, torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64))
    assert front[0, 0].item() == pytest.approx(0.5 + 0.4886025119029199)
    assert back[0, 0].item() == pytest.approx(0.5 - 0.4886025119029199)


def test_tiled_still_equals_untiled_render():
    """Tiles (shifted principal point + the whole image's Jacobian clamp) reproduce the single render."""
    import numpy as np

    from engines.jobs import run_job
    from engines.render.camera import frame_camera
    from engines.render.rasterize import rasterize_scene
    from engines.render.still import render_tiled, tile_cameras
    from engines.render.synthetic import sphere_scene

    scene = sphere_scene(300, footprint=0.25, sh_degree=1)
    camera = frame_camera(scene.means, 35, 20, 53, 41, 60.0, distance_factor=0.8)  # splats beyond the edges
    assert len(list(tile_cameras(camera, 16))) == 4 * 3
    with torch.no_grad():
        whole, alpha, meta = rasterize_scene(scene, camera.to(torch.float32), background=torch.tensor([0.1, 0.2, 0.3]),
                                             sh_degree=1)
    image, coverage, visible = run_job(render_tiled(scene, camera, background=(0.1, 0.2, 0.3), tile=16))
    np.testing.assert_allclose(image, whole.clamp(0, 1).numpy(), atol=1e-6)
    assert abs(coverage - float(alpha.mean())) < 1e-5 and visible == meta["ids"].numel()
    as_u8, _, _ = run_job(render_tiled(scene, camera, background=(0.1, 0.2, 0.3), tile=16, dtype=np.uint8))
    assert as_u8.dtype == np.uint8 and np.abs(as_u8 / 255.0 - image).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("aa_mode", ["classic", "mip", "analytic"])
def test_stepwise_still_is_bit_identical_to_one_render(aa_mode):
    """Projection/SH in splat chunks and compositing in bands of tile rows give exactly the one-call image."""
    from engines.jobs import run_job
    from engines.render.camera import frame_camera
    from engines.render.rasterize import rasterize_scene
    from engines.render.still import rasterize_steps, still_job
    from engines.render.synthetic import sphere_scene

    scene = sphere_scene(1500, footprint=0.2, sh_degree=2)
    camera = frame_camera(scene.means, 30, 15, 96, 72, 50.0, distance_factor=0.9).to(torch.float32)
    bg = torch.tensor([0.1, 0.2, 0.3])
    with torch.no_grad():
        whole, alpha, meta = rasterize_scene(scene, camera, aa_mode=aa_mode, background=bg)
    events = []
    image, a, ids = run_job(rasterize_steps(scene, camera, aa_mode, bg, chunk=512, band_pairs=300),
                            on_event=events.append)
    assert torch.equal(ids, meta["ids"]), "ids"
    assert torch.equal(a, alpha), (a - alpha).abs().max()
    assert torch.equal(image, whole), (image - whole).abs().max()
    assert len(events) >= 3 + 2 + 3  # 3 projection chunks, >= 2 SH chunks, several bands
    still = run_job(still_job(scene, camera, aa_mode, (0.1, 0.2, 0.3)))
    assert np.array_equal(still, whole.clamp(0, 1).numpy())


def test_still_cancel_stops_between_bands(monkeypatch):
    """A cancel between two composited bands stops the still: later bands are never composited."""
    from engines.jobs import CancelToken, JobCancelled, Progress, run_job
    from engines.render import _kernels as kern
    from engines.render import still
    from engines.render.camera import frame_camera
    from engines.render.synthetic import sphere_scene

    scene = sphere_scene(1500, footprint=0.2)
    camera = frame_camera(scene.means, 30, 15, 96, 72, 50.0, distance_factor=0.9)
    calls = []
    real = kern.forward_tiles
    monkeypatch.setattr(kern, "forward_tiles", lambda *args: calls.append(args[-5:-3]) or real(*args))
    monkeypatch.setattr(still, "BAND_PAIRS", 1)  # bands of one tile row
    monkeypatch.setattr(still, "BAND_SECONDS", 1e-9)
    token = CancelToken()

    def on_event(event):
        if isinstance(event, Progress) and len(calls) == 2:
            token.cancel()

    with pytest.raises(JobCancelled):
        run_job(still.still_job(scene, camera), on_event=on_event, cancel=token)
    assert len(calls) == 2 and calls[0][1] == calls[1][0]  # consecutive bands, then the stop
