"""Fitting Gaussians or spheres to images: one photo ("photo to Gaussians") or posed views.

:func:`fit_job` is an engine job (generator): it yields ``Progress`` and
``Preview(image=current render, data={"loss", "psnr", "step", "count", "view"})`` and returns a
:class:`FitResult`. Optimizer: Adam with per-parameter learning rates (means decayed
exponentially), loss (1 − λ)·L1 + λ·(1 − SSIM) (pytorch-msssim), adaptive density control as in
3DGS (clone small / split large Gaussians with a high mean screen-space gradient, prune
transparent ones; optional opacity reset). Spheres get the same clone / split / prune, with their
centres' gradient taken to the image plane as the screen-space gradient (no opacity reset).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from engines.jobs import Log, Preview, Progress, wait_in_thread
from engines.render.camera import Camera, intrinsics
from engines.render.pulsar import render_spheres
from engines.render.rasterize import rasterize, warm_kernels
from engines.render.scene import Gaussians, Spheres, rgb_to_sh
from engines.render.sh import sh_to_color

__all__ = ["MAX_PRIMITIVES", "DensityControl", "FitResult", "FitSettings", "MCMCControl", "apply_filter_3d", "filter_3d", "fit_job", "loss_l1_dssim", "photo_camera",
           "psnr", "relocation_update"]

#: the most primitives a fit starts with or grows to (the Render panel's "Max count" range)
MAX_PRIMITIVES = 2_000_000


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in [0, 1] (inf when identical)."""
    mse = float(torch.mean((a.detach().double() - b.detach().double()) ** 2))
    return float("inf") if mse <= 0 else 10.0 * math.log10(1.0 / mse)


def loss_l1_dssim(render: torch.Tensor, target: torch.Tensor, lambda_dssim: float = 0.2) -> torch.Tensor:
    """(1 − λ)·L1 + λ·(1 − SSIM) for (H,W,3) images in [0, 1]."""
    l1 = (render - target).abs().mean()
    if lambda_dssim <= 0:
        return l1
    from pytorch_msssim import ssim

    size = min(render.shape[0], render.shape[1])
    win = min(11, size if size % 2 else size - 1)
    if win < 3:
        return l1
    s = ssim(render.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None], data_range=1.0, win_size=win,
             size_average=True)
    return (1 - lambda_dssim) * l1 + lambda_dssim * (1 - s)


def photo_camera(width: int, height: int, fov_x_deg: float = 50.0) -> Camera:
    """The fixed camera of the 2D mode: at the origin looking along +z; the photo lies on z = 1."""
    return Camera(intrinsics(width, height, fov_x_deg), torch.eye(4, dtype=torch.float64), width, height)


@dataclass
class FitSettings:
    """Fitting options (learning rates are per parameter; ``extent`` scales position ones)."""

    primitive: str = "gaussians"  # or "spheres"
    count: int = 500
    steps: int = 500
    aa_mode: str = "classic"
    lambda_dssim: float = 0.2
    lr_means: float = 5e-3  # × scene extent, decayed to lr_means_final
    lr_means_final: float = 5e-5
    lr_scales: float = 2e-2
    lr_quats: float = 1e-2
    lr_opacity: float = 5e-2
    lr_sh: float = 1e-2
    lr_colors: float = 2e-2  # spheres
    densify: bool | None = None  # None: on, except spheres refit from given spheres (see densify_enabled)
    densify_from: float = 0.1  # fraction of steps
    densify_until: float = 0.6
    densify_every: int = 50
    grad_threshold: float = 2e-4  # mean NDC-space gradient norm
    percent_dense: float = 0.01
    prune_opacity: float = 0.005
    max_count: int = 20000  # cap on the Gaussian count (the fixed budget of the MCMC strategy)
    reset_opacity_every: int = -1  # steps between opacity resets inside the densify window; -1 = auto, 0 = off
    prune_scale3d: float = 0.1  # prune when the largest scale exceeds this × scene extent ...
    prune_screen: float = 0.0  # ... or the screen radius this × max(width, height) (after the first reset; 0 = off,
    #                            as gsplat's default; 0.15 = gsplat's prune_scale2d)
    strategy: str = "default"  # "default" (clone / split / prune, 3DGS) or "mcmc" (3DGS-MCMC relocation)
    renderer: str = "splat"  # "splat" (rasterizer) or "raygauss" (volumetric ray casting; no clone/split)
    raygauss_slabs: int = 32
    mcmc_min_opacity: float = 0.005  # "dead" below this: relocated onto live Gaussians
    mcmc_growth: float = 1.05  # count multiplier per refine step until max_count (gsplat: 1.05)
    mcmc_noise_lr: float = 1.6e4  # noise scale × current position learning rate (gsplat 5e5 × its lr 1.6e-4 / ours)
    mcmc_opacity_reg: float = 0.01
    mip_filter3d: bool = False  # Mip-Splatting 3D smoothing filter (posed views), baked into the result
    mcmc_scale_reg: float = 0.01
    sh_degree: int = 0
    gamma: float = 1.0  # spheres
    background: tuple = (0.0, 0.0, 0.0)
    preview_every: int = 10
    seed: int = 0


