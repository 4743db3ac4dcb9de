"""Learned transform codec models (Ballé et al.): GDN/IGDN, the factorized entropy bottleneck
and the scale hyperprior, in plain PyTorch sized for a CPU (codec-learned.md §1–2).

* :class:`GDN` — ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)`` (``inverse=True``: IGDN),
  beta and gamma kept non-negative by CompressAI's reparameterisation.
* :class:`EntropyBottleneck` — a per-channel monotone CDF network (``filters=(3, 3, 3)``),
  learned medians/tails through an auxiliary loss on the quantiles.
* :class:`GaussianConditional` — zero-mean Gaussian ⊛ U(−½, ½) with a scale floor of 0.11 and
  CompressAI's 64-entry log-spaced scale table for coding.
* :class:`FactorizedPrior` (``N, M``) and :class:`ScaleHyperprior` (``N, M``).

Training adds uniform noise; coding rounds (see :mod:`engines.codec.learned`).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["GDN", "EntropyBottleneck", "FactorizedPrior", "GaussianConditional", "KINDS", "ScaleHyperprior", "build_model", "scale_table"]

_PEDESTAL = (2.0**-18) ** 2
SCALE_MIN, SCALE_MAX, SCALE_LEVELS = 0.11, 256.0, 64
LIKELIHOOD_MIN = 1e-9


def scale_table() -> torch.Tensor:
    """``exp(linspace(log 0.11, log 256, 64))`` (float64)."""
    return torch.exp(torch.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALE_LEVELS, dtype=torch.float64))


def _nonneg(p: torch.Tensor, minimum: float) -> torch.Tensor:
    bound = math.sqrt(minimum + _PEDESTAL)
    return torch.clamp(p, min=bound) ** 2 - _PEDESTAL  # clamp passes no gradient below the bound


def _nonneg_init(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.clamp(x + _PEDESTAL, min=_PEDESTAL))


class GDN(nn.Module):
    """Generalized divisive normalization (``inverse=True``: the IGDN of the synthesis)."""

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = 1e-6, gamma_init: float = 0.1) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta_min = beta_min
        self.beta = nn.Parameter(_nonneg_init(torch.ones(channels)))
        self.gamma = nn.Parameter(_nonneg_init(gamma_init * torch.eye(channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = _nonneg(self.beta, self.beta_min)
        gamma = _nonneg(self.gamma, 0.0)
        c = x.shape[1]
        norm = F.conv2d(x * x, gamma.view(c, c, 1, 1), beta)
        return x * torch.sqrt(norm) if self.inverse else x * torch.rsqrt(norm)


class EntropyBottleneck(nn.Module):
    """Factorized (per channel, non-parametric) density model of a latent."""

    def __init__(self, channels: int, filters=(3, 3, 3), init_scale: float = 10.0, tail_mass: float = 1e-9) -> None:
        super().__init__()
        self.channels = channels
        widths = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(widths) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(widths) - 1):
            init = math.log(math.expm1(1.0 / scale / widths[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, widths[i + 1], widths[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, widths[i + 1], 1) - 0.5))
            if i < len(widths) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))
        self.quantiles = nn.Parameter(torch.tensor([-init_scale, 0.0, init_scale]).repeat(channels, 1, 1))
        t = math.log(2.0 / tail_mass - 1.0)
        self.register_buffer("target", torch.tensor([-t, 0.0, t]))

    def logits_cumulative(self, x: torch.Tensor, stop_gradient: bool = False) -> torch.Tensor:
        """The CDF network's logit at ``x`` (``(C, 1, n)``)."""
        logits = x
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            m, b = F.softplus(m), b
            if stop_gradient:
                m, b = m.detach(), b.detach()
            logits = torch.matmul(m, logits) + b
            if i < len(self.factors):
                f = torch.tanh(self.factors[i].detach() if stop_gradient else self.factors[i])
                logits = logits + f * torch.tanh(logits)
        return logits

    def medians(self) -> torch.Tensor:
        """``(C,)`` learned medians."""
        return self.quantiles[:, 0, 1].detach()

    def interval_probability(self, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
        """``P(lower < y < upper)`` for ``(C, 1, n)`` bounds."""
        lo = self.logits_cumulative(lower)
        up = self.logits_cumulative(upper)
        sign = -torch.sign(lo + up).detach()
        return torch.abs(torch.sigmoid(sign * up) - torch.sigmoid(sign * lo))

    def likelihood(self, y: torch.Tensor) -> torch.Tensor:
        """Likelihood of (noisy or rounded) ``y`` ``(B, C, H, W)`` under unit bins."""
        b, c, h, w = y.shape
        v = y.permute(1, 0, 2, 3).reshape(c, 1, -1)
        p = self.interval_probability(v - 0.5, v + 0.5)
        return torch.clamp(p, min=LIKELIHOOD_MIN).reshape(c, b, h, w).permute(1, 0, 2, 3)

    def aux_loss(self) -> torch.Tensor:
        """Moves the quantiles to the tails and the median (density parameters frozen)."""
        logits = self.logits_cumulative(self.quantiles, stop_gradient=True)
        return torch.abs(logits - self.target).sum()


class GaussianConditional(nn.Module):
    """Zero-mean Gaussian convolved with a unit box, scale floor 0.11."""

    def likelihood(self, y: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """Likelihood of ``y`` under ``N(0, scales^2) ⊛ U(-1/2, 1/2)``."""
        s = torch.clamp(scales, min=SCALE_MIN)
        v = torch.abs(y)
        upper = 0.5 * torch.erfc(-(0.5 - v) / (s * math.sqrt(2.0)))
        lower = 0.5 * torch.erfc(-(-0.5 - v) / (s * math.sqrt(2.0)))
        return torch.clamp(upper - lower, min=LIKELIHOOD_MIN)


def _conv(cin, cout, k=5, s=2):
    return nn.Conv2d(cin, cout, k, stride=s, padding=k // 2)


def _deconv(cin, cout, k=5, s=2):
    return nn.ConvTranspose2d(cin, cout, k, stride=s, padding=k // 2, output_padding=s - 1)


class FactorizedPrior(nn.Module):
    """Ballé 2017: ``g_a``/``g_s`` with GDN/IGDN (×16 down), factorized entropy bottleneck on ``y``."""

    kind = "factorized"
    multiple = 16

    def __init__(self, N: int = 64, M: int = 96) -> None:
        super().__init__()
        self.N, self.M = N, M
        self.g_a = nn.Sequential(_conv(3, N), GDN(N), _conv(N, N), GDN(N), _conv(N, N), GDN(N), _conv(N, M))
        self.g_s = nn.Sequential(_deconv(M, N), GDN(N, True), _deconv(N, N), GDN(N, True), _deconv(N, N), GDN(N, True), _deconv(N, 3))
        self.entropy_y = EntropyBottleneck(M)

    def forward(self, x: torch.Tensor) -> dict:
        """Training pass (uniform noise): ``x_hat`` and the likelihood tensors."""
        y = self.g_a(x)
        y_tilde = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        return {"x_hat": self.g_s(y_tilde), "likelihoods": [self.entropy_y.likelihood(y_tilde)], "y": y}

    def aux_loss(self) -> torch.Tensor:
        """Quantile loss of every entropy bottleneck."""
        return self.entropy_y.aux_loss()


class ScaleHyperprior(FactorizedPrior):
    """Ballé 2018: hyper-analysis of ``|y|`` to ``z`` (factorized), ``sigma = h_s(z_hat)`` for a
    zero-mean Gaussian model of ``y`` (×64 down for ``z``)."""

    kind = "hyperprior"
    multiple = 64

    def __init__(self, N: int = 64, M: int = 96) -> None:
        super().__init__(N, M)
        del self.entropy_y
        self.h_a = nn.Sequential(_conv(M, N, 3, 1), nn.ReLU(), _conv(N, N), nn.ReLU(), _conv(N, N))
        self.h_s = nn.Sequential(_deconv(N, N), nn.ReLU(), _deconv(N, N), nn.ReLU(), _conv(N, M, 3, 1), nn.ReLU())
        self.entropy_z = EntropyBottleneck(N)
        self.gaussian = GaussianConditional()

    def forward(self, x: torch.Tensor) -> dict:
        y = self.g_a(x)
        z = self.h_a(torch.abs(y))
        z_tilde = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        scales = self.h_s(z_tilde)
        y_tilde = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        lik_y = self.gaussian.likelihood(y_tilde, scales)
        lik_z = self.entropy_z.likelihood(z_tilde)
        return {"x_hat": self.g_s(y_tilde), "likelihoods": [lik_y, lik_z], "y": y}

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_z.aux_loss()


KINDS = ("hyperprior", "factorized", "dct")


def build_model(kind: str, N: int, M: int) -> nn.Module:
    """``kind`` ``factorized``, ``hyperprior`` or ``dct`` (:mod:`engines.codec.learned_dct`, which
    ignores ``M``: its latent is always 3 × 64 DCT channels) with ``N`` transform (hyperprior for
    ``dct``) and ``M`` latent channels."""
    if kind not in KINDS:
        raise ValueError(f"unknown learned model kind {kind!r} ({', '.join(KINDS)})")
    if not (8 <= int(N) <= 256 and 8 <= int(M) <= 512):
        raise ValueError(f"channels out of range: N={N}, M={M} (N 8..256, M 8..512)")
    if kind == "dct":
        from engines.codec.learned_dct import DCTCodec

        return DCTCodec(int(N))
    return (ScaleHyperprior if kind == "hyperprior" else FactorizedPrior)(int(N), int(M))
