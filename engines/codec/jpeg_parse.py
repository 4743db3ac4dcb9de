"""JPEG file structure (ITU-T T.81): marker segments, quantisation and Huffman tables, the frame
header, scan headers, restart interval, EOI, and the un-stuffed entropy-coded data of each scan.

:func:`parse_jpeg` checks every size from the headers before anything is allocated and raises
:class:`JpegError` (a ``ValueError``) with one clear message for anything corrupt or unsupported.
The entropy decoding itself lives in :mod:`engines.codec.jpeg_entropy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Component", "HuffmanTable", "JpegError", "JpegStructure", "Scan", "parse_jpeg", "unstuff_scan"]

_SOF_NAMES = {
    0xC0: "SOF0 baseline",
    0xC1: "SOF1 extended sequential",
    0xC2: "SOF2 progressive",
    0xC3: "SOF3 lossless",
    0xC5: "SOF5 differential sequential",
    0xC6: "SOF6 differential progressive",
    0xC7: "SOF7 differential lossless",
    0xC9: "SOF9 arithmetic sequential",
    0xCA: "SOF10 arithmetic progressive",
    0xCB: "SOF11 arithmetic lossless",
    0xCD: "SOF13",
    0xCE: "SOF14",
    0xCF: "SOF15",
}
_NAMES = {0xC4: "DHT", 0xCC: "DAC", 0xDB: "DQT", 0xDA: "SOS", 0xDD: "DRI", 0xDC: "DNL", 0xFE: "COM", 0xD8: "SOI", 0xD9: "EOI"}


class JpegError(ValueError):
    """A JPEG file that is corrupt, truncated, too large or uses an unsupported coding process."""


@dataclass
class Component:
    """One frame component: id, sampling factors ``h``/``v``, quantisation table id ``tq``."""

    cid: int
    h: int
    v: int
    tq: int


@dataclass
class HuffmanTable:
    """A DHT table: class ``DC``/``AC``, id, the 16 code-length counts and the symbols."""

    cls: str
    tid: int
    counts: list[int]
    symbols: list[int]

    def lookup(self) -> np.ndarray:
        """65536-entry table indexed by the next 16 bits: ``(length << 8) | symbol``, 0 = no code."""
        lut = np.zeros(1 << 16, dtype=np.int32)
        code, k = 0, 0
        for length in range(1, 17):
            for _ in range(self.counts[length - 1]):
                span = 1 << (16 - length)
                lut[code * span : (code + 1) * span] = (length << 8) | self.symbols[k]
                code += 1
                k += 1
            code <<= 1
        return lut


@dataclass
class Scan:
    """A scan: component indices into the frame, their DC/AC table ids, spectral band ``ss..se``,
    successive approximation ``ah``/``al``, the Huffman tables in force, the restart interval in
    force, and the byte range of its entropy-coded data in the file."""

    comps: list[int]
    dc_tables: list[int]
    ac_tables: list[int]
    ss: int
    se: int
    ah: int
    al: int
    huffman: dict
    restart_interval: int
    data_start: int
    data_end: int = 0


@dataclass
class JpegStructure:
    """Everything in a JPEG file but the decoded coefficients."""

    size_bytes: int
    process: str = ""
    progressive: bool = False
    precision: int = 8
    width: int = 0
    height: int = 0
    components: list[Component] = field(default_factory=list)
    qtables: dict = field(default_factory=dict)  # id -> (8, 8) natural order, as of the frame
    qtable_precision: dict = field(default_factory=dict)  # id -> 8 or 16 bits
    huffman: list[HuffmanTable] = field(default_factory=list)  # every DHT table in file order
    scans: list[Scan] = field(default_factory=list)
    restart_interval: int = 0  # the first DRI value (0 = none)
    restart_intervals: list[int] = field(default_factory=list)
    segments: list[dict] = field(default_factory=list)  # marker, offset, length
    has_eoi: bool = False
    adobe_transform: int | None = None
    jfif: bool = False

    @property
    def hmax(self) -> int:
        """Largest horizontal sampling factor."""
        return max(c.h for c in self.components)

    @property
    def vmax(self) -> int:
        """Largest vertical sampling factor."""
        return max(c.v for c in self.components)

    @property
    def mcus(self) -> tuple[int, int]:
        """``(rows, cols)`` of MCUs of an interleaved scan."""
        return -(-self.height // (8 * self.vmax)), -(-self.width // (8 * self.hmax))

    def padded_blocks(self, c: int) -> tuple[int, int]:
        """``(rows, cols)`` of component ``c``'s blocks in the padded (interleaved) grid."""
        my, mx = self.mcus
        comp = self.components[c]
        return my * comp.v, mx * comp.h

    def own_blocks(self, c: int) -> tuple[int, int]:
        """``(rows, cols)`` of component ``c``'s blocks as a non-interleaved scan walks them."""
        comp = self.components[c]
        ch = -(-self.height * comp.v // self.vmax)
        cw = -(-self.width * comp.h // self.hmax)
        return -(-ch // 8), -(-cw // 8)

    def plane_size(self, c: int) -> tuple[int, int]:
        """``(height, width)`` in pixels of component ``c`` at its own resolution."""
        comp = self.components[c]
        return -(-self.height * comp.v // self.vmax), -(-self.width * comp.h // self.hmax)


def _natural_from_zigzag(values: list[int]) -> np.ndarray:
    from engines.codec.quant import zigzag_order

    out = np.zeros(64, dtype=np.int64)
    out[zigzag_order(8)] = values
    return out.reshape(8, 8)


def _u16(data: bytes, i: int) -> int:
    return (data[i] << 8) | data[i + 1]


def _parse_dqt(body: bytes, out: JpegStructure) -> None:
    j = 0
    while j < len(body):
        pq, tq = body[j] >> 4, body[j] & 15
        n = 128 if pq else 64
        if pq > 1 or tq > 3 or j + 1 + n > len(body):
            raise JpegError("corrupt JPEG: bad quantisation table (DQT)")
        raw = body[j + 1 : j + 1 + n]
        vals = [(raw[2 * k] << 8) | raw[2 * k + 1] for k in range(64)] if pq else list(raw)
        if min(vals) < 1:
            raise JpegError("corrupt JPEG: a quantisation step is 0")
        out.qtables[tq] = _natural_from_zigzag(vals)
        out.qtable_precision[tq] = 16 if pq else 8
        j += 1 + n


def _parse_dht(body: bytes, out: JpegStructure, current: dict) -> None:
    j = 0
    while j < len(body):
        if j + 17 > len(body):
            raise JpegError("corrupt JPEG: truncated Huffman table (DHT)")
        tc, th = body[j] >> 4, body[j] & 15
        counts = list(body[j + 1 : j + 17])
        total = sum(counts)
        if tc > 1 or th > 3 or total > 256 or j + 17 + total > len(body):
            raise JpegError("corrupt JPEG: bad Huffman table (DHT)")
        code = 0
        for length, count in enumerate(counts, start=1):
            code += count
            if code > (1 << length):
                raise JpegError("corrupt JPEG: Huffman code lengths overflow (DHT)")
            code <<= 1
        table = HuffmanTable("AC" if tc else "DC", th, counts, list(body[j + 17 : j + 17 + total]))
        out.huffman.append(table)
        current[(tc, th)] = table
        j += 17 + total


def _parse_sof(marker: int, body: bytes, out: JpegStructure) -> None:
    if out.components:
        raise JpegError("corrupt JPEG: more than one frame header (SOF)")
    name = _SOF_NAMES[marker]
    if marker not in (0xC0, 0xC1, 0xC2):
        raise JpegError(f"unsupported JPEG coding process: {name} (only Huffman baseline, extended and progressive)")
    if len(body) < 6:
        raise JpegError("corrupt JPEG: truncated frame header (SOF)")
    out.process, out.progressive = name, marker == 0xC2
    out.precision, out.height, out.width, nf = body[0], _u16(body, 1), _u16(body, 3), body[5]
    if out.precision not in (8, 12):
        raise JpegError(f"unsupported JPEG sample precision {out.precision} bits")
    if out.height == 0:
        raise JpegError("unsupported JPEG: height defined later by a DNL marker")
    if out.width == 0 or nf not in (1, 3, 4) or len(body) < 6 + 3 * nf:
        raise JpegError("corrupt JPEG: bad frame header (SOF)")
    for k in range(nf):
        cid, hv, tq = body[6 + 3 * k], body[7 + 3 * k], body[8 + 3 * k]
        h, v = hv >> 4, hv & 15
        if not (1 <= h <= 4 and 1 <= v <= 4) or tq > 3:
            raise JpegError("corrupt JPEG: bad sampling factors or table id in the frame header")
        out.components.append(Component(cid, h, v, tq))
    if len({c.cid for c in out.components}) != nf:
        raise JpegError("corrupt JPEG: duplicate component ids")
    if any(out.hmax % c.h or out.vmax % c.v for c in out.components):
        raise JpegError("unsupported JPEG: sampling factors that do not divide the largest one")
    from engines.limits import check_decoded_size

    blocks = sum(r * c for r, c in (out.padded_blocks(k) for k in range(nf)))
    # int32 coefficients + int64 bits per block, plus the RGB image shown next to them
    check_decoded_size(blocks * (64 * 4 + 8) + 3 * out.width * out.height, f"JPEG {out.width}×{out.height}", JpegError)
    for c in out.components:
        if c.tq not in out.qtables:
            raise JpegError(f"corrupt JPEG: quantisation table {c.tq} is used before it is defined")
    out.qtables = {k: v.copy() for k, v in out.qtables.items()}


def _parse_sos(body: bytes, out: JpegStructure, current: dict, data_start: int) -> Scan:
    if not out.components:
        raise JpegError("corrupt JPEG: scan (SOS) before the frame header (SOF)")
    ns = body[0] if body else 0
    if not 1 <= ns <= 4 or len(body) < 1 + 2 * ns + 3:
        raise JpegError("corrupt JPEG: bad scan header (SOS)")
    ids = [c.cid for c in out.components]
    comps, dcs, acs = [], [], []
    for k in range(ns):
        cs, t = body[1 + 2 * k], body[2 + 2 * k]
        if t >> 4 > 3 or t & 15 > 3:
            raise JpegError("corrupt JPEG: Huffman table id above 3 in a scan header")
        if cs not in ids:
            raise JpegError(f"corrupt JPEG: scan refers to unknown component {cs}")
        comps.append(ids.index(cs))
        dcs.append(t >> 4)
        acs.append(t & 15)
    ss, se, a = body[1 + 2 * ns], body[2 + 2 * ns], body[3 + 2 * ns]
    ah, al = a >> 4, a & 15
    if out.progressive:
        bad = se > 63 or ss > se or (ss == 0 and se != 0) or (ss > 0 and ns != 1) or al > 13 or ah > 13
    else:
        bad = ss != 0 or se != 63 or ah != 0 or al != 0
    if bad or len(set(comps)) != ns:
        raise JpegError("corrupt JPEG: bad spectral selection or successive approximation in a scan header")
    if ns > 1 and sum(out.components[c].h * out.components[c].v for c in comps) > 10:
        raise JpegError("corrupt JPEG: more than 10 blocks per MCU")
    needs = []
    for c, d, t in zip(comps, dcs, acs):
        if ss == 0 and ah == 0:
            needs.append((0, d))
        if se > 0:
            needs.append((1, t))
    for key in needs:
        if key not in current:
            raise JpegError(f"corrupt JPEG: Huffman table {'AC' if key[0] else 'DC'}{key[1]} is used before it is defined")
    return Scan(comps, dcs, acs, ss, se, ah, al, dict(current), out.restart_interval, data_start)


def _scan_end(data: bytes, start: int) -> int:
    """Offset of the marker that ends the entropy-coded data starting at ``start``."""
    arr = np.frombuffer(data, dtype=np.uint8, offset=start)
    if arr.size < 2:
        raise JpegError("truncated JPEG: the file ends inside a scan")
    ff = np.flatnonzero(arr[:-1] == 0xFF)
    nxt = arr[ff + 1]
    ends = ff[(nxt != 0x00) & (nxt != 0xFF) & ~((nxt >= 0xD0) & (nxt <= 0xD7))]
    if ends.size == 0:
        raise JpegError("truncated JPEG: the file ends inside a scan (no EOI)")
    return start + int(ends[0])


def unstuff_scan(data: bytes, start: int, end: int) -> tuple[np.ndarray, np.ndarray, list[int], int]:
    """Entropy-coded bytes of a scan with ``FF 00`` stuffing and fill bytes removed, split at
    restart markers: returns ``(bytes + 4 zero bytes of padding, segment starts (with the end
    appended), RST marker numbers in order, number of stuffed/fill bytes removed)``."""
    arr = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    keep = np.ones(arr.size, dtype=bool)
    ff = np.flatnonzero(arr[:-1] == 0xFF) if arr.size > 1 else np.zeros(0, dtype=np.int64)
    nxt = arr[ff + 1] if ff.size else np.zeros(0, dtype=np.uint8)
    stuffed = ff[nxt == 0x00]
    keep[stuffed + 1] = False
    fill = ff[nxt == 0xFF]
    keep[fill] = False
    rst = ff[(nxt >= 0xD0) & (nxt <= 0xD7)]
    keep[rst] = False
    keep[rst + 1] = False
    if arr.size and arr[-1] == 0xFF:
        keep[-1] = False
    # segment starts in the un-stuffed array: the number of kept bytes before each RST marker
    kept_before = np.concatenate([[0], np.cumsum(keep)])
    starts = [0] + [int(kept_before[r + 2]) for r in rst] + [int(kept_before[-1])]
    out = np.concatenate([arr[keep], np.zeros(4, dtype=np.uint8)])
    removed = int(stuffed.size + fill.size)
    return out, np.asarray(starts, dtype=np.int64), [int(arr[r + 1]) - 0xD0 for r in rst], removed


def parse_jpeg(data: bytes) -> JpegStructure:
    """Parse every marker segment of a JPEG file (see :class:`JpegStructure`)."""
    data = bytes(data)
    n = len(data)
    if n < 4 or data[:2] != b"\xff\xd8":
        raise JpegError("not a JPEG file (no SOI marker)")
    out = JpegStructure(size_bytes=n)
    out.segments.append({"marker": "SOI", "offset": 0, "length": 0})
    current: dict = {}
    i = 2
    while True:
        if i >= n:
            break
        if data[i] != 0xFF:
            raise JpegError(f"corrupt JPEG: expected a marker at byte {i}")
        while i < n and data[i] == 0xFF:  # fill bytes
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker == 0xD9:
            out.segments.append({"marker": "EOI", "offset": i - 2, "length": 0})
            out.has_eoi = True
            break
        if 0xD0 <= marker <= 0xD7 or marker in (0x00, 0x01, 0xD8):
            raise JpegError(f"corrupt JPEG: unexpected marker FF{marker:02X} at byte {i - 2}")
        if i + 2 > n:
            raise JpegError("truncated JPEG: the file ends inside a marker segment")
        length = _u16(data, i)
        if length < 2 or i + length > n:
            raise JpegError(f"truncated JPEG: segment FF{marker:02X} at byte {i - 2} runs past the end of the file")
        body = data[i + 2 : i + length]
        name = _SOF_NAMES.get(marker) or _NAMES.get(marker) or (f"APP{marker - 0xE0}" if 0xE0 <= marker <= 0xEF else f"FF{marker:02X}")
        out.segments.append({"marker": name, "offset": i - 2, "length": length})
        i += length
        if marker == 0xDB:
            _parse_dqt(body, out)
        elif marker == 0xC4:
            _parse_dht(body, out, current)
        elif marker in _SOF_NAMES:
            _parse_sof(marker, body, out)
        elif marker == 0xDD:
            if len(body) < 2:
                raise JpegError("corrupt JPEG: bad restart interval (DRI)")
            out.restart_interval = _u16(body, 0)
            out.restart_intervals.append(out.restart_interval)
        elif marker == 0xCC:
            raise JpegError("unsupported JPEG: arithmetic coding (DAC)")
        elif marker == 0xE0 and body[:5] == b"JFIF\x00":
            out.jfif = True
        elif marker == 0xEE and body[:5] == b"Adobe" and len(body) >= 12:
            out.adobe_transform = body[11]
        elif marker == 0xDA:
            scan = _parse_sos(body, out, current, i)
            scan.data_end = _scan_end(data, i)
            out.scans.append(scan)
            i = scan.data_end
    if not out.components:
        raise JpegError("corrupt JPEG: no frame header (SOF)")
    if not out.scans:
        raise JpegError("corrupt JPEG: no scan (SOS)")
    return out
