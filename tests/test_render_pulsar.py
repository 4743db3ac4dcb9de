"""Pulsar-style sphere renderer: blending rule, gradients, limits."""

import math

import numpy as np
import pytest
import torch

from engines.render.camera import orbit_camera
from engines.render.pulsar import render_spheres, render_spheres_dense


def brute_force(centres, radii, colors, opac, view, K, width, height, gamma, bg, eps=1e-4):
    """Per-pixel loop implementing the Pulsar blending formula directly (ray-sphere intersection depth)."""
    centres, radii, colors, opac = (np.asarray(t.detach(), np.float64) for t in (centres, radii, colors, opac))
    view, K = np.asarray(view), np.asarray(K)
    t = centres @ view[:3, :3].T + view[:3, 3]
    lo = t[:, 2].min() - radii.max()
    hi = t[:, 2].max() + radii.max()
    out = np.zeros((height, width, 3))
    for py in range(height):
        for px in range(width):
            d = np.array([(px + 0.5 - K[0, 2]) / K[0, 0], (py + 0.5 - K[1, 2]) / K[1, 1], 1.0])
            d /= np.linalg.norm(d)
            num = math.exp(eps / gamma) * np.asarray(bg)
            den = math.exp(eps / gamma)
            for i in range(len(t)):
                dist = np.linalg.norm(t[i] - (t[i] @ d) * d)
                c = 1 - dist / radii[i]
                if c <= 0:
                    continue
                z_hit = (t[i] @ d - math.sqrt(radii[i] ** 2 - dist ** 2)) * d[2]  # first intersection, camera z
                w = c * opac[i] * math.exp(opac[i] * (1 - (z_hit - lo) / (hi - lo)) / gamma)
                num = num + w * colors[i]
                den += w
            out[py, px] = num / den
    return out


def scene(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = (torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5) * 0.8
    radii = 0.25 + 0.2 * torch.rand(n, generator=g, dtype=torch.float64)
    colors = torch.rand(n, 3, generator=g, dtype=torch.float64)
    opac = 0.4 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
    return centres, radii, colors, opac


@pytest.mark.parametrize("gamma", [1.0, 0.1])
def test_matches_per_pixel_formula(gamma):
    c, r, col, o = scene(5)
    cam = orbit_camera(20, 10, 3.0, width=12, height=10, fov_x_deg=40)
    bg = [0.2, 0.4, 0.6]
    image, cover = render_spheres(c, r, col, o, cam.viewmat, cam.K, 12, 10, gamma=gamma, background=torch.tensor(bg))
    ref = brute_force(c, r, col, o, cam.viewmat, cam.K, 12, 10, gamma, bg)
    np.testing.assert_allclose(image.numpy(), ref, atol=1e-10)
    assert cover.max() > 0.5 and cover.min() >= 0


def test_small_gamma_approaches_z_buffer():
    """Two overlapping opaque spheres: with γ → 0 the pixel takes the nearer sphere's colour."""
    centres = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    radii = torch.tensor([0.5, 0.5], dtype=torch.float64)
    colors = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]], dtype=torch.float64)
    opac = torch.ones(2, dtype=torch.float64)
    cam = orbit_camera(0, 0, 4.0, width=9, height=9, fov_x_deg=30)  # camera at z = -4 looking +z
    sharp, _ = render_spheres(centres, radii, colors, opac, cam.viewmat, cam.K, 9, 9, gamma=1e-3)
    soft, _ = render_spheres(centres, radii, colors, opac, cam.viewmat, cam.K, 9, 9, gamma=1.0)
    assert sharp[4, 4, 0] > 0.999 and sharp[4, 4, 1] < 1e-3
    assert 0.2 < soft[4, 4, 1] < soft[4, 4, 0]


