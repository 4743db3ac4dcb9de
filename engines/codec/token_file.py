"""Token files (``.sstk``): a tokenizer's indices range-coded with their histogram, plus what a
reader needs to turn them back into latents and pixels.

Version 2 (little-endian)::

    "SSTK" | u8 version = 2 | u32 header_len | u32 payload_len | u32 crc32(header + payload)
    header  = UTF-8 JSON: quantizer, codes (codebook size), bits, rows, cols, levels (FSQ),
              dim (latent channels), downsample, image_shape, model_sha256, codebook_sha256
    payload = histogram table + range-coded indices (row-major)

The reader checks the lengths, the CRC-32 and every header field (types, ranges, the FSQ levels'
product = codes, the token count bound) before decoding, so a truncated, altered or implausible
file is refused with one message. :func:`decode_tokens` refuses a model whose weights hash is not
the one recorded. Version 1 files (indices, codebook size, bits and quantizer name only) still
read; they carry no model hash (``"self_describing": False``).
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np

from engines.codec.entropy import Histogram, decode_streams, encode_streams

__all__ = ["MAX_TOKENS", "TokenizerMissing", "decode_tokens", "open_token_file", "read_tokens", "write_model_tokens",
           "write_tokens"]

MAGIC, VERSION = b"SSTK", 2
MAX_TOKENS = 1 << 24
MAX_CODES = 1 << 24
_MAX_HEADER = 1 << 16
_HEAD_V1 = "<HHIB"
_LENGTHS = "<III"
#: the largest file a valid header can describe: header, histogram table and 64 bits per token
_MAX_FILE = 17 + _MAX_HEADER + 8 * (MAX_TOKENS + 2 * MAX_CODES)


class TokenizerMissing(ValueError):
    """A valid token file whose tokenizer (by its recorded weights hash) is not among those given."""


def write_tokens(indices: np.ndarray, codes: int, bits: int, quantizer: str, *, levels=None, dim: int | None = None,
                 downsample: int | None = None, image_shape=None, model_sha256: str | None = None,
                 codebook_sha256: str | None = None) -> bytes:
    """Bytes of a version-2 token file for the ``(rows, cols)`` int ``indices`` in ``[0, codes)``.

    The keyword fields describe the tokenizer (see the module docstring);
    :func:`write_model_tokens` fills them from a model."""
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.size == 0 or idx.size > MAX_TOKENS:
        raise ValueError(f"tokens must be a non-empty 2-D grid of at most {MAX_TOKENS} tokens, got shape {idx.shape}")
    if not 1 <= int(codes) <= MAX_CODES:
        raise ValueError(f"codebook size must be 1..{MAX_CODES} (got {codes})")
    if idx.min() < 0 or idx.max() >= codes:
        raise ValueError(f"token indices must lie in [0, {codes})")
    header = {"quantizer": str(quantizer), "codes": int(codes), "bits": int(bits), "rows": int(idx.shape[0]), "cols": int(idx.shape[1]),
              "levels": None if levels is None else [int(v) for v in levels], "dim": None if dim is None else int(dim),
              "downsample": None if downsample is None else int(downsample),
              "image_shape": None if image_shape is None else [int(v) for v in image_shape],
              "model_sha256": model_sha256, "codebook_sha256": codebook_sha256}
    _check_header(header)
    sym = idx.astype(np.int64).ravel()
    hist = Histogram.of(sym)
    body = io.BytesIO()
    hist.write(body)
    body.write(encode_streams([sym], [hist]))
    payload = body.getvalue()
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    crc = zlib.crc32(payload, zlib.crc32(head))
    return MAGIC + bytes([VERSION]) + struct.pack(_LENGTHS, len(head), len(payload), crc) + head + payload


def write_model_tokens(model, indices: np.ndarray, image_shape) -> bytes:
    """A token file of ``indices`` made by the :class:`~engines.codec.token_lab.Tokenizer`
    ``model`` from an image of ``image_shape`` (H, W), with the model's description and hashes."""
    from engines.codec.token_lab import model_fingerprint

    prints = model_fingerprint(model)
    return write_tokens(indices, model.codes, model.bits, model.quantizer, levels=model.levels, dim=model.dim, downsample=4,
                        image_shape=tuple(image_shape)[:2], model_sha256=prints["model"], codebook_sha256=prints["codebook"])


