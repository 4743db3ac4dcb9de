"""One functional entry point for differentiable Gaussian rasterization (gsplat-style).

``rasterize(means, quats, scales, opacities, colors, viewmat, K, width, height, aa_mode=...)``
projects (EWA), evaluates SH and composites front to back. Interchangeable compositing
backends are registered in ``BACKENDS``: ``"reference"`` (vectorized torch, every pixel against
every splat), ``"numba"`` (tiled CPU kernels with a hand-written backward; tile-parallel once the
work is large enough, see ``PARALLEL_MIN_PAIRS``; ``"numba_serial"`` / ``"numba_parallel"`` force
one thread / the thread pool, with bit-identical results) and ``"pairs"`` (a
sorted pair list in plain torch, any device). ``"auto"`` picks numba for CPU tensors and pairs
elsewhere (e.g. CUDA).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import torch

from engines.render.pairs import composite_pairs
from engines.render.project import AA_MODES, Projected, project_gaussians
from engines.render.reference import composite_reference
from engines.render.sh import sh_to_color

__all__ = ["AA_MODES", "BACKENDS", "composite_numba", "rasterize", "rasterize_scene", "warm_kernels"]

_MODE_ID = {"classic": 0, "mip": 0, "analytic": 1}


# Serialises the tile-parallel kernels: numba's fallback "workqueue" threading layer aborts on
# concurrent launches from two Python threads (e.g. a fit job and a still render); omp/tbb would not.
_KERNEL_LOCK = threading.Lock()


class _KernelCall:
    """Lock + keep torch's thread count: numba's OpenMP layer resets it when it first starts."""

    def __enter__(self):
        from engines.device import apply_numba_threads

        _KERNEL_LOCK.acquire()
        self.threads = torch.get_num_threads()
        apply_numba_threads()  # the studio's threads setting, on this (worker) thread

    def __exit__(self, *exc):
        from engines.device import configured_threads

        # the studio's setting as it is now (it may have changed during the call), else the count before
        threads = configured_threads() or self.threads
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        _KERNEL_LOCK.release()


# Below this many (tile, splat) pairs the parallel launch does not pay off on a busy 2-core machine
# (measured: 79k pairs no gain, ~1M pairs 1.7x with 2 threads); results are identical either way.
PARALLEL_MIN_PAIRS = 200_000


def _kernels(parallel: bool):
    from engines.render import _kernels as kern

    if parallel:
        return kern.forward, kern.backward
    return kern.forward_serial, kern.backward_serial


class _NumbaComposite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, params, opac, colors, radii, depths, width, height, mode, bg, parallel):
        from engines.render import _kernels as kern

        np_ = lambda t: t.detach().cpu().contiguous().numpy()
        mx, my = np_(means2d[:, 0]), np_(means2d[:, 1])
        order = np.argsort(np_(depths), kind="stable")
        tile = kern.TILE
        pars, op, col, bgn = np_(params), np_(opac), np_(colors), np_(bg)
        with _KernelCall():
            bins = kern.bin_tiles(mx, my, np_(radii).astype(np.int64), order, width, height, tile)
            lthr = kern.log_thresholds(op)
            if parallel is None:
                parallel = int(bins[0][-1]) >= PARALLEL_MIN_PAIRS
            fwd, _ = _kernels(parallel)
            image, t_final, last = fwd(mx, my, pars, op, col, lthr, *bins, width, height, _MODE_ID[mode], bgn, tile)
        ctx.saved = (mx, my, pars, op, col, lthr, bins, width, height, _MODE_ID[mode], bgn, t_final, last, tile)
        ctx.parallel = parallel
        ctx.device = means2d.device
        out = torch.from_numpy(image).to(means2d.device)
        alpha = torch.from_numpy(1.0 - t_final).to(means2d.device)
        return out, alpha

    @staticmethod
    def backward(ctx, grad_image, grad_alpha):
        mx, my, pars, op, col, lthr, bins, width, height, mode, bgn, t_final, last, tile = ctx.saved
        gi = grad_image.detach().cpu().contiguous().numpy().astype(col.dtype, copy=False)
        ga = grad_alpha.detach().cpu().contiguous().numpy().astype(col.dtype, copy=False)
        _, bwd = _kernels(ctx.parallel)
        with _KernelCall():
            g_mean, g_par, g_op, g_col = bwd(mx, my, pars, op, col, lthr, *bins, width, height, mode, bgn,
                                             t_final, last, gi, ga, tile)
        dev = ctx.device
        f = lambda a: torch.from_numpy(a).to(dev)
        return f(g_mean), f(g_par), f(g_op), f(g_col), None, None, None, None, None, None, None


def composite_numba(means2d, params, opacities, colors, radii, depths, width: int, height: int, mode: str,
                    background=None, parallel: bool | None = None):
    """Fast CPU compositing; same signature and result as :func:`composite_reference`.

    ``parallel=True`` runs the tile loops on numba's thread pool (``NUMBA_NUM_THREADS`` /
    ``numba.set_num_threads``), ``False`` on this thread, ``None`` (default) picks the pool when
    there are at least ``PARALLEL_MIN_PAIRS`` (tile, splat) pairs. Results are bit-identical.
    """
    nchan = colors.shape[1]
    bg = colors.new_zeros(nchan) if background is None else torch.as_tensor(background, dtype=colors.dtype)
    if means2d.shape[0] == 0:
        return bg.expand(height, width, nchan).clone(), colors.new_zeros(height, width)
    return _NumbaComposite.apply(means2d, params, opacities, colors, radii, depths, int(width), int(height), mode,
                                 bg.detach(), None if parallel is None else bool(parallel))


def composite_numba_serial(*args, **kwargs):
    """:func:`composite_numba` on one thread (the check for the parallel path)."""
    return composite_numba(*args, parallel=False, **kwargs)


def composite_numba_parallel(*args, **kwargs):
    """:func:`composite_numba` always on numba's thread pool."""
    return composite_numba(*args, parallel=True, **kwargs)


