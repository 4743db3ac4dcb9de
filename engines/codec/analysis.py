"""Analyses behind the panel: energy compaction per transform, per-block details, channel views."""

from __future__ import annotations

import numpy as np

from engines.codec.blockcodec import EncodeResult, blockify
from engines.codec.color import rgb_to_ycbcr
from engines.codec.quant import zigzag_order
from engines.codec.transforms import available_transforms, get_transform
from engines.jobs import Progress, wait_in_thread

__all__ = ["block_details", "channel_view", "compaction_job", "energy_compaction"]


def energy_compaction(image: np.ndarray, transform, max_blocks: int = 4096, seed: int = 0) -> np.ndarray:
    """Fraction of AC energy kept vs number of AC coefficients kept, on the image's luma.

    Coefficient positions are ranked by mean energy over the blocks (the best fixed choice for
    this image); returns ``(N*N,)`` with entry k = fraction kept with the k best AC positions
    (entry 0 = 0). ``transform`` is a :class:`Transform`. At most ``max_blocks`` random blocks.
    """
    n = transform.N
    y = rgb_to_ycbcr(image)[..., 0] - 128.0
    blocks = blockify(y, n).reshape(-1, n, n)
    if blocks.shape[0] > max_blocks:
        idx = np.random.default_rng(seed).choice(blocks.shape[0], max_blocks, replace=False)
        blocks = blocks[idx]
    coeffs = transform.forward(blocks)
    energy = np.mean(coeffs**2, axis=0).ravel()[1:]  # AC only (every transform has a flat row 0)
    total = energy.sum()
    ranked = np.sort(energy)[::-1]
    curve = np.concatenate([[0.0], np.cumsum(ranked)]) / (total if total > 0 else 1.0)
    return curve


def compaction_job(image: np.ndarray, n: int = 8, alphabet: int = 2, names=None):
    """Job: energy-compaction curves of every transform at ``n``; returns ``{name: curve}``."""
    names = list(names or available_transforms(n))
    out = {}
    for i, name in enumerate(names):
        label = f"minangle-m{alphabet}" if name == "minangle" else name
        tr = get_transform(name, n, alphabet)  # milliseconds (cached); the curve is one long call:
        # on a helper thread, so a cancel stops the job at once
        out[label] = yield from wait_in_thread(energy_compaction, image, tr, event=Progress(i, len(names), label))
        yield Progress(i + 1, len(names), label)
    return out


def block_details(result: EncodeResult, plane: int, by: int, bx: int) -> dict:
    """Everything about one block of an encoded image: ``original`` pixels (level-shifted back),
    ``coeffs`` (before quantization), ``q`` (levels), ``dequant``, ``reconstructed`` pixels,
    ``Q`` (matrix), ``bits`` and ``zigzag`` order; all ``(N, N)`` float/int arrays."""
    pd = result.planes[plane]
    if not (0 <= by < pd.q.shape[0] and 0 <= bx < pd.q.shape[1]):
        raise IndexError(f"block ({by}, {bx}) outside the {pd.q.shape[0]}x{pd.q.shape[1]} grid")
    p = result.params
    tr = get_transform(p.transform, p.N, p.alphabet)
    coeffs = pd.coeffs[by, bx]
    q = pd.q[by, bx]
    deq = q * pd.Q
    return {
        "plane": plane,
        "block": (by, bx),
        "original": tr.inverse(coeffs) + 128.0,
        "coeffs": coeffs,
        "q": q,
        "dequant": deq,
        "reconstructed": np.clip(tr.inverse(deq) + 128.0, 0, 255),
        "Q": pd.Q,
        "bits": float(pd.bits[by, bx]),
        "nonzero": int(np.count_nonzero(q)),
        "zigzag": zigzag_order(p.N),
    }


def channel_view(image: np.ndarray, channel: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 view of ``channel`` (``RGB``, ``Y``, ``Cb``, ``Cr``) as grey."""
    if channel == "RGB":
        return image
    i = {"Y": 0, "Cb": 1, "Cr": 2}[channel]
    plane = np.clip(np.rint(rgb_to_ycbcr(image)[..., i]), 0, 255).astype(np.uint8)
    return np.repeat(plane[..., None], 3, axis=-1)