@dataclass
class FitResult:
    """What a fit returns: the scene (Gaussians or Spheres), cameras and the loss/PSNR history."""

    scene: object
    cameras: list
    history: list = field(default_factory=list)  # dicts step/loss/psnr/count
    final_psnr: float = float("nan")
    mode: str = "photo"

    def gaussians(self) -> Gaussians:
        """The scene as Gaussians (spheres are converted) for saving as .ply."""
        return self.scene if isinstance(self.scene, Gaussians) else self.scene.to_gaussians()


class DensityControl:
    """3DGS adaptive density control over a dict of parameters and their Adam state."""

    def __init__(self, settings: FitSettings, extent: float) -> None:
        self.s = settings
        self.extent = extent
        self.grad_accum: torch.Tensor | None = None
        self.count: torch.Tensor | None = None

    def reset(self, n: int) -> None:
        """Clear the accumulated statistics for ``n`` Gaussians."""
        self.grad_accum = torch.zeros(n, dtype=torch.float64)
        self.count = torch.zeros(n, dtype=torch.float64)
        self.max_radius = torch.zeros(n, dtype=torch.float64)  # largest screen radius / max(width, height)

    def accumulate(self, ids: torch.Tensor, means2d_grad: torch.Tensor, width: int, height: int,
                   radii: torch.Tensor | None = None) -> None:
        """Add ‖∂L/∂μ₂‖ in NDC units (pixels × size/2) for the visible ``ids`` (and their screen ``radii``)."""
        g = means2d_grad.detach().double() * torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64)
        self.grad_accum.index_add_(0, ids, g.norm(dim=1))
        self.count.index_add_(0, ids, torch.ones(len(ids), dtype=torch.float64))
        if radii is not None:
            frac = radii.detach().double() / max(width, height)
            self.max_radius[ids] = torch.maximum(self.max_radius[ids], frac)

    def accumulate_spheres(self, means: torch.Tensor, cam: Camera) -> None:
        """Spheres (no 2D means): the centres' gradient ``means.grad`` taken to the image plane
        (∂L/∂u = ∂L/∂x_cam · z / fx), in the NDC units of :meth:`accumulate`, for the spheres in front."""
        if means.grad is None:
            return
        rot, t = cam.viewmat[:3, :3].double(), cam.viewmat[:3, 3].double()
        z = (means.detach().double() @ rot.T + t)[:, 2]
        ids = torch.nonzero(z > 0.01).squeeze(1)
        g_cam = means.grad.detach().double()[ids] @ rot.T
        fx, fy = float(cam.K[0, 0]), float(cam.K[1, 1])
        pix = torch.stack([g_cam[:, 0] * z[ids] / fx, g_cam[:, 1] * z[ids] / fy], 1)
        self.accumulate(ids, pix, cam.width, cam.height)

    def step(self, params: dict, optimizer: torch.optim.Optimizer, generator: torch.Generator,
             prune_large: bool = False) -> dict:
        """Clone, split and prune; returns counts {"cloned", "split", "pruned"}.

        Works for Gaussians (``log_scales``, ``quats``) and spheres (``log_radii``: split offsets are
        isotropic). Pruned: opacity below ``prune_opacity``; with ``prune_large`` also a largest scale
        above ``prune_scale3d`` × extent or a screen radius above ``prune_screen`` × image size.
        """
        s = self.s
        avg = self.grad_accum / self.count.clamp_min(1)
        size_key = "log_scales" if "log_scales" in params else "log_radii"
        scales = params[size_key].detach().exp()
        max_scale = scales.max(1).values if scales.ndim == 2 else scales
        high = avg >= s.grad_threshold
        n = len(avg)
        room = max(0, s.max_count - n)
        clone = high & (max_scale <= s.percent_dense * self.extent)
        split = high & (max_scale > s.percent_dense * self.extent)
        clone_idx = torch.nonzero(clone).squeeze(1)[:room]
        split_idx = torch.nonzero(split).squeeze(1)[:max(0, room - len(clone_idx))]
        new = {k: [v.detach()[clone_idx]] for k, v in params.items()}
        if len(split_idx):
            from engines.render.project import quat_to_rotmat

            sc = scales[split_idx]
            for _ in range(2):
                noise = torch.randn(len(split_idx), 3, 1, generator=generator)
                if "quats" in params:
                    offset = (quat_to_rotmat(params["quats"].detach()[split_idx]) @ (noise * sc[..., None]))[..., 0]
                else:
                    offset = noise[..., 0] * sc[:, None]
                for k, v in params.items():
                    value = v.detach()[split_idx]
                    if k == "means":
                        value = value + offset
                    elif k == size_key:
                        value = value - math.log(1.6)
                    new[k].append(value)
        keep = torch.ones(n, dtype=torch.bool)
        keep[split_idx] = False
        opac = torch.sigmoid(params["opacity_logits"].detach())
        keep &= opac >= s.prune_opacity
        if prune_large:
            keep &= max_scale <= s.prune_scale3d * self.extent
            if s.prune_screen > 0:
                keep &= self.max_radius <= s.prune_screen
        if not keep.any() and sum(len(t) for t in new["means"]) == 0:
            keep[torch.argmax(opac)] = True  # never remove the last Gaussian
        pruned = int(n - keep.sum()) - len(split_idx)
        additions = {k: torch.cat(v) for k, v in new.items()}
        _replace_params(params, optimizer, keep, additions)
        self.reset(len(params["means"]))
        return {"cloned": len(clone_idx), "split": len(split_idx), "pruned": max(0, pruned)}