def test_gradients_match_finite_differences():
    c, r, col, o = scene(3, seed=4)
    cam = orbit_camera(10, 20, 3.0, width=7, height=7, fov_x_deg=40)
    mat = torch.randn(7 * 7 * 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def f(c, r, col, o):
        image, _ = render_spheres(c, r, col, o, cam.viewmat, cam.K, 7, 7, gamma=0.5, min_depth=1.0, max_depth=5.0,
                                  background=torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
        return image.reshape(-1) @ mat

    inputs = tuple(t.clone().requires_grad_() for t in (c, r, col, o))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5)


def test_empty_and_behind_camera():
    cam = orbit_camera(0, 0, 3.0, width=4, height=4)
    behind = torch.tensor([[0.0, 0.0, -10.0]])
    image, cover = render_spheres(behind, torch.ones(1), torch.ones(1, 3), torch.ones(1), cam.viewmat, cam.K, 4, 4,
                                  background=torch.tensor([0.5, 0.5, 0.5]))
    assert torch.allclose(image, torch.full((4, 4, 3), 0.5)) and cover.abs().max() == 0
    with pytest.raises(ValueError, match="gamma"):
        render_spheres(behind, torch.ones(1), torch.ones(1, 3), torch.ones(1), cam.viewmat, cam.K, 4, 4, gamma=2.0)


def test_pair_list_equals_dense_reference_with_gradients():
    """Screen-box pairs give the image and gradients of every-pixel-against-every-sphere (near plane too)."""
    g = torch.Generator().manual_seed(3)
    n = 60
    centres = ((torch.rand(n, 3, generator=g, dtype=torch.float64) - 0.5) * 2.0).requires_grad_()
    radii = (0.05 + 0.25 * torch.rand(n, generator=g, dtype=torch.float64)).requires_grad_()
    colors = torch.rand(n, 3, generator=g, dtype=torch.float64).requires_grad_()
    opac = (0.3 + 0.6 * torch.rand(n, generator=g, dtype=torch.float64)).requires_grad_()
    for cam in (orbit_camera(30, 15, 3.0, width=40, height=30), orbit_camera(0, 0, 1.1, width=24, height=20)):
        grads = []
        for fn in (render_spheres, render_spheres_dense):
            image, cover = fn(centres, radii, colors, opac, cam.viewmat, cam.K, cam.width, cam.height, gamma=0.3,
                              background=torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
            (image * torch.linspace(0, 1, image.numel(), dtype=torch.float64).reshape(image.shape)).sum().backward()
            grads.append((image.detach(), cover.detach(), [p.grad.clone() for p in (centres, radii, colors, opac)]))
            for p in (centres, radii, colors, opac):
                p.grad = None
        (ia, ca, ga), (ib, cb, gb) = grads
        np.testing.assert_allclose(ia.numpy(), ib.numpy(), atol=1e-12)
        np.testing.assert_allclose(ca.numpy(), cb.numpy(), atol=1e-12)
        for a, b in zip(ga, gb):
            np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-9)
        assert float(ca.max()) > 0.5


def test_intersection_depth_orders_overlapping_spheres():
    """A big sphere whose centre lies behind a small one's, but whose surface is in front, wins with γ → 0."""
    cam = orbit_camera(0, 0, 5.0, width=9, height=9, fov_x_deg=30)
    t = cam.viewmat.numpy()
    forward = t[2, :3]
    eye = -t[:3, :3].T @ t[:3, 3]
    small = eye + forward * 4.0
    big = eye + forward * 4.4  # centre 0.4 further, radius 1.0: surface at 3.4, in front of the small one's 3.8
    centres = torch.tensor(np.stack([small, big]), dtype=torch.float64)
    radii = torch.tensor([0.2, 1.0], dtype=torch.float64)
    colors = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]], dtype=torch.float64)
    opac = torch.tensor([0.9, 0.9], dtype=torch.float64)
    image, _ = render_spheres(centres, radii, colors, opac, cam.viewmat, cam.K, 9, 9, gamma=1e-4)
    assert image[4, 4, 2] > 0.99  # blue (big) in front at the centre pixel
    old, _ = render_spheres_dense(centres, radii, colors, opac, cam.viewmat, cam.K, 9, 9, gamma=1e-4, depth="centre")
    assert old[4, 4, 0] > 0.99  # the centre depth put the small red one in front
