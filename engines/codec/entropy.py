"""Entropy coding of integer symbol streams with ``constriction``'s range coder.

A *context* is a named stream of integers coded with one static categorical model (two-pass:
the encoder counts symbols, stores the histogram in the header, and both sides build the same
model from those integer counts, so decoding is exact). Helpers for varints and for the ideal
code length ``-log2 p`` of each symbol (used for per-block bit maps) live here too.
"""

from __future__ import annotations

import io

import numpy as np

__all__ = [
    "Histogram",
    "decode_streams",
    "encode_streams",
    "read_varint",
    "unzigzag_int",
    "write_varint",
    "zeroth_order_entropy_bits",
    "zigzag_int",
]


def zigzag_int(v: int) -> int:
    """Map a signed int to unsigned (0, -1, 1, -2 … -> 0, 1, 2, 3 …)."""
    return (v << 1) if v >= 0 else ((-v) << 1) - 1


def unzigzag_int(u: int) -> int:
    """Inverse of :func:`zigzag_int`."""
    return (u >> 1) if not (u & 1) else -((u + 1) >> 1)


def write_varint(buf: io.BytesIO, value: int) -> None:
    """LEB128 unsigned varint."""
    if value < 0:
        raise ValueError("varint must be non-negative")
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            buf.write(bytes([byte | 0x80]))
        else:
            buf.write(bytes([byte]))
            return


def read_varint(buf: io.BytesIO) -> int:
    """Read one LEB128 varint (raises ValueError on truncated data)."""
    shift = value = 0
    while True:
        b = buf.read(1)
        if not b:
            raise ValueError("truncated bitstream (varint)")
        value |= (b[0] & 0x7F) << shift
        if not b[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("corrupt bitstream (varint too long)")


class Histogram:
    """Counts of the integers in one context: ``values`` (sorted, distinct) and ``counts``."""

    def __init__(self, values: np.ndarray, counts: np.ndarray) -> None:
        self.values = np.asarray(values, dtype=np.int64)
        self.counts = np.asarray(counts, dtype=np.int64)

    @classmethod
    def of(cls, symbols: np.ndarray) -> Histogram:
        """Histogram of an int array."""
        values, counts = _value_counts(np.asarray(symbols, dtype=np.int64).ravel())
        return cls(values, counts)

    @property
    def lo(self) -> int:
        return int(self.values[0]) if self.values.size else 0

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def dense(self) -> np.ndarray:
        """Counts over ``lo..hi`` as float64 (zeros for absent values)."""
        if not self.values.size:
            return np.zeros(0)
        dense = np.zeros(int(self.values[-1]) - self.lo + 1)
        dense[self.values - self.lo] = self.counts
        return dense

    def write(self, buf: io.BytesIO) -> None:
        """Serialise: number of entries, then first value (zigzag) and value gaps, then counts."""
        from engines.codec._kernels import leb128_encode

        n = int(self.values.size)
        seq = np.empty(1 + 2 * n, dtype=np.int64)
        seq[0] = n
        if n:
            seq[1] = zigzag_int(int(self.values[0]))
            seq[3::2] = np.diff(self.values) - 1
            seq[2::2] = self.counts - 1
        buf.write(leb128_encode(seq))

    @classmethod
    def read(cls, buf: io.BytesIO, max_entries: int | None = None) -> Histogram:
        """Inverse of :meth:`write` (ValueError past ``max_entries`` distinct values or on truncation)."""
        from engines.codec._kernels import leb128_decode

        n = read_varint(buf)
        if max_entries is not None and n > max_entries:
            raise ValueError(f"{n} model entries, more than {max_entries}")
        data = np.frombuffer(buf.getbuffer(), dtype=np.uint8)
        pos = buf.tell()
        if 2 * n > data.size - pos:
            raise ValueError("truncated bitstream (varint)")
        seq, end = leb128_decode(data, pos, 2 * n)
        del data  # release the export of buf's buffer before seeking
        buf.seek(end)
        if not n:
            return cls(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        steps = seq[0::2] + 1  # value gaps + 1; the first entry is the zigzagged first value
        steps[0] = unzigzag_int(int(seq[0]))
        return cls(np.cumsum(steps), seq[1::2] + 1)

    def code_lengths(self, symbols: np.ndarray) -> np.ndarray:
        """Ideal code length ``-log2 p(s)`` (bits, float64) of each symbol under this histogram."""
        if self.values.size <= 1:
            return np.zeros(len(symbols))
        p = self.counts / self.total
        symbols = np.asarray(symbols, dtype=np.int64)
        span = int(self.values[-1]) - self.lo + 1
        if span <= 4 * max(len(symbols), 1) + 4096:  # dense lookup table instead of a search
            bits = np.zeros(span)
            bits[self.values - self.lo] = -np.log2(p)
            return bits[symbols - self.lo]
        idx = np.searchsorted(self.values, symbols)
        return -np.log2(p[idx])


def _model(hist: Histogram):
    import constriction

    return constriction.stream.model.Categorical(hist.dense(), perfect=False)


def encode_streams(streams: list[np.ndarray], hists: list[Histogram]) -> bytes:
    """Range-code every stream with its histogram's model, in order; returns the payload bytes.

    Streams whose histogram has a single value cost nothing (the decoder knows the value).
    """
    import constriction

    enc = constriction.stream.queue.RangeEncoder()
    for symbols, hist in zip(streams, hists):
        if len(symbols) == 0 or hist.values.size <= 1:
            continue
        enc.encode((np.asarray(symbols, dtype=np.int64) - hist.lo).astype(np.int32), _model(hist))
    words = enc.get_compressed()
    return np.asarray(words, dtype="<u4").tobytes()


def decode_streams(payload: bytes, lengths: list[int], hists: list[Histogram]) -> list[np.ndarray]:
    """Inverse of :func:`encode_streams` given each stream's length."""
    import constriction

    if len(payload) % 4:
        raise ValueError("corrupt bitstream (payload is not a whole number of 32-bit words)")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    dec = constriction.stream.queue.RangeDecoder(words)
    out = []
    for n, hist in zip(lengths, hists):
        if n == 0:
            out.append(np.zeros(0, dtype=np.int64))
        elif hist.values.size == 0:
            raise ValueError("corrupt bitstream (empty model for a non-empty stream)")
        elif hist.values.size == 1:
            out.append(np.full(n, hist.lo, dtype=np.int64))
        else:
            out.append(np.asarray(dec.decode(_model(hist), n), dtype=np.int64) + hist.lo)
    return out


def _value_counts(symbols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(symbols, return_counts=True)`` for int64 symbols, by counting when the value
    span is small (the usual case: quantised levels), by sorting otherwise."""
    if symbols.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    lo, hi = int(symbols.min()), int(symbols.max())
    if hi - lo > 4 * symbols.size + 4096:
        return np.unique(symbols, return_counts=True)
    counts = np.bincount(symbols - lo)
    values = np.flatnonzero(counts)
    return values + lo, counts[values]


def zeroth_order_entropy_bits(symbols: np.ndarray) -> float:
    """``n * H0`` in bits: the zeroth-order (memoryless, one histogram) entropy of all symbols."""
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    if symbols.size == 0:
        return 0.0
    _, counts = _value_counts(symbols)
    p = counts / symbols.size
    return float(-symbols.size * np.sum(p * np.log2(p)))


