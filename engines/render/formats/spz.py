"""Niantic ``.spz`` Gaussian splats (``nianticlabs/spz``), read (versions 2 and 3) and write (version 3).

The file is one gzip stream holding a 16-byte header — uint32 magic 0x5053474e ("NGSP"), uint32
version, uint32 point count, uint8 SH degree, uint8 fractional bits, uint8 flags (0x1 antialiased,
0x2 extensions), uint8 reserved — then, attribute by attribute: positions (24-bit signed fixed
point, N·9 bytes), alphas (N), colours (N·3), log-scales (N·3), rotations (N·3 in v2, N·4 in v3),
SH (N·dim·3, coefficient-major with RGB innermost; dim 0/3/8/15 for degree 0–3).

Quantisation: position int24 / 2^fractional_bits; alpha byte = round(sigmoid·255); colour byte =
round(f_dc·0.15·255 + 127.5); scale byte = round((log s + 10)·16); SH byte = round(x·128) + 128
snapped to buckets of 2^(8−bits) (5 bits for band 1, 4 above). Rotation v3: "smallest three" of
the (x, y, z, w) quaternion in a uint32: top 2 bits = index of the largest |component| (made
positive), the other three as sign bit + 9-bit magnitude round(511·|q|·√2), the lowest index in the
highest bits; v2: bytes round(q·127.5 + 127.5) of x, y, z with w ≥ 0 recovered.

Axes: SPZ stores RUB (x right, y up, z back); scenes here use the 3DGS/COLMAP RDF convention, so
positions, rotations and SH are converted on both read and write (y and z negated: a 180° turn
about x), as the spz library's RDF<->RUB option does.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np
import torch

from engines.render.scene import Gaussians, sh_degree_from_k

__all__ = ["MAGIC", "load_spz", "save_spz"]

MAGIC = 0x5053474E
FRACTIONAL_BITS = 12
SQRT1_2 = float(np.sqrt(0.5))
# sign of each SH basis k = 1..15 under (x, y, z) -> (x, -y, -z) (3DGS real SH ordering)
_SH_FLIP = np.array([-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], np.float64)


def _error():
    from engines.render.io import SceneFileError

    return SceneFileError


def _flip_axes(means, quats_wxyz, sh_rest):
    """RDF <-> RUB: negate y and z of positions; q -> (w, x, -y, -z); SH signs per basis."""
    means = means * np.array([1.0, -1.0, -1.0])
    quats = quats_wxyz * np.array([1.0, 1.0, -1.0, -1.0])
    k1 = sh_rest.shape[1]
    return means, quats, sh_rest * _SH_FLIP[:k1, None]


def save_spz(path: str | os.PathLike, scene: Gaussians, antialiased: bool = False) -> None:
    """Write ``scene`` as SPZ version 3 (gzip, 12 fractional position bits)."""
    g = scene.detach()
    n, k = len(g), g.sh.shape[1]
    means, quats, rest = _flip_axes(g.means.numpy().astype(np.float64), g.quats.numpy().astype(np.float64),
                                    g.sh[:, 1:].numpy().astype(np.float64))
    fixed = np.clip(np.round(means * (1 << FRACTIONAL_BITS)), -(1 << 23), (1 << 23) - 1).astype(np.int64)
    pos = (fixed & 0xFFFFFF).astype(np.uint32)
    pos_bytes = np.stack([(pos >> s) & 0xFF for s in (0, 8, 16)], -1).astype(np.uint8).reshape(n, 9)
    alpha = np.round(255.0 / (1.0 + np.exp(-g.opacity_logits.numpy().astype(np.float64))))
    colour = np.round(g.sh[:, 0].numpy().astype(np.float64) * (0.15 * 255) + 127.5)
    scale = np.round((g.log_scales.numpy().astype(np.float64) + 10.0) * 16)
    q = quats / np.maximum(np.linalg.norm(quats, axis=1, keepdims=True), 1e-12)
    xyzw = q[:, [1, 2, 3, 0]]
    largest = np.argmax(np.abs(xyzw), axis=1)
    xyzw = xyzw * np.where(xyzw[np.arange(n), largest] < 0, -1.0, 1.0)[:, None]
    packed = largest.astype(np.uint32)
    for i in range(4):  # lowest index ends in the highest bits
        use = largest != i
        mag = np.clip(np.round(511 * np.abs(xyzw[:, i]) / SQRT1_2), 0, 511).astype(np.uint32)
        bits = ((xyzw[:, i] < 0).astype(np.uint32) << 9) | mag
        packed = np.where(use, (packed << 10) | bits, packed)
    rot = np.stack([(packed >> s) & 0xFF for s in (0, 8, 16, 24)], -1).astype(np.uint8)
    body = [pos_bytes, np.clip(alpha, 0, 255).astype(np.uint8)[:, None], np.clip(colour, 0, 255).astype(np.uint8),
            np.clip(scale, 0, 255).astype(np.uint8), rot]
    if k > 1:
        bands = np.repeat([5] * 3 + [4] * 12, 1)[: k - 1]
        step = (1 << (8 - bands)).astype(np.float64)[None, :, None]
        raw = np.round(rest * 128) + 128
        body.append(np.clip(np.floor((raw + step / 2) / step) * step, 0, 255).astype(np.uint8).reshape(n, -1))
    header = struct.pack("<IIIBBBB", MAGIC, 3, n, sh_degree_from_k(k), FRACTIONAL_BITS, 1 if antialiased else 0, 0)
    payload = header + b"".join(np.ascontiguousarray(part).tobytes() for part in body)
    with open(path, "wb") as handle:
        handle.write(gzip.compress(payload, mtime=0))


def load_spz(path: str | os.PathLike) -> Gaussians:
    """Read an SPZ file (versions 2, 3). Raises ``SceneFileError`` (one clear line) for bad files."""
    from engines.limits import check_decoded_size
    from engines.render.io import _scene_file

    err = _error()
    path = _scene_file(path)
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        raise err(f"{path.name} is not an SPZ file (not gzip-compressed)")
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = stream.decompress(raw, 16)
    except zlib.error as exc:
        raise err(f"{path.name} is a corrupt SPZ file (gzip: {exc})") from exc
    if len(head) < 16:
        raise err(f"{path.name} is truncated (no SPZ header)")
    magic, version, n, degree, frac, flags, _ = struct.unpack("<IIIBBBB", head[:16])
    if magic != MAGIC:
        raise err(f"{path.name} is not an SPZ file (magic {magic:#010x}, expected 0x5053474e)")
    if version not in (2, 3):
        raise err(f"{path.name}: SPZ version {version} is not supported (2 and 3 are)")
    if degree > 3:
        raise err(f"{path.name}: SH degree {degree} is not supported (0-3)")
    if flags & 0x2:
        raise err(f"{path.name} uses SPZ extension records, which are not supported")
    dim = (degree + 1) ** 2 - 1
    rot_bytes = 4 if version == 3 else 3
    per_point = 9 + 1 + 3 + 3 + rot_bytes + 3 * dim
    check_decoded_size(n * (per_point + 8 * (14 + 3 * dim)), f"{path.name} ({n} splats)", err)
    try:
        data = head[16:] + stream.decompress(stream.unconsumed_tail, n * per_point + 1)
    except zlib.error as exc:
        raise err(f"{path.name} is a corrupt SPZ file (gzip: {exc})") from exc
    if len(data) != n * per_point:
        raise err(f"{path.name} is truncated or has trailing data: the header announces {n} splats "
                  f"({n * per_point} bytes), the stream holds {len(data)}")
    buf = np.frombuffer(data, np.uint8)
    offsets = np.cumsum([0, 9 * n, n, 3 * n, 3 * n, rot_bytes * n, 3 * dim * n])
    part = lambda i, width: buf[offsets[i]:offsets[i + 1]].reshape(n, width)
    p = part(0, 9).reshape(n, 3, 3).astype(np.int64)
    fixed = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    means = fixed / float(1 << frac)
    alpha = np.clip(part(1, 1)[:, 0] / 255.0, 0.5 / 255, 1 - 0.5 / 255)
    dc = (part(2, 3) / 255.0 - 0.5) / 0.15
    log_scales = part(3, 3) / 16.0 - 10.0
    r = part(4, rot_bytes).astype(np.uint32)
    xyzw = np.zeros((n, 4))
    if version == 3:
        comp = r[:, 0] | (r[:, 1] << 8) | (r[:, 2] << 16) | (r[:, 3] << 24)
        largest = (comp >> 30).astype(np.int64)
        for i in range(3, -1, -1):
            use = largest != i
            value = SQRT1_2 * (comp & 0x1FF) / 511.0
            value = np.where((comp >> 9) & 1, -value, value)
            xyzw[:, i] = np.where(use, value, 0.0)
            comp = np.where(use, comp >> 10, comp)
        xyzw[np.arange(n), largest] = np.sqrt(np.maximum(0.0, 1.0 - (xyzw ** 2).sum(1)))
    else:
        xyzw[:, :3] = r / 127.5 - 1.0
        xyzw[:, 3] = np.sqrt(np.maximum(0.0, 1.0 - (xyzw[:, :3] ** 2).sum(1)))
    rest = (part(5, 3 * dim).reshape(n, dim, 3) - 128.0) / 128.0
    means, quats, rest = _flip_axes(means, xyzw[:, [3, 0, 1, 2]], rest)
    sh = np.concatenate([dc[:, None, :], rest], 1)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    return Gaussians(t(means), t(quats), t(log_scales), t(np.log(alpha / (1 - alpha))), t(sh))
