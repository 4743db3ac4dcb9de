"""A learned codec that starts as JPEG: kind ``dct``.

Analysis: a learned 1×1 colour transform initialised to JPEG's RGB→YCbCr (level-shifted,
0..255 units), a stride-8 8×8 convolution per colour channel initialised to the orthonormal
DCT-II basis (192 = 3 × 64 coefficient channels, channel ``64 c + 8 u + v``), division by a
learned per-channel quantisation step ``exp(log_step)`` (initialised to the IJG quality-50
luma/chroma tables) and a GDN initialised to the identity. ``u`` is the result; the coded
latent is ``y = u / m`` with ``m`` the global step multiplier (one model, every rate):
:func:`multiplier_for_quality`.

Entropy model: a small mean–scale hyperprior (``z`` at 1/32 of the image, factorized prior)
conditioned on ``log m``; ``y`` is coded as ``round(y - mu)`` under a zero-mean Gaussian with the
predicted scale. Synthesis mirrors the analysis (IGDN, transposed DCT, YCbCr→RGB, all learned
from their exact-inverse initialisation) followed by a small residual refinement CNN
(zero-initialised last layer, also given ``log m``) that learns deblocking.

Untrained, the model is "JPEG with uniform quantisation and a context-adaptive arithmetic
coder"; training (:func:`engines.codec.learned.train_job` with ``kind="dct"``) samples a
multiplier per crop and uses ``lambda(m) = lambda / m^2`` so one model covers the RD curve.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from engines.codec.color import _FWD as _RGB_TO_YCC  # JFIF RGB -> YCbCr
from engines.codec.learned_model import EntropyBottleneck, GaussianConditional, GDN
from engines.codec.quant import JPEG_CHROMA, JPEG_LUMA
from engines.codec.transforms import dct_matrix

__all__ = ["DCTCodec", "dct_basis", "jpeg_base_steps", "multiplier_for_quality", "MULTIPLIER_RANGE"]

COEFS = 64
LATENT = 3 * COEFS
#: training samples the step multiplier log-uniformly in this range (quality 100 .. 0)
MULTIPLIER_RANGE = (0.25, 8.0)


def multiplier_for_quality(quality: float) -> float:
    """Global step multiplier of quality 1..100: ``2^((60 - q)/20)`` (q 60 -> 1, 100 -> 0.25, 10 -> 5.66)."""
    return float(2.0 ** ((60.0 - float(quality)) / 20.0))


def dct_basis() -> np.ndarray:
    """``(64, 8, 8)`` orthonormal DCT-II basis, row ``8 u + v``: ``X[u, v] = sum basis[8u+v] * x``
    (the same as ``scipy.fft.dctn(x, norm="ortho")``)."""
    c = dct_matrix(8)
    return np.einsum("ui,vj->uvij", c, c).reshape(COEFS, 8, 8)


def jpeg_base_steps() -> np.ndarray:
    """``(192,)`` initial quantisation steps: IJG quality-50 luma table for Y, chroma for Cb and Cr."""
    return np.concatenate([JPEG_LUMA.ravel(), JPEG_CHROMA.ravel(), JPEG_CHROMA.ravel()]).astype(np.float64)


def _plane(m: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``log m`` (``(B,)`` or scalar) as a constant ``(B, 1, h, w)`` plane shaped like ``like``."""
    m = torch.as_tensor(m, dtype=like.dtype).reshape(-1, 1, 1, 1)
    return torch.log(m).expand(like.shape[0], 1, like.shape[2], like.shape[3])


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return (torch.round(x) - x).detach() + x


