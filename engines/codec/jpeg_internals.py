"""The insides of a real JPEG file: every block's quantised coefficients and its bit cost,
decoded by our own Huffman decoder (:mod:`engines.codec.jpeg_parse`, :mod:`engines.codec.jpeg_entropy`),
plus a view of them with the same interface as the block codec's
:class:`~engines.codec.blockcodec.EncodeResult` so the panel's block grid, bits heat map and
block inspector work on a JPEG exactly as on our own codec.

``read_jpeg_internals(path_or_bytes)`` is the entry point (``jpeg_internals_job`` is the job
form). ``component_planes`` turns the coefficients back into pixels (dequantise, 8×8 inverse
DCT, +128) at each component's own resolution — used to verify against libjpeg.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engines.codec.jpeg_parse import JpegError, JpegStructure, parse_jpeg, unstuff_scan
from engines.jobs import Progress

__all__ = ["JpegInternals", "component_planes", "jpeg_internals_job", "read_jpeg_internals", "sampling_name"]


def sampling_name(st: JpegStructure) -> str:
    """``4:4:4`` / ``4:2:2`` / ``4:2:0`` / ``4:4:0`` / ``4:1:1`` / ``grayscale`` / ``HxV,…``."""
    comps = st.components
    if len(comps) == 1:
        return "grayscale"
    luma = (comps[0].h, comps[0].v)
    chroma = {(c.h, c.v) for c in comps[1:]}
    if len(chroma) == 1:
        ch, cv = chroma.pop()
        ratio = (luma[0] // ch if luma[0] % ch == 0 else 0, luma[1] // cv if luma[1] % cv == 0 else 0)
        names = {(1, 1): "4:4:4", (2, 1): "4:2:2", (2, 2): "4:2:0", (1, 2): "4:4:0", (4, 1): "4:1:1"}
        if ratio in names:
            return names[ratio]
    return ",".join(f"{c.h}x{c.v}" for c in comps)


@dataclass
class JpegPlane:
    """One component, laid out like the block codec's ``PlaneData``: ``q`` ``(nby, nbx, 8, 8)``
    quantised levels (natural order), ``coeffs`` the dequantised coefficients, ``Q`` the table,
    ``bits`` ``(nby, nbx)`` bits read for each block over all scans, ``shape`` the plane size."""

    coeffs: np.ndarray
    q: np.ndarray
    Q: np.ndarray
    bits: np.ndarray
    shape: tuple[int, int]


@dataclass
class JpegInternals:
    """Decoded coefficients and bit costs of a JPEG file (see module docstring)."""

    structure: JpegStructure
    planes: list
    data: bytes
    block_bits: float  # sum over every coded block (padding blocks of interleaved MCUs included)
    padding_bits: int  # 1-bits filling the last byte before RST / the end of each scan
    stuffed_bytes: int  # FF 00 stuffing and FF fill bytes inside entropy-coded data
    entropy_bytes: int  # entropy-coded bytes as stored (stuffing included, RST markers not)
    restart_markers: int
    reconstruction: np.ndarray | None = None  # (H, W, 3) uint8 from libjpeg (Pillow), for display
    params: object = None
    stats: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of the image."""
        return self.structure.height, self.structure.width

    @property
    def bitstream(self) -> bytes:
        """The file's bytes."""
        return self.data

    @property
    def bpp(self) -> float:
        """Bits per pixel of the whole file."""
        return 8.0 * len(self.data) / (self.shape[0] * self.shape[1])

    @property
    def sampling(self) -> str:
        """Chroma subsampling name."""
        return sampling_name(self.structure)

    def plane_scale(self, plane: int) -> tuple[int, int]:
        """Image pixels per plane pixel ``(sy, sx)`` of ``plane``."""
        st = self.structure
        c = st.components[plane]
        return st.vmax // c.v, st.hmax // c.h

    def bits_map(self) -> np.ndarray:
        """``(nby, nbx)`` bits per luma block with the other components' bits of the same area added."""
        total = self.planes[0].bits.astype(np.float64).copy()
        sy0, sx0 = self.plane_scale(0)
        for p, plane in enumerate(self.planes[1:], start=1):
            sy, sx = self.plane_scale(p)
            if sy % sy0 or sx % sx0:
                continue  # a chroma block smaller than a luma block: not drawn in the luma grid
            ry, rx = sy // sy0, sx // sx0
            up = np.repeat(np.repeat(plane.bits, ry, axis=0), rx, axis=1) / (ry * rx)
            h, w = min(up.shape[0], total.shape[0]), min(up.shape[1], total.shape[1])
            total[:h, :w] += up[:h, :w]
        return total

    def block_stats(self) -> list[dict]:
        """YUView-style per-block rows (plane, x, y, w, h in that plane's pixels, bits, nonzero)."""
        rows = []
        for p, plane in enumerate(self.planes):
            nz = np.count_nonzero(plane.q, axis=(2, 3))
            for by in range(plane.q.shape[0]):
                for bx in range(plane.q.shape[1]):
                    rows.append({"plane": _plane_name(self, p), "x": bx * 8, "y": by * 8, "w": 8, "h": 8, "bits": int(plane.bits[by, bx]), "nonzero": int(nz[by, bx])})
        return rows

    def summary(self) -> dict:
        """Header facts and the bit accounting: ``8·file bytes = block bits + padding + 8·stuffing + 8·(markers and headers)``."""
        st = self.structure
        header_bytes = len(self.data) - self.entropy_bytes
        return {
            "process": st.process,
            "width": st.width,
            "height": st.height,
            "precision": st.precision,
            "components": [{"id": c.cid, "h": c.h, "v": c.v, "table": c.tq} for c in st.components],
            "sampling": self.sampling,
            "scans": len(st.scans),
            "restart_interval": st.restart_interval,
            "restart_markers": self.restart_markers,
            "eoi": st.has_eoi,
            "bytes": len(self.data),
            "block_bits": int(self.block_bits),
            "padding_bits": int(self.padding_bits),
            "stuffed_bytes": int(self.stuffed_bytes),
            "header_and_marker_bytes": int(header_bytes),
        }


