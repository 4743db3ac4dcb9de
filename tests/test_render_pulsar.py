"""Pulsar-style sphere renderer: blending rule, gradients, limits."""

import math

import numpy as np
import pytest
import torch

from engines.render.camera import orbit_camera
from engines.render.pulsar import render_spheres


def brute_force(centres, radii, colors, opac, view, K, width, height, gamma, bg, eps=1e-4):
    """Per-pixel loop implementing the Pulsar blending formula directly."""
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
                w = c * opac[i] * math.exp(opac[i] * (1 - (t[i, 2] - lo) / (hi - lo)) / gamma)
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
