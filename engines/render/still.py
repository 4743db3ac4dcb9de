"""Still renders as engine jobs: the exact rasterizer, tile by tile so memory stays bounded.

A tile is the same camera with the principal point shifted and the Jacobian clamp of the whole
image (``fov_limits``), so the tiled image equals the untiled one; only one tile's working memory
(projection, tile lists, float image) exists at a time, next to the output array.

On the CPU each tile is rasterized in steps (:func:`rasterize_steps`): projection and SH in chunks
of splats, compositing in bands of 8-pixel tile rows, with a yield (a cancellation point) after
every step, so a cancel stops a big still within a fraction of a second; every step computes
exactly what the one-call rasterizer computes, so the image is bit-identical.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from engines.jobs import Progress, wait_in_thread
from engines.render.camera import Camera
from engines.render.project import project_gaussians
from engines.render.rasterize import _MODE_ID, _KernelCall, rasterize_scene
from engines.render.scene import Gaussians
from engines.render.sh import sh_to_color

__all__ = ["BAND_PAIRS", "BAND_SECONDS", "CHUNK", "TILE", "rasterize_steps", "render_tiled", "still_job", "tile_cameras"]

TILE = 1024  # tile edge in pixels
CHUNK = 32_768  # splats projected / SH-evaluated per step (a multiple of 64: see rasterize_steps)
BAND_PAIRS = 50_000  # (tile, splat) pairs in the first composited band; later bands aim at BAND_SECONDS
BAND_SECONDS = 0.25


def tile_cameras(camera: Camera, tile: int = TILE):
    """(x0, y0, tile camera) covering ``camera``'s image in row-major tiles of at most ``tile`` pixels."""
    for y0 in range(0, camera.height, tile):
        for x0 in range(0, camera.width, tile):
            K = camera.K.clone()
            K[0, 2] -= x0
            K[1, 2] -= y0
            yield x0, y0, Camera(K, camera.viewmat, min(tile, camera.width - x0), min(tile, camera.height - y0))


def _next_band(offsets: np.ndarray, first: int, tiles_per_row: int, budget: float) -> int:
    """End of the band of whole tile rows from tile ``first`` holding about ``budget`` (tile, splat) pairs."""
    stop = first + tiles_per_row
    while stop < len(offsets) - 1 and offsets[stop + tiles_per_row] - offsets[first] <= budget:
        stop += tiles_per_row
    return min(stop, len(offsets) - 1)


