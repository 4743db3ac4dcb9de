"""The ``.ssbc`` container of the block codec: header layout, length and checksum.

Version 2 (written since the bounds work)::

    "SSBC" | u8 version = 2 | u32 header_len | u32 payload_len | u32 crc32(header + payload)
    header  = u32 H | u32 W | u8 N | u8 alphabet | u8 subsampling (1 = 4:2:0)
              | u8 len + transform name | varint len + zlib(u16 quantization matrices, luma then chroma)
              | varint len + zlib(histogram table, one per context)
    payload = range-coder words (u32 little-endian)

Version 1 (older files) has no lengths or checksum: ``"SSBC" | u8 1 | header | payload``; it
still decodes. Every field is validated before anything is allocated from it: image size
against the shared decoded-size limit (:mod:`engines.limits`), block size and transform,
matrix and table sizes (decompressed with a bound), histogram spans. Any problem raises
:class:`BitstreamError` with a one-line message.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from engines.codec.entropy import Histogram, read_varint, write_varint
from engines.limits import check_decoded_size

__all__ = ["MAGIC", "VERSION", "BitstreamError", "Container", "read_container", "write_container"]

MAGIC = b"SSBC"
VERSION = 2
_FIXED = "<IIBBB"
_LENGTHS = "<III"
#: widest histogram a decoder builds a model for (values lo..hi); real streams stay far below
MAX_HISTOGRAM_SPAN = 1 << 22
_MAX_TABLE_BYTES = 64 << 20


class BitstreamError(ValueError):
    """A block-codec bitstream is truncated, corrupt, too large or of an unknown version."""


@dataclass
class Container:
    """The parsed header and the payload bytes of one bitstream."""

    version: int
    H: int
    W: int
    n: int
    alphabet: int
    subsampling: str
    transform: str
    Ql: np.ndarray
    Qc: np.ndarray
    hists: list
    payload: bytes


def write_container(H: int, W: int, n: int, alphabet: int, subsampling: str, transform: str,
                    Ql: np.ndarray, Qc: np.ndarray, hists: list, payload: bytes) -> tuple[bytes, int]:
    """A version-2 bitstream; returns ``(bytes, header_bytes)`` (everything before the payload)."""
    buf = io.BytesIO()
    name = transform.encode()
    buf.write(struct.pack(_FIXED, H, W, n, int(alphabet), 1 if subsampling == "4:2:0" else 0))
    buf.write(struct.pack("<B", len(name)) + name)
    mats = zlib.compress(np.concatenate([Ql.ravel(), Qc.ravel()]).astype("<u2").tobytes(), 9)
    write_varint(buf, len(mats))
    buf.write(mats)
    table = io.BytesIO()
    for h in hists:
        h.write(table)
    packed = zlib.compress(table.getvalue(), 9)
    write_varint(buf, len(packed))
    buf.write(packed)
    header = buf.getvalue()
    crc = zlib.crc32(payload, zlib.crc32(header))
    prefix = MAGIC + struct.pack("<B", VERSION) + struct.pack(_LENGTHS, len(header), len(payload), crc)
    return prefix + header + payload, len(prefix) + len(header)


def read_container(bitstream: bytes, contexts_for, name: str = "the bitstream") -> Container:
    """Parse and validate a version-1 or version-2 bitstream.

    ``contexts_for(n)``: number of histogram contexts for block size ``n``. Raises
    :class:`BitstreamError` naming ``name`` for any defect.
    """
    data = bytes(bitstream)
    if len(data) < 5:
        raise BitstreamError(f"{name} is empty or truncated (only {len(data)} bytes)")
    if data[:4] != MAGIC:
        raise BitstreamError(f"{name} is not a Spectra block-codec bitstream (bad magic)")
    version = data[4]
    if version == 1:
        buf = io.BytesIO(data[5:])
        return _read_header(buf, version, contexts_for, name, payload=None)
    if version != VERSION:
        raise BitstreamError(f"{name} has an unsupported bitstream version {version} (this studio reads 1 and 2)")
    lengths_end = 5 + struct.calcsize(_LENGTHS)
    if len(data) < lengths_end:
        raise BitstreamError(f"{name} is truncated (inside the header)")
    header_len, payload_len, crc = struct.unpack(_LENGTHS, data[5:lengths_end])
    actual = len(data) - lengths_end
    if actual != header_len + payload_len:
        what = "truncated" if actual < header_len + payload_len else "longer than its header says"
        raise BitstreamError(f"{name} is {what}: {actual} bytes after the lengths, the header announces "
                             f"{header_len} + {payload_len}")
    body = data[lengths_end:]
    if zlib.crc32(body) != crc:
        raise BitstreamError(f"{name} is corrupt: its CRC-32 checksum does not match (damaged bytes)")
    buf = io.BytesIO(body[:header_len])
    container = _read_header(buf, version, contexts_for, name, payload=body[header_len:])
    if buf.read(1):
        raise BitstreamError(f"{name} is corrupt: the header is longer than its fields")
    return container


def _read_header(buf: io.BytesIO, version: int, contexts_for, name: str, payload: bytes | None) -> Container:
    from engines.codec.transforms import get_transform

    fixed = buf.read(struct.calcsize(_FIXED))
    if len(fixed) != struct.calcsize(_FIXED):
        raise BitstreamError(f"{name} is truncated (inside the header)")
    H, W, n, alphabet, sub = struct.unpack(_FIXED, fixed)
    if H < 1 or W < 1:
        raise BitstreamError(f"{name} is corrupt: image size {W}×{H}")
    if sub > 1:
        raise BitstreamError(f"{name} is corrupt: unknown chroma subsampling code {sub}")
    length = buf.read(1)
    transform = buf.read(length[0]) if length else b""
    if not length or len(transform) != length[0]:
        raise BitstreamError(f"{name} is truncated (inside the header)")
    try:
        transform_name = transform.decode("ascii")
        get_transform(transform_name, n, alphabet)
    except (ValueError, KeyError) as exc:
        raise BitstreamError(f"{name} is corrupt: {exc}") from None
    padded = (-(-H // n) * n) * (-(-W // n) * n)
    # working set of the decoder: three planes of int64 levels, their inverse transform and RGB
    check_decoded_size(padded * 3 * 8 * 3, f"{name} ({W}×{H} image)", BitstreamError)
    mats = np.frombuffer(_inflate(buf, 4 * n * n, name, "quantization matrices"), dtype="<u2").astype(np.int64)
    if mats.size != 2 * n * n or mats.min() < 1:
        raise BitstreamError(f"{name} is corrupt (quantization matrices)")
    table = io.BytesIO(_inflate(buf, _MAX_TABLE_BYTES, name, "model table"))
    hists = []
    for _ in range(contexts_for(n)):
        try:
            hist = Histogram.read(table, MAX_HISTOGRAM_SPAN)
        except (ValueError, OverflowError) as exc:
            raise BitstreamError(f"{name} is corrupt (model table: {exc})") from None
        if hist.values.size and int(hist.values[-1]) - hist.lo >= MAX_HISTOGRAM_SPAN:
            raise BitstreamError(f"{name} is corrupt (a model spans {int(hist.values[-1]) - hist.lo + 1} values)")
        hists.append(hist)
    if payload is None:
        payload = buf.read()
    if len(payload) % 4:
        raise BitstreamError(f"{name} is corrupt (payload is not a whole number of 32-bit words)")
    return Container(version, H, W, n, alphabet, "4:2:0" if sub else "4:4:4", transform_name,
                     mats[: n * n].reshape(n, n), mats[n * n :].reshape(n, n), hists, payload)


def _inflate(buf: io.BytesIO, limit: int, name: str, what: str) -> bytes:
    """Read a varint length + zlib block, decompressing at most ``limit`` bytes."""
    try:
        size = read_varint(buf)
    except ValueError:
        raise BitstreamError(f"{name} is truncated (inside the header)") from None
    packed = buf.read(size)
    if len(packed) != size:
        raise BitstreamError(f"{name} is truncated (inside the {what})")
    try:
        dec = zlib.decompressobj()
        out = dec.decompress(packed, limit)
    except zlib.error as exc:
        raise BitstreamError(f"{name} is corrupt ({what}: {exc})") from None
    if dec.unconsumed_tail:
        raise BitstreamError(f"{name} is corrupt ({what} larger than {limit} bytes)")
    return out
