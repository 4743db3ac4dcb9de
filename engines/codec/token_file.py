"""Token files (``.sstk``): a tokenizer's indices range-coded with their histogram.

Layout (little-endian): magic ``SSTK``, version byte, header ``<HHIB`` (token rows, columns, codebook
size, bits per token), quantizer name (length byte + ASCII), payload length ``<I``, CRC-32 of the
payload ``<I``, payload = histogram table + range-coded indices. The reader checks the header sizes,
the length and the CRC before decoding, so a truncated or altered file is refused.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

from engines.codec.entropy import Histogram, decode_streams, encode_streams

__all__ = ["MAX_TOKENS", "read_tokens", "write_tokens"]

MAGIC, VERSION = b"SSTK", 1
MAX_TOKENS = 1 << 24
_HEAD = "<HHIB"


def write_tokens(indices: np.ndarray, codes: int, bits: int, quantizer: str) -> bytes:
    """Bytes of a token file for the ``(rows, cols)`` int ``indices`` in ``[0, codes)``."""
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.size == 0 or idx.size > MAX_TOKENS or max(idx.shape) > 0xFFFF:
        raise ValueError(f"tokens must be a non-empty 2-D grid of at most {MAX_TOKENS} tokens, got shape {idx.shape}")
    if idx.min() < 0 or idx.max() >= codes:
        raise ValueError(f"token indices must lie in [0, {codes})")
    sym = idx.astype(np.int64).ravel()
    hist = Histogram.of(sym)
    body = io.BytesIO()
    hist.write(body)
    body.write(encode_streams([sym], [hist]))
    payload = body.getvalue()
    name = quantizer.encode("ascii")[:255]
    return (MAGIC + bytes([VERSION]) + struct.pack(_HEAD, idx.shape[0], idx.shape[1], int(codes), int(bits)) + bytes([len(name)]) + name
            + struct.pack("<II", len(payload), zlib.crc32(payload)) + payload)


def read_tokens(data: bytes) -> dict:
    """Inverse of :func:`write_tokens`: ``{"indices", "codes", "bits", "quantizer"}``; ValueError
    on anything that is not an intact token file."""
    buf = io.BytesIO(data)
    if buf.read(4) != MAGIC:
        raise ValueError("not a token file (.sstk)")
    version = buf.read(1)
    if version != bytes([VERSION]):
        raise ValueError(f"unsupported token file version {version[0] if version else 'missing'}")
    head = buf.read(struct.calcsize(_HEAD) + 1)
    if len(head) != struct.calcsize(_HEAD) + 1:
        raise ValueError("token file truncated in its header")
    rows, cols, codes, bits = struct.unpack(_HEAD, head[:-1])
    if rows * cols == 0 or rows * cols > MAX_TOKENS or codes == 0:
        raise ValueError(f"token file header is implausible ({rows}x{cols} tokens, {codes} codes)")
    name = buf.read(head[-1])
    tail = buf.read(8)
    if len(name) != head[-1] or len(tail) != 8:
        raise ValueError("token file truncated in its header")
    length, crc = struct.unpack("<II", tail)
    payload = buf.read(length)
    if len(payload) != length:
        raise ValueError(f"token file truncated: {len(payload)} of {length} payload bytes")
    if zlib.crc32(payload) != crc:
        raise ValueError("token file is damaged (CRC-32 mismatch)")
    body = io.BytesIO(payload)
    hist = Histogram.read(body, max_entries=codes)
    (sym,) = decode_streams(body.read(), [rows * cols], [hist])
    if sym.min() < 0 or sym.max() >= codes:
        raise ValueError("token file holds indices outside its codebook")
    return {"indices": sym.reshape(rows, cols), "codes": codes, "bits": bits, "quantizer": name.decode("ascii", "replace")}