def rasterize_steps(scene: Gaussians, camera: Camera, aa_mode: str = "classic", background=None,
                    sh_degree: int | None = None, fov_limits=None, report=None, chunk: int | None = None,
                    band_pairs: int | None = None):
    """Job: :func:`~engines.render.rasterize.rasterize_scene` (numba backend, no gradients) in steps.

    Yields ``report(fraction)`` (default a Progress) after every chunk of ``chunk`` splats projected
    or coloured (default :data:`CHUNK`) and every band of composited (tile, splat) pairs (the first
    one about ``band_pairs``, default :data:`BAND_PAIRS`, later ones sized to take :data:`BAND_SECONDS`). Returns
    ``(image (H,W,3), alpha (H,W), ids)`` bit-identical to the one-call render. ``chunk`` is rounded
    up to a multiple of 64 so chunk edges fall on SIMD-vector edges (torch's vector and scalar tail
    loops of sin/atan2/exp may differ in the last bit).
    """
    from engines.render import _kernels as kern

    report = report or (lambda f: Progress(f, 1.0, "rasterizing"))
    W, H = camera.width, camera.height
    deg = scene.sh_degree if sh_degree is None else min(int(sh_degree), scene.sh_degree)
    dtype = scene.means.dtype
    viewmat, K = camera.viewmat.to(dtype), camera.K.to(dtype)
    n = len(scene)
    chunk = -(-max(1, int(chunk or CHUNK)) // 64) * 64
    steps = 2 * max(1, -(-n // chunk))
    parts = []
    with torch.no_grad():
        for start in range(0, n, chunk):
            sl = slice(start, start + chunk)
            p = project_gaussians(scene.means[sl], scene.quats[sl], scene.scales[sl], scene.opacities[sl], viewmat, K,
                                  W, H, aa_mode, 0.01, 1e10, fov_limits)
            parts.append((p.ids + start, p.means2d, p.depths, p.params, p.opacities, p.radii))
            yield report(0.4 * len(parts) / steps)
        ids, means2d, depths, params, opac, radii = (torch.cat(f) for f in zip(*parts)) if parts else [None] * 6
        centre = -viewmat[:3, :3].T @ viewmat[:3, 3]
        colors = []
        for start in range(0, len(ids) if ids is not None else 0, chunk):
            sub = ids[start:start + chunk]
            colors.append(sh_to_color(scene.sh[sub], scene.means[sub], centre, deg))
            yield report(0.4 * (steps // 2 + len(colors)) / steps)
    bg = np.zeros(3, np.float32) if background is None else torch.as_tensor(background).float().cpu().numpy()
    if ids is None or ids.numel() == 0:
        empty = torch.from_numpy(np.broadcast_to(bg, (H, W, 3)).copy()).to(dtype)
        return empty, torch.zeros(H, W, dtype=dtype), torch.zeros(0, dtype=torch.int64)
    np_ = lambda t: t.detach().cpu().contiguous().numpy()
    mx, my = np_(means2d[:, 0]), np_(means2d[:, 1])
    col = np_(torch.cat(colors))
    bg = bg.astype(col.dtype)
    order = np.argsort(np_(depths), kind="stable")
    with _KernelCall():
        bins = kern.bin_tiles(mx, my, np_(radii).astype(np.int64), order, W, H, kern.TILE)
        lthr = kern.log_thresholds(np_(opac))
        image, t_final, last = kern._alloc_forward(H, W, col.shape[1], col)
    offsets = bins[0]
    per_row = (W + kern.TILE - 1) // kern.TILE
    pars, op, budget, first = np_(params), np_(opac), float(band_pairs or BAND_PAIRS), 0
    while first < len(offsets) - 1:
        yield report(0.4 + 0.6 * first / (len(offsets) - 1))
        stop = _next_band(offsets, first, per_row, budget)
        started = time.perf_counter()
        with _KernelCall():
            kern.forward_tiles(mx, my, pars, op, col, lthr, *bins, W, H, _MODE_ID[aa_mode], bg, kern.TILE,
                               first, stop, image, t_final, last)
        took = time.perf_counter() - started
        if took > 0.02:  # pairs per second of this band -> the next band's size
            budget = max(1.0, (offsets[stop] - offsets[first]) / took * BAND_SECONDS)
        first = stop
    return torch.from_numpy(image), torch.from_numpy(1.0 - t_final), ids


_WARMED: set = set()


def warm_still_kernels(aa_mode: str = "classic") -> None:
    """Load (numba cache) the kernels :func:`rasterize_steps` calls by rendering a 24-splat scene;
    once per process and mode. :func:`render_tiled` runs it on a helper thread, so a cancel does
    not wait for a cold load (about a second)."""
    if aa_mode in _WARMED:
        return
    from engines.render.camera import frame_camera
    from engines.render.synthetic import sphere_scene

    scene = sphere_scene(24, footprint=0.2)
    for _ in rasterize_steps(scene, frame_camera(scene.means, 0.0, 0.0, 24, 24), aa_mode):
        pass
    _WARMED.add(aa_mode)


def render_tiled(scene: Gaussians, camera: Camera, aa_mode: str = "classic", background=(0.0, 0.0, 0.0),
                 sh_degree: int | None = None, dtype=np.float32, tile: int = TILE, device: str = "cpu"):
    """Job: render ``scene`` tile by tile. Returns ``(image (H,W,3), alpha mean, visible count)``.

    ``dtype`` float32 gives values in [0, 1]; uint8 gives rint(255·value) (what a PNG stores), a
    quarter of the memory. Yields one Progress per tile and checks cancellation between tiles.
    """
    cam = camera.to(torch.float32)
    fx, fy = float(cam.K[0, 0]), float(cam.K[1, 1])
    limits = (1.3 * 0.5 * camera.width / fx, 1.3 * 0.5 * camera.height / fy)  # of the whole image
    image = np.empty((camera.height, camera.width, 3), dtype)
    seen = torch.zeros(len(scene), dtype=torch.bool)
    coverage = 0.0
    tiles = list(tile_cameras(cam, tile))
    bg = torch.tensor(background, dtype=torch.float32, device=device)
    if scene.means.device.type == "cpu" and aa_mode not in _WARMED:
        yield from wait_in_thread(warm_still_kernels, aa_mode, message="loading the rasterizer kernels")
    for i, (x0, y0, sub) in enumerate(tiles):
        text = f"rendering {camera.width}x{camera.height} ({aa_mode}), tile {i + 1}/{len(tiles)}"
        yield Progress(i, len(tiles), text)
        if scene.means.device.type == "cpu":  # in steps, each one a cancellation point
            report = lambda f, i=i, text=text: Progress(i + f, len(tiles), text)
            out, alpha, ids = yield from rasterize_steps(scene, sub.to(torch.float32), aa_mode, bg, sh_degree, limits,
                                                         report)
        else:
            with torch.no_grad():
                out, alpha, meta = rasterize_scene(scene, sub.to(torch.float32, device), aa_mode=aa_mode,
                                                   background=bg, sh_degree=sh_degree, fov_limits=limits)
            ids = meta["ids"]
        block = out.clamp(0, 1).cpu().numpy()
        if dtype == np.uint8:
            block = np.rint(block.astype(np.float64) * 255.0).astype(np.uint8)
        image[y0:y0 + sub.height, x0:x0 + sub.width] = block
        coverage += float(alpha.double().sum())
        seen[ids.cpu()] = True
        del out, alpha, ids, block
    yield Progress(len(tiles), len(tiles), "done")
    return image, coverage / (camera.width * camera.height), int(seen.sum())


def still_job(scene: Gaussians, camera: Camera, aa_mode: str = "classic", background=(0.0, 0.0, 0.0),
              sh_degree: int | None = None, device: str = "cpu"):
    """Render ``scene`` with the exact rasterizer; returns an (H,W,3) float32 numpy image in [0, 1]."""
    image, _, _ = yield from render_tiled(scene, camera, aa_mode, background, sh_degree, device=device)
    return image
