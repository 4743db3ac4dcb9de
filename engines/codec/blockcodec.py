"""A complete block-transform image codec with a real bitstream.

Pipeline: RGB -> YCbCr (JFIF) -> optional 4:2:0 chroma -> level shift -128 -> N x N blocks
-> any registered transform -> quantization by a matrix -> zig-zag -> range coding
(``constriction``) with two-pass static models per context:

* per block an end-of-block symbol (1 + zig-zag index of the last non-zero AC, 0 if none),
* the DC coefficient as a difference to the previous block of the same plane (raster order),
* the AC coefficients up to the end of block, one context per frequency band
  (``band = 1 + floor(2 log2 i)`` for zig-zag index ``i >= 1``),

each separately for luma and chroma. The histograms, the quantization matrices (zlib) and the
geometry go into the header, so a decoder needs nothing but the bytes. ``bpp = 8 * len(bytes)
/ (H W)``; the per-block bit map is the ideal code length ``-log2 p`` of every symbol of the
block under the coded models (the range coder is within a fraction of a percent of it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from engines.codec.bitstream import MAGIC, VERSION, BitstreamError, read_container, write_container
from engines.codec._kernels import (
    band_counts,
    block_symbols,
    color_kernels_exact,
    place_symbols,
    rgb_to_ycbcr_fast,
    upsample2_fast,
    ycbcr_to_rgb_u8,
)
from engines.codec._pixel_kernels import blocks_forward_quant, blocks_inverse, compose_rgb, split_planes, transform_kernels_exact
from engines.codec.color import _FWD, _INV, downsample2, rgb_to_ycbcr, to_uint8
from engines.codec.entropy import (
    Histogram,
    encode_streams,
    zeroth_order_entropy_bits,
)
from engines.codec.quant import quant_matrix, resize_matrix, zigzag_order
from engines.codec.transforms import Transform, get_transform

__all__ = ["MAGIC", "VERSION", "BitstreamError", "BlockCodecParams", "DecodeResult", "EncodeResult", "blockify",
           "decode", "encode", "unblockify"]


@dataclass
class BlockCodecParams:
    """Settings of the block codec.

    ``transform``/``N``/``alphabet`` pick the transform; ``quality`` (1..100, IJG) and
    ``preset`` (``jpeg``/``flat``) build the quantization matrices unless ``luma_matrix`` /
    ``chroma_matrix`` (``(N, N)`` or ``(8, 8)`` positive ints) are given; ``subsampling`` is
    ``"4:4:4"`` or ``"4:2:0"``.
    """

    transform: str = "dct"
    N: int = 8
    alphabet: int = 1
    quality: float = 75.0
    preset: str = "jpeg"
    subsampling: str = "4:2:0"
    luma_matrix: np.ndarray | None = None
    chroma_matrix: np.ndarray | None = None

    def matrices(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``(N, N)`` luma and chroma quantization matrices (int64, 1..65535)."""
        out = []
        for chroma, given in ((False, self.luma_matrix), (True, self.chroma_matrix)):
            if given is None:
                m = quant_matrix(self.N, self.quality, self.preset, chroma=chroma)
            else:
                m = np.asarray(given)
                if m.ndim != 2 or m.shape[0] != m.shape[1]:
                    raise ValueError("a quantization matrix must be square")
                if not np.all(np.isfinite(m)):
                    raise ValueError("quantization matrix contains NaN or infinite values")
                m = resize_matrix(np.rint(m).astype(np.int64), self.N)
            if m.min() < 1 or m.max() > 65535:
                raise ValueError("quantization steps must be between 1 and 65535")
            out.append(m.astype(np.int64))
        return out[0], out[1]

    def to_dict(self) -> dict:
        """JSON-able form."""
        d = {k: getattr(self, k) for k in ("transform", "N", "alphabet", "quality", "preset", "subsampling")}
        if self.luma_matrix is not None:
            d["luma_matrix"] = np.asarray(self.luma_matrix).tolist()
        if self.chroma_matrix is not None:
            d["chroma_matrix"] = np.asarray(self.chroma_matrix).tolist()
        return d