def _plane_name(res: JpegInternals, p: int) -> str:
    n = len(res.planes)
    if n == 1:
        return "Y"
    if n == 3 and res.structure.adobe_transform != 0:
        return ("Y", "Cb", "Cr")[p]
    return f"C{p}"


def _luts(scan) -> np.ndarray:
    luts = np.zeros((8, 1 << 16), dtype=np.int32)
    for (tc, th), table in scan.huffman.items():
        luts[4 * tc + th] = table.lookup()
    return luts


def jpeg_internals_job(source, with_pixels: bool = True):
    """Job: decode every scan of a JPEG (path or bytes); yields Progress per scan, returns
    :class:`JpegInternals`. ``with_pixels`` also decodes the image with Pillow for display.
    Raises :class:`~engines.codec.jpeg_parse.JpegError` (a ValueError) on a corrupt file."""
    from engines.codec.blockcodec import BlockCodecParams
    from engines.codec.jpeg_entropy import STATUS, decode_scan
    from engines.codec.quant import zigzag_order

    data = bytes(source) if isinstance(source, (bytes, bytearray, memoryview)) else _read(source)
    st = parse_jpeg(data)
    nc = len(st.components)
    grids = [st.padded_blocks(c) for c in range(nc)]
    offsets = np.concatenate([[0], np.cumsum([g[0] * g[1] for g in grids])]).astype(np.int64)
    coef = np.zeros((int(offsets[-1]), 64), dtype=np.int32)
    bits = np.zeros(int(offsets[-1]), dtype=np.int64)
    padding = stuffed = entropy = markers = 0
    seen_dc = np.zeros(nc, dtype=bool)
    for i, scan in enumerate(st.scans):
        yield Progress(i, len(st.scans) + 1, f"scan {i + 1}/{len(st.scans)}: components {scan.comps}, band {scan.ss}–{scan.se}, Ah {scan.ah} Al {scan.al}")
        buf, seg, rst, removed = unstuff_scan(data, scan.data_start, scan.data_end)
        if any(r != k % 8 for k, r in enumerate(rst)):
            raise JpegError("corrupt JPEG: restart markers out of sequence")
        cs = scan.comps
        own = [st.own_blocks(c) for c in cs]
        comps = {
            "off": offsets[cs],
            "width": np.array([grids[c][1] for c in cs], dtype=np.int64),
            "h": np.array([st.components[c].h for c in cs], dtype=np.int64),
            "v": np.array([st.components[c].v for c in cs], dtype=np.int64),
            "nby": np.array([o[0] for o in own], dtype=np.int64),
            "nbx": np.array([o[1] for o in own], dtype=np.int64),
            "dc": np.array(scan.dc_tables, dtype=np.int64),
            "ac": np.array(scan.ac_tables, dtype=np.int64),
        }
        if scan.ss > 0 and not seen_dc[cs].all():
            raise JpegError("corrupt JPEG: AC scan before the component's DC scan")
        status, pad = decode_scan(buf, seg, coef, bits, _luts(scan), comps, (scan.ss, scan.se, scan.ah, scan.al), scan.restart_interval, st.mcus, st.progressive)
        if status:
            raise JpegError(STATUS[status] + f" (scan {i + 1})")
        seen_dc[cs] |= scan.ss == 0
        padding += pad
        stuffed += removed
        entropy += scan.data_end - scan.data_start - 2 * len(rst)
        markers += len(rst)
    if not seen_dc.all():
        raise JpegError("corrupt JPEG: a component has no DC scan")
    yield Progress(len(st.scans), len(st.scans) + 1, "pixels")
    zz = zigzag_order(8)
    planes = []
    for c in range(nc):
        nby, nbx = st.own_blocks(c)
        block = coef[offsets[c] : offsets[c + 1]].reshape(grids[c][0], grids[c][1], 64)[:nby, :nbx]
        q = np.zeros((nby, nbx, 64), dtype=np.int32)
        q[..., zz] = block
        q = q.reshape(nby, nbx, 8, 8)
        Q = st.qtables[st.components[c].tq]
        b = bits[offsets[c] : offsets[c + 1]].reshape(grids[c])[:nby, :nbx]
        planes.append(JpegPlane(coeffs=q * Q.astype(np.float64), q=q, Q=Q, bits=b.astype(np.float64), shape=st.plane_size(c)))
    result = JpegInternals(
        structure=st, planes=planes, data=data, block_bits=float(bits.sum()), padding_bits=padding,
        stuffed_bytes=stuffed, entropy_bytes=entropy, restart_markers=markers,
    )  # fmt: skip
    sampling = result.sampling
    result.params = BlockCodecParams(transform="dct", N=8, subsampling=sampling if sampling in ("4:4:4", "4:2:0") else "4:4:4")
    result.params.source = f"JPEG file ({st.process}, {sampling})"
    if with_pixels:
        result.reconstruction = _pillow_rgb(data)
    yield Progress(len(st.scans) + 1, len(st.scans) + 1, "done")
    return result


