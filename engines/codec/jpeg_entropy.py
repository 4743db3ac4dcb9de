"""Huffman entropy decoding of JPEG scans (T.81 Annex F and G; progressive scans as libjpeg's
``jdphuff.c``): baseline/extended sequential blocks, DC first and refinement scans, AC first
scans with end-of-band runs, and AC refinement scans with correction bits.

The kernel works on the un-stuffed scan bytes (:func:`engines.codec.jpeg_parse.unstuff_scan`)
with 16-bit Huffman lookup tables, writes quantised coefficients in zig-zag order into one
``(blocks, 64)`` int32 array shared by all components and adds every block's bits (the bits
read while decoding that block; an EOB run's bits belong to the block where it was decoded).
Compiled with numba (``cache=True``); the same code runs as plain Python without numba.
"""

from __future__ import annotations

import numpy as np

from engines.codec._kernels import njit_cached as _jit

__all__ = ["STATUS", "decode_scan"]

#: kernel status codes -> message
STATUS = {
    0: "",
    1: "corrupt JPEG: invalid Huffman code",
    2: "truncated JPEG: a scan ends before all its blocks are decoded",
    3: "corrupt JPEG: restart markers missing or out of place",
    4: "corrupt JPEG: run of coefficients past the end of a block",
}


@_jit
def _peek(buf, pos, n):
    b = pos >> 3
    if b + 3 >= buf.shape[0]:
        return 0
    w = (np.int64(buf[b]) << 24) | (np.int64(buf[b + 1]) << 16) | (np.int64(buf[b + 2]) << 8) | np.int64(buf[b + 3])
    return (w >> (32 - (pos & 7) - n)) & ((1 << n) - 1)


@_jit
def _extend(v, t):
    if v < (1 << (t - 1)):
        return v - (1 << t) + 1
    return v


@_jit
def _run_size(buf, pos, lut):
    """Next AC symbol: ``(pos, run R, size S)``; ``R = -1`` for an invalid code."""
    e = lut[_peek(buf, pos, 16)]
    if e == 0:
        return pos, -1, 0
    return pos + (e >> 8), (e & 255) >> 4, e & 15


@_jit
def _eob_run(buf, pos, r):
    """End-of-band run ``2^r + r more bits``: ``(pos, run)``."""
    run = 1 << r
    if r:
        run += _peek(buf, pos, r)
        pos += r
    return pos, run


@_jit
def _refine_bit(buf, pos, coef, blk, k, p1, m1):
    """Correction bit of an already non-zero coefficient; returns the new bit position."""
    if _peek(buf, pos, 1):
        c = coef[blk, k]
        if (c & p1) == 0:
            coef[blk, k] = c + p1 if c >= 0 else c + m1
    return pos + 1


@_jit
def _block(buf, pos, coef, blk, lutdc, lutac, pred, c, ss, se, ah, al, eobrun, progressive):
    """Decode one block's part of a scan; returns ``(pos, eobrun, status)``."""
    k = ss
    if ss == 0:
        if ah == 0:
            e = lutdc[_peek(buf, pos, 16)]
            if e == 0:
                return pos, eobrun, 1
            pos += e >> 8
            t = e & 255
            if t > 16:
                return pos, eobrun, 1
            if t:
                pred[c] += _extend(_peek(buf, pos, t), t)
                pos += t
            coef[blk, 0] = pred[c] * (1 << al)
        else:
            if _peek(buf, pos, 1):
                coef[blk, 0] |= 1 << al
            pos += 1
        if se == 0:
            return pos, eobrun, 0
        k = 1
    if ah == 0:  # sequential block or AC first scan
        if eobrun > 0:
            return pos, eobrun - 1, 0
        while k <= se:
            pos, r, s = _run_size(buf, pos, lutac)
            if r < 0:
                return pos, eobrun, 1
            if s:
                k += r
                if k > 63:
                    return pos, eobrun, 4
                coef[blk, k] = _extend(_peek(buf, pos, s), s) * (1 << al)
                pos += s
                k += 1
            elif r == 15:
                k += 16
            else:
                if progressive:
                    pos, eobrun = _eob_run(buf, pos, r)
                    eobrun -= 1
                break
        return pos, eobrun, 0
    # AC refinement scan
    p1 = 1 << al
    m1 = -p1
    if eobrun == 0:
        while k <= se:
            pos, r, s = _run_size(buf, pos, lutac)
            if r < 0:
                return pos, eobrun, 1
            value = 0
            if s:
                value = p1 if _peek(buf, pos, 1) else m1
                pos += 1
            elif r != 15:
                pos, eobrun = _eob_run(buf, pos, r)
                break
            while k <= se:
                if coef[blk, k] != 0:
                    pos = _refine_bit(buf, pos, coef, blk, k, p1, m1)
                else:
                    r -= 1
                    if r < 0:
                        break
                k += 1
            if value:
                if k > se:
                    return pos, eobrun, 4
                coef[blk, k] = value
            k += 1
    if eobrun > 0:
        while k <= se:
            if coef[blk, k] != 0:
                pos = _refine_bit(buf, pos, coef, blk, k, p1, m1)
            k += 1
        eobrun -= 1
    return pos, eobrun, 0