BACKENDS: dict[str, Callable] = {"reference": composite_reference, "numba": composite_numba,
                                 "numba_serial": composite_numba_serial,
                                 "numba_parallel": composite_numba_parallel, "pairs": composite_pairs}


def rasterize(means, quats, scales, opacities, colors, viewmat, K, width: int, height: int, *,
              aa_mode: str = "classic", sh_degree: int | None = None, background=None,
              near: float = 0.01, far: float = 1e10, render_mode: str = "RGB", backend: str = "auto",
              fov_limits: tuple[float, float] | None = None):
    """Render N Gaussians through one pinhole camera, differentiably.

    means (N,3) world; quats (N,4) wxyz (unnormalised ok); scales (N,3) activated std-devs;
    opacities (N,) activated in [0,1]; colors (N,D) activated, or SH coefficients (N,K,3) when
    ``sh_degree`` is given ((sh_degree+1)² ≤ K; colour = max(SH(d) + 0.5, 0)); viewmat (4,4)
    world->camera (OpenCV); K (3,3) pixels; background (D,) or None (black).
    ``render_mode``: "RGB" or "RGB+ED" (expected depth appended as the last channel).
    ``fov_limits``: Jacobian clamp of a larger image this one is a tile of (see ``project_gaussians``).

    Returns (image (H,W,D[+1]), alpha (H,W), meta) with meta = {"projected": Projected,
    "means2d": (M,2) screen means of the visible splats (retain_grad-able), "ids": (M,)}.
    """
    if aa_mode not in AA_MODES:
        raise ValueError(f"unknown aa_mode {aa_mode!r}; use one of {', '.join(AA_MODES)}")
    if backend == "auto":
        backend = "numba" if means.device.type == "cpu" else "pairs"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
    proj: Projected = project_gaussians(means, quats, scales, opacities, viewmat, K, width, height, aa_mode,
                                        near, far, fov_limits)
    ids = proj.ids
    if sh_degree is not None:
        viewmat_t = viewmat.to(means.dtype)
        centre = -viewmat_t[:3, :3].T @ viewmat_t[:3, 3]
        cols = sh_to_color(colors[ids], means[ids], centre, sh_degree)
    else:
        cols = colors[ids]
    bg = background
    if render_mode == "RGB+ED":
        cols = torch.cat([cols, proj.depths[:, None]], 1)
        if bg is not None:
            bg = torch.cat([torch.as_tensor(bg, dtype=cols.dtype), cols.new_zeros(1)])
    elif render_mode != "RGB":
        raise ValueError(f"unknown render_mode {render_mode!r}; use RGB or RGB+ED")
    image, alpha = BACKENDS[backend](proj.means2d, proj.params, proj.opacities, cols, proj.radii, proj.depths,
                                     width, height, aa_mode, bg)
    if render_mode == "RGB+ED":
        depth = image[..., -1:] / alpha[..., None].clamp_min(1e-10)
        image = torch.cat([image[..., :-1], depth], -1)
    return image, alpha, {"projected": proj, "means2d": proj.means2d, "ids": ids}


def rasterize_scene(scene, camera, *, aa_mode: str = "classic", background=None, sh_degree: int | None = None,
                    backend: str = "auto", fov_limits: tuple[float, float] | None = None):
    """Render a :class:`~engines.render.scene.Gaussians` scene with a :class:`~engines.render.camera.Camera`.

    Uses the scene's SH (up to ``sh_degree``, default all). Returns (image (H,W,3), alpha (H,W), meta).
    """
    deg = scene.sh_degree if sh_degree is None else min(int(sh_degree), scene.sh_degree)
    dtype = scene.means.dtype
    return rasterize(scene.means, scene.quats, scene.scales, scene.opacities, scene.sh, camera.viewmat.to(dtype),
                     camera.K.to(dtype), camera.width, camera.height, aa_mode=aa_mode, sh_degree=deg,
                     background=background, backend=backend, fov_limits=fov_limits)


def warm_kernels(aa_modes=AA_MODES) -> None:
    """Load (or, once per install, compile: ``cache=True``) the numba kernels a render or fit uses.

    Renders and differentiates a 24-splat scene through the serial and the parallel kernels for each
    of ``aa_modes``. Jobs run this on a helper thread (:func:`engines.jobs.wait_in_thread`) so a
    cancel does not wait for the compilation.
    """
    from engines.render.camera import frame_camera
    from engines.render.synthetic import sphere_scene

    scene = sphere_scene(24, footprint=0.2)
    camera = frame_camera(scene.means, 0.0, 0.0, 24, 24)
    scene.means.requires_grad_(True)
    for aa in aa_modes:
        for backend in ("numba_serial", "numba_parallel"):
            image = rasterize_scene(scene, camera, aa_mode=aa, backend=backend)[0]
            torch.autograd.grad(image.sum(), scene.means)
