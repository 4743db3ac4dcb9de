"""Token quantizers (codec.md §5): FSQ (Mentzer et al., arXiv 2309.15505) and VQ with the
straight-through estimator and a k-means codebook, plus a small VQ patch codec whose indices
go through the same range coder as the block codec (real bits).

Tensors are torch float32; ``sg`` = ``detach``.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import torch

from engines.codec.entropy import Histogram, decode_streams, encode_streams, read_varint, write_varint

__all__ = [
    "fsq_bound",
    "fsq_codes_to_indices",
    "fsq_indices_to_codes",
    "fsq_quantize",
    "kmeans",
    "round_ste",
    "vq_decode_image",
    "vq_encode_image",
    "vq_quantize",
]

FSQ_EPS = 1e-3


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round`` in the forward pass, identity gradient."""
    return x + (torch.round(x) - x).detach()


def _levels(levels) -> torch.Tensor:
    lv = torch.as_tensor(levels, dtype=torch.float32)
    if lv.ndim != 1 or torch.any(lv < 2):
        raise ValueError("FSQ levels must be a list of integers >= 2")
    return lv


def fsq_bound(z: torch.Tensor, levels) -> torch.Tensor:
    """``tanh(z + shift) * half_l - offset`` per channel (last axis = len(levels)); uses the
    (1 + eps) / atanh convention (lucidrains), see codec.md §5."""
    lv = _levels(levels).to(z.device)
    half = (lv - 1) * (1 + FSQ_EPS) / 2
    offset = torch.where(lv % 2 == 0, torch.tensor(0.5), torch.tensor(0.0))
    shift = torch.atanh(offset / half)
    return torch.tanh(z + shift) * half - offset


def fsq_quantize(z: torch.Tensor, levels) -> tuple[torch.Tensor, torch.Tensor]:
    """FSQ: ``z`` ``(..., d)`` -> codes in [-1, 1] (``(..., d)``, straight-through) and int64
    indices ``(...)`` in ``[0, prod(levels))``."""
    lv = _levels(levels)
    if z.shape[-1] != lv.numel():
        raise ValueError(f"last axis must have {lv.numel()} channels (got {z.shape[-1]})")
    half_width = torch.floor(lv / 2)
    codes = round_ste(fsq_bound(z, lv)) / half_width
    return codes, fsq_codes_to_indices(codes.detach(), lv)


def fsq_codes_to_indices(codes: torch.Tensor, levels) -> torch.Tensor:
    """``sum_i (c_i floor(L_i/2) + floor(L_i/2)) * basis_i``, basis = cumprod([1, L_1, …])."""
    lv = _levels(levels)
    half_width = torch.floor(lv / 2)
    basis = torch.cumprod(torch.cat([torch.ones(1), lv[:-1]]), 0)
    digits = torch.round(codes * half_width + half_width)
    return (digits * basis).sum(-1).to(torch.int64)


