"""2D priors for score distillation: noise predictions ε̂ from any model the Generate engine loads.

Every prior exposes one interface in *its own* Gaussian-path parameterisation
``z_t = a(t)·z + s(t)·ε`` with a continuous time ``t`` in (0, 1):

- :class:`FlowPixelPrior` — the shipped digits model (pixel space, class-conditional rectified
  flow, diffusers flow convention): ``z_t = (1 − t)·z + t·ε``, the network predicts the velocity
  ``v = ε − z`` at timestep ``1000·t``. The noise estimate follows from ``z_t`` and ``v̂``:
  ``ε̂ = z_t + (1 − t)·v̂`` (and ``ẑ₀ = z_t − t·v̂``). Dividing ``z_t`` by ``√(a² + s²)`` gives
  the variance-preserving sample with ``ᾱ = a²/(a² + s²)`` and *the same* ε, so DDPM formulas
  (DreamFusion weighting ``1 − ᾱ``, SJC's VE σ = s/a) apply unchanged.
- :class:`LatentPrior` — a diffusers text-to-image pipeline with a VAE (Stable-Diffusion
  layout): the render is resized to the pipeline's image size, mapped to [−1, 1] and encoded
  *with gradient* (``latent_dist.mean × scaling_factor``, the mean rather than a sample so a
  seed reproduces the result); ε- or v-prediction UNet on ``alphas_cumprod``.

CFG convention (both priors): the diffusers form ``ε̂ = ε_u + s·(ε_c − ε_u)``, so ``s = 1`` is
the plain conditional prediction and ``s = 0`` the unconditional one (threestudio's SDS ``s``
corresponds to our ``s + 1``). The combination is linear, so it is the same on velocities.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engines.generation.models import ModelError, ModelInfo, load_model

__all__ = ["FlowPixelPrior", "LatentPrior", "load_prior", "view_suffix"]


def view_suffix(azimuth_deg: float, elevation_deg: float) -> str:
    """threestudio's view-dependent prompt suffix: front |az| < 45°, back |az| > 135°, overhead el > 60°."""
    az = (azimuth_deg + 180.0) % 360.0 - 180.0
    if elevation_deg > 60:
        return ", overhead view"
    if abs(az) < 45:
        return ", front view"
    if abs(az) > 135:
        return ", back view"
    return ", side view"


