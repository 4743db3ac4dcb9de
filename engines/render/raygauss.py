"""RayGauss: volumetric ray casting of 3D Gaussians (emission–absorption, slab by slab).

Each Gaussian is a density field σᵢ·exp(−½ (x−μᵢ)ᵀΣᵢ⁻¹(x−μᵢ)) carrying a colour cᵢ. Along the ray
x(t) = o + t·d (d with camera-z component 1, so t is the camera depth) the density of Gaussian i is
σᵢ·gᵢ·exp(−½ aᵢ (t − t*ᵢ)²) with aᵢ = dᵀΣᵢ⁻¹d, t*ᵢ = dᵀΣᵢ⁻¹(μᵢ−o)/aᵢ and gᵢ the peak along the ray.
Its optical depth inside a slab [t₀, t₁] is integrated in closed form (erf), so each slab's
optical depth is exact; within a slab the Gaussians are mixed (colour = optical-depth-weighted mean),
and the slabs are composited front to back. The slabs are fixed depth intervals of the camera
(not a per-Gaussian order), so the image is a continuous function of the camera: no popping when
two Gaussians swap depth order. Everything is plain torch: autograd gives the gradients.

The 3DGS scenes store opacities, not densities; :func:`opacity_to_density` maps an opacity o to the
density whose peak optical depth through the centre of an isotropic Gaussian is −log(1−o), so an
isolated isotropic Gaussian seen through its centre has alpha o, as in splatting (the profile
1−(1−o)^g differs from o·g only by O(o²)).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engines.jobs import Progress, wait_in_thread
from engines.render.camera import Camera
from engines.render.project import quat_to_rotmat
from engines.render.sh import sh_to_color

__all__ = ["CHUNK_ELEMENTS", "depth_span", "opacity_to_density", "raygauss", "raygauss_render", "raygauss_still_job"]

CHUNK_ELEMENTS = 2_000_000  # rays × Gaussians × slab-boundaries per chunk (bounds the working memory)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_CUTOFF = 3.5  # Gaussians are ignored beyond this many standard deviations from a ray (g < exp(-6.1)) ...
_TAPER = 3.0  # ... fading out smoothly from this many


def opacity_to_density(opacities: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Density σ = −log(1−o) / (√(2π)·s̄) with s̄ the geometric mean of the three std-devs (N,)."""
    o = opacities.clamp(0.0, 1.0 - 1e-6)
    return -torch.log1p(-o) / (_SQRT_2PI * scales.prod(-1).pow(1.0 / 3.0))