def fsq_indices_to_codes(indices: torch.Tensor, levels) -> torch.Tensor:
    """Inverse of :func:`fsq_codes_to_indices`."""
    lv = _levels(levels)
    half_width = torch.floor(lv / 2)
    basis = torch.cumprod(torch.cat([torch.ones(1), lv[:-1]]), 0).to(torch.int64)
    digits = (indices.unsqueeze(-1) // basis) % lv.to(torch.int64)
    return (digits.float() - half_width) / half_width


def vq_quantize(e: torch.Tensor, codebook: torch.Tensor, beta: float = 0.25):
    """Nearest-codeword VQ: ``e`` ``(n, d)``, ``codebook`` ``(K, d)``. Returns the
    straight-through output ``e + sg(q - e)``, the indices ``(n,)`` and the VQ-VAE loss
    ``||sg(e) - q||^2 + beta ||e - sg(q)||^2`` (means)."""
    d = torch.cdist(e, codebook)
    idx = torch.argmin(d, dim=1)
    q = codebook[idx]
    loss = torch.mean((e.detach() - q) ** 2) + beta * torch.mean((e - q.detach()) ** 2)
    return e + (q - e).detach(), idx, loss


def kmeans(x: torch.Tensor, k: int, iters: int = 10, seed: int = 0) -> tuple[torch.Tensor, list[float]]:
    """Lloyd's k-means with k-means++ initialisation; returns the ``(k, d)`` codebook and the
    mean squared distortion after each iteration (non-increasing)."""
    n = x.shape[0]
    k = min(k, n)
    g = torch.Generator().manual_seed(seed)
    centers = [x[torch.randint(n, (1,), generator=g)].squeeze(0)]
    d2 = torch.sum((x - centers[0]) ** 2, 1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1.0 / n)
        nxt = x[torch.multinomial(probs, 1, generator=g)].squeeze(0)
        centers.append(nxt)
        d2 = torch.minimum(d2, torch.sum((x - nxt) ** 2, 1))
    C = torch.stack(centers)
    history = []
    for _ in range(iters):
        idx = torch.argmin(torch.cdist(x, C), 1)
        history.append(float(torch.mean(torch.sum((x - C[idx]) ** 2, 1))))
        sums = torch.zeros_like(C).index_add_(0, idx, x)
        counts = torch.bincount(idx, minlength=C.shape[0]).unsqueeze(1).float()
        C = torch.where(counts > 0, sums / counts.clamp(min=1), C)
    idx = torch.argmin(torch.cdist(x, C), 1)
    history.append(float(torch.mean(torch.sum((x - C[idx]) ** 2, 1))))
    return C, history


_VQ_MAGIC = b"SSVQ"


def vq_encode_image(image: np.ndarray, k: int = 256, patch: int = 4, iters: int = 8, seed: int = 0) -> tuple[bytes, np.ndarray]:
    """Tokenize an ``(H, W, 3)`` uint8 image into ``patch x patch`` RGB patches with a k-means
    codebook of ``k`` entries learnt on the image; the codebook (uint8) and the range-coded
    indices form the bitstream. Returns ``(bitstream, reconstruction)``."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError("expected an (H, W, 3) uint8 image")
    h, w = image.shape[:2]
    ph, pw = -(-h // patch), -(-w // patch)
    pad = np.pad(image, ((0, ph * patch - h), (0, pw * patch - w), (0, 0)), mode="edge")
    x = pad.reshape(ph, patch, pw, patch, 3).transpose(0, 2, 1, 3, 4).reshape(-1, patch * patch * 3)
    xt = torch.from_numpy(x.astype(np.float32))
    C, _ = kmeans(xt, k, iters, seed)
    C8 = torch.clamp(torch.round(C), 0, 255)
    idx = torch.argmin(torch.cdist(xt, C8), 1).numpy().astype(np.int64)
    hist = Histogram.of(idx)
    buf = io.BytesIO()
    buf.write(_VQ_MAGIC)
    buf.write(struct.pack("<IIBH", h, w, patch, C8.shape[0]))
    buf.write(C8.numpy().astype(np.uint8).tobytes())
    hist.write(buf)
    payload = encode_streams([idx], [hist])
    write_varint(buf, len(payload))
    buf.write(payload)
    data = buf.getvalue()
    return data, vq_decode_image(data)


def vq_decode_image(data: bytes) -> np.ndarray:
    """Inverse of :func:`vq_encode_image`."""
    buf = io.BytesIO(data)
    if buf.read(4) != _VQ_MAGIC:
        raise ValueError("not a VQ token bitstream")
    h, w, patch, k = struct.unpack("<IIBH", buf.read(struct.calcsize("<IIBH")))
    dim = patch * patch * 3
    C = np.frombuffer(buf.read(k * dim), dtype=np.uint8).reshape(k, dim)
    hist = Histogram.read(buf)
    payload = buf.read(read_varint(buf))
    ph, pw = -(-h // patch), -(-w // patch)
    (idx,) = decode_streams(payload, [ph * pw], [hist])
    pad = C[idx].reshape(ph, pw, patch, patch, 3).transpose(0, 2, 1, 3, 4).reshape(ph * patch, pw * patch, 3)
    return np.ascontiguousarray(pad[:h, :w])


