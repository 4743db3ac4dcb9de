"""Token-quantizer lab: a tiny convolutional autoencoder tokenizer (one token per 4×4 pixels)
trained with one of five quantizers, codebook statistics, and tokens range-coded to real bits
(codec.md §5, codec-learned.md §4).

Quantizers (``z`` ``(n, d)`` encoder outputs; ``sg`` = detach):

* ``vq`` — nearest code, straight-through ``e + sg(q − e)``, loss ``‖sg(e) − q‖² + β‖e − sg(q)‖²``;
* ``vq-rotation`` — the same codes with the rotation trick (Fifty et al.): the gradient is rotated
  and scaled from ``q`` to ``e`` (``q̃ = sg(‖q‖/‖e‖) · (e − 2(e·w)w + 2(e·ê)q̂)``, ``w`` = sg(normalize(ê + q̂)));
* ``fsq`` — finite scalar quantization (levels per channel, no codebook);
* ``bsq`` — binary spherical quantization: ``u = z/‖z‖``, ``sign(u)/√L``, implicit codebook ``2^L``;
* ``ibq`` — index backpropagation (Shi et al., arXiv 2412.02692): logits ``z·Cᵀ`` over all codes,
  ``one_hot(argmax) − sg(softmax) + softmax`` times the codebook, so every code gets a gradient
  through the softmax; SEED-Voken's double-quantization loss ``‖z_q − z‖² + ‖sg(z_q') − z‖² +
  β‖z_q' − sg(z)‖²`` (``z_q'`` the hard code) plus its entropy regulariser. By default
  (``ibq_logits="cosine"``) ``z`` and the codes are l2-normalised before the product and the logits
  scaled by :data:`IBQ_COSINE_SCALE` (the l2-normalised lookup of ViT-VQGAN; SEED-Voken's quantizer
  has a ``cosine_similarity`` switch). With the raw ``z·Cᵀ`` (``"dot"``) the argmax favours the
  longest codes: 150 steps at 10 bits on the training photos collapsed to perplexity 2.8 (13.5 dB on
  the held-out photos) against 142 (18.9 dB) normalised with scale 30 (280, 17.5 dB with scale 1;
  VQ 21.3 dB). ``"distance"`` (``2z·Cᵀ − ‖c‖²``, the nearest code; 18.9 dB) is kept for comparison.

Learned codebooks (VQ, VQ rotation, IBQ) restart codes unused over the last ``restart_every`` steps
on current encoder outputs: the encoder outputs move away from their initial cloud within a few
steps (mean norm 0.37 → 3.3 in 35 steps) and strand the codebook; without restarts the rotation trick
kept 2 of 1024 codes (13.5 dB) in the benchmark.

At an equal budget of bits per token (``log2`` of the codebook size) :func:`train_tokenizer_job`
reports utilisation, perplexity, dead codes, reconstruction PSNR and the real range-coded bits.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from engines.codec.metrics import ssim
from engines.codec.tokens import fsq_indices_to_codes, fsq_quantize
from engines.jobs import Log, Preview, Progress, wait_in_thread

__all__ = ["QUANTIZERS", "Tokenizer", "bsq_quantize", "code_statistics", "decode_indices", "ibq_entropy_loss", "ibq_quantize", "model_fingerprint",
           "reconstruct", "restart_dead_codes", "rotation_trick", "tokens_bits", "train_tokenizer_job"]

QUANTIZERS = ("vq", "vq-rotation", "fsq", "bsq", "ibq")
IBQ_LOGITS = ("cosine", "dot", "distance")
#: logit scale (inverse temperature) of cosine IBQ: cosines lie in [-1, 1], unscaled the softmax over
#: 2^bits codes is nearly flat and passes little gradient
IBQ_COSINE_SCALE = 30.0
_FSQ_LEVELS = {8: [8, 6, 5], 10: [8, 5, 5, 5], 12: [7, 5, 5, 5, 5], 14: [8, 8, 8, 6, 5], 16: [8, 8, 8, 5, 5, 5]}


def rotation_trick(e: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Forward value ``q``; backward ``∂L/∂e = (‖q‖/‖e‖) Rᵀ ∂L/∂q̃`` (R rotates ê onto q̂)."""
    en = e.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    qn = q.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    e_hat, q_hat = (e / en).detach(), (q / qn).detach()
    w = F.normalize(e_hat + q_hat, dim=-1).detach()
    rotated = e - 2 * (e * w).sum(-1, keepdim=True) * w + 2 * (e * e_hat).sum(-1, keepdim=True) * q_hat
    return rotated * (qn / en).detach()


