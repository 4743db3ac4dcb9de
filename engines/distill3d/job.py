"""The 3D distillation job: optimise Gaussians or spheres so their renders score well under a 2D prior.

:func:`distill_job` is an engine job (generator). Each step draws ``views_per_step`` orbit
cameras, renders them at the prior's native size, maps the renders to the prior's space
(``prior.encode``: grey [−1, 1] pixels for the digits model, VAE latents for pipelines), computes
the estimator's gradient ``g`` (:mod:`engines.distill3d.estimators`) and back-propagates it
through the exact rasterizer with the reparameterised loss, plus opacity/scale regularisers
(and, for image → 3D, an RGB + mask loss on the fixed front view). Density control (clone,
split, prune) is the Render fit's. It yields Progress (with ETA), Log, and
``Preview(image = strip of 4 orbit views (front, side, back, other side), data = {step, loss, t_max,
count, losses = [(step, loss) since the previous preview], ...})`` and returns a
:class:`DistillResult`. Seeded: the same settings and seed give the same scene bytes on CPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from engines.distill3d.cameras import OrbitSampler, fixed_view
from engines.distill3d.estimators import reparameterised_loss, sdi_gradient, sds_gradient, sjc_gradient
from engines.distill3d.scene3d import init_ellipsoid, params_to_scene, render_params
from engines.distill3d.settings import METHODS, DistillSettings, validate
from engines.jobs import Log, Preview, Progress, Stopwatch

__all__ = ["METHODS", "DistillResult", "DistillSettings", "distill_job", "provenance_parameters", "t_bounds"]

PREVIEW_AZIMUTHS = (0.0, 90.0, 180.0, 270.0)


@dataclass
class DistillResult:
    """A finished run: the scene, the settings, the per-step history and the model's description."""

    scene: object
    settings: DistillSettings
    history: list = field(default_factory=list)
    seconds: float = 0.0
    model: dict = field(default_factory=dict)
    reference_psnr: float | None = None
    background: tuple = (0.0, 0.0, 0.0)

    def gaussians(self):
        """The scene as Gaussians (spheres are converted) for a 3DGS .ply."""
        return self.scene if hasattr(self.scene, "sh") else self.scene.to_gaussians()


def provenance_parameters(result: DistillResult, reference: str | None = None) -> dict:
    """The parameters of the provenance record for ``result`` (what reproduces it)."""
    params = asdict(result.settings)
    params.update({"model_info": result.model, "reference_image": reference, "seconds": round(result.seconds, 2),
                   "final_count": len(result.scene), "learned_background": list(result.background),
                   "reference_psnr_db": result.reference_psnr, "engine": "engines.distill3d"})
    if result.history:
        params["final_loss"] = result.history[-1]["loss"]
    return params


def t_bounds(s: DistillSettings, step: int) -> tuple[float, float]:
    """(t_min, t_max) at ``step`` (1-based): t_max decays linearly from ``t_max`` to ``t_max_end``;
    SJC uses ``sjc_t_min`` as its lower bound."""
    frac = (step - 1) / max(1, s.steps - 1)
    hi = s.t_max + (s.t_max_end - s.t_max) * frac
    return (min(s.sjc_t_min, hi) if s.method == "sjc" else s.t_min), hi


def _optimizer(params: dict, s: DistillSettings) -> torch.optim.Adam:
    lrs = {"means": s.lr_means, "quats": s.lr_quats, "log_scales": s.lr_scales, "opacity_logits": s.lr_opacity,
           "sh": s.lr_sh, "log_radii": s.lr_scales, "color_logits": s.lr_colors}
    return torch.optim.Adam([{"params": [p], "lr": lrs[k], "name": k} for k, p in params.items()], eps=1e-15)


def _density(s: DistillSettings):
    from engines.render.fit import DensityControl, FitSettings

    fit = FitSettings(grad_threshold=s.grad_threshold, percent_dense=0.01, prune_opacity=s.prune_opacity,
                      max_count=max(s.max_count, s.count))
    return DensityControl(fit, extent=2.0 * max(s.init_radii))


def _regularisers(params: dict, s: DistillSettings) -> torch.Tensor:
    opacity = torch.sigmoid(params["opacity_logits"])
    log_size = params["log_scales"] if "log_scales" in params else params["log_radii"][:, None] - math.log(2.0)
    excess = torch.relu(log_size.exp() - s.max_scale)
    return s.lambda_opacity * opacity.mean() + s.lambda_scale * excess.mean()


