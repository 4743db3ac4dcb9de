"""Corruptions of files: bytes, text header fields, JSON fields, external data files.

Every mutator takes a ``numpy.random.Generator`` and works in place on files of a case folder;
it returns a short description of what it did (printed for failing cases).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

#: values a header field is set to: huge, negative, NaN, wrong type, empty ...
BAD_NUMBERS = ["9223372036854775807", "18446744073709551615", "4294967295", "2147483648", "1000000000",
               "-1", "-2147483648", "0", "nan", "inf", "-inf", "1e9", "1.5", "abc", "", "0x10", "1e400"]
BAD_JSON_VALUES = [10**19, 2**31, 10**9, 1e9, -1, 0, float("nan"), float("inf"), "x", "", [], {}, None, True,
                   [1, 2, 3], {"a": 1}, "9" * 400]


def pick(rng: np.random.Generator, items):
    """One element of ``items`` (uniform)."""
    return items[int(rng.integers(len(items)))]


# -- bytes ------------------------------------------------------------------------------------
def truncate(rng, data: bytes) -> tuple[bytes, str]:
    """Cut the data at a random point (sometimes to nothing, sometimes one byte short)."""
    if not data:
        return data, "empty already"
    mode = rng.random()
    cut = 0 if mode < 0.05 else len(data) - 1 if mode < 0.15 else int(rng.integers(0, len(data)))
    return data[:cut], f"truncated to {cut} of {len(data)} bytes"


def flip_bits(rng, data: bytes, header_bias: int = 0) -> tuple[bytes, str]:
    """Flip 1..8 random bits (half the time within the first ``header_bias`` bytes)."""
    if not data:
        return data, "empty"
    out = bytearray(data)
    n = int(rng.integers(1, 9))
    spots = []
    for _ in range(n):
        span = header_bias if header_bias and rng.random() < 0.5 else len(out)
        i = int(rng.integers(0, min(span, len(out))))
        bit = int(rng.integers(8))
        out[i] ^= 1 << bit
        spots.append(i)
    return bytes(out), f"flipped {n} bits at {sorted(spots)[:8]}"


def overwrite_run(rng, data: bytes, header_bias: int = 0) -> tuple[bytes, str]:
    """Overwrite a run of 1..16 bytes with 0x00, 0xFF or random bytes."""
    if not data:
        return data, "empty"
    out = bytearray(data)
    span = header_bias if header_bias and rng.random() < 0.6 else len(out)
    start = int(rng.integers(0, min(span, len(out))))
    length = int(rng.integers(1, 17))
    fill = pick(rng, [b"\x00", b"\xff", None])
    chunk = rng.integers(0, 256, length, dtype=np.uint8).tobytes() if fill is None else fill * length
    out[start : start + length] = chunk[: len(out) - start]
    return bytes(out), f"overwrote {length} bytes at {start} with {'random' if fill is None else fill.hex()}"


def wrong_magic(rng, data: bytes) -> tuple[bytes, str]:
    """Replace the first 4 bytes."""
    magic = pick(rng, [b"\x00\x00\x00\x00", b"GIF8", b"\x89PNG", b"ply\n", b"SSBC", b"PK\x03\x04", b"\xff\xd8\xff\xe0"])
    return magic + data[4:], f"magic set to {magic!r}"


def splice(rng, data: bytes) -> tuple[bytes, str]:
    """Insert random bytes, delete a range, or duplicate a range."""
    if len(data) < 2:
        return data + b"\x00", "appended a byte"
    i = int(rng.integers(0, len(data)))
    n = int(rng.integers(1, min(64, len(data)) + 1))
    mode = int(rng.integers(3))
    if mode == 0:
        return data[:i] + rng.integers(0, 256, n, dtype=np.uint8).tobytes() + data[i:], f"inserted {n} bytes at {i}"
    if mode == 1:
        return data[:i] + data[i + n :], f"deleted {n} bytes at {i}"
    return data[:i] + data[i : i + n] * 2 + data[i + n :], f"duplicated {n} bytes at {i}"


BYTE_MUTATORS = [truncate, flip_bits, overwrite_run, wrong_magic, splice]


def mutate_bytes(rng, path: Path, header_bias: int = 0) -> str:
    """Apply one random byte mutator to the file at ``path``."""
    data = path.read_bytes()
    fn = pick(rng, BYTE_MUTATORS)
    out, what = fn(rng, data, header_bias) if fn in (flip_bits, overwrite_run) else fn(rng, data)
    path.write_bytes(out)
    return f"{path.name}: {what}"


# -- text headers -------------------------------------------------------------------------------
def set_text_field(rng, text: str, pattern: str, fields: list[str]) -> tuple[str, str]:
    """Set the value of one ``key<sep>value`` line (``pattern`` formats the key) to a bad value;
    list-valued fields get one bad entry or a bad count of entries."""
    key = pick(rng, fields)
    rx = re.compile(pattern.format(key=re.escape(key)), re.MULTILINE)
    m = rx.search(text)
    bad = pick(rng, BAD_NUMBERS)
    if m is None:
        return text, f"field {key} absent"
    old = m.group("value")
    parts = old.split()
    if len(parts) > 1 and rng.random() < 0.7:
        parts[int(rng.integers(len(parts)))] = bad or "x"
        new = " ".join(parts) if rng.random() < 0.8 else " ".join(parts[:-1])
    else:
        new = bad
    return text[: m.start("value")] + new + text[m.end("value") :], f"{key} = {new!r} (was {old!r})"


# -- JSON ----------------------------------------------------------------------------------------
def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:8]):
            yield from _paths(v, prefix + (i,))


def mutate_json(rng, obj):
    """A changed copy of a JSON value: a field set to a bad value, removed, or the document
    replaced by a list / deep nesting / scalar. Returns ``(new object or raw text, description)``."""
    mode = rng.random()
    if mode < 0.08:
        return [obj], "document wrapped in a list"
    if mode < 0.12:
        depth = int(rng.integers(50, 5000))
        return "[" * depth + "]" * depth, f"nested {depth} deep"
    if mode < 0.15:
        return pick(rng, BAD_JSON_VALUES), "document replaced by a scalar"
    obj = json.loads(json.dumps(obj))
    paths = [p for p in _paths(obj) if p]
    if not paths:
        return obj, "nothing to change"
    path = paths[int(rng.integers(len(paths)))]
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and rng.random() < 0.15:
        del parent[path[-1]]
        return obj, f"removed {'.'.join(map(str, path))}"
    value = pick(rng, BAD_JSON_VALUES)
    parent[path[-1]] = value
    return obj, f"{'.'.join(map(str, path))} = {json.dumps(value)[:40]}"


def mutate_json_text(rng, obj) -> tuple[str, str]:
    """:func:`mutate_json` as the text of the changed document: ``(text, description)``."""
    new, what = mutate_json(rng, obj)
    return (new if isinstance(new, str) and what.startswith("nested") else json.dumps(new)), what


def write_json_mutation(rng, path: Path) -> str:
    """Mutate the JSON file at ``path`` (or its raw text, sometimes)."""
    try:
        obj = json.loads(path.read_text())
    except (ValueError, RecursionError):  # already corrupted by an earlier mutation of this case
        return mutate_bytes(rng, path)
    if rng.random() < 0.15:
        return mutate_bytes(rng, path)
    text, what = mutate_json_text(rng, obj)
    path.write_text(text)
    return f"{path.name}: {what}"


# -- external files -------------------------------------------------------------------------------
def replace_with_special(rng, path: Path) -> str:
    """Replace ``path`` by a FIFO, a directory, an empty file, a symlink to /dev/zero or nothing."""
    kind = pick(rng, ["fifo", "dir", "empty", "devzero", "missing"])
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "devzero":
        path.symlink_to("/dev/zero")
    return f"{path.name} replaced by {kind}"


SPECIAL_TARGETS = ["/dev/zero", "/dev/null", "fifo", ".", "missing.raw", "../../etc/passwd", "/dev/urandom", ""]