class FlowPixelPrior:
    """The pixel-space class-conditional rectified-flow UNet (e.g. the shipped ``digits-flow``)."""

    kind = "pixel-flow"

    def __init__(self, unet, info: ModelInfo) -> None:
        self.unet = unet
        self.info = info
        self.size = tuple(int(v) for v in info.size)
        self.channels = int(unet.config.in_channels)
        self.null_class = info.null_class if info.null_class is not None else \
            (unet.config.num_class_embeds - 1 if unet.config.num_class_embeds else None)
        for p in unet.parameters():
            p.requires_grad_(False)

    def condition(self, class_label: int | None = None, prompt: str = "") -> dict:
        """Condition record for ``class_label`` (None = unconditional / the null class)."""
        if prompt:
            raise ValueError(f"{self.info.name} is class-conditional; it takes --class, not a text prompt")
        n = len(self.info.class_names)
        if class_label is not None and not 0 <= int(class_label) < n:
            raise ValueError(f"class {class_label} is out of range for {self.info.name} (0..{n - 1})")
        return {"class": None if class_label is None else int(class_label)}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B,H,W,3) renders in [0, 1] -> (B,C,h,w) model tensors in [−1, 1] (grey = RGB mean if C = 1)."""
        x = images.permute(0, 3, 1, 2)
        if self.channels == 1:
            x = x.mean(1, keepdim=True)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return x * 2.0 - 1.0

    def to_images(self, z: torch.Tensor) -> torch.Tensor:
        """(B,C,h,w) model tensors -> (B,h,w,3) in [0, 1] (for previews)."""
        x = ((z.detach() + 1) / 2).clamp(0, 1)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return x.permute(0, 2, 3, 1)

    @staticmethod
    def coefficients(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, s) of ``z_t = a z + s ε``: (1 − t, t)."""
        return 1.0 - t, t

    def _labels(self, cond: dict, batch: int, conditional: bool) -> torch.Tensor:
        label = cond.get("class") if conditional else None
        value = self.null_class if label is None else label
        return torch.full((batch,), int(value), dtype=torch.long)

    def predict_eps(self, z_t: torch.Tensor, t: torch.Tensor, cond: dict, guidance: float,
                    views=None, unet=None) -> torch.Tensor:
        """CFG noise prediction ε̂ = ε_u + guidance·(ε_c − ε_u) at time ``t`` (B,), from the velocity."""
        unet = unet or self.unet
        b = z_t.shape[0]
        steps = 1000.0 * t
        cond_labels = self._labels(cond, b, True)
        use_cfg = guidance != 1.0 and cond.get("class") is not None and self.null_class is not None
        if use_cfg:
            both = unet(torch.cat([z_t, z_t]), torch.cat([steps, steps]),
                        class_labels=torch.cat([self._labels(cond, b, False), cond_labels])).sample
            v_u, v_c = both.chunk(2)
            v = v_u + guidance * (v_c - v_u)
        else:
            v = unet(z_t, steps, class_labels=cond_labels if self.null_class is not None else None).sample
        return self.eps_from_output(v, z_t, t)

    @staticmethod
    def eps_from_output(v: torch.Tensor, z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ε̂ = z_t + (1 − t)·v̂ (velocity v = ε − z)."""
        return z_t + (1.0 - t).view(-1, 1, 1, 1) * v

    @staticmethod
    def training_target(z: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """What the network regresses (for VSD's fine-tuned copy): the velocity ε − z."""
        return noise - z

    def model_input(self, z_t: torch.Tensor, t: torch.Tensor) -> tuple:
        """(sample, timestep) as the UNet takes them."""
        return z_t, 1000.0 * t


class LatentPrior:
    """A diffusers Stable-Diffusion-style pipeline: VAE-encode the render, ε/v-prediction UNet in latent space."""

    kind = "latent"

    def __init__(self, pipe, info: ModelInfo) -> None:
        for name in ("vae", "unet", "text_encoder", "tokenizer", "scheduler"):
            if getattr(pipe, name, None) is None:
                raise ModelError(f"{info.name}: score distillation needs a text-to-image pipeline with a {name}")
        self.pipe = pipe
        self.info = info
        self.unet = pipe.unet
        self.size = tuple(int(v) for v in info.size)
        self.channels = int(pipe.unet.config.in_channels)
        self.prediction = pipe.scheduler.config.get("prediction_type", "epsilon")
        if self.prediction not in ("epsilon", "v_prediction"):
            raise ModelError(f"{info.name}: prediction type {self.prediction!r} is not supported for 3D")
        self.alphas_cumprod = pipe.scheduler.alphas_cumprod.float()
        self.scaling = float(getattr(pipe.vae.config, "scaling_factor", 0.18215))
        for module in (pipe.vae, pipe.unet, pipe.text_encoder):
            for p in module.parameters():
                p.requires_grad_(False)
        self._embeds: dict = {}

    def _embed(self, text: str) -> torch.Tensor:
        if text not in self._embeds:
            tok = self.pipe.tokenizer(text, padding="max_length", max_length=self.pipe.tokenizer.model_max_length,
                                      truncation=True, return_tensors="pt")
            with torch.no_grad():
                self._embeds[text] = self.pipe.text_encoder(tok.input_ids)[0]
        return self._embeds[text]

    def condition(self, class_label: int | None = None, prompt: str = "", negative_prompt: str = "") -> dict:
        """Condition record: the prompt (view suffixes are added per camera) and the negative prompt."""
        if class_label is not None:
            raise ValueError(f"{self.info.name} is text-conditioned; it takes --prompt, not --class")
        return {"prompt": prompt, "negative": negative_prompt, "view_dependent": True}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B,H,W,3) renders in [0, 1] -> latents (B,4,h/8,w/8) through the VAE encoder (with gradient)."""
        x = images.permute(0, 3, 1, 2)
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        dist = self.pipe.vae.encode(x * 2.0 - 1.0).latent_dist
        return dist.mean * self.scaling

    def to_images(self, z: torch.Tensor) -> torch.Tensor:
        """Latents -> (B,h,w,3) preview via the linear latent -> RGB factors."""
        from engines.generation.pipelines import latents_to_rgb

        return torch.from_numpy(latents_to_rgb(z)).float() / 255.0

    def _index(self, t: torch.Tensor) -> torch.Tensor:
        n = len(self.alphas_cumprod)
        return (t * (n - 1)).round().long().clamp(0, n - 1)

    def coefficients(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(√ᾱ, √(1 − ᾱ)) at the discrete timestep nearest to ``t``."""
        abar = self.alphas_cumprod[self._index(t)]
        return abar.sqrt(), (1 - abar).sqrt()

    def _text(self, cond: dict, views, batch: int, conditional: bool) -> torch.Tensor:
        if not conditional:
            return self._embed(cond.get("negative", "")).expand(batch, -1, -1)
        rows = []
        for i in range(batch):
            suffix = view_suffix(*views[i]) if (views is not None and cond.get("view_dependent")) else ""
            rows.append(self._embed(cond["prompt"] + suffix))
        return torch.cat(rows)

    def predict_eps(self, z_t: torch.Tensor, t: torch.Tensor, cond: dict, guidance: float,
                    views=None, unet=None) -> torch.Tensor:
        """CFG noise prediction ε̂ = ε_u + guidance·(ε_c − ε_u); ``views``: (azimuth, elevation) per sample."""
        unet = unet or self.unet
        b = z_t.shape[0]
        steps = self._index(t)
        text_c = self._text(cond, views, b, True)
        if guidance != 1.0:
            out = unet(torch.cat([z_t, z_t]), torch.cat([steps, steps]),
                       encoder_hidden_states=torch.cat([self._text(cond, views, b, False), text_c])).sample
            o_u, o_c = out.chunk(2)
            out = o_u + guidance * (o_c - o_u)
        else:
            out = unet(z_t, steps, encoder_hidden_states=text_c).sample
        return self.eps_from_output(out, z_t, t)

    def eps_from_output(self, out: torch.Tensor, z_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ε from the UNet output (ε itself, or ε = √ᾱ·v + √(1−ᾱ)·z_t for v-prediction)."""
        if self.prediction == "epsilon":
            return out
        a, s = self.coefficients(t)
        return a.view(-1, 1, 1, 1) * out + s.view(-1, 1, 1, 1) * z_t

    def training_target(self, z: torch.Tensor, noise: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """ε (or v = √ᾱ ε − √(1−ᾱ) z) for the fine-tuned copy."""
        if self.prediction == "epsilon" or t is None:
            return noise
        a, s = self.coefficients(t)
        return a.view(-1, 1, 1, 1) * noise - s.view(-1, 1, 1, 1) * z


def load_prior(info: ModelInfo, device: str = "cpu"):
    """A prior for ``info``: :class:`FlowPixelPrior` for own flow models, :class:`LatentPrior` for pipelines."""
    loaded = load_model(info, device)
    if loaded.unet is not None:
        if info.prediction_type != "flow":
            raise ModelError(f"{info.name}: 3D distillation supports own models with flow prediction only")
        return FlowPixelPrior(loaded.unet, info)
    if getattr(loaded.pipe, "vae", None) is None:
        raise ModelError(f"{info.name}: score distillation needs a pipeline with a VAE and a UNet")
    return LatentPrior(loaded.pipe, info)