def _fourier_loss(z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Score distillation on the Fourier amplitude: 0.5‖|F z| − sg(|F (z − g)|)‖² / B."""
    target = torch.fft.rfft2((z - torch.nan_to_num(g)).detach(), norm="ortho").abs()
    return 0.5 * ((torch.fft.rfft2(z, norm="ortho").abs() - target) ** 2).sum() / z.shape[0]


def _strip(params: dict, s: DistillSettings, bg: torch.Tensor, size: int) -> np.ndarray:
    images = []
    with torch.no_grad():
        for az in PREVIEW_AZIMUTHS:
            view = fixed_view(az, 15.0, s.radius, s.fov, size, size)
            image, _, _ = render_params(params, view.camera, bg, s.sh_degree)
            images.append(image.clamp(0, 1).numpy())
    return (np.concatenate(images, 1) * 255).round().astype(np.uint8)


def _reference_tensors(reference, size: tuple):
    """(rgb (h,w,3), mask (h,w)) float tensors at ``size`` from an (H,W,3|4) image; RGB-only gets an automatic mask."""
    from engines.distill3d.reference import prepare_reference

    return prepare_reference(reference, size)


def distill_job(settings: DistillSettings, reference=None, model_folders=(), device: str = "cpu"):
    """Job: distil the prior of ``settings.model`` into 3D; ``reference`` (H,W,3|4) enables image → 3D.

    Raises ValueError (or ModelError) for bad settings before any work. Yields events; returns
    :class:`DistillResult`.
    """
    from engines.generation.models import resolve_model
    from engines.distill3d.priors import load_prior

    s = settings
    validate(s)
    info = resolve_model(s.model, model_folders)
    if s.prompt and info.conditioning != "text":
        raise ValueError(f"{info.name} is not text-conditioned; give a class (--class) instead of a prompt")
    prior = load_prior(info, device)
    cond = prior.condition(s.class_label, s.prompt) if prior.kind != "latent" else \
        prior.condition(s.class_label, s.prompt, s.negative_prompt)
    size = s.render_size or max(prior.size)
    if prior.kind == "latent" and s.render_size == 0:
        size = min(64, max(prior.size))  # render small, the VAE input is resized (threestudio renders 64²)
    gen = torch.Generator().manual_seed(int(s.seed))
    torch.manual_seed(int(s.seed))
    sampler = OrbitSampler(tuple(s.azimuth), tuple(s.elevation), s.radius, s.fov, s.jitter, size, size)
    ref = None
    if reference is not None:
        ref = _reference_tensors(reference, (size, size))
    params = {k: torch.nn.Parameter(v.float().clone()) for k, v in
              init_ellipsoid(s.count, s.init_radii, s.primitive, s.sh_degree, s.init_opacity, gen).items()}
    optimizer = _optimizer(params, s)
    bg_param = None
    if s.background == "learned":
        bg_param = torch.nn.Parameter(torch.logit(torch.tensor(s.background_color, dtype=torch.float32).clamp(0.02, 0.98)))
        optimizer.add_param_group({"params": [bg_param], "lr": 1e-2, "name": "background"})
    density = _density(s) if (s.densify and s.primitive == "gaussians") else None
    if density is not None:
        density.reset(s.count)
    vsd = None
    if s.method in ("vsd", "esd"):
        from engines.distill3d.vsd import CameraConditionedCopy

        vsd = CameraConditionedCopy(prior, lr=s.vsd_lr, seed=s.seed)
    decay = (s.lr_means_final / s.lr_means) ** (1.0 / max(1, s.steps))
    clock = Stopwatch()
    history: list[dict] = []
    last_preview = 0
    fixed_bg = torch.tensor(s.background_color, dtype=torch.float32)
    yield Log(f"3D {s.method.upper()} from {info.name}: {s.count} {s.primitive}, {s.steps} steps, "
              f"{s.views_per_step} views of {size}x{size} per step")
    for step in range(1, s.steps + 1):
        views = sampler.sample(s.views_per_step, gen)
        if s.background == "random":
            bg = torch.rand(3, generator=gen)
        elif bg_param is not None:
            bg = torch.sigmoid(bg_param)
        else:
            bg = fixed_bg
        images, metas = [], []
        for view in views:
            image, _alpha, meta = render_params(params, view.camera, bg, s.sh_degree)
            if meta is not None:
                meta["means2d"].retain_grad()
            images.append(image)
            metas.append(meta)
        batch = torch.stack(images)
        z = prior.encode(batch)
        lo, hi = t_bounds(s, step)
        t = lo + (hi - lo) * torch.rand(len(views), generator=gen)
        angles = [(v.azimuth, v.elevation) for v in views]
        if s.method == "sds":
            noise = torch.randn(z.shape, generator=gen)
            g, _ = sds_gradient(prior, z, cond, t, noise, s.guidance, s.weighting, angles)
        elif s.method == "sjc":
            noises = torch.randn((s.sjc_samples, *z.shape), generator=gen)
            g, _ = sjc_gradient(prior, z, cond, t, noises, s.guidance, angles)
        elif s.method == "sdi":
            g, _ = sdi_gradient(prior, z, cond, t, s.guidance, s.sdi_inversion_steps, s.weighting, angles)
        else:
            noise = torch.randn(z.shape, generator=gen)
            lam = 1.0 if s.method == "vsd" else s.esd_lambda
            g = vsd.gradient(z, cond, t, noise, s.guidance, lam, angles, s.weighting)
        # one more cancellation point per step, between the prior's gradient and the render backward
        yield Progress(step - 0.5, s.steps, f"step {step}/{s.steps}")
        if ref is not None and s.fourier:
            loss = _fourier_loss(z, g)
        else:
            loss = reparameterised_loss(z, g)
        loss = loss + _regularisers(params, s)
        ref_psnr = None
        if ref is not None:
            front = fixed_view(0.0, 0.0, s.radius, s.fov, size, size)
            image, alpha, meta = render_params(params, front.camera, bg, s.sh_degree)
            target = ref[0] * ref[1][..., None] + bg * (1 - ref[1][..., None])
            loss = loss + s.lambda_rgb * ((image - target) ** 2).mean() + s.lambda_mask * ((alpha - ref[1]) ** 2).mean()
            if meta is not None:
                meta["means2d"].retain_grad()
                metas.append(meta)
            inside = ref[1] > 0.5
            mse = float(((image.detach() - target) ** 2)[inside].mean()) if inside.any() else float("nan")
            ref_psnr = 10 * math.log10(1.0 / max(mse, 1e-12))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if density is not None:
            for meta in metas:
                if meta is not None and meta["means2d"].grad is not None:
                    density.accumulate(meta["ids"], meta["means2d"].grad, size, size)
        optimizer.step()
        if vsd is not None:
            vsd.train_step(z.detach(), cond, angles, gen)
        for group in optimizer.param_groups:
            if group["name"] == "means":
                group["lr"] *= decay
        with torch.no_grad():
            if "quats" in params:
                params["quats"].data = torch.nn.functional.normalize(params["quats"].data, dim=1)
        record = {"step": step, "loss": float(loss.detach()), "grad_norm": float(g.norm() / len(views)),
                  "t_max": hi, "count": len(params["means"])}
        if ref_psnr is not None:
            record["reference_psnr"] = ref_psnr
        history.append(record)
        if density is not None and s.densify_from * s.steps <= step <= s.densify_until * s.steps \
                and step % max(1, s.densify_every) == 0:
            changed = density.step(params, optimizer, gen)
            yield Log(f"step {step}: cloned {changed['cloned']}, split {changed['split']}, pruned "
                      f"{changed['pruned']} -> {len(params['means'])} {s.primitive}")
        remaining = clock.remaining(step / s.steps)
        eta = f", {remaining:.0f} s left" if remaining is not None else ""
        yield Progress(step, s.steps, f"step {step}/{s.steps}{eta}")
        if step == 1 or step == s.steps or step % max(1, s.preview_every) == 0:
            curve = [(h["step"], h["loss"]) for h in history[last_preview:]]
            last_preview = len(history)
            yield Preview(_strip(params, s, bg.detach(), s.preview_size),
                          dict(record, elapsed=clock.elapsed(), losses=curve), f"step {step}/{s.steps}")
    scene = params_to_scene(params)
    final_bg = tuple(float(v) for v in (torch.sigmoid(bg_param.detach()) if bg_param is not None else fixed_bg))
    ref_psnr = history[-1].get("reference_psnr") if ref is not None else None
    return DistillResult(scene, s, history, clock.elapsed(), info.to_dict(), ref_psnr, final_bg)
