"""Score-distillation estimators: the gradient g that is pushed into the render's model tensor z.

All functions run the prior without gradient (the UNet Jacobian is dropped, as in DreamFusion)
and return ``g`` with the shape of ``z``; :func:`reparameterised_loss` turns it into a scalar
whose gradient with respect to ``z`` is exactly ``g / B`` (threestudio's
``0.5·‖z − sg(z − g)‖²/B``). Notation as in :mod:`engines.distill3d.priors`: ``z_t = a z + s ε``.

- **SDS** (DreamFusion): ``g = w(t)·(ε̂(z_t) − ε)``; weightings: ``dreamfusion`` ``w = 1 − ᾱ =
  s²/(a² + s²)`` (for a VP prior exactly threestudio's ``1 − alphas_cumprod``), ``uniform`` ``w = 1``,
  ``fantasia3d`` ``w = √ᾱ(1 − ᾱ)``.
- **SJC** (Wang et al. 2023) with perturb-and-average scoring (PAAS): VE noise level σ = s/a,
  ``K`` perturbations ``z + σ nₖ``, denoiser ``D = ẑ₀``, score ``(D − z)/σ`` averaged over the K
  draws; ``g = −score`` (descent direction). Algebraically ``(z − D)/σ = ε̂ − nₖ``, i.e. SJC is a
  K-sample average of uniformly weighted SDS residuals; the code follows SJC's form.
- **SDI** (Lukoianov et al. 2024): ε is not drawn but obtained by deterministic DDIM inversion of
  the render to ``t`` (conditional, ``inversion_steps`` steps): ``ε_inv = (z_t − a z)/s``.
- **VSD / ESD**: ``g = w(t)·(ε̂_pre(z_t) − ε̂_φ(z_t))`` with ε̂_φ a camera-conditioned copy
  (see :mod:`engines.distill3d.vsd`).
"""

from __future__ import annotations

import torch

from engines.distill3d.settings import WEIGHTINGS

__all__ = ["WEIGHTINGS", "ddim_invert", "reparameterised_loss", "sdi_gradient", "sds_gradient", "sds_weight",
           "sjc_gradient"]


def _col(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def sds_weight(a: torch.Tensor, s: torch.Tensor, weighting: str = "dreamfusion") -> torch.Tensor:
    """w(t) from the path coefficients (a, s) via the VP-equivalent ᾱ = a²/(a² + s²)."""
    abar = a * a / (a * a + s * s)
    if weighting == "dreamfusion":
        return 1.0 - abar
    if weighting == "uniform":
        return torch.ones_like(abar)
    if weighting == "fantasia3d":
        return abar.sqrt() * (1.0 - abar)
    raise ValueError(f"unknown weighting {weighting!r}; use one of {', '.join(WEIGHTINGS)}")


def reparameterised_loss(z: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """0.5·‖z − sg(z − g)‖² / B: its gradient with respect to ``z`` is ``g / B``."""
    g = torch.nan_to_num(g.detach())
    target = (z - g).detach()
    return 0.5 * ((z - target) ** 2).sum() / z.shape[0]


@torch.no_grad()
def sds_gradient(prior, z: torch.Tensor, cond: dict, t: torch.Tensor, noise: torch.Tensor, guidance: float,
                 weighting: str = "dreamfusion", views=None) -> tuple[torch.Tensor, dict]:
    """SDS: ``g = w(t)(ε̂(a z + s ε) − ε)``. Returns (g, info with ``eps_hat``, ``z_t``)."""
    z = z.detach()
    a, s = prior.coefficients(t)
    z_t = _col(a) * z + _col(s) * noise
    eps_hat = prior.predict_eps(z_t, t, cond, guidance, views=views)
    g = _col(sds_weight(a, s, weighting)) * (eps_hat - noise)
    return g, {"eps_hat": eps_hat, "z_t": z_t}


@torch.no_grad()
def sjc_gradient(prior, z: torch.Tensor, cond: dict, t: torch.Tensor, noises: torch.Tensor, guidance: float,
                 views=None, variance_reduction: bool = True) -> tuple[torch.Tensor, dict]:
    """SJC with PAAS: ``noises`` (K,B,C,h,w); returns ``g = −mean_k (D_k − y)/σ`` (or ``(D_k − z_k)/σ``)."""
    z = z.detach()
    k = noises.shape[0]
    a, s = prior.coefficients(t)
    sigma = _col(s / a)
    y = z.expand(k, *z.shape).reshape(-1, *z.shape[1:])
    n = noises.reshape(-1, *z.shape[1:])
    tk = t.repeat(k)
    perturbed = y + sigma.repeat(k, 1, 1, 1) * n  # VE sample y + σ n
    z_in = _col(a).repeat(k, 1, 1, 1) * perturbed  # VP/flow input a·(y + σ n) = a y + s n
    views_k = None if views is None else list(views) * k
    eps_hat = prior.predict_eps(z_in, tk, cond, guidance, views=views_k)
    denoised = (z_in - _col(s).repeat(k, 1, 1, 1) * eps_hat) / _col(a).repeat(k, 1, 1, 1)
    base = y if variance_reduction else perturbed
    score = ((denoised - base) / sigma.repeat(k, 1, 1, 1)).reshape(k, *z.shape).mean(0)
    return -score, {"eps_hat": eps_hat}


@torch.no_grad()
def ddim_invert(prior, z: torch.Tensor, cond: dict, t: torch.Tensor, steps: int, guidance: float = 1.0,
                views=None) -> torch.Tensor:
    """Deterministic DDIM inversion of clean ``z`` to time ``t`` (B,) in ``steps`` steps.

    Each step maps x_τ to x_τ' = a(τ') x̂₀ + s(τ') ε̂ with ε̂ at τ (for a flow prior this is the
    Euler step of the probability-flow ODE).
    """
    x = z.detach().clone()
    grid = torch.linspace(0, 1, steps + 1)
    tau = torch.zeros_like(t)
    for i in range(steps):
        nxt = t * float(grid[i + 1])
        eps = prior.predict_eps(x, tau.clamp_min(1e-3), cond, guidance, views=views)
        a, s = prior.coefficients(tau)
        x0 = (x - _col(s) * eps) / _col(a)
        a2, s2 = prior.coefficients(nxt)
        x = _col(a2) * x0 + _col(s2) * eps
        tau = nxt
    return x


@torch.no_grad()
def sdi_gradient(prior, z: torch.Tensor, cond: dict, t: torch.Tensor, guidance: float, inversion_steps: int = 4,
                 weighting: str = "dreamfusion", views=None) -> tuple[torch.Tensor, dict]:
    """SDI: SDS with the noise ε_inv = (z_t − a z)/s of a conditional DDIM inversion instead of a draw."""
    z = z.detach()
    z_t = ddim_invert(prior, z, cond, t, inversion_steps, 1.0, views)
    a, s = prior.coefficients(t)
    eps_inv = (z_t - _col(a) * z) / _col(s)
    eps_hat = prior.predict_eps(z_t, t, cond, guidance, views=views)
    g = _col(sds_weight(a, s, weighting)) * (eps_hat - eps_inv)
    return g, {"eps_hat": eps_hat, "eps_inv": eps_inv}
