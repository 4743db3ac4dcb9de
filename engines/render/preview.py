"""Fast CPU splatting for interactive views (no OpenGL, or a software one), same rules as the rasterizer.

:func:`render_preview` projects the Gaussians (EWA, the "classic" mode of
:func:`engines.render.project.project_gaussians`: Jacobian clamp at 1.3·half-FOV, +0.3 px dilation,
radius ceil(3·sqrt(λ_max)), pixel centres at +0.5), sorts them by depth and composites them front
to back with the rasterizer's rules (α = min(0.99, o·exp(−½ uᵀΣ₂⁻¹u)), α < 1/255 skipped, a pixel
stops before the splat that would bring its transmittance below 1e-4), splat by splat rather than
pixel by pixel: no per-tile lists, and whole 8 px tiles are skipped once all their pixels stopped.
No gradients (use :func:`engines.render.rasterize.rasterize` for fitting). The kernels are numba
``nogil``: a worker thread rendering does not stall the GUI thread, and row bands render on
``threads`` Python threads at once.

A coarse frame (while the camera moves) is the same call at a fraction of the resolution
(``scale``); the image is returned at that size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit

from engines.render.project import covariance_3d
from engines.render.scene import sh_to_rgb
from engines.render.sh import sh_to_color

__all__ = ["Cancelled", "PreviewScene", "preview_scene", "render_preview"]


@dataclass
class PreviewScene:
    """What the preview renderer reads: means (N,3), covariance upper triangle xx xy xz yy yz zz (N,6),
    opacities (N,), DC colours (N,3) and optionally ``color_fn(camera centre) -> (N,3)`` (view-dependent)."""

    means: np.ndarray
    cov6: np.ndarray
    opacities: np.ndarray
    rgb: np.ndarray
    color_fn: Callable | None = None

    def __len__(self) -> int:
        return int(self.means.shape[0])

    def subset(self, stride: int) -> PreviewScene:
        """Every ``stride``-th splat (a cheaper, approximate coarse frame for scenes with many layers)."""
        if stride <= 1:
            return self
        fn = self.color_fn
        pick = lambda a: np.ascontiguousarray(a[::stride])
        return PreviewScene(pick(self.means), pick(self.cov6), pick(self.opacities), pick(self.rgb),
                            None if fn is None else (lambda centre: np.asarray(fn(centre))[::stride]))

    def colors(self, centre: np.ndarray) -> np.ndarray:
        """RGB (N,3) seen from the camera centre ``centre``."""
        if self.color_fn is None:
            return self.rgb
        return np.asarray(self.color_fn(np.asarray(centre, np.float64)))[:, :3]


def preview_scene(scene, sh_degree: int | None = None) -> PreviewScene:
    """Pre-activated arrays of a :class:`~engines.render.scene.Gaussians` (once per scene, not per frame).

    Colours follow the rasterizer: max(SH(d) + 0.5, 0) up to ``sh_degree`` (default: all bands).
    """
    with torch.no_grad():
        cov = covariance_3d(scene.quats.float(), scene.scales.float())
        cov6 = torch.stack([cov[:, 0, 0], cov[:, 0, 1], cov[:, 0, 2], cov[:, 1, 1], cov[:, 1, 2], cov[:, 2, 2]], 1)
        degree = scene.sh_degree if sh_degree is None else min(int(sh_degree), scene.sh_degree)
        means = scene.means.detach().float().contiguous()
        color_fn = None
        if degree > 0:
            sh = scene.sh[:, :(degree + 1) ** 2].detach().float().contiguous()

            def color_fn(centre):
                with torch.no_grad():
                    centre = torch.as_tensor(centre, dtype=torch.float32)
                    return sh_to_color(sh, means, centre, degree).clamp_min(0.0).numpy()

        rgb = sh_to_rgb(scene.sh[:, 0].detach().float()).clamp_min(0.0)
        return PreviewScene(np.ascontiguousarray(means.numpy()), np.ascontiguousarray(cov6.numpy()),
                            np.ascontiguousarray(scene.opacities.detach().float().numpy()),
                            np.ascontiguousarray(rgb.numpy()), color_fn)


@njit(cache=True, nogil=True)
def _project(means, cov6, view, fx, fy, cx, cy, width, height, near, out, radii, depth, abort):
    """EWA projection; out[i] = (mean x, mean y, conic A, B, C); radii -1 for culled splats.
    Stops early (the rest culled) once ``abort[0]`` is set (read every 1024 splats)."""
    lim_x = 1.3 * 0.5 * width / fx
    lim_y = 1.3 * 0.5 * height / fy
    radii[:] = -1
    for i in range(means.shape[0]):
        if (i & 1023) == 0 and abort[0] != 0:
            return
        px, py, pz = means[i, 0], means[i, 1], means[i, 2]
        tx = view[0, 0] * px + view[0, 1] * py + view[0, 2] * pz + view[0, 3]
        ty = view[1, 0] * px + view[1, 1] * py + view[1, 2] * pz + view[1, 3]
        tz = view[2, 0] * px + view[2, 1] * py + view[2, 2] * pz + view[2, 3]
        depth[i] = tz
        radii[i] = -1
        if tz <= near:
            continue
        ux = min(max(tx / tz, -lim_x), lim_x) * tz
        uy = min(max(ty / tz, -lim_y), lim_y) * tz
        # rows of J·W (2x3)
        j00, j02 = fx / tz, -fx * ux / (tz * tz)
        j11, j12 = fy / tz, -fy * uy / (tz * tz)
        r0 = (j00 * view[0, 0] + j02 * view[2, 0], j00 * view[0, 1] + j02 * view[2, 1],
              j00 * view[0, 2] + j02 * view[2, 2])
        r1 = (j11 * view[1, 0] + j12 * view[2, 0], j11 * view[1, 1] + j12 * view[2, 1],
              j11 * view[1, 2] + j12 * view[2, 2])
        sxx, sxy, sxz, syy, syz, szz = cov6[i, 0], cov6[i, 1], cov6[i, 2], cov6[i, 3], cov6[i, 4], cov6[i, 5]
        s0 = (sxx * r0[0] + sxy * r0[1] + sxz * r0[2], sxy * r0[0] + syy * r0[1] + syz * r0[2],
              sxz * r0[0] + syz * r0[1] + szz * r0[2])
        s1 = (sxx * r1[0] + sxy * r1[1] + sxz * r1[2], sxy * r1[0] + syy * r1[1] + syz * r1[2],
              sxz * r1[0] + syz * r1[1] + szz * r1[2])
        a = r0[0] * s0[0] + r0[1] * s0[1] + r0[2] * s0[2] + 0.3
        b = r1[0] * s0[0] + r1[1] * s0[1] + r1[2] * s0[2]
        c = r1[0] * s1[0] + r1[1] * s1[1] + r1[2] * s1[2] + 0.3
        det = a * c - b * b
        if det <= 0.0:
            continue
        mid = 0.5 * (a + c)
        lam = mid + math.sqrt(max(0.1, mid * mid - det))
        r = math.ceil(3.0 * math.sqrt(lam))
        mx = fx * tx / tz + cx
        my = fy * ty / tz + cy
        if not (mx + r > 0 and mx - r < width and my + r > 0 and my - r < height):
            continue
        out[i, 0], out[i, 1] = mx, my
        out[i, 2], out[i, 3], out[i, 4] = c / det, -b / det, a / det
        radii[i] = r


@njit(cache=True, nogil=True)
def _composite(order, proj, radii, opac, colors, image, trans, row0, row1, tile, abort):
    """Front-to-back compositing of splats (``order`` front to back) into image rows [row0, row1).

    Returns early (image incomplete) once ``abort[0]`` is non-zero: another thread cancels a frame
    in flight by setting it; it is read every 64 splats.

    ``trans`` (h, w) holds each pixel's transmittance, negative once the pixel is finished (the next
    splat would have brought it below 1e-4, the rasterizer's stop rule). Tiles of ``tile`` px whose
    pixels are all finished are skipped without looking at their pixels.
    """
    height, width = trans.shape
    ntx = (width + tile - 1) // tile
    nty = (height + tile - 1) // tile
    left = np.zeros((nty, ntx), np.int64)  # unfinished pixels per tile (rows of this band only)
    for y in range(row0, row1):
        for x in range(width):
            left[y // tile, x // tile] += 1
    for k in range(order.shape[0]):
        if (k & 63) == 0 and abort[0] != 0:
            return
        g = order[k]
        r = radii[g]
        if r < 0:
            continue
        mx, my = proj[g, 0], proj[g, 1]
        a0 = max(0, int(math.ceil(mx - r - 0.5)))  # noqa: RUF046 - int for numba
        a1 = min(width - 1, int(math.floor(mx + r - 0.5)))  # noqa: RUF046 - int for numba
        b0 = max(row0, int(math.ceil(my - r - 0.5)))  # noqa: RUF046 - int for numba
        b1 = min(row1 - 1, int(math.floor(my + r - 0.5)))  # noqa: RUF046 - int for numba
        if a0 > a1 or b0 > b1:
            continue
        ca, cb, cc, o = proj[g, 2], proj[g, 3], proj[g, 4], opac[g]
        if o <= 0.0:
            continue
        lthr = math.log(1.0 / 255.0 / o) - 1e-6  # power below this: alpha < 1/255 for sure, skip exp()
        cr, cg, cbl = colors[g, 0], colors[g, 1], colors[g, 2]
        for ty in range(b0 // tile, b1 // tile + 1):
            for tx in range(a0 // tile, a1 // tile + 1):
                if left[ty, tx] == 0:
                    continue
                for y in range(max(b0, ty * tile), min(b1, ty * tile + tile - 1) + 1):
                    dy = y + 0.5 - my
                    for x in range(max(a0, tx * tile), min(a1, tx * tile + tile - 1) + 1):
                        t = trans[y, x]
                        if t < 0.0:
                            continue
                        dx = x + 0.5 - mx
                        power = -0.5 * (ca * dx * dx + cc * dy * dy) - cb * dx * dy
                        if power < lthr:
                            continue
                        alpha = o * math.exp(power)
                        if alpha < 1.0 / 255.0:
                            continue
                        alpha = min(alpha, 0.99)
                        t_next = t * (1.0 - alpha)
                        if t_next < 1e-4:
                            trans[y, x] = -t
                            left[ty, tx] -= 1
                            continue
                        w = alpha * t
                        image[y, x, 0] += w * cr
                        image[y, x, 1] += w * cg
                        image[y, x, 2] += w * cbl
                        trans[y, x] = t_next


@njit(cache=True, nogil=True)
def _front_to_back(means, cov6, view, fx, fy, cx, cy, width, height, near, abort):
    """Project and depth-sort in one nogil call: (order of visible splats front to back, proj, radii).

    Stable sort of the float32 depths (the same order as sorting their int32 bit patterns)."""
    n = means.shape[0]
    proj = np.zeros((n, 5), np.float64)
    radii = np.empty(n, np.int64)
    depth = np.empty(n, np.float64)
    _project(means, cov6, view, fx, fy, cx, cy, width, height, near, proj, radii, depth, abort)
    count = 0
    for i in range(n):
        if radii[i] >= 0:
            count += 1
    visible = np.empty(count, np.int64)
    keys = np.empty(count, np.float32)
    count = 0
    for i in range(n):
        if radii[i] >= 0:
            visible[count] = i
            keys[count] = depth[i]
            count += 1
    return visible[np.argsort(keys, kind="mergesort")], proj, radii


@njit(cache=True, nogil=True)
def _finish(image, trans, background):
    """Background under the remaining transmittance, clipped to [0, 1], as float32."""
    height, width = trans.shape
    out = np.empty((height, width, 3), np.float32)
    for y in range(height):
        for x in range(width):
            t = abs(trans[y, x])
            for c in range(3):
                out[y, x, c] = min(max(image[y, x, c] + t * background[c], 0.0), 1.0)
    return out


@njit(cache=True, nogil=True)
def _render_single(means, cov6, view, fx, fy, cx, cy, width, height, near, opac, colors, background, tile,
                   abort):
    """A whole frame in one nogil call (coarse frames: the worker takes the GIL once, not per step)."""
    order, proj, radii = _front_to_back(means, cov6, view, fx, fy, cx, cy, width, height, near, abort)
    image = np.zeros((height, width, 3), np.float64)
    trans = np.ones((height, width), np.float64)
    _composite(order, proj, radii, opac, colors, image, trans, 0, height, tile, abort)
    return _finish(image, trans, background)


_POOL: ThreadPoolExecutor | None = None
TILE = 8


class Cancelled(Exception):
    """Raised by :func:`render_preview` when its ``cancelled()`` callback turned true between bands or
    its ``abort`` flag was set while compositing."""


def render_preview(prep: PreviewScene, K, viewmat, width: int, height: int, background=(0.0, 0.0, 0.0),
                   scale: float = 1.0, near: float = 0.01, threads: int = 2, bands: int | None = None,
                   cancelled: Callable[[], bool] | None = None, abort: np.ndarray | None = None) -> np.ndarray:
    """Render ``prep`` through (K (3,3), viewmat (4,4) world->camera) -> (h, w, 3) float32 in [0, 1].

    ``scale`` < 1 renders a coarse frame at round(scale·size) (the same view, K scaled). The image is
    composited in ``bands`` row bands (default ``threads``), ``threads`` at a time on a small pool of
    threads (nogil kernels). ``abort`` (int8 array of 1) cancels from another thread: set it non-zero
    and the kernels stop within 64 splats; ``cancelled()`` is checked between rounds of bands. Either
    raises :class:`Cancelled`.
    """
    global _POOL
    abort = np.zeros(1, np.int8) if abort is None else abort
    K = np.asarray(K, np.float64)
    view = np.ascontiguousarray(np.asarray(viewmat, np.float64))
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    fx, fy, cx, cy = K[0, 0] * scale, K[1, 1] * scale, K[0, 2] * scale, K[1, 2] * scale  # as Camera.scaled
    colors = np.ascontiguousarray(prep.colors(-view[:3, :3].T @ view[:3, 3]), np.float64)
    opac = np.ascontiguousarray(prep.opacities, np.float64)
    bg = np.asarray(background, np.float64).reshape(3)
    threads = max(1, int(threads))
    bands = max(1, min(int(bands or threads), h))
    if abort[0] or (cancelled is not None and cancelled()):
        raise Cancelled
    if bands == 1:
        image = _render_single(prep.means, prep.cov6, view, fx, fy, cx, cy, w, h, near, opac, colors, bg, TILE,
                               abort)
        if abort[0]:
            raise Cancelled
        return image
    order, proj, radii = _front_to_back(prep.means, prep.cov6, view, fx, fy, cx, cy, w, h, near, abort)
    image = np.zeros((h, w, 3), np.float64)
    trans = np.ones((h, w), np.float64)
    edges = np.linspace(0, h, bands + 1).astype(int)
    args = (order, proj, radii, opac, colors, image, trans)
    for first in range(0, bands, threads):
        if abort[0] or (cancelled is not None and cancelled()):
            raise Cancelled
        rounds = range(first, min(bands, first + threads))
        if len(rounds) == 1:
            _composite(*args, int(edges[first]), int(edges[first + 1]), TILE, abort)
            continue
        if _POOL is None:
            from engines.thread_priority import lower_current_thread

            _POOL = ThreadPoolExecutor(4, thread_name_prefix="preview", initializer=lower_current_thread)
        jobs = [_POOL.submit(_composite, *args, int(edges[i]), int(edges[i + 1]), TILE, abort) for i in rounds]
        for job in jobs:
            job.result()
    if abort[0]:
        raise Cancelled
    return _finish(image, trans, bg)
