"""The tile-parallel numba kernels give exactly the single-thread result (forward and gradients)."""

import numba
import pytest
import torch

from engines.render.camera import orbit_camera
from engines.render.rasterize import rasterize


def _scene(n, seed):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=torch.float64) * 2 - 1) * 0.6
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    scales = 0.01 + 0.07 * torch.rand(n, 3, generator=g, dtype=torch.float64)
    opac = 0.2 + 0.75 * torch.rand(n, generator=g, dtype=torch.float64)
    colors = torch.rand(n, 3, generator=g, dtype=torch.float64)
    return means, quats, scales, opac, colors


def _render_and_grad(scene, cam, mode, backend):
    params = [t.clone().requires_grad_() for t in scene]
    image, alpha, _ = rasterize(*params, cam.viewmat, cam.K, cam.width, cam.height, aa_mode=mode, backend=backend,
                                background=torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64))
    weights = torch.cos(torch.arange(image.numel(), dtype=image.dtype) * 0.37).reshape(image.shape)
    ((image * weights).sum() + (alpha * alpha).sum()).backward()
    return image.detach(), alpha.detach(), [p.grad for p in params]


@pytest.mark.parametrize("mode", ["classic", "mip", "analytic"])
def test_parallel_equals_single_thread_bit_for_bit(mode):
    scene = _scene(600, seed=4)
    cam = orbit_camera(20, 15, 2.5, width=70, height=53)  # non-multiple-of-tile sizes: partial edge tiles
    serial = _render_and_grad(scene, cam, mode, "numba_serial")
    torch_threads = torch.get_num_threads()
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            par = _render_and_grad(scene, cam, mode, "numba_parallel")
            assert torch.equal(par[0], serial[0]) and torch.equal(par[1], serial[1])
            for a, b in zip(par[2], serial[2]):
                assert torch.equal(a, b), (threads, (a - b).abs().max())
    finally:
        numba.set_num_threads(before)
        torch.set_num_threads(torch_threads)  # numba's OpenMP start-up may have changed it
    assert serial[1].max() > 0.5 and all(g.abs().max() > 0 for g in serial[2])  # non-trivial scene


def test_parallel_matches_reference_with_gradients():
    scene = _scene(150, seed=8)
    cam = orbit_camera(-30, 5, 2.5, width=33, height=27)
    ref = _render_and_grad(scene, cam, "classic", "reference")
    par = _render_and_grad(scene, cam, "classic", "numba_parallel")
    assert (par[0] - ref[0]).abs().max() < 1e-12
    assert (par[1] - ref[1]).abs().max() < 1e-12
    for a, b in zip(par[2], ref[2]):
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-9)


def test_auto_backend_switches_to_the_pool_above_the_pair_threshold(monkeypatch):
    import engines.render.rasterize as R

    scene = _scene(300, seed=2)
    cam = orbit_camera(0, 0, 2.5, width=40, height=40)
    calls = []
    real = R._kernels
    monkeypatch.setattr(R, "_kernels", lambda parallel: calls.append(parallel) or real(parallel))
    small = _render_and_grad(scene, cam, "classic", "numba")
    monkeypatch.setattr(R, "PARALLEL_MIN_PAIRS", 1)
    big = _render_and_grad(scene, cam, "classic", "numba")
    assert calls == [False, False, True, True]  # forward + backward, same choice in both
    assert torch.equal(small[0], big[0]) and all(torch.equal(a, b) for a, b in zip(small[2], big[2]))


def test_cli_threads_caps_numba_pool_same_image(tmp_path):
    """``render image --threads 1`` runs the rasterizer on one numba thread and gives the same PNG."""
    import numpy as np
    from PIL import Image

    from engines.render.io import save_ply
    from engines.render.synthetic import sphere_scene
    from studio.cli import main

    scene = tmp_path / "s.ply"
    save_ply(scene, sphere_scene(300, footprint=0.1, sh_degree=1))
    torch_threads, before = torch.get_num_threads(), numba.get_num_threads()
    try:
        outs = []
        for threads in (1, numba.config.NUMBA_NUM_THREADS):
            out = tmp_path / f"t{threads}.png"
            assert main(["render", "image", str(scene), "--size", "40,30", "--out", str(out),
                         "--threads", str(threads)]) == 0
            assert numba.get_num_threads() == threads
            outs.append(np.asarray(Image.open(out)))
        assert np.array_equal(outs[0], outs[1]) and outs[0].std() > 1
    finally:
        numba.set_num_threads(before)
        torch.set_num_threads(torch_threads)