def filter_3d(means: torch.Tensor, cameras: Sequence[Camera]) -> torch.Tensor:
    """Mip-Splatting 3D filter σ per Gaussian: d_min / f_max · √0.2 (``compute_3D_filter``).

    d_min is the smallest depth over the cameras that see the centre (depth > 0.2, projection within
    15 % outside the image); Gaussians no camera sees take the largest d_min of the others.
    f_max is the largest focal length f_x of the cameras.
    """
    with torch.no_grad():
        m = means.detach().double()
        best = torch.full((len(m),), float("inf"), dtype=torch.float64)
        for cam in cameras:
            view, K = cam.viewmat.double(), cam.K.double()
            t = m @ view[:3, :3].T + view[:3, 3]
            z = t[:, 2]
            zs = torch.where(z > 0.2, z, torch.ones_like(z))
            u = K[0, 0] * t[:, 0] / zs + K[0, 2]
            v = K[1, 1] * t[:, 1] / zs + K[1, 2]
            seen = (z > 0.2) & (u >= -0.15 * cam.width) & (u <= 1.15 * cam.width) \
                & (v >= -0.15 * cam.height) & (v <= 1.15 * cam.height)
            best = torch.where(seen, torch.minimum(best, z), best)
        finite = torch.isfinite(best)
        fallback = best[finite].max() if finite.any() else torch.tensor(1.0, dtype=torch.float64)
        best = torch.where(finite, best, fallback)
        f_max = max(float(c.K[0, 0]) for c in cameras)
        return (best / f_max * math.sqrt(0.2)).to(means.dtype)


def apply_filter_3d(log_scales: torch.Tensor, opacities: torch.Tensor, filt: torch.Tensor):
    """(scales √(s² + σ²), opacities · √(Π s² / Π (s² + σ²))) — differentiable in log_scales and opacities."""
    var = (2 * log_scales).exp()
    smoothed = var + filt[:, None] ** 2
    return smoothed.sqrt(), opacities * torch.sqrt((var / smoothed).prod(1))


_BINOMIAL = torch.tensor([[math.comb(n, k) for k in range(51)] for n in range(51)], dtype=torch.float64)


def relocation_update(opacity: torch.Tensor, scale: torch.Tensor, copies: torch.Tensor, min_opacity: float = 0.005):
    """3DGS-MCMC binomial correction (arXiv 2404.09591 Eq. 9) for a Gaussian that becomes ``copies`` Gaussians.

    α' = 1 − (1 − α)^(1/N); s' = α / (Σ_{i=1..N} Σ_{k=0..i−1} C(i−1,k) (−1)^k α'^(k+1) / √(k+1)) · s,
    N clamped to [1, 51]; α' clamped to [min_opacity, 1 − 1e-7]. Returns (α', s') (scale rows (M,3)).
    """
    n = copies.long().clamp(1, 51)
    a = opacity.double()
    new_a = 1.0 - (1.0 - a) ** (1.0 / n.double())
    total = torch.zeros_like(a)
    for i in range(1, int(n.max()) + 1):
        k = torch.arange(i, dtype=torch.float64)
        term = (_BINOMIAL[i - 1, :i] * (-1.0) ** k / torch.sqrt(k + 1))[None] * new_a[:, None] ** (k + 1)[None]
        total += torch.where(n >= i, term.sum(1), torch.zeros_like(a))
    new_scale = (a / total)[:, None] * scale.double()
    return new_a.clamp(min_opacity, 1 - 1e-7).to(opacity.dtype), new_scale.to(scale.dtype)