def read_tokens(data: bytes) -> dict:
    """Inverse of :func:`write_tokens`: ``{"indices", "codes", "bits", "quantizer", ...}`` with the
    version-2 description fields (None in version-1 files); ValueError on anything that is not an
    intact token file."""
    data = bytes(data)
    if data[:4] != MAGIC:
        raise ValueError("not a token file (.sstk)")
    if len(data) < 5:
        raise ValueError("token file truncated in its header")
    if data[4] == 1:
        return _read_v1(io.BytesIO(data[5:]))
    if data[4] != VERSION:
        raise ValueError(f"unsupported token file version {data[4]} (this studio reads 1 and 2)")
    end = 5 + struct.calcsize(_LENGTHS)
    if len(data) < end:
        raise ValueError("token file truncated in its header")
    head_len, payload_len, crc = struct.unpack(_LENGTHS, data[5:end])
    if head_len > _MAX_HEADER:
        raise ValueError(f"token file header is implausible ({head_len} bytes)")
    if len(data) - end != head_len + payload_len:
        what = "truncated" if len(data) - end < head_len + payload_len else "longer than its header says"
        raise ValueError(f"token file {what}: {len(data) - end} bytes after the lengths, {head_len} + {payload_len} announced")
    body = data[end:]
    if zlib.crc32(body) != crc:
        raise ValueError("token file is damaged (CRC-32 mismatch)")
    try:
        header = json.loads(body[:head_len].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("token file header is not valid JSON") from None
    _check_header(header)
    indices = _decode_indices(body[head_len:], header["rows"], header["cols"], header["codes"])
    return {"indices": indices, "version": 2, "self_describing": True, **header}


def decode_tokens(model, info: dict) -> np.ndarray:
    """Pixels ``(H, W, 3)`` uint8 of the tokens ``info`` (from :func:`read_tokens`) through the
    tokenizer ``model``; ValueError when the file records another model or quantizer."""
    from engines.codec.token_lab import decode_indices, model_fingerprint

    if not info.get("self_describing"):
        raise ValueError("this token file (version 1) records no model; it cannot be checked against a tokenizer")
    if info["quantizer"] != model.quantizer or info["codes"] != model.codes:
        raise ValueError(f"the tokens are {info['quantizer']} with {info['codes']} codes; the model is {model.quantizer} with {model.codes}")
    if info["model_sha256"] != model_fingerprint(model)["model"]:
        raise ValueError("the tokens were made by another model (weights hash differs)")
    image = decode_indices(model, info["indices"])
    if info.get("image_shape"):
        image = image[: info["image_shape"][0], : info["image_shape"][1]]
    return image


def open_token_file(path, tokenizers=()) -> dict:
    """Read the token file at ``path`` and decode it with the one of ``tokenizers`` whose weights
    hash (:func:`~engines.codec.token_lab.model_fingerprint`) the file records.

    Returns ``{"info": read_tokens(...), "image": (H, W, 3) uint8, "tokenizer": model}``. Raises
    ValueError naming the file when it is not a readable token file, and :class:`TokenizerMissing`
    (naming the quantizer, codebook size and hash it needs) when no given tokenizer made it."""
    from pathlib import Path

    from engines.codec.token_lab import model_fingerprint
    from engines.limits import check_decoded_size

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p.name}: {'file not found' if not p.exists() else 'not a regular file'}")
    size = p.stat().st_size
    if size > _MAX_FILE:
        raise ValueError(f"{p.name} is not a token file ({size:,} bytes, more than any token file holds)")
    try:
        info = read_tokens(p.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{p.name}: {exc}") from None
    if not info["self_describing"] or info["model_sha256"] is None:
        raise TokenizerMissing(f"{p.name} records no tokenizer (no weights hash) to decode it with")
    for model in tokenizers:
        if model_fingerprint(model)["model"] == info["model_sha256"]:
            # the decoder's activations: ~10 float32 maps of its width per token, then 16 RGB pixels
            check_decoded_size(info["rows"] * info["cols"] * (40 * model.dec[0].out_channels + 80),
                               f"{p.name} ({info['rows']}×{info['cols']} tokens)")
            return {"info": info, "image": decode_tokens(model, info), "tokenizer": model}
    raise TokenizerMissing(f"{p.name} needs the tokenizer that made it ({info['quantizer']}, {info['codes']:,} codes, "
                           f"weights sha256 {info['model_sha256'][:12]}…), which is not available")


def _check_header(h) -> None:
    """Types and ranges of a version-2 header (ValueError naming the field)."""
    def bad(field):
        raise ValueError(f"token file header is implausible ({field})")

    if not isinstance(h, dict):
        bad("not an object")
    ints = {"codes": (1, MAX_CODES), "bits": (0, 64), "rows": (1, MAX_TOKENS), "cols": (1, MAX_TOKENS)}
    for key, (lo, hi) in ints.items():
        v = h.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            bad(key)
    if h["rows"] * h["cols"] > MAX_TOKENS:
        bad(f"{h['rows']}x{h['cols']} tokens")
    if not isinstance(h.get("quantizer"), str) or not 0 < len(h["quantizer"]) <= 64:
        bad("quantizer")
    for key in ("dim", "downsample"):
        if h.get(key) is not None and (not isinstance(h[key], int) or not 1 <= h[key] <= 4096):
            bad(key)
    levels = h.get("levels")
    if levels is not None:
        if not isinstance(levels, list) or not 0 < len(levels) <= 64 or not all(isinstance(v, int) and 2 <= v <= 65536 for v in levels):
            bad("levels")
        if int(np.prod(levels, dtype=object)) != h["codes"]:
            bad("levels do not multiply to the codebook size")
    shape = h.get("image_shape")
    if shape is not None and (not isinstance(shape, list) or len(shape) != 2 or not all(isinstance(v, int) and 1 <= v <= 1 << 20 for v in shape)):
        bad("image_shape")
    for key in ("model_sha256", "codebook_sha256"):
        v = h.get(key)
        if v is not None and (not isinstance(v, str) or len(v) != 64 or any(c not in "0123456789abcdef" for c in v)):
            bad(key)


def _decode_indices(payload: bytes, rows: int, cols: int, codes: int) -> np.ndarray:
    body = io.BytesIO(payload)
    hist = Histogram.read(body, max_entries=codes)
    if hist.values.size and (hist.values[0] < 0 or hist.values[-1] >= codes):
        raise ValueError("token file holds indices outside its codebook")
    if hist.total != rows * cols:  # the writer counts every token into the table
        raise ValueError(f"token file is corrupt (its table counts {hist.total} tokens, the header {rows * cols})")
    try:
        (sym,) = decode_streams(body.read(), [rows * cols], [hist])
    except (AssertionError, RuntimeError, OverflowError) as exc:  # the range coder on data its model cannot produce
        raise ValueError("token file is corrupt (the coded indices do not fit their table)") from exc
    if sym.min() < 0 or sym.max() >= codes:
        raise ValueError("token file holds indices outside its codebook")
    return sym.reshape(rows, cols)


def _read_v1(buf: io.BytesIO) -> dict:
    """Version 1: ``<HHIB`` (rows, cols, codes, bits), name, ``<II`` payload length + CRC, payload."""
    head = buf.read(struct.calcsize(_HEAD_V1) + 1)
    if len(head) != struct.calcsize(_HEAD_V1) + 1:
        raise ValueError("token file truncated in its header")
    rows, cols, codes, bits = struct.unpack(_HEAD_V1, head[:-1])
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
    indices = _decode_indices(payload, rows, cols, codes)
    return {"indices": indices, "codes": codes, "bits": bits, "quantizer": name.decode("ascii", "replace"), "version": 1,
            "self_describing": False, "rows": rows, "cols": cols, "levels": None, "dim": None, "downsample": None,
            "image_shape": None, "model_sha256": None, "codebook_sha256": None}