class DCTCodec(nn.Module):
    """See the module docstring. ``N``: hyperprior channels; ``M`` is fixed at 192."""

    kind = "dct"
    multiple = 32

    def __init__(self, N: int = 48, M: int = LATENT, refine: int = 32) -> None:
        super().__init__()
        self.N, self.M, self.refine_channels = N, LATENT, refine
        ycc = _RGB_TO_YCC
        basis = torch.from_numpy(dct_basis()).float()[:, None].repeat(3, 1, 1, 1)  # (192, 1, 8, 8)
        self.color = nn.Conv2d(3, 3, 1)
        self.dct = nn.Conv2d(3, LATENT, 8, stride=8, groups=3, bias=False)
        self.log_step = nn.Parameter(torch.from_numpy(np.log(jpeg_base_steps())).float())
        self.gdn = GDN(LATENT, gamma_init=1e-6)
        self.igdn = GDN(LATENT, inverse=True, gamma_init=1e-6)
        self.idct = nn.ConvTranspose2d(LATENT, 3, 8, stride=8, groups=3, bias=False)
        self.icolor = nn.Conv2d(3, 3, 1)
        inv = np.linalg.inv(ycc)
        with torch.no_grad():
            self.color.weight.copy_(torch.from_numpy(ycc).float()[:, :, None, None])
            self.color.bias.copy_(torch.tensor([-128.0, 0.0, 0.0]))
            self.dct.weight.copy_(basis)
            self.idct.weight.copy_(basis)
            self.icolor.weight.copy_(torch.from_numpy(inv).float()[:, :, None, None])
            self.icolor.bias.copy_(torch.from_numpy(inv @ np.array([128.0, 0.0, 0.0])).float())
        self.h_a = nn.Sequential(nn.Conv2d(LATENT + 1, N, 3, padding=1), nn.ReLU(), nn.Conv2d(N, N, 5, 2, 2), nn.ReLU(),
                                 nn.Conv2d(N, N, 5, 2, 2))
        self.h_s1 = nn.ConvTranspose2d(N + 1, N, 5, 2, 2, output_padding=1)
        self.h_s = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(N, N, 5, 2, 2, output_padding=1), nn.ReLU(),
                                 nn.Conv2d(N, 2 * LATENT, 3, padding=1))
        with torch.no_grad():
            self.h_s[-1].bias[LATENT:].fill_(math.log(4.0))
        self.refine = nn.Sequential(nn.Conv2d(4, refine, 3, padding=1), nn.ReLU(), nn.Conv2d(refine, refine, 3, padding=1),
                                    nn.ReLU(), nn.Conv2d(refine, 3, 3, padding=1))
        nn.init.zeros_(self.refine[-1].weight)
        nn.init.zeros_(self.refine[-1].bias)
        self.entropy_z = EntropyBottleneck(N)
        self.gaussian = GaussianConditional()

    # -- the four transforms (shared by training, encoder and decoder) --------------------------
    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """``u`` (``(B, 192, H/8, W/8)``) of RGB ``x`` in [0, 1]: colour, DCT, steps, GDN."""
        coef = self.dct(self.color(x * 255.0))
        return self.gdn(coef * torch.exp(-self.log_step)[None, :, None, None])

    def hyper_analysis(self, u: torch.Tensor, m) -> torch.Tensor:
        """``z`` from ``u`` and the multiplier ``m``."""
        return self.h_a(torch.cat([u, _plane(m, u)], 1))

    def hyper_synthesis(self, z_hat: torch.Tensor, m) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, sigma)`` of ``u`` (multiplier-free units) from the decoded ``z_hat``."""
        out = self.h_s(self.h_s1(torch.cat([z_hat, _plane(m, z_hat)], 1)))
        return out[:, :LATENT], torch.exp(torch.clamp(out[:, LATENT:], -8.0, 8.0))

    def synthesis(self, u_hat: torch.Tensor, m) -> torch.Tensor:
        """RGB in [0, 1] (unclamped) from the dequantised ``u_hat``: IGDN, steps, inverse DCT,
        inverse colour, refinement."""
        coef = self.igdn(u_hat) * torch.exp(self.log_step)[None, :, None, None]
        x = self.icolor(self.idct(coef)) / 255.0
        return x + self.refine(torch.cat([x, _plane(m, x)], 1))

    # -- training -----------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, m: torch.Tensor) -> dict:
        """Training pass with per-sample multipliers ``m`` ``(B,)``: uniform noise for the rates,
        straight-through rounding (around the predicted mean) for the reconstruction."""
        mb = m.reshape(-1, 1, 1, 1)
        u = self.analysis(x)
        z = self.hyper_analysis(u, m)
        z_tilde = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        mu, sigma = self.hyper_synthesis(z_tilde, m)
        y, mu_y = u / mb, mu / mb
        y_tilde = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        lik_y = self.gaussian.likelihood(y_tilde - mu_y, sigma / mb)
        lik_z = self.entropy_z.likelihood(z_tilde)
        y_hat = _ste_round(y - mu_y) + mu_y
        return {"x_hat": self.synthesis(y_hat * mb, m), "likelihoods": [lik_y, lik_z], "y": y}

    def aux_loss(self) -> torch.Tensor:
        """Quantile loss of the ``z`` entropy bottleneck."""
        return self.entropy_z.aux_loss()