class MCMCControl:
    """3DGS-MCMC strategy (gsplat ``MCMCStrategy``): dead Gaussians relocated onto live ones sampled ∝ opacity,
    growth by ``mcmc_growth`` (5 %) per refine step up to the fixed budget ``max_count``, position noise every step."""

    def __init__(self, settings: FitSettings) -> None:
        self.s = settings

    def _sample(self, opac: torch.Tensor, candidates: torch.Tensor, count: int, generator) -> torch.Tensor:
        probs = opac[candidates].double().clamp_min(1e-12)
        return candidates[torch.multinomial(probs, count, replacement=True, generator=generator)]

    def _move(self, params: dict, optimizer, sources: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """New (logit opacity, log-scale) for ``sources`` that each gain ``bincount`` copies; sources updated."""
        opac = torch.sigmoid(params["opacity_logits"].detach())
        copies = torch.bincount(sources, minlength=n)[sources] + 1
        new_a, new_s = relocation_update(opac[sources], params["log_scales"].detach()[sources].exp(), copies,
                                         self.s.mcmc_min_opacity)
        logit, log_scale = torch.logit(new_a), new_s.log()
        params["opacity_logits"].data[sources] = logit
        params["log_scales"].data[sources] = log_scale
        for group in optimizer.param_groups:  # the sources restart their Adam moments
            state = optimizer.state.get(group["params"][0])
            if state:
                state["exp_avg"][sources] = 0
                state["exp_avg_sq"][sources] = 0
        return logit, log_scale

    def step(self, params: dict, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> dict:
        """Relocate dead Gaussians, then grow by ``mcmc_growth`` (capped at ``max_count``); returns counts."""
        n = len(params["means"])
        opac = torch.sigmoid(params["opacity_logits"].detach())
        dead = torch.nonzero(opac <= self.s.mcmc_min_opacity).squeeze(1)
        alive = torch.nonzero(opac > self.s.mcmc_min_opacity).squeeze(1)
        relocated = 0
        if len(dead) and len(alive):
            sources = self._sample(opac, alive, len(dead), generator)
            logit, log_scale = self._move(params, optimizer, sources, n)
            for p in params.values():
                p.data[dead] = p.data[sources]
            params["opacity_logits"].data[dead], params["log_scales"].data[dead] = logit, log_scale
            for group in optimizer.param_groups:
                state = optimizer.state.get(group["params"][0])
                if state:
                    state["exp_avg"][dead] = 0
                    state["exp_avg_sq"][dead] = 0
            relocated = len(dead)
        grow = max(0, min(self.s.max_count, int(self.s.mcmc_growth * n)) - n)
        if grow:
            opac = torch.sigmoid(params["opacity_logits"].detach())
            sources = self._sample(opac, torch.arange(n), grow, generator)
            self._move(params, optimizer, sources, n)
            additions = {k: v.detach()[sources].clone() for k, v in params.items()}
            _replace_params(params, optimizer, torch.ones(n, dtype=torch.bool), additions)
        return {"relocated": relocated, "added": grow}

    def add_noise(self, params: dict, lr_means: float, generator: torch.Generator) -> None:
        """μ += Σ·ε·g(α)·lr·noise_lr with g(α) = sigmoid(100((1 − α) − 0.995)): only near-transparent ones move."""
        from engines.render.project import covariance_3d

        with torch.no_grad():
            opac = torch.sigmoid(params["opacity_logits"])
            gate = torch.sigmoid(100.0 * ((1.0 - opac) - 0.995))
            eps = torch.randn(params["means"].shape, generator=generator)
            cov = covariance_3d(params["quats"], params["log_scales"].exp())
            noise = (cov @ (eps * gate[:, None] * (lr_means * self.s.mcmc_noise_lr))[..., None])[..., 0]
            params["means"].data += noise


def _replace_params(params: dict, optimizer: torch.optim.Optimizer, keep: torch.Tensor, additions: dict) -> None:
    """Keep rows ``keep`` of every parameter, append ``additions``; Adam moments follow (zeros for new rows)."""
    for group in optimizer.param_groups:
        old = group["params"][0]
        name = group["name"]
        added = additions[name]
        fresh = torch.nn.Parameter(torch.cat([old.detach()[keep], added]).contiguous())
        state = optimizer.state.pop(old, None)
        if state:
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = torch.cat([state[key][keep], torch.zeros_like(added)])
            optimizer.state[fresh] = state
        group["params"][0] = fresh
        params[name] = fresh


def _prepare_targets(targets: Sequence) -> list[torch.Tensor]:
    out = []
    for i, image in enumerate(targets):
        a = np.asarray(image)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, 2)
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise ValueError(f"target {i} must be an (H,W,3) image, got shape {a.shape}")
        a = a[..., :3]
        a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"target {i} contains NaN or infinite values")
        out.append(torch.from_numpy(np.clip(a, 0, 1)))
    return out