def _read(path) -> bytes:
    import os

    size = os.path.getsize(path)
    if size > 512 * 1024 * 1024:
        raise JpegError(f"JPEG file too large to inspect ({size:,} bytes)")
    with open(path, "rb") as handle:
        return handle.read()


def _pillow_rgb(data: bytes) -> np.ndarray:
    from engines.imagefile import open_image

    image = open_image(data, name="the JPEG", error=JpegError)  # bounded by the decoded-size limit
    try:
        return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise JpegError(f"libjpeg cannot decode this file: {exc}") from exc


def read_jpeg_internals(source, with_pixels: bool = True) -> JpegInternals:
    """Decode a JPEG's coefficients and bit costs (see :func:`jpeg_internals_job`)."""
    from engines.jobs import run_job

    return run_job(jpeg_internals_job(source, with_pixels))


def component_planes(res: JpegInternals) -> list[np.ndarray]:
    """Every component as uint8 pixels at its own resolution: dequantise, orthonormal 8×8
    inverse DCT (= the JPEG IDCT), +128, round, clip, crop."""
    from scipy.fft import idctn

    shift = 1 << (res.structure.precision - 1)
    top = (1 << res.structure.precision) - 1
    out = []
    for plane in res.planes:
        px = idctn(plane.coeffs, type=2, norm="ortho", axes=(2, 3)) + shift
        nby, nbx = px.shape[:2]
        full = px.transpose(0, 2, 1, 3).reshape(nby * 8, nbx * 8)[: plane.shape[0], : plane.shape[1]]
        out.append(np.clip(np.rint(full), 0, top).astype(np.uint8 if top == 255 else np.uint16))
    return out