@dataclass
class PlaneData:
    """One coded plane: ``coeffs`` (float, before quantization) and ``q`` (int) are
    ``(nby, nbx, N, N)``; ``bits`` ``(nby, nbx)`` ideal bits per block; ``shape`` the unpadded size."""

    coeffs: np.ndarray | None
    q: np.ndarray
    Q: np.ndarray
    bits: np.ndarray | None
    shape: tuple[int, int]


@dataclass
class EncodeResult:
    """What :func:`encode` returns. ``reconstruction`` (``(H, W, 3)`` uint8, equal to what
    :func:`decode` produces from ``bitstream``) and ``entropy_bits`` are computed from the
    quantized planes on first use, so ``seconds`` is the time to produce the bitstream."""

    bitstream: bytes
    planes: list
    params: BlockCodecParams
    shape: tuple[int, int]
    header_bytes: int
    payload_bytes: int
    seconds: float
    stats: dict = field(default_factory=dict)
    _transform: Transform | None = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def reconstruction(self) -> np.ndarray:
        """The decoded image ``(H, W, 3)`` uint8 (computed once, from the quantized levels)."""
        if "reconstruction" not in self._cache:
            tr = self._transform or get_transform(self.params.transform, self.params.N, int(self.params.alphabet))
            self._cache["reconstruction"] = _reconstruct([pd.q for pd in self.planes], [pd.Q for pd in self.planes],
                                                         [pd.shape for pd in self.planes], tr, self.shape, self.params.subsampling)
        return self._cache["reconstruction"]

    @property
    def entropy_bits(self) -> float:
        """Zeroth-order entropy of all quantized levels pooled (one histogram), in bits."""
        if "entropy_bits" not in self._cache:
            self._cache["entropy_bits"] = sum(zeroth_order_entropy_bits(pd.q) for pd in self.planes)
        return self._cache["entropy_bits"]

    @property
    def bpp(self) -> float:
        """Bits per pixel of the whole bitstream (header included)."""
        return 8.0 * len(self.bitstream) / (self.shape[0] * self.shape[1])

    @property
    def entropy_bpp(self) -> float:
        """Zeroth-order entropy estimate of the quantized coefficients, bits per pixel."""
        return self.entropy_bits / (self.shape[0] * self.shape[1])

    def block_stats(self) -> list[dict]:
        """YUView-style per-block statistics: one dict per block of every plane with ``plane``,
        ``x``, ``y``, ``w``, ``h`` (pixels, in that plane), ``bits`` and ``nonzero`` levels."""
        rows = []
        n = self.params.N
        for p, (name, plane) in enumerate(zip(("Y", "Cb", "Cr"), self.planes)):
            nz = np.count_nonzero(plane.q, axis=(2, 3))
            for by in range(plane.q.shape[0]):
                for bx in range(plane.q.shape[1]):
                    rows.append(
                        {"plane": name, "x": bx * n, "y": by * n, "w": n, "h": n, "bits": round(float(plane.bits[by, bx]), 3), "nonzero": int(nz[by, bx])}
                    )
        return rows

    def bits_map(self) -> np.ndarray:
        """``(nby, nbx)`` bits per luma block, chroma bits of the same area added."""
        total = self.planes[0].bits.copy()
        for plane in self.planes[1:]:
            b = plane.bits
            if b.shape != total.shape:  # 4:2:0: one chroma block covers 2x2 luma blocks
                up = np.repeat(np.repeat(b, 2, axis=0), 2, axis=1) / 4.0
                h, w = total.shape  # rows / columns past the luma grid go to its last row / column
                total[: min(h, up.shape[0]), : min(w, up.shape[1])] += up[:h, :w]
                if up.shape[0] > h:
                    total[h - 1, : min(w, up.shape[1])] += up[h:, :w].sum(axis=0)
                if up.shape[1] > w:
                    total[: min(h, up.shape[0]), w - 1] += up[:h, w:].sum(axis=1)
                if up.shape[0] > h and up.shape[1] > w:
                    total[h - 1, w - 1] += up[h:, w:].sum()
            else:
                total += b
        return total


@dataclass
class DecodeResult:
    """What :func:`decode` returns."""

    image: np.ndarray
    planes: list
    params: BlockCodecParams