def _init_photo(target: torch.Tensor, camera: Camera, count: int, settings: FitSettings, gen) -> dict:
    """Gaussians on the plane z = 1 coloured from the photo at their pixel."""
    h, w = target.shape[:2]
    f = float(camera.K[0, 0])
    u = torch.rand(count, generator=gen) * w
    v = torch.rand(count, generator=gen) * h
    z = 1.0 + 0.02 * (torch.rand(count, generator=gen) - 0.5)
    means = torch.stack([(u - w / 2) / f * z, (v - h / 2) / f * z, z], 1)
    rgb = target[v.long().clamp(0, h - 1), u.long().clamp(0, w - 1)]
    spacing = math.sqrt(w * h / count) / f  # world size of one splat's share of the image
    return _gaussian_params(means, rgb, torch.full((count,), 0.6 * spacing), settings, gen)


def _gaussian_params(means, rgb, scale, settings: FitSettings, gen) -> dict:
    n = len(means)
    quats = torch.zeros(n, 4)
    quats[:, 0] = 1.0
    sh = torch.zeros(n, (settings.sh_degree + 1) ** 2, 3)
    sh[:, 0] = rgb_to_sh(rgb.clamp(0.02, 0.98))
    return {"means": means.float(), "quats": quats, "log_scales": scale.log()[:, None].repeat(1, 3).float(),
            "opacity_logits": torch.full((n,), math.log(0.5 / 0.5)), "sh": sh}


def _init_views(cameras: list[Camera], count: int, settings: FitSettings, gen, extent: float, centre) -> dict:
    """Random Gaussians in a ball around the point the cameras look at."""
    direction = torch.randn(count, 3, generator=gen)
    direction = direction / direction.norm(dim=1, keepdim=True)
    radius = torch.rand(count, generator=gen) ** (1 / 3) * 0.5 * extent
    means = torch.as_tensor(centre, dtype=torch.float32) + direction * radius[:, None]
    rgb = torch.rand(count, 3, generator=gen) * 0.5 + 0.25
    return _gaussian_params(means, rgb, torch.full((count,), 0.03 * extent), settings, gen)


def _look_centre_and_extent(cameras: list[Camera]) -> tuple[np.ndarray, float]:
    centres = np.stack([c.centre.numpy() for c in cameras])
    if len(cameras) == 1:
        return centres[0] + cameras[0].viewmat[2, :3].numpy(), 1.0
    # least-squares point closest to every optical axis
    a = np.zeros((3, 3))
    b = np.zeros(3)
    for cam, c in zip(cameras, centres):
        d = cam.viewmat[2, :3].numpy()
        p = np.eye(3) - np.outer(d, d)
        a += p
        b += p @ c
    centre = np.linalg.lstsq(a, b, rcond=None)[0]
    extent = float(np.linalg.norm(centres - centre, axis=1).mean())
    return centre, extent


def _params_to_scene(params: dict, primitive: str):
    d = {k: v.detach().float().clone() for k, v in params.items()}
    if primitive == "spheres":
        return Spheres(d["means"], d["log_radii"].exp(), torch.sigmoid(d["color_logits"]),
                       torch.sigmoid(d["opacity_logits"]))
    return Gaussians(d["means"], d["quats"], d["log_scales"], d["opacity_logits"], d["sh"])


