"""Reference ray caster in torch: orthographic, front-to-back, early termination, opacity
correction, optional gradient (Blinn-Phong) shading; DVR, MIP, MinIP and average.

Entry point: :func:`render` (or :func:`render_job`, the same as a job generator).

Conventions. World coordinates are millimetres ``(x, y, z)`` centred on the volume, with the
volume's axes ``data[z, y, x]`` along world z, y, x (z up). The camera is orthographic and
looks at the centre. ``azimuth = elevation = 0`` looks along +y with +x to the right and +z
up; ``elevation`` raises the camera (90 = looking down −z, +y up); ``azimuth`` turns the
camera about +z (counter-clockwise seen from above). Rays start where they enter the box of
voxel centres (or the crop box); samples are ``step`` voxels apart (voxel = smallest spacing),
interpolated trilinearly. A TF's opacities are authored for ``reference_step`` voxels and
corrected with α' = 1 − (1 − α)^(step/reference_step).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from engines.jobs import Progress
from engines.volume.model import Volume

__all__ = ["MIN_STEP", "MODES", "RenderResult", "camera_basis", "check_view", "render", "render_job"]

MODES = ("dvr", "mip", "minip", "avg")


@dataclass
class RenderResult:
    """``image`` (H, W, 3) float32 in [0, 1] composited over the background; ``alpha`` (H, W)
    accumulated opacity; ``values`` (H, W) projected scalar for mip/minip/avg (NaN where a
    ray misses), None for dvr; ``info`` (samples, seconds, step ...)."""

    image: np.ndarray
    alpha: np.ndarray
    values: np.ndarray | None = None
    info: dict = field(default_factory=dict)


def camera_basis(azimuth: float, elevation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(forward, right, up)`` unit vectors in world (x, y, z) for the angles in degrees."""
    az, el = math.radians(azimuth), math.radians(elevation)
    forward = np.array([0.0, math.cos(el), -math.sin(el)])
    up = np.array([0.0, math.sin(el), math.cos(el)])
    right = np.array([1.0, 0.0, 0.0])
    rot = np.array([[math.cos(az), -math.sin(az), 0.0], [math.sin(az), math.cos(az), 0.0], [0.0, 0.0, 1.0]])
    return rot @ forward, rot @ right, rot @ up


def _interp(values: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation like ``np.interp`` (end values held), ys (P, C) → (..., C)."""
    flat = values.reshape(-1)
    idx = torch.searchsorted(xs, flat.contiguous()).clamp(1, len(xs) - 1)
    x0, x1 = xs[idx - 1], xs[idx]
    w = ((flat - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0.0, 1.0)
    out = ys[idx - 1] * (1 - w)[:, None] + ys[idx] * w[:, None]
    return out.reshape(*values.shape, ys.shape[1])


class _Lut:
    """A dense table of a piecewise-linear function over [lo, hi] (end values held outside)."""

    def __init__(self, points, cols, device, size: int = 4096) -> None:
        xs = np.array([p[0] for p in points], dtype=np.float64)
        ys = np.array([p[1:] for p in points], dtype=np.float64).reshape(len(points), cols)
        self.lo, self.hi = float(xs.min()), float(xs.max())
        if self.hi <= self.lo:
            self.hi = self.lo + 1.0
        grid = np.linspace(self.lo, self.hi, size)
        table = np.stack([np.interp(grid, xs, ys[:, c]) for c in range(cols)], axis=1)
        self.table = torch.tensor(table, dtype=torch.float32, device=device)
        self.scale = (size - 1) / (self.hi - self.lo)
        self.size = size

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        pos = ((values - self.lo) * self.scale).clamp(0.0, self.size - 1.0)
        idx = pos.long().clamp(max=self.size - 2)
        w = (pos - idx)[..., None]
        return self.table[idx] * (1 - w) + self.table[idx + 1] * w


def _luts(tf, device) -> tuple:
    return _Lut(tf.color, 3, device), _Lut(tf.opacity, 1, device), _Lut(tf.gradient_opacity, 1, device)


def _tf_tables(tf, device) -> tuple:
    def table(points, cols):
        xs = torch.tensor([p[0] for p in points], dtype=torch.float32, device=device)
        ys = torch.tensor([p[1:] for p in points], dtype=torch.float32, device=device).reshape(len(points), cols)
        if len(points) == 1:  # constant: duplicate so interpolation works
            xs = torch.cat([xs, xs + 1.0])
            ys = torch.cat([ys, ys])
        return xs, ys

    return table(tf.color, 3), table(tf.opacity, 1), table(tf.gradient_opacity, 1)


def _norm3(v: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over the first axis of a (3, ...) tensor (faster than linalg.norm on CPU)."""
    return torch.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2])