# -- blocks -----------------------------------------------------------------------------
def blockify(plane: np.ndarray, n: int) -> np.ndarray:
    """``(H, W)`` -> ``(ceil(H/n), ceil(W/n), n, n)`` blocks, edge-padded."""
    h, w = plane.shape
    ph, pw = (-h) % n, (-w) % n
    p = np.pad(plane, ((0, ph), (0, pw)), mode="edge")
    H, W = p.shape
    return p.reshape(H // n, n, W // n, n).transpose(0, 2, 1, 3)


def unblockify(blocks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`blockify`, cropped to ``shape``."""
    by, bx, n, _ = blocks.shape
    return blocks.transpose(0, 2, 1, 3).reshape(by * n, bx * n)[: shape[0], : shape[1]]


def _bands(n: int) -> np.ndarray:
    i = np.arange(n * n)
    b = np.zeros(n * n, dtype=np.int64)
    b[1:] = np.floor(2 * np.log2(i[1:])).astype(np.int64) + 1
    return b


def _fast_color(width: int) -> bool:
    """Use the compiled colour kernels? Only where they equal numpy's matmul bit for bit (numpy
    takes another path for one-pixel-wide images)."""
    return width >= 2 and color_kernels_exact()


def _planes_of(image: np.ndarray, subsampling: str) -> list[np.ndarray]:
    ycc = rgb_to_ycbcr_fast(image, _FWD) if _fast_color(image.shape[1]) else rgb_to_ycbcr(image)
    planes = [ycc[..., 0], ycc[..., 1], ycc[..., 2]]
    if subsampling == "4:2:0":
        planes[1] = downsample2(planes[1])
        planes[2] = downsample2(planes[2])
    elif subsampling != "4:4:4":
        raise ValueError(f"subsampling must be 4:4:4 or 4:2:0 (got {subsampling})")
    return planes


def _reconstruct(qplanes: list[np.ndarray], mats: list[np.ndarray], shapes, tr: Transform, size, subsampling) -> np.ndarray:
    if _fast_color(size[1]) and transform_kernels_exact(tr):
        padded = [blocks_inverse(q, Q, tr.inverse_matrix) for q, Q in zip(qplanes, mats)]
        return compose_rgb(padded, size, shapes[1], subsampling, _INV)
    # the same arithmetic as ycbcr_to_rgb(stack(planes)) -> to_uint8, without the temporaries
    ycc = np.empty((size[0], size[1], 3), dtype=np.float64)
    for c, (q, Q, shape) in enumerate(zip(qplanes, mats, shapes)):
        blocks = tr.inverse(q.astype(np.float64) * Q) + 128.0
        plane = unblockify(blocks, shape)
        ycc[..., c] = upsample2_fast(plane, size) if (c and subsampling == "4:2:0") else plane
    if _fast_color(size[1]):
        return ycbcr_to_rgb_u8(ycc, _INV)
    ycc[..., 1:] -= 128.0
    rgb = np.matmul(ycc, _INV.T, out=np.empty_like(ycc))
    return np.clip(np.rint(rgb, out=rgb), 0, 255, out=rgb).astype(np.uint8)


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    image = image[..., :3]
    if image.dtype != np.uint8:
        if not np.all(np.isfinite(image)):
            raise ValueError("image contains NaN or infinite values")
        image = to_uint8(image * 255.0 if image.max() <= 1.0 else image)
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError("image is empty")
    return image


# -- encode ---------------------------------------------------------------------------------
def encode(image: np.ndarray, params: BlockCodecParams | None = None) -> EncodeResult:
    """Encode an ``(H, W, 3)`` uint8 RGB image; returns bitstream, reconstruction and statistics."""
    params = params or BlockCodecParams()
    start = time.perf_counter()
    image = _check_image(image)
    H, W = image.shape[:2]
    n = int(params.N)
    tr = get_transform(params.transform, n, int(params.alphabet))
    Ql, Qc = params.matrices()
    zz = zigzag_order(n)
    bands = _bands(n)
    nbands = int(bands.max()) + 1

    if params.subsampling not in ("4:4:4", "4:2:0"):
        raise ValueError(f"subsampling must be 4:4:4 or 4:2:0 (got {params.subsampling})")
    fast = _fast_color(W) and transform_kernels_exact(tr)
    planes_px = split_planes(image, _FWD, params.subsampling) if fast else _planes_of(image, params.subsampling)
    plane_data = []
    streams: dict[tuple, list[np.ndarray]] = {}
    owners: dict[tuple, list[tuple[int, np.ndarray]]] = {}  # per stream part: (plane, block index of each symbol)
    for p, px in enumerate(planes_px):
        cls = 0 if p == 0 else 1
        Q = Ql if cls == 0 else Qc
        if fast:
            coeffs, q, eob = blocks_forward_quant(px, tr.matrix, Q, zz)
        else:
            coeffs = tr.forward(blockify(px - 128.0, n))
            q, eob = np.rint(coeffs / Q).astype(np.int64), None
        plane_data.append(PlaneData(coeffs=coeffs, q=q, Q=Q, bits=None, shape=px.shape))
        eob, dcd, ac, owner, starts = block_symbols(q.reshape(-1, n * n), bands, nbands, zz, eob)
        ids = np.arange(eob.size)
        for key, sym in ((("eob", cls), eob), (("dc", cls), dcd)):
            streams.setdefault(key, []).append(sym)
            owners.setdefault(key, []).append((p, ids))
        for b in range(1, nbands):
            if starts[b + 1] == starts[b]:
                continue
            key = ("ac", cls, b)
            streams.setdefault(key, []).append(ac[starts[b] : starts[b + 1]])
            owners.setdefault(key, []).append((p, owner[starts[b] : starts[b + 1]]))

    keys = _context_order(nbands)
    sym_list, hists = [], []
    bits = [np.zeros(pd.q.shape[0] * pd.q.shape[1]) for pd in plane_data]
    for key in keys:
        parts = streams.get(key, [])
        sym = parts[0] if len(parts) == 1 else (np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64))
        hist = Histogram.of(sym)
        sym_list.append(sym)
        hists.append(hist)
        if key in owners and sym.size:
            lengths = hist.code_lengths(sym)
            at = 0
            for p, own in owners[key]:
                bits[p] += np.bincount(own, weights=lengths[at : at + own.size], minlength=bits[p].size)
                at += own.size
    for pd, b in zip(plane_data, bits):
        pd.bits = b.reshape(pd.q.shape[:2])

    payload = encode_streams(sym_list, hists)
    bitstream, header_bytes = write_container(H, W, tr.N, int(params.alphabet), params.subsampling, tr.name,
                                              Ql, Qc, hists, payload)
    seconds = time.perf_counter() - start
    return EncodeResult(
        bitstream=bitstream,
        planes=plane_data,
        params=params,
        shape=(H, W),
        header_bytes=header_bytes,
        payload_bytes=len(payload),
        seconds=seconds,
        stats={"ideal_payload_bits": float(sum(b.sum() for b in bits)), "contexts": len(keys)},
        _transform=tr,
    )


def _context_order(nbands: int) -> list[tuple]:
    keys = []
    for cls in (0, 1):
        keys += [("eob", cls), ("dc", cls)] + [("ac", cls, b) for b in range(1, nbands)]
    return keys


# -- decode -----------------------------------------------------------------------------------
def _contexts_for(n: int) -> int:
    return len(_context_order(int(_bands(n).max()) + 1))


def decode(bitstream: bytes, name: str = "the bitstream") -> DecodeResult:
    """Decode a bitstream written by :func:`encode` (version 2, or an older version 1).

    Raises :class:`BitstreamError` (a ValueError) naming ``name`` for truncated, damaged
    (CRC-32), oversized or otherwise corrupt data; nothing is allocated before the header checks.
    """
    c = read_container(bitstream, _contexts_for, name)
    try:
        return _decode_payload(c)
    except BitstreamError:
        raise
    except (ValueError, IndexError, OverflowError, RuntimeError, AssertionError) as exc:
        # only reachable with a version-1 stream or a forged checksum; the range coder and the
        # level layout then disagree with the header
        raise BitstreamError(f"{name} is corrupt (the coded data do not match the header)") from exc


def _decode_payload(c) -> DecodeResult:
    """The image of a parsed, validated container."""
    H, W, n, alphabet, name, payload = c.H, c.W, c.n, c.alphabet, c.transform, c.payload
    tr = get_transform(name, n, alphabet)
    Ql, Qc = c.Ql, c.Qc
    subsampling = c.subsampling
    bands = _bands(n)
    nbands = int(bands.max()) + 1
    keys = _context_order(nbands)
    hists = c.hists

    shapes = [(H, W)] * 3
    if subsampling == "4:2:0":
        c = ((H + 1) // 2, (W + 1) // 2)
        shapes = [(H, W), c, c]
    grids = [(-(-s[0] // n), -(-s[1] // n)) for s in shapes]
    nblocks = {0: grids[0][0] * grids[0][1], 1: grids[1][0] * grids[1][1] + grids[2][0] * grids[2][1]}
    hist_of = dict(zip(keys, hists))

    # first the eob and dc streams (their lengths are known), then AC lengths follow from eob
    lengths = []
    decoded: dict[tuple, np.ndarray] = {}
    zz = zigzag_order(n)
    # the range coder decodes in encoding order, so lengths of every stream are needed up front:
    # decode eob/dc of class 0 first, but the order is interleaved; do it in two passes
    order_lengths = {}
    for cls in (0, 1):
        order_lengths[("eob", cls)] = nblocks[cls]
        order_lengths[("dc", cls)] = nblocks[cls]
    # pass 1: decode streams one by one, computing AC lengths as soon as the class's eob is known
    import constriction

    from engines.codec.entropy import _model  # shared model construction

    dec = constriction.stream.queue.RangeDecoder(np.frombuffer(payload, dtype="<u4").astype(np.uint32))
    eobs, ac_lengths = {}, {}
    for key in keys:
        if key[0] in ("eob", "dc"):
            length = order_lengths[key]
        else:
            cls, b = key[1], key[2]
            if cls not in ac_lengths:
                ac_lengths[cls] = band_counts(eobs[cls], bands, nbands)
            length = int(ac_lengths[cls][b])
        hist = hist_of[key]
        if length == 0:
            sym = np.zeros(0, dtype=np.int64)
        elif hist.values.size == 0:
            raise ValueError("corrupt bitstream (empty model for a non-empty stream)")
        elif hist.values.size == 1:
            sym = np.full(length, hist.lo, dtype=np.int64)
        else:
            sym = np.asarray(dec.decode(_model(hist), length), dtype=np.int64) + hist.lo
        decoded[key] = sym
        if key[0] == "eob":
            eobs[key[1]] = sym
        lengths.append(length)

    qplanes = []
    offsets = {0: 0, 1: 0}
    ac_offsets = {0: np.zeros(nbands, dtype=np.int64), 1: np.zeros(nbands, dtype=np.int64)}
    for p in range(3):
        cls = 0 if p == 0 else 1
        nb = grids[p][0] * grids[p][1]
        sl = slice(offsets[cls], offsets[cls] + nb)
        offsets[cls] += nb
        eob = decoded[("eob", cls)][sl]
        if eob.size and (eob.min() < 0 or eob.max() >= n * n):
            raise ValueError("corrupt bitstream (end of block outside the block)")
        # this plane's AC levels of every band, one array with band offsets
        counts = band_counts(eob, bands, nbands)
        parts = [np.zeros(0, dtype=np.int64)]
        for b in range(1, nbands):
            if counts[b]:
                start = ac_offsets[cls][b]
                parts.append(decoded[("ac", cls, b)][start : start + counts[b]])
        ac_offsets[cls] += counts
        starts = np.concatenate([[0], np.cumsum(counts)])
        q = place_symbols(eob, decoded[("dc", cls)][sl], np.concatenate(parts), starts, zz, bands, n)
        qplanes.append(q.reshape(grids[p][0], grids[p][1], n, n))
    mats = [Ql, Qc, Qc]
    image = _reconstruct(qplanes, mats, shapes, tr, (H, W), subsampling)
    params = BlockCodecParams(transform=name, N=n, alphabet=alphabet, subsampling=subsampling, luma_matrix=Ql, chroma_matrix=Qc)
    planes = [PlaneData(coeffs=None, q=q, Q=Q, bits=None, shape=s) for q, Q, s in zip(qplanes, mats, shapes)]
    return DecodeResult(image=image, planes=planes, params=params)