@_jit
def _decode_scan(buf, seg, coef, bits, luts, off, width, ch, cv, nby, nbx, dct, act, ss, se, ah, al, ri, mcuy, mcux, progressive):
    ns = off.shape[0]
    pred = np.zeros(ns, dtype=np.int64)
    out = np.zeros(3, dtype=np.int64)  # status, padding bits, MCUs decoded
    eobrun = 0
    si = 0
    pos = seg[0] * 8
    end = seg[1] * 8
    nmcu = mcuy * mcux if ns > 1 else nby[0] * nbx[0]
    for m in range(nmcu):
        if ri > 0 and m > 0 and m % ri == 0:
            si += 1
            if si + 1 >= seg.shape[0]:
                out[0] = 3
                return out
            if end > pos:
                out[1] += end - pos
            pos = seg[si] * 8
            end = seg[si + 1] * 8
            pred[:] = 0
            eobrun = 0
        if ns > 1:
            my = m // mcux
            mx = m - my * mcux
            for c in range(ns):
                for yy in range(cv[c]):
                    for xx in range(ch[c]):
                        blk = off[c] + (my * cv[c] + yy) * width[c] + mx * ch[c] + xx
                        start = pos
                        pos, eobrun, st = _block(buf, pos, coef, blk, luts[dct[c]], luts[4 + act[c]], pred, c, ss, se, ah, al, eobrun, progressive)
                        if st:
                            out[0] = st
                            return out
                        bits[blk] += pos - start
        else:
            r = m // nbx[0]
            blk = off[0] + r * width[0] + (m - r * nbx[0])
            start = pos
            pos, eobrun, st = _block(buf, pos, coef, blk, luts[dct[0]], luts[4 + act[0]], pred, 0, ss, se, ah, al, eobrun, progressive)
            if st:
                out[0] = st
                return out
            bits[blk] += pos - start
        if pos > end:
            out[0] = 2
            return out
        out[2] = m + 1
    if si + 2 != seg.shape[0]:
        out[0] = 3
        return out
    if end > pos:
        out[1] += end - pos
    return out


def decode_scan(buf, seg, coef, bits, luts, comps: dict, band: tuple, ri: int, mcus: tuple, progressive: bool) -> tuple[int, int]:
    """Decode one scan into ``coef``/``bits``; ``comps`` holds per-scan-component int64 arrays
    ``off``, ``width``, ``h``, ``v``, ``nby``, ``nbx``, ``dc``, ``ac``; ``band`` is
    ``(ss, se, ah, al)``. Returns ``(status, padding bits)`` (status 0 = fine, see :data:`STATUS`)."""
    ss, se, ah, al = (int(x) for x in band)
    out = _decode_scan(
        buf, seg, coef, bits, luts,
        comps["off"], comps["width"], comps["h"], comps["v"], comps["nby"], comps["nbx"], comps["dc"], comps["ac"],
        ss, se, ah, al, int(ri), int(mcus[0]), int(mcus[1]), bool(progressive),
    )  # fmt: skip
    return int(out[0]), int(out[1])