def render(volume, **kwargs) -> RenderResult:
    """Render ``volume`` (a :class:`Volume` or a ``(Z, Y, X)`` array) and return a :class:`RenderResult`.

    Keyword arguments (all optional):
      ``spacing`` (z, y, x) mm for arrays · ``tf`` a TransferFunction1D (dvr needs ``tf`` or
      ``rgba``) · ``rgba`` a pre-classified ``(Z, Y, X, 4)`` volume (2-D / semantic TFs) ·
      ``mode`` dvr|mip|minip|avg · ``azimuth``, ``elevation`` degrees · ``size`` int or (H, W) ·
      ``step`` sample distance in voxels (default 1) · ``reference_step`` Δs₀ (default the TF's) ·
      ``shading`` bool (default the TF's ``shade``) · ``pixel_size`` mm per pixel (default: the
      bounding sphere fills the image; divided by ``zoom``) · ``background`` rgb · ``crop``
      ((z0, z1), (y0, y1), (x0, x1)) voxel-index bounds · ``clim`` (lo, hi) grey window for
      projections without a TF · ``early_termination`` (0.99) · ``device``.
    """
    job = render_job(volume, **kwargs)
    while True:
        try:
            next(job)
        except StopIteration as stop:
            return stop.value


#: the smallest sample distance in voxels (20 samples per voxel; below, a render takes hours for nothing)
MIN_STEP = 0.05


def check_view(azimuth: float, elevation: float, step: float = 1.0, zoom: float = 1.0) -> None:
    """Raise ValueError (one sentence) unless the angles are finite, ``step`` is at least
    :data:`MIN_STEP` voxels and ``zoom`` is a positive number."""
    if not (math.isfinite(azimuth) and math.isfinite(elevation)):
        raise ValueError(f"the view angles must be finite numbers (got {azimuth}, {elevation})")
    if not (MIN_STEP <= step and math.isfinite(step)):
        raise ValueError(f"step must be a number of voxels from {MIN_STEP} up (got {step})")
    if not (zoom > 0 and math.isfinite(zoom)):
        raise ValueError(f"zoom must be a positive number (got {zoom})")


