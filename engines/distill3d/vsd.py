"""VSD / ESD: a small camera-conditioned copy ε_φ of the prior's denoiser, trained on the current renders.

VSD (ProlificDreamer): ``g = w(t)·(ε̂_pre(z_t; y) − ε_φ(z_t; y, c))`` with ε̂_pre the CFG-guided
frozen prior and ε_φ a copy of the same UNet whose embedding gets the camera ``c`` =
(sin az, cos az, sin el, cos el) through a zero-initialised MLP (so ε_φ starts equal to the
prior's conditional prediction). ε_φ is trained each step on the detached renders with the
denoising loss ‖ε_φ(a z + s ε; y, c) − ε‖², the camera dropped (zeroed) with probability 0.1.
ESD (Wang et al. 2024): ``ε_est = λ·ε_φ(c) + (1 − λ)·ε_φ(∅)``; λ = 1 is VSD. One particle.
The copy is a full fine-tuned copy (not LoRA); for the 0.7 M-parameter digits UNet that is cheap.
The camera MLP learns ``CAMERA_LR_SCALE`` times faster than the copied weights: at one rate the
copy adapts to the renders long before its output depends on the camera (tests check that it does).
"""

from __future__ import annotations

import copy
import math

import torch

from engines.distill3d.estimators import sds_weight

__all__ = ["CameraConditionedCopy", "camera_vector"]


# The new camera branch starts at zero and must learn within the run while the copied UNet only
# adapts: it trains this many times faster than the rest of the copy.
CAMERA_LR_SCALE = 10.0


def _is_camera_param(name: str) -> bool:
    """The camera MLP's parameters (pixel UNet: ``class_embedding.mlp.*``; latent UNet: ``class_embedding.*``)."""
    return name.startswith("class_embedding.") and not name.startswith("class_embedding.base.")


def camera_vector(angles) -> torch.Tensor:
    """(B,4) camera condition from (azimuth, elevation) pairs in degrees."""
    rows = [[math.sin(math.radians(az)), math.cos(math.radians(az)), math.sin(math.radians(el)),
             math.cos(math.radians(el))] for az, el in angles]
    return torch.tensor(rows, dtype=torch.float32)


def _camera_mlp(dim: int) -> torch.nn.Sequential:
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.SiLU(), torch.nn.Linear(64, dim))
    torch.nn.init.zeros_(mlp[2].weight)
    torch.nn.init.zeros_(mlp[2].bias)
    return mlp


class _PixelCameraEmbedding(torch.nn.Module):
    """Class embedding + MLP(camera) for a pixel UNet2DModel (``camera`` set before each call)."""

    def __init__(self, base: torch.nn.Embedding) -> None:
        super().__init__()
        self.base = base
        self.mlp = _camera_mlp(base.embedding_dim)
        self.camera: torch.Tensor | None = None

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        emb = self.base(labels)
        if self.camera is None:
            return emb
        cam = self.camera.repeat(len(labels) // len(self.camera), 1)
        return emb + self.mlp(cam)


class _CameraUNet:
    """Callable with the UNet's signature that injects the current camera condition."""

    def __init__(self, unet, latent: bool, embedding=None) -> None:
        self.unet = unet
        self.latent = latent
        self.embedding = embedding
        self.camera: torch.Tensor | None = None

    def __call__(self, sample, timestep, **kwargs):
        cam = self.camera.repeat(len(sample) // len(self.camera), 1)
        if self.latent:
            kwargs["class_labels"] = cam
        else:
            self.embedding.camera = cam
        return self.unet(sample, timestep, **kwargs)


class CameraConditionedCopy:
    """ε_φ for VSD/ESD: build from a prior, :meth:`gradient` per step, :meth:`train_step` after it."""

    def __init__(self, prior, lr: float = 1e-3, seed: int = 0) -> None:
        self.prior = prior
        unet = copy.deepcopy(prior.unet)
        for p in unet.parameters():
            p.requires_grad_(True)
        if prior.kind == "latent":
            dim = unet.time_embedding.linear_2.out_features
            unet.class_embedding = _camera_mlp(dim)
            self.call = _CameraUNet(unet, True)
        else:
            if unet.class_embedding is None:
                raise ValueError("VSD/ESD with a pixel model needs a class-conditional UNet (its embedding carries the camera)")
            unet.class_embedding = _PixelCameraEmbedding(unet.class_embedding)
            self.call = _CameraUNet(unet, False, unet.class_embedding)
        unet.train()
        self.unet = unet
        camera = [p for n, p in unet.named_parameters() if _is_camera_param(n)]
        rest = [p for n, p in unet.named_parameters() if not _is_camera_param(n)]
        self.optimizer = torch.optim.Adam([{"params": rest, "lr": lr},
                                           {"params": camera, "lr": lr * CAMERA_LR_SCALE}])

    def eps(self, z_t: torch.Tensor, t: torch.Tensor, cond: dict, cameras: torch.Tensor) -> torch.Tensor:
        """ε_φ(z_t; y, c) (view-independent condition, no CFG)."""
        self.call.camera = cameras
        return self.prior.predict_eps(z_t, t, cond, 1.0, views=None, unet=self.call)

    @torch.no_grad()
    def gradient(self, z: torch.Tensor, cond: dict, t: torch.Tensor, noise: torch.Tensor, guidance: float,
                 lam: float, angles, weighting: str = "dreamfusion") -> torch.Tensor:
        """g = w(t)·(ε̂_pre,cfg − [λ ε_φ(c) + (1 − λ) ε_φ(∅)])."""
        z = z.detach()
        a, s = self.prior.coefficients(t)
        z_t = a.view(-1, 1, 1, 1) * z + s.view(-1, 1, 1, 1) * noise
        eps_pre = self.prior.predict_eps(z_t, t, cond, guidance, views=angles)
        cams = camera_vector(angles)
        eps_est = self.eps(z_t, t, cond, cams)
        if lam != 1.0:
            eps_est = lam * eps_est + (1.0 - lam) * self.eps(z_t, t, cond, torch.zeros_like(cams))
        return sds_weight(a, s, weighting).view(-1, 1, 1, 1) * (eps_pre - eps_est)

    def train_step(self, z: torch.Tensor, cond: dict, angles, generator: torch.Generator) -> float:
        """One denoising step of ε_φ on the detached renders ``z``; returns the loss."""
        b = z.shape[0]
        t = 0.02 + 0.96 * torch.rand(b, generator=generator)
        noise = torch.randn(z.shape, generator=generator)
        a, s = self.prior.coefficients(t)
        z_t = a.view(-1, 1, 1, 1) * z + s.view(-1, 1, 1, 1) * noise
        cams = camera_vector(angles)
        drop = torch.rand(b, generator=generator) < 0.1
        cams[drop] = 0.0
        loss = ((self.eps(z_t, t, cond, cams) - noise) ** 2).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())