def densify_enabled(settings: FitSettings, init: object | None) -> bool:
    """Whether the fit runs density control: ``settings.densify`` when set; by default (None) on,
    except for spheres started from given spheres. A sphere refit starts from the count the user
    gave, and a split (two spheres at radius / 1.6) breaks a near fit it cannot repair in the steps
    left (benchmarks/render_spheres.py: 44.7 dB without, 26.9 dB with, at 40 spheres), while fits
    from few spheres gain from it (17.1 -> 21.2 dB on a photo from 60 spheres)."""
    if settings.densify is not None:
        return bool(settings.densify)
    return not (settings.primitive == "spheres" and isinstance(init, Spheres))


def _spheres_loss(params: dict, cam, target, s, bg, optimizer) -> tuple:
    """Render the spheres, take the L1 + D-SSIM loss and its gradients; returns ``(image, loss)``."""
    image, _ = render_spheres(params["means"], params["log_radii"].exp(), torch.sigmoid(params["color_logits"]),
                              torch.sigmoid(params["opacity_logits"]), cam.viewmat, cam.K, cam.width, cam.height,
                              gamma=s.gamma, background=bg)
    loss = loss_l1_dssim(image, target, s.lambda_dssim)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    return image, loss


def fit_job(targets: Sequence, cameras: Sequence[Camera] | None = None, settings: FitSettings | None = None,
            init: object | None = None):
    """Fit primitives to ``targets`` ((H,W,3) uint8 or float in [0,1]) seen by ``cameras``.

    Without cameras there must be one target: the 2D "photo to Gaussians" mode (camera at the
    origin, photo on the plane z = 1). ``init`` may be a Gaussians/Spheres scene to start from.
    Yields Progress/Preview/Log; returns :class:`FitResult` (scene detached, float32).
    """
    s = settings or FitSettings()
    if s.primitive not in ("gaussians", "spheres"):
        raise ValueError("primitive must be 'gaussians' or 'spheres'")
    if s.renderer not in ("splat", "raygauss"):
        raise ValueError("renderer must be 'splat' or 'raygauss'")
    if s.strategy not in ("default", "mcmc"):
        raise ValueError("strategy must be 'default' or 'mcmc'")
    if s.steps < 1 or s.count < 1:
        raise ValueError("steps and count must be at least 1")
    if not 0 <= s.seed < 2**63:
        raise ValueError(f"the seed must be a whole number from 0 to 2^63 - 1 (got {s.seed})")
    if max(s.count, s.max_count) > MAX_PRIMITIVES:
        raise ValueError(f"count and max count must be at most {MAX_PRIMITIVES:,} (got {s.count:,} and {s.max_count:,})")
    images = _prepare_targets(targets)
    if not images:
        raise ValueError("no target images")
    mode = "views"
    if cameras is None:
        if len(images) != 1:
            raise ValueError("several targets need cameras (posed views)")
        h, w = images[0].shape[:2]
        cameras = [photo_camera(w, h)]
        mode = "photo"
    cameras = list(cameras)
    if len(cameras) != len(images):
        raise ValueError(f"{len(images)} targets but {len(cameras)} cameras")
    for cam, img in zip(cameras, images):
        if (cam.height, cam.width) != tuple(img.shape[:2]):
            raise ValueError(f"camera size {cam.width}x{cam.height} does not match image {img.shape[1]}x{img.shape[0]}")
    gen = torch.Generator().manual_seed(int(s.seed))
    centre, extent = (np.array([0.0, 0.0, 1.0]), 1.0) if mode == "photo" else _look_centre_and_extent(cameras)
    if mode == "photo":
        extent = float(images[0].shape[1]) / float(cameras[0].K[0, 0])  # photo width on the z = 1 plane
    bg = torch.tensor(s.background, dtype=torch.float32)

    if init is not None:
        if isinstance(init, Gaussians):
            params = {"means": init.means, "quats": init.quats, "log_scales": init.log_scales,
                      "opacity_logits": init.opacity_logits, "sh": init.sh}
        else:
            params = {"means": init.centres, "log_radii": init.radii.log(),
                      "color_logits": torch.logit(init.colors.clamp(0.02, 0.98)),
                      "opacity_logits": torch.logit(init.opacities.clamp(0.02, 0.98))}
    elif mode == "photo":
        params = _init_photo(images[0], cameras[0], s.count, s, gen)
    else:
        params = _init_views(cameras, s.count, s, gen, extent, centre)
    if s.primitive == "spheres" and "log_radii" not in params:
        radii = params["log_scales"].mean(1).exp() * 2.0
        rgb = (0.5 + 0.28209479177387814 * params["sh"][:, 0]).clamp(0.02, 0.98)
        params = {"means": params["means"], "log_radii": radii.log(), "color_logits": torch.logit(rgb),
                  "opacity_logits": torch.full((len(radii),), 2.0)}
    params = {k: torch.nn.Parameter(v.detach().float().clone()) for k, v in params.items()}
    lrs = {"means": s.lr_means * extent, "quats": s.lr_quats, "log_scales": s.lr_scales,
           "opacity_logits": s.lr_opacity, "sh": s.lr_sh, "log_radii": s.lr_scales, "color_logits": s.lr_colors}
    if mode == "photo":
        lrs["means"] = s.lr_means * extent * 0.2
    # the first optimizer of a process initialises torch.optim (seconds when cold): on a helper thread
    optimizer = yield from wait_in_thread(torch.optim.Adam, [{"params": [p], "lr": lrs[k], "name": k}
                                                             for k, p in params.items()], eps=1e-15,
                                          event=Progress(0, s.steps, "preparing the optimizer"))
    decay = (s.lr_means_final / s.lr_means) ** (1.0 / max(1, s.steps))
    densify = densify_enabled(s, init)
    gaussians_refined = s.primitive == "gaussians" and densify
    raycast = s.renderer == "raygauss" and s.primitive == "gaussians"
    # clone/split need the screen-space gradients only splatting has (spheres: their centres' gradient
    # taken to the image plane); MCMC works with either renderer
    spheres_refined = s.primitive == "spheres" and densify and s.strategy == "default"
    density = DensityControl(s, extent) if (gaussians_refined and s.strategy == "default" and not raycast) \
        or spheres_refined else None
    mcmc = MCMCControl(s) if gaussians_refined and s.strategy == "mcmc" else None
    if density:
        density.reset(len(params["means"]))
    reset_every = s.reset_opacity_every if s.reset_opacity_every >= 0 else max(2 * s.densify_every, round(0.2 * s.steps))
    if spheres_refined:
        reset_every = 0  # spheres: no opacity reset (pruning removes the transparent ones)
    first_reset = reset_every if reset_every and density is not None else 0
    cams = [c.to(torch.float32) for c in cameras]
    mip3d = filter_3d(params["means"], cams) if s.mip_filter3d and s.primitive == "gaussians" and mode == "views" \
        else None
    densify_every = max(1, min(s.densify_every, s.steps // 8))
    history: list[dict] = []
    started = time.monotonic()
    if s.primitive == "gaussians" and not raycast:  # a cold start loads/compiles the kernels: off this job's thread
        yield from wait_in_thread(warm_kernels, (s.aa_mode,), message="loading the rasterizer kernels")
    yield Log(f"fitting {len(params['means'])} {s.primitive} to {len(images)} image(s), {s.steps} steps")
    for step in range(1, s.steps + 1):
        view = (step - 1) % len(images)
        cam, target = cams[view], images[view]
        if s.primitive == "gaussians":
            scales, opac = params["log_scales"].exp(), torch.sigmoid(params["opacity_logits"])
            if mip3d is not None:
                if len(mip3d) != len(scales) or step % 100 == 0:  # after density changes, and periodically
                    mip3d = filter_3d(params["means"], cams)
                scales, opac = apply_filter_3d(params["log_scales"], opac, mip3d)
            if raycast:
                image = _raygauss_image(params["means"], params["quats"], scales, opac, params["sh"], cam, s, bg,
                                        s.sh_degree)
            else:
                image, _alpha, meta = rasterize(params["means"], params["quats"], scales, opac, params["sh"],
                                                cam.viewmat, cam.K, cam.width, cam.height, aa_mode=s.aa_mode,
                                                sh_degree=s.sh_degree, background=bg)
                meta["means2d"].retain_grad()
            loss = loss_l1_dssim(image, target, s.lambda_dssim)
            if mcmc is not None:
                loss = loss + s.mcmc_opacity_reg * torch.sigmoid(params["opacity_logits"]).mean() \
                    + s.mcmc_scale_reg * params["log_scales"].exp().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        else:  # spheres (torch only, about a second per step): forward and backward on a helper thread so a
            # cancel stops the job at once
            image, loss = yield from wait_in_thread(_spheres_loss, params, cam, target, s, bg, optimizer,
                                                    event=Progress(step - 1, s.steps, f"step {step}/{s.steps}"))
        if density is not None and s.primitive == "spheres":
            density.accumulate_spheres(params["means"], cam)
        elif density is not None and meta["means2d"].grad is not None:
            density.accumulate(meta["ids"], meta["means2d"].grad, cam.width, cam.height, meta["projected"].radii)
        optimizer.step()
        for group in optimizer.param_groups:
            if group["name"] == "means":
                group["lr"] *= decay
                lr_means_now = group["lr"]
        if mcmc is not None:
            mcmc.add_noise(params, lr_means_now, gen)
        with torch.no_grad():
            if "quats" in params:
                params["quats"].data = torch.nn.functional.normalize(params["quats"].data, dim=1)
        value = psnr(image, target)
        history.append({"step": step, "loss": float(loss.detach()), "psnr": value, "count": len(params["means"])})
        refine = s.densify_from * s.steps <= step <= s.densify_until * s.steps and step % densify_every == 0
        if density is not None and refine:
            changed = density.step(params, optimizer, gen,
                                   prune_large=step > first_reset and s.primitive == "gaussians")
            yield Log(f"step {step}: cloned {changed['cloned']}, split {changed['split']}, pruned {changed['pruned']}"
                      f" -> {len(params['means'])} {s.primitive}")
        if mcmc is not None and refine:
            changed = mcmc.step(params, optimizer, gen)
            yield Log(f"step {step}: relocated {changed['relocated']}, added {changed['added']}"
                      f" -> {len(params['means'])} Gaussians")
        if density is not None and reset_every and step % reset_every == 0 \
                and step < s.densify_until * s.steps:
            with torch.no_grad():
                params["opacity_logits"].data.clamp_(max=math.log(0.01 / 0.99))
        yield Progress(step, s.steps, f"step {step}/{s.steps}  PSNR {value:.2f} dB")
        if step % max(1, s.preview_every) == 0 or step == s.steps or step == 1:
            yield Preview(image=image.detach().clamp(0, 1).numpy(),
                          data=dict(history[-1], view=view, elapsed=time.monotonic() - started), label="fit")
    if mip3d is not None:  # bake the filter in (as Mip-Splatting's fused export): the scene renders as trained
        with torch.no_grad():
            scales, opac = apply_filter_3d(params["log_scales"], torch.sigmoid(params["opacity_logits"]),
                                           filter_3d(params["means"], cams))
            params["log_scales"].data = scales.log()
            params["opacity_logits"].data = torch.logit(opac.clamp(1e-6, 1 - 1e-6))
    scene = _params_to_scene(params, s.primitive)
    final = evaluate(scene, cameras, images, s)
    return FitResult(scene, cameras, history, final, mode)


def _raygauss_image(means, quats, scales, opacities, sh, cam: Camera, s: FitSettings, bg, degree: int) -> torch.Tensor:
    """The RayGauss render of the fitted Gaussians (densities from opacities, SH colours up to ``degree``)."""
    from engines.render.raygauss import opacity_to_density, raygauss

    centre = -cam.viewmat[:3, :3].T @ cam.viewmat[:3, 3]
    colors = sh_to_color(sh, means, centre, degree)
    image, _ = raygauss(means, quats, scales, opacity_to_density(opacities, scales), colors, cam.viewmat, cam.K,
                        cam.width, cam.height, slabs=s.raygauss_slabs, background=bg)
    return image


def render_any(scene, camera: Camera, settings: FitSettings | None = None) -> torch.Tensor:
    """Render Gaussians or Spheres with one camera -> (H,W,3) detached float image."""
    s = settings or FitSettings()
    cam = camera.to(torch.float32)
    bg = torch.tensor(s.background, dtype=torch.float32)
    with torch.no_grad():
        if isinstance(scene, Gaussians) and s.renderer == "raygauss":
            image = _raygauss_image(scene.means, scene.quats, scene.scales, scene.opacities, scene.sh, cam, s, bg,
                                    scene.sh_degree)
        elif isinstance(scene, Gaussians):
            image, _, _ = rasterize(scene.means, scene.quats, scene.scales, scene.opacities, scene.sh, cam.viewmat,
                                    cam.K, cam.width, cam.height, aa_mode=s.aa_mode, sh_degree=scene.sh_degree,
                                    background=bg)
        else:
            image, _ = render_spheres(scene.centres, scene.radii, scene.colors, scene.opacities, cam.viewmat, cam.K,
                                      cam.width, cam.height, gamma=s.gamma, background=bg)
    return image.clamp(0, 1)


def evaluate(scene, cameras: Sequence[Camera], targets: Sequence, settings: FitSettings | None = None) -> float:
    """Mean PSNR (dB) of ``scene`` rendered with ``cameras`` against ``targets``."""
    images = _prepare_targets(targets) if not torch.is_tensor(targets[0]) else list(targets)
    values = [psnr(render_any(scene, c, settings), t) for c, t in zip(cameras, images)]
    return float(np.mean(values))