def bsq_quantize(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BSQ: ``(codes on the unit sphere with straight-through, int64 index = Σ 1[u_i > 0] 2^i)``."""
    L = z.shape[-1]
    u = F.normalize(z, dim=-1)
    q = torch.where(u > 0, 1.0, -1.0) / math.sqrt(L)
    index = ((u > 0).long() * (2 ** torch.arange(L, device=z.device))).sum(-1)
    return u + (q - u).detach(), index


def ibq_logits(z: torch.Tensor, codebook: torch.Tensor, distance: bool = False) -> torch.Tensor:
    """IBQ logits over all codes: the paper's ``z·Cᵀ``, or with ``distance`` ``2z·Cᵀ − ‖c‖²``
    (= ``−‖z − c‖²`` up to a per-token constant, so the argmax is the nearest code)."""
    dot = z @ codebook.t()
    return 2 * dot - (codebook**2).sum(-1) if distance else dot


def ibq_quantize(z: torch.Tensor, codebook: torch.Tensor, distance: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """IBQ: ``(one_hot − sg(softmax) + softmax) @ codebook`` and the argmax index (logits: :func:`ibq_logits`)."""
    logits = ibq_logits(z, codebook, distance)
    soft = logits.softmax(-1)
    index = logits.argmax(-1)
    hard = F.one_hot(index, codebook.shape[0]).to(soft.dtype)
    return (hard - soft.detach() + soft) @ codebook, index


def ibq_entropy_loss(logits: torch.Tensor, temperature: float = 0.01) -> torch.Tensor:
    """IBQ's entropy regulariser: mean per-token entropy of ``softmax(logits/T)`` (pushed down,
    confident assignments) minus the entropy of the batch-mean distribution (pushed up, all codes used)."""
    p = (logits / temperature).softmax(-1)
    logp = (logits / temperature).log_softmax(-1)
    sample = -(p * logp).sum(-1).mean()
    mean_p = p.mean(0)
    return sample + (mean_p * torch.log(mean_p.clamp_min(1e-12))).sum()


class Tokenizer(nn.Module):
    """Conv encoder (÷4) -> quantizer -> conv decoder; ``bits`` per token fixes the codebook size."""

    def __init__(self, quantizer: str, bits: int = 10, width: int = 48, ibq_logits: str = "cosine") -> None:
        super().__init__()
        if quantizer not in QUANTIZERS:
            raise ValueError(f"unknown quantizer {quantizer!r}; choose from {', '.join(QUANTIZERS)}")
        if ibq_logits not in IBQ_LOGITS:
            raise ValueError(f"IBQ logits are one of {', '.join(IBQ_LOGITS)} (got {ibq_logits!r})")
        self.ibq_logits = ibq_logits
        if quantizer == "fsq" and bits not in _FSQ_LEVELS:
            raise ValueError(f"FSQ levels are defined for {sorted(_FSQ_LEVELS)} bits per token")
        self.quantizer, self.bits = quantizer, int(bits)
        self.levels = _FSQ_LEVELS.get(bits) if quantizer == "fsq" else None
        self.dim = len(self.levels) if self.levels else (bits if quantizer == "bsq" else 16)
        self.codes = int(np.prod(self.levels)) if self.levels else 2**bits  # FSQ: the product of its levels (1000 for 10 bits)
        self.enc = nn.Sequential(nn.Conv2d(3, width, 4, 2, 1), nn.ReLU(), nn.Conv2d(width, width, 4, 2, 1), nn.ReLU(), nn.Conv2d(width, self.dim, 1))
        self.dec = nn.Sequential(nn.Conv2d(self.dim, width, 1), nn.ReLU(), nn.ConvTranspose2d(width, width, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(width, 3, 4, 2, 1))
        self.codebook = nn.Parameter(torch.randn(self.codes, self.dim) * 0.5) if quantizer in ("vq", "vq-rotation", "ibq") else None

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``z`` ``(n, d)`` -> (quantized with the method's gradient, indices, codebook loss)."""
        zero = z.new_zeros(())
        if self.quantizer == "fsq":
            q, idx = fsq_quantize(z, self.levels)
            return q, idx, zero
        if self.quantizer == "bsq":
            q, idx = bsq_quantize(z)
            return q, idx, 0.25 * ((q.detach() - z) ** 2).mean()
        if self.quantizer == "ibq":
            distance = self.ibq_logits == "distance"
            z, book = (F.normalize(z, dim=-1), self.codes_table()) if self.ibq_logits == "cosine" else (z, self.codebook)
            scale = IBQ_COSINE_SCALE if self.ibq_logits == "cosine" else 1.0
            q, idx = ibq_quantize(scale * z, book, distance=distance)  # logits scale·z·Cᵀ; the value is a code of book
            hard = book[idx]  # SEED-Voken weights: commitment 1, codebook beta = 0.25
            loss = ((q - z) ** 2).mean() + ((hard.detach() - z) ** 2).mean() + 0.25 * ((hard - z.detach()) ** 2).mean()
            return q, idx, loss + 0.1 * ibq_entropy_loss(ibq_logits(scale * z, book, distance))
        idx = torch.cdist(z, self.codebook).argmin(-1)
        q = self.codebook[idx]
        loss = ((q - z.detach()) ** 2).mean() + 0.25 * ((q.detach() - z) ** 2).mean()
        out = rotation_trick(z, q) if self.quantizer == "vq-rotation" else z + (q - z).detach()
        return out, idx, loss

    def codes_table(self) -> torch.Tensor | None:
        """The vectors the decoder receives for each index of a learned codebook (the codebook,
        l2-normalised for cosine IBQ); None for FSQ / BSQ (implicit codes)."""
        if self.codebook is None:
            return None
        if self.quantizer == "ibq" and self.ibq_logits == "cosine":
            return F.normalize(self.codebook, dim=-1)
        return self.codebook

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(reconstruction, token indices (b, h/4, w/4), quantizer loss)``."""
        z = self.enc(x)
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        q, idx, loss = self.quantize(flat)
        xq = q.reshape(b, h, w, d).permute(0, 3, 1, 2)
        return self.dec(xq), idx.reshape(b, h, w), loss


def model_fingerprint(model: Tokenizer) -> dict:
    """SHA-256 (hex) of the tokenizer: ``"model"`` over its configuration and every weight
    (name, shape, float32 bytes, in name order), ``"codebook"`` over the codebook (learned codes,
    or the FSQ levels / BSQ dimension that define the implicit one)."""
    import hashlib
    import json

    config = {"quantizer": model.quantizer, "bits": model.bits, "dim": model.dim, "levels": model.levels,
              "ibq_logits": model.ibq_logits if model.quantizer == "ibq" else None}
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to(torch.float32).contiguous().cpu().numpy()
        h.update(f"{name}{tuple(t.shape)}".encode())
        h.update(t.tobytes())
    if model.codebook is not None:
        book = hashlib.sha256(model.codes_table().detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    else:
        book = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    return {"model": h.hexdigest(), "codebook": book.hexdigest()}


def decode_indices(model: Tokenizer, indices: np.ndarray) -> np.ndarray:
    """Token grid ``(h, w)`` -> the decoder's image ``(4h, 4w, 3)`` uint8: each index becomes its
    code (codebook row, FSQ level digits, BSQ sign bits) and the decoder runs on those latents."""
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    if idx.ndim != 2 or (idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= model.codes)):
        raise ValueError(f"token indices must be a 2-D grid in [0, {model.codes})")
    if model.quantizer == "fsq":
        z = fsq_indices_to_codes(idx, model.levels)
    elif model.quantizer == "bsq":
        bits = (idx.unsqueeze(-1) >> torch.arange(model.dim)) & 1
        z = (2.0 * bits.float() - 1.0) / math.sqrt(model.dim)
    else:
        z = model.codes_table().detach()[idx]
    with torch.no_grad():
        rec = model.dec(z.permute(2, 0, 1)[None].float()).clamp(0, 1)
    return (rec[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def restart_dead_codes(codebook: torch.Tensor, counts: torch.Tensor, z: torch.Tensor, generator: torch.Generator | None = None) -> int:
    """Move every code with ``counts == 0`` onto a random encoder output of ``z`` ``(n, d)`` (in place);
    returns how many were restarted. Codes stranded where the encoder no longer goes come back."""
    dead = torch.nonzero(counts == 0).ravel()
    if dead.numel() and z.shape[0]:
        pick = torch.randint(0, z.shape[0], (dead.numel(),), generator=generator)
        with torch.no_grad():
            codebook[dead] = z.detach()[pick]
    return int(dead.numel())


def code_statistics(indices: np.ndarray, codes: int) -> dict:
    """Utilisation (fraction of codes used), perplexity ``exp H(p̄)``, ``H(p̄)`` in bits, dead codes."""
    counts = np.bincount(np.asarray(indices).ravel(), minlength=codes)
    p = counts / max(counts.sum(), 1)
    nz = p[p > 0]
    entropy = float(-(nz * np.log2(nz)).sum())
    return {"utilisation": float((counts > 0).mean()), "perplexity": float(2**entropy), "entropy_bits": entropy, "dead_codes": int((counts == 0).sum())}


def tokens_bits(indices: np.ndarray) -> float:
    """Real size in bits of the tokens range-coded with their histogram (header included)."""
    import io

    from engines.codec.entropy import Histogram, encode_streams

    sym = np.asarray(indices, dtype=np.int64).ravel()
    hist = Histogram.of(sym)
    table = io.BytesIO()
    hist.write(table)
    return 8.0 * (len(encode_streams([sym], [hist])) + len(table.getvalue()))


def _crops(images, patch, batch, rng):
    out = np.empty((batch, 3, patch, patch), dtype=np.float32)
    for i in range(batch):
        img = images[int(rng.integers(len(images)))]
        y, x = int(rng.integers(0, img.shape[0] - patch + 1)), int(rng.integers(0, img.shape[1] - patch + 1))
        out[i] = img[y : y + patch, x : x + patch].transpose(2, 0, 1) / 255.0
    return torch.from_numpy(out)


def reconstruct(model: Tokenizer, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``(reconstruction uint8 (h, w, 3), token grid (h/4, w/4), squared-error sum in [0, 1] units)``
    for an RGB(A) ``image`` cropped to a multiple of 4."""
    img = np.asarray(image)[..., :3]
    h, w = img.shape[0] // 4 * 4, img.shape[1] // 4 * 4
    x = torch.from_numpy(np.ascontiguousarray(img[:h, :w].transpose(2, 0, 1))[None].astype(np.float32) / 255.0)
    with torch.no_grad():
        rec, idx, _ = model(x)
    rec = rec.clamp(0, 1)
    sse = float(((rec - x) ** 2).sum())
    return (rec[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8), idx[0].numpy(), sse


def evaluate(model: Tokenizer, images) -> dict:
    """PSNR (of the float reconstruction), mean SSIM (of the uint8 one), code statistics and real
    bits per token on whole ``images`` (cropped to ×4)."""
    idx_all, mse, npx = [], 0.0, 0
    ssims = []
    for img in images:
        rec, idx, sse = reconstruct(model, img)
        mse += sse
        npx += idx.size * 16 * 3
        idx_all.append(idx.ravel())
        if min(rec.shape[:2]) >= 11:
            ssims.append(ssim(np.asarray(img)[: rec.shape[0], : rec.shape[1], :3], rec))
    idx = np.concatenate(idx_all)
    stats = code_statistics(idx, model.codes)
    stats.update(psnr=float(10 * math.log10(1.0 / max(mse / npx, 1e-12))), ssim=float(np.mean(ssims)) if ssims else float("nan"), tokens=int(idx.size),
                 coded_bits_per_token=tokens_bits(idx) / idx.size, nominal_bits_per_token=model.bits)
    return stats


def _train_step(model, opt, x) -> torch.Tensor:
    """One optimiser step on the crops ``x``; returns the token indices of the batch."""
    rec, idx, qloss = model(x)
    loss = F.mse_loss(rec, x) + qloss
    opt.zero_grad()
    loss.backward()
    opt.step()
    return idx


def train_tokenizer_job(images, quantizer: str = "fsq", bits: int = 10, steps: int = 300, patch: int = 64, batch: int = 8,
                        lr: float = 2e-3, seed: int = 0, eval_images=None, eval_every: int = 100, restart_every: int = 20):
    """Job: train a :class:`Tokenizer`; Log lines with the code statistics every ``eval_every``
    steps (and a Preview whose ``data`` is that stats dict); returns
    ``(model, {"history": [...], "final": evaluate(...)})``. For the learned codebooks
    (VQ, VQ rotation, IBQ) codes unused over the last ``restart_every`` steps are restarted on encoder
    outputs (0 = never), up to 80 % of the run."""
    if steps < 1 or batch < 1 or patch < 8:
        raise ValueError(f"steps and batch must be at least 1 and the crop at least 8 pixels "
                         f"(got {steps}, {batch}, {patch})")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    images = [np.ascontiguousarray(im[..., :3]) for im in images if min(im.shape[:2]) >= patch]
    if not images:
        raise ValueError(f"no image is at least {patch}x{patch} pixels")
    model = Tokenizer(quantizer, bits)
    if model.codebook is not None:  # initialise the codebook from encoder outputs (k-means++-like spread)
        with torch.no_grad():
            z = model.enc(_crops(images, patch, batch, rng)).permute(0, 2, 3, 1).reshape(-1, model.dim)
            model.codebook.copy_(z[torch.randint(0, z.shape[0], (model.codes,))] + 0.01 * torch.randn(model.codes, model.dim))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    usage = torch.zeros(model.codes, dtype=torch.long)
    for step in range(1, steps + 1):
        x = _crops(images, patch, batch, rng)
        # one step cannot be interrupted: a helper thread runs it so a cancel stops the job at once
        idx = yield from wait_in_thread(_train_step, model, opt, x,
                                        event=Progress(step - 1, steps, f"{quantizer}: step {step}/{steps}"))
        if model.codebook is not None and restart_every:
            usage += torch.bincount(idx.ravel(), minlength=model.codes)
            if step % restart_every == 0:
                if step <= 0.8 * steps:
                    with torch.no_grad():
                        z = model.enc(x).permute(0, 2, 3, 1).reshape(-1, model.dim)
                    restart_dead_codes(model.codebook.data, usage, z)
                usage.zero_()
        yield Progress(step, steps, f"{quantizer}: step {step}/{steps}")
        if step % eval_every == 0 or step == steps:
            model.eval()
            stats = evaluate(model, eval_images or images[:1])
            model.train()
            stats["step"] = step
            history.append(stats)
            yield Preview(data=dict(stats), label=f"step {step}")
            yield Log(f"{quantizer} step {step}: PSNR {stats['psnr']:.2f} dB, utilisation {stats['utilisation']:.3f}, "
                      f"perplexity {stats['perplexity']:.1f}, dead {stats['dead_codes']}, {stats['coded_bits_per_token']:.2f} coded bits/token")
    model.eval()
    return model, {"history": history, "final": history[-1]}
