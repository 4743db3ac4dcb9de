"""Tiled denoising (MultiDiffusion-style) and tiled VAE for sizes beyond the model's native one (no Qt).

:class:`TiledDenoiser` wraps a denoiser (a ``UNet2DModel`` / ``UNet2DConditionModel`` or any
module called as ``model(sample, timestep, ...)``): at each call it runs the wrapped model on
overlapping tiles of the latent and blends the predictions with feathered weights that sum to
one at every pixel (:func:`tile_weights`), so memory is bounded by the tile, not the image.
A single tile covering the latent runs the model once on the whole input (exactly untiled).

:func:`tiled_vae` makes a diffusers VAE decode/encode in tiles of the same latent size.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

__all__ = ["TiledDenoiser", "tile_starts", "tile_weights", "tiled_denoiser", "tiled_vae"]


def tile_starts(length: int, tile: int, overlap: int) -> list:
    """Start offsets of tiles of size ``min(tile, length)`` covering ``0..length`` with at
    least ``overlap`` shared pixels between neighbours, spread evenly."""
    tile = min(tile, length)
    if tile >= length:
        return [0]
    stride = max(1, tile - overlap)
    count = int(np.ceil((length - tile) / stride)) + 1
    return sorted({int(round(v)) for v in np.linspace(0, length - tile, count)})


def _rise(n: int) -> torch.Tensor:
    """Weights of the ``n`` pixels a tile shares with its neighbour, from its edge inward: a
    quarter of them (where the model saw the tile's zero padding) get almost nothing, then a
    linear ramp; never exactly 0, so every pixel keeps a defined blend."""
    margin = n // 4
    d = torch.arange(n, dtype=torch.float64) + 1 - margin
    return (d / (n + 1 - margin)).clamp(min=1e-3)


def _ramp(size: int, lead: int, trail: int) -> torch.Tensor:
    """1-D feather: rises over ``lead`` pixels at the start, falls over ``trail`` at the end."""
    w = torch.ones(size, dtype=torch.float64)
    if lead > 0:
        w[:lead] = torch.minimum(w[:lead], _rise(lead))
    if trail > 0:
        w[size - trail:] = torch.minimum(w[size - trail:], _rise(trail).flip(0))
    return w


def tile_weights(height: int, width: int, tile: int, overlap: int) -> list:
    """``[(rows, cols, weight)]``: slices of each tile and its ``(th, tw)`` blend weight.

    Each tile's weight ramps up over the part it shares with a neighbour (not at the image
    border; near-zero over the outer quarter, where the model saw zero padding instead of the
    neighbour's content); the weights are then divided by their sum, so they add up to 1 at
    every pixel.
    """
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    th, tw = min(tile, height), min(tile, width)
    raw = []
    for iy, y in enumerate(ys):
        lead_y = ys[iy - 1] + th - y if iy > 0 else 0
        trail_y = y + th - ys[iy + 1] if iy + 1 < len(ys) else 0
        for ix, x in enumerate(xs):
            lead_x = xs[ix - 1] + tw - x if ix > 0 else 0
            trail_x = x + tw - xs[ix + 1] if ix + 1 < len(xs) else 0
            w = _ramp(th, lead_y, trail_y)[:, None] * _ramp(tw, lead_x, trail_x)[None, :]
            raw.append((slice(y, y + th), slice(x, x + tw), w))
    total = torch.zeros(height, width, dtype=torch.float64)
    for rows, cols, w in raw:
        total[rows, cols] += w
    return [(rows, cols, (w / total[rows, cols]).float()) for rows, cols, w in raw]


class TiledDenoiser(nn.Module):
    """Runs ``model`` on overlapping ``tile`` x ``tile`` latent tiles and blends the outputs.

    Attribute access falls through to the wrapped model (``config``, ``dtype``, blocks ...),
    so pipelines and the own loop use it in place of the model. ``model(...)`` must return a
    tensor, a tuple whose first item is one, or an object with ``.sample``.
    """

    def __init__(self, model: nn.Module, tile: int, overlap: int) -> None:
        super().__init__()
        if tile < 1 or not 0 <= overlap < tile:
            raise ValueError(f"tile size must be positive and the overlap 0..tile-1 (got {tile}, {overlap})")
        self.model = model
        self.tile, self.overlap = int(tile), int(overlap)
        self.tiles_run = 0  # model calls made, for logs and tests

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)

    def forward(self, sample: torch.Tensor, *args, **kwargs):
        """The wrapped model's output, computed tile by tile, in the model's return type."""
        h, w = sample.shape[-2:]
        tiles = tile_weights(h, w, self.tile, self.overlap)
        if len(tiles) == 1:
            self.tiles_run += 1
            return self.model(sample, *args, **kwargs)
        blended, first = None, None
        for rows, cols, weight in tiles:
            out = self.model(sample[..., rows, cols], *args, **kwargs)
            self.tiles_run += 1
            first = out if first is None else first
            pred = _tensor_of(out)
            if blended is None:
                blended = torch.zeros(*pred.shape[:-2], h, w, dtype=pred.dtype, device=pred.device)
            blended[..., rows, cols] += pred * weight.to(pred.device, pred.dtype)
        return _like(first, blended)


def _tensor_of(out):
    if torch.is_tensor(out):
        return out
    if isinstance(out, tuple):
        return out[0]
    return out.sample


def _like(out, tensor):
    if torch.is_tensor(out):
        return tensor
    if isinstance(out, tuple):
        return (tensor, *out[1:])
    out.sample = tensor
    return out


@contextlib.contextmanager
def tiled_denoiser(pipe, unet, tile: int, overlap: int):
    """For one run: yields the own-loop ``unet`` wrapped in a :class:`TiledDenoiser`, or puts a
    wrapped ``pipe.unet`` / ``pipe.transformer`` in the pipeline and restores it after.
    ``tile`` 0 changes nothing."""
    if not tile:
        yield unet
        return
    if pipe is None:
        yield TiledDenoiser(unet, tile, overlap)
        return
    name = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
    if name == "transformer":
        raise ValueError("tiled denoising needs a UNet model (transformer models take packed latents)")
    original = pipe.unet
    pipe.unet = TiledDenoiser(original, tile, overlap)
    try:
        yield pipe.unet
    finally:
        pipe.unet = original


@contextlib.contextmanager
def tiled_vae(pipe, tile: int, overlap: int):
    """For one run: the pipeline's VAE decodes and encodes in tiles of ``tile`` latent pixels
    (diffusers' own tiling, blended over ``overlap``); restored after. ``tile`` 0: unchanged."""
    vae = getattr(pipe, "vae", None) if pipe is not None else None
    if not tile or vae is None or not hasattr(vae, "enable_tiling"):
        yield False
        return
    names = ("tile_sample_min_size", "tile_latent_min_size", "tile_overlap_factor", "use_tiling")
    if not all(hasattr(vae, n) for n in names):
        vae.enable_tiling()
        try:
            yield True
        finally:
            vae.disable_tiling()
        return
    saved = {n: getattr(vae, n) for n in names}
    scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    vae.tile_latent_min_size = int(tile)
    vae.tile_sample_min_size = int(tile) * scale
    vae.tile_overlap_factor = min(0.5, overlap / float(tile))
    vae.use_tiling = True
    try:
        yield True
    finally:
        for n, v in saved.items():
            setattr(vae, n, v)
