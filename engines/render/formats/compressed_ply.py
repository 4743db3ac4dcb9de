"""PlayCanvas / SuperSplat compressed ``.ply`` (``.compressed.ply``), read and write.

Layout (``playcanvas/splat-transform`` ``decompress-ply.ts`` / ``write-compressed-ply.ts``):
``element chunk ceil(N/256)`` with float bounds ``min_x min_y min_z max_x max_y max_z
min_scale_x .. max_scale_z`` (12 columns) and optionally ``min_r min_g min_b max_r max_g max_b``
(18 columns); ``element vertex N`` with four uint32 ``packed_position packed_rotation
packed_scale packed_color``; optional ``element sh N`` with uchar ``f_rest_0..`` (9/24/45, the 3DGS
channel-major order). Splat i belongs to chunk i // 256.

Packings (unorm(v, b) = v / (2^b − 1), writer rounds floor(v·(2^b − 1) + 0.5)):
position and log-scale 11-10-11 bits (x at bits 21–31, y 11–20, z 0–10) inside the chunk box;
colour 8-8-8-8 (r 24–31 .. opacity 0–7): rgb = 0.5 + C0·f_dc inside the chunk colour box (or
raw in [0, 1] with 12 columns), opacity = sigmoid(logit); rotation 2-10-10-10 "smallest three":
bits 30–31 the index of the largest |component| (quaternion negated so that it is positive), the
other three in index order from bit 20 down, each unorm10(q·√2/2 + 0.5); SH bytes
clamp(trunc((f/8 + 0.5)·256), 0, 255), read back as (byte + 0.5)/256 (0 and 255 exactly 0 and 1).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from engines.render.scene import SH_C0, Gaussians, sh_degree_from_k

__all__ = ["CHUNK", "is_compressed_ply", "load_compressed_ply", "save_compressed_ply"]

CHUNK = 256
_BOUNDS = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z", "min_scale_x", "min_scale_y", "min_scale_z",
           "max_scale_x", "max_scale_y", "max_scale_z"]
_COLOUR_BOUNDS = ["min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]
_PACKED = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]
SQRT2 = float(np.sqrt(2.0))


def _error():
    from engines.render.io import SceneFileError

    return SceneFileError


def is_compressed_ply(path: str | os.PathLike) -> bool:
    """True when the file is a PLY whose header declares a ``chunk`` element."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return head.startswith(b"ply") and b"element chunk " in head.split(b"end_header")[0]