def render_job(
    volume,
    *,
    spacing: Sequence[float] | None = None,
    tf=None,
    rgba: np.ndarray | None = None,
    mode: str = "dvr",
    azimuth: float = 0.0,
    elevation: float = 0.0,
    size=256,
    step: float = 1.0,
    reference_step: float | None = None,
    shading: bool | None = None,
    pixel_size: float | None = None,
    zoom: float = 1.0,
    background=(0.0, 0.0, 0.0),
    crop=None,
    clim=None,
    early_termination: float = 0.99,
    device: str | None = None,
    max_slab_elements: int = 4_000_000,
    max_chunk_samples: int = 1 << 20,
) -> Iterator:
    """Job-generator form of :func:`render` (yields Progress, returns a RenderResult).

    ``max_slab_elements`` bounds the samples marched per step along all rays; within a step the
    rays are processed in chunks of at most ``max_chunk_samples`` samples with a yield between
    chunks (and one between sampling and shading inside a chunk), so a cancel (closing the
    generator) takes effect within about half a chunk (well under a second on a CPU).
    """
    start = time.perf_counter()
    if mode not in MODES:
        raise ValueError(f"unknown render mode {mode!r}; use one of {', '.join(MODES)}")
    if isinstance(volume, Volume):
        data, spacing = volume.data, volume.spacing
    else:
        data = np.asarray(volume)
        spacing = tuple(spacing or (1.0, 1.0, 1.0))
    if data.ndim != 3:
        raise ValueError(f"render needs a 3-D (Z, Y, X) volume, got shape {data.shape}")
    check_view(azimuth, elevation, step, zoom)
    if mode == "dvr" and tf is None and rgba is None:
        raise ValueError("dvr needs a transfer function (tf) or an RGBA volume")
    if device is None:
        from engines.device import get_device

        device = get_device()
    height, width = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    if not (1 <= height <= 8192 and 1 <= width <= 8192):
        raise ValueError("image size must be between 1 and 8192 pixels")
    Z, Y, X = data.shape
    sz, sy, sx = (float(s) for s in spacing)
    voxel = min(sx, sy, sz)
    ds = step * voxel  # sample distance in mm
    ref = reference_step if reference_step is not None else (tf.reference_step if tf is not None and rgba is None else 1.0)
    exponent = float(step) / float(ref)

    # half extents of the voxel-centre box, world (x, y, z), and the crop box
    half = torch.tensor([(X - 1) * sx / 2, (Y - 1) * sy / 2, (Z - 1) * sz / 2], dtype=torch.float64)
    lo_box, hi_box = -half.clone(), half.clone()
    if crop is not None:  # the same mm box the vispy view clips with
        from engines.volume.geometry import crop_bounds_mm

        lo_mm, hi_mm = (torch.tensor(v, dtype=torch.float64) for v in crop_bounds_mm(crop, (sz, sy, sx)))
        lo_box = torch.maximum(lo_box, lo_mm - half)
        hi_box = torch.minimum(hi_box, hi_mm - half)

    forward, right, up = (torch.tensor(v, dtype=torch.float64) for v in camera_basis(azimuth, elevation))
    if pixel_size is None:
        radius = float(torch.linalg.norm(half)) or voxel
        pixel_size = 2.0 * radius / min(height, width) / max(zoom, 1e-6)
    jj = (torch.arange(width, dtype=torch.float64) - (width - 1) / 2.0) * pixel_size
    ii = ((height - 1) / 2.0 - torch.arange(height, dtype=torch.float64)) * pixel_size
    plane = ii[:, None, None] * up + jj[None, :, None] * right  # (H, W, 3)
    origins = plane.reshape(-1, 3)

    # ray / box intersection (slab method) with a small tolerance for face-aligned rays
    eps = 1e-6 * max(float(half.max()), 1.0)
    with torch.no_grad():
        inv = torch.where(forward.abs() > 1e-12, 1.0 / forward, torch.full_like(forward, float("inf")))
        t_a = (lo_box - eps - origins) * inv
        t_b = (hi_box + eps - origins) * inv
        parallel = forward.abs() <= 1e-12
        inside_par = ((origins >= lo_box - eps) & (origins <= hi_box + eps)) | ~parallel
        t_a = torch.where(parallel, torch.full_like(t_a, -float("inf")), t_a)
        t_b = torch.where(parallel, torch.full_like(t_b, float("inf")), t_b)
        t_near = torch.minimum(t_a, t_b).max(dim=1).values
        t_far = torch.maximum(t_a, t_b).min(dim=1).values
        hit = (t_far >= t_near) & inside_par.all(dim=1)
        n_samples = torch.where(hit, torch.floor((t_far - t_near) / ds + 1e-6).long() + 1, torch.zeros_like(t_near, dtype=torch.long))
        t_near = torch.where(hit, t_near, torch.zeros_like(t_near))

    dev = torch.device(device)
    # volume texture: channels (value [, gx, gy, gz]) or RGBA
    use_rgba = rgba is not None and mode == "dvr"
    grad_needed = mode == "dvr" and ((shading if shading is not None else bool(tf and tf.shading.get("shade"))) or
                                     (tf is not None and not use_rgba and tf.uses_gradient_opacity()))
    do_shade = mode == "dvr" and (shading if shading is not None else bool(tf and tf.shading.get("shade")))
    with warnings.catch_warnings():  # a read-only (memory-mapped) volume: the tensor is only read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        vol = torch.as_tensor(np.ascontiguousarray(data), dtype=torch.float32, device=dev)
    channels = []
    if use_rgba:
        rgba_arr = np.asarray(rgba)
        if rgba_arr.shape != data.shape + (4,):
            raise ValueError(f"rgba volume must have shape {data.shape + (4,)}, got {rgba_arr.shape}")
        channels = [torch.as_tensor(np.ascontiguousarray(np.moveaxis(rgba_arr, -1, 0)), dtype=torch.float32, device=dev)]
        if rgba_arr.dtype == np.uint8:
            channels[0] = channels[0] / 255.0
    else:
        channels = [vol[None]]
    if grad_needed:
        gz, gy, gx = torch.gradient(vol, spacing=(sz, sy, sx))
        channels.append(torch.stack([gx, gy, gz]))
    texture = torch.cat(channels, dim=0)[None]  # (1, C, Z, Y, X)
    del channels

    if tf is not None and not use_rgba:
        lut_c, lut_o, lut_g = _luts(tf, dev)
        shade_params = tf.shading
    else:
        shade_params = {"ambient": 0.2, "diffuse": 0.8, "specular": 0.2, "power": 10.0}

    n_rays = origins.shape[0]
    color = torch.zeros(n_rays, 3, dtype=torch.float32, device=dev)
    trans = torch.ones(n_rays, dtype=torch.float32, device=dev)
    if mode == "mip":
        acc = torch.full((n_rays,), -float("inf"), device=dev)
    elif mode == "minip":
        acc = torch.full((n_rays,), float("inf"), device=dev)
    else:
        acc = torch.zeros(n_rays, device=dev)
    count = torch.zeros(n_rays, device=dev)

    active = torch.nonzero(n_samples > 0).squeeze(1)
    origins_f = origins.to(dev, torch.float32)
    t_near_f = t_near.to(dev, torch.float32)
    n_samples_d = n_samples.to(dev)
    fwd = forward.to(dev, torch.float32)
    half_f = half.to(dev, torch.float32).clamp_min(1e-12)
    light = -fwd
    total_samples = int(n_samples.max().item()) if n_rays else 0
    k0 = 0
    samples_done = 0
    rays = active
    yield Progress(0, total_samples, "ray casting")  # set-up done: the first cancellation point
    while rays.numel() and k0 < total_samples:
        slab = int(max(2, min(64, max_slab_elements // max(rays.numel(), 1))))
        ks = torch.arange(k0, k0 + slab, device=dev, dtype=torch.float32)
        per_chunk = max(1, int(max_chunk_samples) // slab)
        kept = []
        for c0 in range(0, rays.numel(), per_chunk):
            if c0:  # a cancellation point between ray chunks: a closed job stops here
                yield Progress(min(k0, total_samples), total_samples, f"ray casting ({rays.numel()} rays left)")
            active = rays[c0:c0 + per_chunk]
            t = t_near_f[active][None, :] + ks[:, None] * ds  # (K, N)
            pos = origins_f[active][None, :, :] + t[..., None] * fwd  # (K, N, 3) world xyz mm
            grid = (pos / half_f).clamp(-1.0, 1.0)
            sampled = F.grid_sample(texture, grid[None, :, :, None, :], mode="bilinear", align_corners=True)
            sampled = sampled[0, :, :, :, 0]  # (C, K, N)
            valid = (ks[:, None] < n_samples_d[active][None, :].float())  # (K, N)
            samples_done += int(valid.sum())
            if mode == "dvr":
                if use_rgba:
                    rgb = sampled[0:3].permute(1, 2, 0)
                    alpha = sampled[3]
                    grad = sampled[4:7] if grad_needed else None
                else:
                    value = sampled[0]
                    rgb = lut_c(value)
                    alpha = lut_o(value)[..., 0]
                    grad = sampled[1:4] if grad_needed else None
                    if grad is not None and tf.uses_gradient_opacity():
                        alpha = alpha * lut_g(_norm3(grad))[..., 0]
                yield Progress(min(k0, total_samples), total_samples, f"ray casting ({rays.numel()} rays left)")
                alpha = (1.0 - (1.0 - alpha.clamp(0.0, 1.0)) ** exponent) * valid
                if do_shade and grad is not None:
                    gnorm = _norm3(grad)
                    normal = -grad / gnorm.clamp_min(1e-6)
                    ndotl = (normal[0] * light[0] + normal[1] * light[1] + normal[2] * light[2]).abs()
                    ndotl = torch.where(gnorm > 1e-6, ndotl, torch.ones_like(ndotl))
                    lit = float(shade_params.get("ambient", 0.1)) + float(shade_params.get("diffuse", 0.9)) * ndotl
                    spec = float(shade_params.get("specular", 0.0)) * ndotl ** float(shade_params.get("power", 10.0))
                    rgb = rgb * lit[..., None] + spec[..., None]
                through = torch.cumprod(1.0 - alpha, dim=0)
                before = torch.cat([torch.ones_like(through[:1]), through[:-1]], dim=0)
                weight = before * alpha * trans[active][None, :]
                color[active] += (weight[..., None] * rgb).sum(dim=0)
                trans[active] = trans[active] * through[-1]
                keep = trans[active] > (1.0 - early_termination)
            else:
                value = sampled[0]
                if mode == "mip":
                    acc[active] = torch.maximum(acc[active], torch.where(valid, value, torch.full_like(value, -float("inf"))).max(dim=0).values)
                elif mode == "minip":
                    acc[active] = torch.minimum(acc[active], torch.where(valid, value, torch.full_like(value, float("inf"))).min(dim=0).values)
                else:
                    acc[active] += torch.where(valid, value, torch.zeros_like(value)).sum(dim=0)
                count[active] += valid.sum(dim=0)
                keep = torch.ones_like(active, dtype=torch.bool)
            keep &= n_samples_d[active] > k0 + slab
            kept.append(active[keep])
        k0 += slab
        rays = torch.cat(kept)
        yield Progress(min(k0, total_samples), total_samples, f"ray casting ({rays.numel()} rays left)")

    bg = torch.tensor(background, dtype=torch.float32, device=dev)
    values_out = None
    if mode == "dvr":
        image = color + trans[:, None] * bg
        alpha_out = 1.0 - trans
    else:
        hit_d = n_samples_d > 0
        if mode == "avg":
            acc = acc / count.clamp_min(1)
        acc = torch.where(hit_d, acc, torch.full_like(acc, float("nan")))
        values_out = acc
        safe = torch.nan_to_num(acc, nan=0.0)
        if tf is not None:
            (cx, cy), (ox, oy), _ = _tf_tables(tf, dev)
            rgb = _interp(safe, cx, cy)
            alpha_out = _interp(safe, ox, oy)[..., 0] * hit_d
        else:
            if clim is None:
                flat = data[np.isfinite(data)] if data.dtype.kind == "f" else data
                clim = (float(flat.min()), float(flat.max()))
            lo, hi = float(clim[0]), float(clim[1])
            grey = ((safe - lo) / max(hi - lo, 1e-12)).clamp(0.0, 1.0)
            rgb = grey[:, None].expand(-1, 3)
            alpha_out = hit_d.float()
        image = rgb * alpha_out[:, None] + (1.0 - alpha_out[:, None]) * bg
    image = image.clamp(0.0, 1.0).reshape(height, width, 3).cpu().numpy()
    result = RenderResult(
        image=image.astype(np.float32),
        alpha=alpha_out.reshape(height, width).cpu().numpy().astype(np.float32),
        values=None if values_out is None else values_out.reshape(height, width).cpu().numpy(),
        info={
            "mode": mode, "step": step, "reference_step": ref, "samples": samples_done,
            "seconds": time.perf_counter() - start, "pixel_size_mm": pixel_size, "device": str(dev),
            "shading": bool(do_shade), "azimuth": azimuth, "elevation": elevation,
        },
    )
    return result