def depth_span(means, scales, viewmat, near: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """Camera-depth range (lo, hi) holding the Gaussians to 3.5σ: where the slabs are laid out."""
    viewmat = viewmat.to(means.device, means.dtype)
    z = means @ viewmat[2, :3] + viewmat[2, 3]
    reach = _CUTOFF * scales.max(-1).values
    lo = torch.clamp((z - reach).min(), min=near)
    return lo, torch.maximum((z + reach).max(), lo + 1e-6)


def _slab_edges(lo, hi, slabs: int, near: float) -> torch.Tensor:
    """Camera-depth slab boundaries (slabs+1,): [near, ``slabs``−1 uniform ones over [lo, hi], +inf].

    The span follows the Gaussians (and is differentiated through), so the slabs move continuously.
    """
    t_mid = torch.as_tensor(lo)
    inner = torch.linspace(0.0, 1.0, max(slabs - 1, 2), dtype=t_mid.dtype, device=t_mid.device) * (hi - lo) + lo
    return torch.cat([t_mid.new_tensor([near]), inner, t_mid.new_tensor([float("inf")])])


def raygauss(means, quats, scales, densities, colors, viewmat, K, width: int, height: int, *,
             slabs: int = 64, background=None, near: float = 0.01, chunk_elements: int = CHUNK_ELEMENTS,
             span=None, tile: int | None = 16):
    """Ray-cast N Gaussians through a pinhole camera, differentiably (emission–absorption).

    means (N,3) world; quats (N,4) wxyz; scales (N,3) activated std-devs; densities (N,) ≥ 0
    (extinction per world unit at the centre); colors (N,D) activated; viewmat (4,4) world->camera
    (OpenCV); K (3,3) pixels (pixel centres at +0.5); ``slabs`` depth slabs per ray (the first from
    ``near`` to the scene, the last to infinity); rays are processed in chunks of at most about
    ``chunk_elements`` ray×Gaussian×slab terms; ``span`` (lo, hi) overrides the depth range of the slabs
    (default :func:`depth_span` of these Gaussians; a tile of a larger image passes the whole scene's).
    ``tile``: rays are cast in ``tile``² pixel blocks through the Gaussians whose bounding sphere
    (3.5 × largest std-dev, where their contribution ends) meets the block's frustum (see
    :func:`_tile_culled`), and each ray integrates only the Gaussians within 3.5σ of it
    (:func:`_cast_pairs`); ``None`` casts every ray through every Gaussian (brute force, the
    reference). Same image and gradients either way (up to float summation order). Returns
    (image (H,W,D), alpha (H,W)).
    """
    dtype, dev = means.dtype, means.device
    viewmat, K = viewmat.to(dev, dtype), K.to(dev, dtype)
    rot, trans = viewmat[:3, :3], viewmat[:3, 3]
    nchan = colors.shape[1]
    bg = colors.new_zeros(nchan) if background is None else torch.as_tensor(background, dtype=dtype, device=dev)
    if means.shape[0] == 0:
        return bg.expand(height, width, nchan).clone(), means.new_zeros(height, width)
    mu = means @ rot.T + trans  # camera coordinates; the ray origin is 0
    r_cam = rot @ quat_to_rotmat(quats)  # Σ⁻¹ = R S⁻² Rᵀ in camera coordinates
    prec = (r_cam / scales[:, None, :] ** 2) @ r_cam.transpose(1, 2)
    lo, hi = depth_span(means, scales, viewmat, near) if span is None else span
    edges = _slab_edges(torch.as_tensor(lo, dtype=dtype), torch.as_tensor(hi, dtype=dtype), int(slabs), near)
    ys, xs = torch.meshgrid(torch.arange(height, dtype=dtype, device=dev) + 0.5,
                            torch.arange(width, dtype=dtype, device=dev) + 0.5, indexing="ij")
    dirs = torch.stack([(xs - K[0, 2]) / K[0, 0], (ys - K[1, 2]) / K[1, 1], torch.ones_like(xs)], -1).reshape(-1, 3)
    if tile:
        return _tile_culled(dirs, mu, prec, densities, colors, edges, bg, scales, K, width, height, int(tile),
                            chunk_elements)
    img, alpha = _cast_rays(dirs, mu, prec, densities, colors, edges, bg, chunk_elements)
    return img.reshape(height, width, nchan), alpha.reshape(height, width)


def _cast_rays(d, mu, prec, densities, colors, edges, bg, chunk_elements, cast=None):
    """``cast`` (:func:`_cast_chunk` or :func:`_cast_pairs`) over the rays ``d`` in chunks of about
    ``chunk_elements`` terms (ray × Gaussian × slab edge; for pairs an upper bound)."""
    cast = cast or _cast_chunk
    rows = max(1, int(chunk_elements) // max(1, mu.shape[0] * edges.numel()))
    images, alphas = [], []
    for start in range(0, d.shape[0], rows):
        img, alpha = cast(d[start:start + rows], mu, prec, densities, colors, edges, bg)
        images.append(img)
        alphas.append(alpha)
    return torch.cat(images), torch.cat(alphas)


def _tile_culled(dirs, mu, prec, densities, colors, edges, bg, scales, K, width, height, tile, chunk_elements):
    """Cast ``tile``² blocks of rays, each through the Gaussians whose bounding sphere (centre ``mu``
    in camera space, radius 3.5 × largest std-dev) is on the inner side of (or cut by) all four side
    planes of the block's frustum. A Gaussian outside gives exactly 0 to those rays (its taper ends
    at 3.5σ, inside the sphere), so the result is the one of all Gaussians."""
    with torch.no_grad():
        radius = (_CUTOFF * scales.max(-1).values).to(mu.dtype)
        m = mu.detach()
        fx, fy, cx, cy = (float(v) for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))

        def inside(a, b):  # signed distance of the centres to the plane through 0 with normal (a, b) in (x|y, z)
            return lambda p: (a * p + b * m[:, 2]) / math.hypot(a, b)

    pixel = torch.arange(height * width, device=dirs.device).reshape(height, width)
    outs, alphas, order = [], [], []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(height, y0 + tile), min(width, x0 + tile)
            with torch.no_grad():  # the block's frustum: x/z in [(x0-cx)/fx, (x1-cx)/fx], y/z likewise
                keep = inside(1.0, -(x0 - cx) / fx)(m[:, 0]) >= -radius
                keep &= inside(-1.0, (x1 - cx) / fx)(m[:, 0]) >= -radius
                keep &= inside(1.0, -(y0 - cy) / fy)(m[:, 1]) >= -radius
                keep &= inside(-1.0, (y1 - cy) / fy)(m[:, 1]) >= -radius
                sub = torch.nonzero(keep).squeeze(1)
            ids = pixel[y0:y1, x0:x1].reshape(-1)
            order.append(ids)
            if len(sub) == 0:
                outs.append(bg.expand(len(ids), bg.shape[0]))
                alphas.append(dirs.new_zeros(len(ids)))
                continue
            img, alpha = _cast_rays(dirs[ids], mu[sub], prec[sub], densities[sub], colors[sub], edges, bg,
                                    chunk_elements, _cast_pairs)
            outs.append(img)
            alphas.append(alpha)
    inverse = torch.empty(height * width, dtype=torch.long, device=dirs.device)
    inverse[torch.cat(order)] = torch.arange(height * width, device=dirs.device)
    image = torch.cat(outs)[inverse].reshape(height, width, colors.shape[1])
    return image, torch.cat(alphas)[inverse].reshape(height, width)


def _ray_terms(d, mu, prec):
    """Per ray × Gaussian: (dᵀΣ⁻¹d, t* of the peak along the ray, squared Mahalanobis distance ray–μ), (R,N)."""
    pd = torch.einsum("nij,rj->rni", prec, d)  # Σ⁻¹d, (R,N,3)
    a = (pd * d[:, None, :]).sum(-1).clamp_min(1e-30)  # dᵀΣ⁻¹d
    b = (pd * mu[None]).sum(-1)  # dᵀΣ⁻¹μ
    c = torch.einsum("ni,nij,nj->n", mu, prec, mu)  # μᵀΣ⁻¹μ
    return a, b / a, (c[None] - b * b / a).clamp_min(0.0)


def _slab_depths(a, t_star, perp, densities, edges):
    """Optical depth of each Gaussian in each slab, (..., S) for terms of shape (...)."""
    root = torch.sqrt(0.5 * a)
    # optical depth of each Gaussian in each slab: σ g √(π/2a) [erf(√(a/2)(t₁−t*)) − erf(√(a/2)(t₀−t*))]
    # a smooth taper from 3σ to 3.5σ off the ray makes the cut continuous and chunk-independent
    taper = ((_CUTOFF ** 2 - perp) / (_CUTOFF ** 2 - _TAPER ** 2)).clamp(0.0, 1.0)
    taper = taper * taper * (3.0 - 2.0 * taper)
    scale = densities * torch.exp(-0.5 * perp) * taper * math.sqrt(math.pi) / (2.0 * root)
    cum = torch.erf(root[..., None] * (edges[:-1] - t_star[..., None]))
    cum = torch.cat([cum, torch.ones_like(cum[..., :1])], -1)  # the last edge is +inf: erf = 1
    return scale[..., None] * (cum[..., 1:] - cum[..., :-1]).clamp_min(0.0)


def _composite_slabs(tau, emitted_sum, bg):
    """Front-to-back compositing of slabs: optical depths tau (R,S), Σ τᵢcᵢ per slab (R,S,D)."""
    emitted = emitted_sum / tau.clamp_min(1e-12)[..., None]
    trans_before = torch.exp(-torch.cumsum(torch.cat([tau.new_zeros(tau.shape[0], 1), tau[:, :-1]], 1), 1))
    weight = trans_before * -torch.expm1(-tau)  # (R,S)
    t_final = torch.exp(-tau.sum(1))
    out = (weight[..., None] * emitted).sum(1) + t_final[:, None] * bg
    return out, 1.0 - t_final


def _cast_chunk(d, mu, prec, densities, colors, edges, bg):
    """Composite the rays ``d (R,3)`` through the slabs ``edges``, every ray × every Gaussian a chunk
    touches (the brute-force reference); returns (colour (R,D), alpha (R,))."""
    a, t_star, perp = _ray_terms(d, mu, prec)
    with torch.no_grad():
        hit = (perp < _CUTOFF ** 2).any(0)
    if not bool(hit.any()):
        return bg.expand(d.shape[0], bg.shape[0]).clone(), d.new_zeros(d.shape[0])
    tau_i = _slab_depths(a[:, hit], t_star[:, hit], perp[:, hit], densities[hit][None], edges)  # (R,N,S)
    return _composite_slabs(tau_i.sum(1), torch.einsum("rns,nd->rsd", tau_i, colors[hit]), bg)


def _cast_pairs(d, mu, prec, densities, colors, edges, bg):
    """As :func:`_cast_chunk`, with the slab integrals only for the (ray, Gaussian) pairs within the
    3.5σ cut (the others are exactly 0), summed per ray with ``index_add``."""
    a, t_star, perp = _ray_terms(d, mu, prec)
    with torch.no_grad():
        ray, gauss = torch.nonzero(perp < _CUTOFF ** 2, as_tuple=True)
    if len(ray) == 0:
        return bg.expand(d.shape[0], bg.shape[0]).clone(), d.new_zeros(d.shape[0])
    tau_i = _slab_depths(a[ray, gauss], t_star[ray, gauss], perp[ray, gauss], densities[gauss], edges)  # (P,S)
    slabs = edges.numel() - 1
    tau = tau_i.new_zeros(d.shape[0], slabs).index_add(0, ray, tau_i)
    emitted_sum = tau_i.new_zeros(d.shape[0], slabs, colors.shape[1]).index_add(
        0, ray, tau_i[..., None] * colors[gauss][:, None, :])
    return _composite_slabs(tau, emitted_sum, bg)


def raygauss_render(scene, camera: Camera, *, slabs: int = 64, background=None, sh_degree: int | None = None,
                    densities: torch.Tensor | None = None, chunk_elements: int = CHUNK_ELEMENTS):
    """Render a :class:`~engines.render.scene.Gaussians` scene by volumetric ray casting.

    Densities default to :func:`opacity_to_density` of the scene's opacities; colours are the
    scene's SH (up to ``sh_degree``) seen from the camera centre, as in
    :func:`~engines.render.rasterize.rasterize_scene`. Returns (image (H,W,3), alpha (H,W), meta)
    with meta = {"slabs", "densities"}.
    """
    deg = scene.sh_degree if sh_degree is None else min(int(sh_degree), scene.sh_degree)
    dtype = scene.means.dtype
    viewmat, K = camera.viewmat.to(dtype), camera.K.to(dtype)
    scales = scene.scales
    dens = opacity_to_density(scene.opacities, scales) if densities is None else densities
    centre = -viewmat[:3, :3].T @ viewmat[:3, 3]
    cols = sh_to_color(scene.sh, scene.means, centre, deg)
    image, alpha = raygauss(scene.means, scene.quats, scales, dens, cols, viewmat, K, camera.width, camera.height,
                            slabs=slabs, background=background, chunk_elements=chunk_elements)
    return image, alpha, {"slabs": int(slabs), "densities": dens}


def _cast_tile(*args, **kwargs):
    """:func:`raygauss` without gradients (a helper thread does not inherit ``no_grad``)."""
    with torch.no_grad():
        return raygauss(*args, **kwargs)


def raygauss_still_job(scene, camera: Camera, background=(0.0, 0.0, 0.0), sh_degree: int | None = None,
                       slabs: int = 64, tile: int = 32, dtype=np.float32):
    """Job: a RayGauss still, tile by tile; returns ``(image (H,W,3), alpha mean, visible count)`` like
    :func:`~engines.render.still.render_tiled`.

    Each ``tile``² block of pixels casts its rays only through the Gaussians whose projected 3.5σ
    footprint reaches it, with the slabs of the whole scene, so the tiles join without seams.
    Yields a Progress per tile (a cancellation point); no gradients.
    """
    from engines.render.project import project_gaussians

    cam = camera.to(torch.float32)
    H, W = cam.height, cam.width
    image = np.empty((H, W, 3), dtype)
    bg = torch.tensor(background, dtype=torch.float32)
    coverage, seen = 0.0, torch.zeros(len(scene), dtype=torch.bool)
    with torch.no_grad():
        scales = scene.scales
        dens = opacity_to_density(scene.opacities, scales)
        span = depth_span(scene.means, scales, cam.viewmat)
        proj = project_gaussians(scene.means, scene.quats, scales, scene.opacities, cam.viewmat, cam.K, W, H)
        ids, centre = proj.ids, -cam.viewmat[:3, :3].T @ cam.viewmat[:3, 3]
        deg = scene.sh_degree if sh_degree is None else min(int(sh_degree), scene.sh_degree)
        cols = sh_to_color(scene.sh[ids], scene.means[ids], centre, deg)
        reach = (proj.radii.to(torch.float32) * (_CUTOFF / 3.0) + 2.0)
        mx, my = proj.means2d[:, 0], proj.means2d[:, 1]
        rows, cols_n = -(-H // tile), -(-W // tile)
        for ty, y0 in enumerate(range(0, H, tile)):
            for tx, x0 in enumerate(range(0, W, tile)):  # a cancellation point per tile
                event = Progress(ty * cols_n + tx, rows * cols_n,
                                 f"ray casting {W}x{H} ({len(ids)} Gaussians), tile row {ty + 1}/{rows}")
                yield event
                h, w = min(tile, H - y0), min(tile, W - x0)
                near_tile = (mx + reach > x0) & (mx - reach < x0 + w) & (my + reach > y0) & (my - reach < y0 + h)
                sub = torch.nonzero(near_tile).squeeze(1)
                K = cam.K.clone()
                K[0, 2] -= x0
                K[1, 2] -= y0
                g = ids[sub]
                # a tile behind many Gaussians takes a second or more: on a helper thread, so a cancel stops at once
                out, alpha = yield from wait_in_thread(_cast_tile, scene.means[g], scene.quats[g], scales[g], dens[g],
                                                       cols[sub], cam.viewmat, K, w, h, slabs=slabs, background=bg,
                                                       span=span, event=event)
                block = out.clamp(0, 1).numpy()
                if dtype == np.uint8:
                    block = np.rint(block.astype(np.float64) * 255.0).astype(np.uint8)
                image[y0:y0 + h, x0:x0 + w] = block
                coverage += float(alpha.double().sum())
                seen[g] = True
    yield Progress(rows * cols_n, rows * cols_n, "done")
    return image, coverage / (W * H), int(seen.sum())