# -- bit packing ----------------------------------------------------------------------------
def _quantize(v, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    return np.clip(np.floor(np.asarray(v, np.float64) * top + 0.5), 0, top).astype(np.uint32)


def _unorm(q, bits: int) -> np.ndarray:
    return np.asarray(q, np.float64) / ((1 << bits) - 1)


def _pack_111011(v) -> np.ndarray:
    """(M,3) values in [0,1] -> uint32 with x in bits 21–31, y in 11–20, z in 0–10."""
    return (_quantize(v[:, 0], 11) << 21) | (_quantize(v[:, 1], 10) << 11) | _quantize(v[:, 2], 11)


def _unpack_111011(p) -> np.ndarray:
    p = np.asarray(p, np.uint32)
    return np.stack([_unorm(p >> 21, 11), _unorm((p >> 11) & 0x3FF, 10), _unorm(p & 0x7FF, 11)], 1)


def _pack_rotation(quats) -> np.ndarray:
    q = np.asarray(quats, np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    largest = np.argmax(np.abs(q), axis=1)
    q = q * np.where(q[np.arange(len(q)), largest] < 0, -1.0, 1.0)[:, None]
    packed = largest.astype(np.uint32) << 30
    for slot in range(3):  # the three other components, in index order, from bit 20 down
        idx = np.where(np.arange(4)[None, :] != largest[:, None])[1].reshape(-1, 3)[:, slot]
        packed |= _quantize(q[np.arange(len(q)), idx] * (SQRT2 / 2) + 0.5, 10) << (20 - 10 * slot)
    return packed


def _unpack_rotation(p) -> np.ndarray:
    p = np.asarray(p, np.uint32)
    largest = (p >> 30).astype(np.int64)
    n = len(p)
    q = np.zeros((n, 4))
    others = np.where(np.arange(4)[None, :] != largest[:, None])[1].reshape(-1, 3)
    for slot in range(3):
        q[np.arange(n), others[:, slot]] = (_unorm((p >> (20 - 10 * slot)) & 0x3FF, 10) - 0.5) * SQRT2
    q[np.arange(n), largest] = np.sqrt(np.maximum(0.0, 1.0 - (q * q).sum(1)))
    return q


def _sh_to_bytes(f) -> np.ndarray:
    return np.clip(np.trunc((np.asarray(f, np.float64) / 8 + 0.5) * 256), 0, 255).astype(np.uint8)


def _bytes_to_sh(b) -> np.ndarray:
    b = np.asarray(b, np.float64)
    n = np.where(b == 0, 0.0, np.where(b == 255, 1.0, (b + 0.5) / 256))
    return (n - 0.5) * 8


def _morton_order(means: np.ndarray) -> np.ndarray:
    """Indices sorting points along a 3D Morton (Z-order) curve of 10-bit cells."""
    lo, hi = means.min(0), means.max(0)
    cell = np.clip(((means - lo) / np.maximum(hi - lo, 1e-12) * 1023).astype(np.uint64), 0, 1023)

    def spread(v):
        v = v & 0x3FF
        v = (v | (v << 16)) & 0x030000FF
        v = (v | (v << 8)) & 0x0300F00F
        v = (v | (v << 4)) & 0x030C30C3
        return (v | (v << 2)) & 0x09249249

    code = spread(cell[:, 0]) | (spread(cell[:, 1]) << 1) | (spread(cell[:, 2]) << 2)
    return np.argsort(code, kind="stable")


# -- write ----------------------------------------------------------------------------------
def save_compressed_ply(path: str | os.PathLike, scene: Gaussians) -> None:
    """Write ``scene`` as a compressed PLY (18-column chunks; ``sh`` element when degree > 0)."""
    from plyfile import PlyData, PlyElement

    g = scene.detach()
    n = len(g)
    order = _morton_order(g.means.numpy().astype(np.float64)) if n else np.zeros(0, np.int64)
    means = g.means.numpy().astype(np.float64)[order]
    log_scales = np.clip(g.log_scales.numpy().astype(np.float64)[order], -20, 20)
    rgb = (0.5 + SH_C0 * g.sh[:, 0].numpy().astype(np.float64))[order]
    alpha = 1.0 / (1.0 + np.exp(-g.opacity_logits.numpy().astype(np.float64)[order]))
    nchunks = (n + CHUNK - 1) // CHUNK
    chunk = np.zeros(nchunks, dtype=[(name, "<f4") for name in _BOUNDS + _COLOUR_BOUNDS])
    packed = np.zeros(n, dtype=[(name, "<u4") for name in _PACKED])

    def normalise(values, lo, hi):
        return (values - lo) / np.where(hi - lo > 0, hi - lo, 1.0)

    for c in range(nchunks):
        s = slice(c * CHUNK, min(n, (c + 1) * CHUNK))
        bounds = []
        for values in (means[s], log_scales[s], rgb[s]):
            lo, hi = values.min(0).astype(np.float32), values.max(0).astype(np.float32)
            bounds.append((lo.astype(np.float64), hi.astype(np.float64)))
        (plo, phi), (slo, shi), (clo, chi) = bounds
        for axis, letter in enumerate("xyz"):
            chunk[f"min_{letter}"][c], chunk[f"max_{letter}"][c] = plo[axis], phi[axis]
            chunk[f"min_scale_{letter}"][c], chunk[f"max_scale_{letter}"][c] = slo[axis], shi[axis]
        for axis, letter in enumerate("rgb"):
            chunk[f"min_{letter}"][c], chunk[f"max_{letter}"][c] = clo[axis], chi[axis]
        packed["packed_position"][s] = _pack_111011(normalise(means[s], plo, phi))
        packed["packed_scale"][s] = _pack_111011(normalise(log_scales[s], slo, shi))
        col = normalise(rgb[s], clo, chi)
        packed["packed_color"][s] = ((_quantize(col[:, 0], 8) << 24) | (_quantize(col[:, 1], 8) << 16)
                                     | (_quantize(col[:, 2], 8) << 8) | _quantize(alpha[s], 8))
    packed["packed_rotation"] = _pack_rotation(g.quats.numpy()[order]) if n else packed["packed_rotation"]
    elements = [PlyElement.describe(chunk, "chunk"), PlyElement.describe(packed, "vertex")]
    k = g.sh.shape[1]
    if k > 1:
        rest = g.sh[:, 1:].transpose(1, 2).reshape(n, 3 * (k - 1)).numpy()[order]  # channel-major, as .ply
        sh = np.zeros(n, dtype=[(f"f_rest_{i}", "u1") for i in range(3 * (k - 1))])
        for i in range(3 * (k - 1)):
            sh[f"f_rest_{i}"] = _sh_to_bytes(rest[:, i])
        elements.append(PlyElement.describe(sh, "sh"))
    PlyData(elements, text=False, byte_order="<").write(os.fspath(path))


# -- read -----------------------------------------------------------------------------------
def load_compressed_ply(path: str | os.PathLike) -> Gaussians:
    """Read a compressed PLY. Raises ``SceneFileError`` (one clear line) for corrupt or foreign files."""
    from plyfile import PlyData

    from engines.render.io import _first_line, _scene_file, read_ply_header

    err = _error()
    path = _scene_file(path)
    header = read_ply_header(path)
    elements = {e.name: e for e in header.elements}
    if "chunk" not in elements or "vertex" not in elements:
        raise err(f"{path.name} is not a compressed PLY (needs 'chunk' and 'vertex' elements)")
    chunk_names = [p.name for p in elements["chunk"].properties]
    vertex_names = [p.name for p in elements["vertex"].properties]
    if chunk_names[:12] != _BOUNDS or len(chunk_names) not in (12, 18) \
            or (len(chunk_names) == 18 and chunk_names[12:] != _COLOUR_BOUNDS):
        raise err(f"{path.name}: the chunk element has an unknown layout ({len(chunk_names)} columns)")
    if [n for n in _PACKED if n not in vertex_names]:
        raise err(f"{path.name}: the vertex element lacks {', '.join(n for n in _PACKED if n not in vertex_names)}")
    n = int(elements["vertex"].count)
    if int(elements["chunk"].count) != (n + CHUNK - 1) // CHUNK:
        raise err(f"{path.name}: {elements['chunk'].count} chunks cannot hold {n} splats (256 per chunk)")
    try:
        ply = PlyData.read(os.fspath(path))
    except Exception as exc:
        raise err(f"{path.name} is a corrupt or truncated PLY file: {_first_line(exc)}") from exc
    chunk, vertex = ply["chunk"].data, ply["vertex"].data
    of = np.arange(n) // CHUNK
    col = lambda data, name: np.asarray(data[name], np.float64)[of]
    lo = np.stack([col(chunk, f"min_{a}") for a in "xyz"], 1)
    hi = np.stack([col(chunk, f"max_{a}") for a in "xyz"], 1)
    means = lo + _unpack_111011(vertex["packed_position"]) * (hi - lo)
    slo = np.stack([col(chunk, f"min_scale_{a}") for a in "xyz"], 1)
    shi = np.stack([col(chunk, f"max_scale_{a}") for a in "xyz"], 1)
    log_scales = slo + _unpack_111011(vertex["packed_scale"]) * (shi - slo)
    colour = np.asarray(vertex["packed_color"], np.uint32)
    rgb = np.stack([_unorm((colour >> s) & 0xFF, 8) for s in (24, 16, 8)], 1)
    if len(chunk_names) == 18:
        clo = np.stack([col(chunk, f"min_{a}") for a in "rgb"], 1)
        chi = np.stack([col(chunk, f"max_{a}") for a in "rgb"], 1)
        rgb = clo + rgb * (chi - clo)
    alpha = np.clip(_unorm(colour & 0xFF, 8), 0.5 / 255, 1 - 0.5 / 255)
    quats = _unpack_rotation(vertex["packed_rotation"])
    sh = ((rgb - 0.5) / SH_C0)[:, None, :]
    if "sh" in elements:
        names = [p.name for p in elements["sh"].properties]
        if int(elements["sh"].count) != n or len(names) % 3 or names != [f"f_rest_{i}" for i in range(len(names))]:
            raise err(f"{path.name}: the sh element does not match the vertex element")
        k = len(names) // 3 + 1
        try:
            sh_degree_from_k(k)
        except ValueError as exc:
            raise err(f"{path.name}: {len(names)} SH bytes per splat is not an SH degree 1-3 layout") from exc
        data = ply["sh"].data
        rest = np.stack([_bytes_to_sh(data[f"f_rest_{i}"]) for i in range(len(names))], 1)
        sh = np.concatenate([sh, rest.reshape(n, 3, k - 1).transpose(0, 2, 1)], 1)
    for label, array in (("positions", means), ("scales", log_scales), ("colours", sh)):
        if not np.all(np.isfinite(array)):
            raise err(f"{path.name} contains NaN or infinite {label} bounds")
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
    return Gaussians(t(means), t(quats), t(log_scales), t(np.log(alpha / (1 - alpha))), t(sh))


def compressed_suffix(path: str | os.PathLike) -> bool:
    """True for names ending in ``.compressed.ply``."""
    return Path(path).name.lower().endswith(".compressed.ply")
