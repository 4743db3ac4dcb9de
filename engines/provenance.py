"""Provenance records: what made a result (panel, engine, parameters, seed, device, input hashes).

Engines build the record (:func:`build_record`); the studio only writes it next to the result and
reads it back. Anything read back is untrusted: :func:`validate_record` checks its size, depth
and the record schema, and :func:`validate_parameters` checks a panel's parameters against that
panel's schema, before anything is applied. Both raise :class:`ProvenanceError` (one type, one
line) and never change their input.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

APP = "Spectra Studio"
#: the largest provenance text accepted (a PNG chunk or a sidecar), in bytes
MAX_RECORD_BYTES = 4 << 20
#: the deepest nesting of lists / objects accepted in a record
MAX_DEPTH = 12

RECORD_SCHEMA = {
    "type": "object",
    "required": ["panel", "parameters"],
    "properties": {
        "app": {"type": "string", "maxLength": 200},
        "app_version": {"type": "string", "maxLength": 200},
        "panel": {"type": "string", "minLength": 1, "maxLength": 64},
        "engine": {"type": "string", "maxLength": 500},
        "parameters": {"type": "object"},
        "seed": {"type": ["integer", "null"]},
        "device": {"type": ["string", "null"], "maxLength": 200},
        "inputs": {"type": "object", "additionalProperties": {"type": "string"}},
        "created": {"type": "string", "maxLength": 100},
        "python": {"type": "string", "maxLength": 100},
    },
}


class ProvenanceError(ValueError):
    """A provenance record (or a panel's parameters in it) is malformed; nothing was applied."""


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes (of every file inside, sorted, for a folder)."""
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays, paths and tuples into plain JSON values (non-finite floats → text)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def _app_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("spectra-studio")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def build_record(
    panel: str,
    engine: str,
    parameters: dict,
    *,
    seed: int | None = None,
    device: str | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    extra: dict | None = None,
) -> dict:
    """The provenance record stored with an export.

    ``parameters`` must be everything needed to reproduce the result; ``inputs`` are files
    the result was made from (their sha256 is recorded, keyed by path).
    """
    record = {
        "app": APP,
        "app_version": _app_version(),
        "panel": panel,
        "engine": engine,
        "parameters": jsonable(dict(parameters)),
        "seed": None if seed is None else int(seed),
        "device": device,
        "inputs": {os.fspath(p): file_sha256(p) for p in inputs if p and Path(p).exists()},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
    }
    if extra:
        record.update(jsonable(extra))
    return record


def _check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Raise if ``value`` nests lists / dicts deeper than ``limit`` (iteratively: no recursion), or holds
    a non-finite number (JSON's NaN / Infinity extension: a range check in a schema lets NaN through)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ProvenanceError(f"holds a non-finite number ({item})")
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise ProvenanceError(f"nested more than {limit} levels deep")
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)


def warm_validator() -> None:
    """Import jsonschema (with attrs, referencing and format checkers: about 0.1 s) and validate once,
    so the first restore of parameters does not pay for it (a start-up step in the studio)."""
    _first_error({}, {"type": "object"})


def _first_error(instance: Any, schema: dict) -> str | None:
    """The first JSON-schema violation of ``instance`` as ``where: what``, or None."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    error = errors[0]
    where = ".".join(str(p) for p in error.absolute_path)
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    return f"{where}: {message}" if where else message


def parse_record(text: str | bytes) -> dict:
    """Parse and validate provenance JSON text (see :func:`validate_record`)."""
    if len(text) > MAX_RECORD_BYTES:
        raise ProvenanceError(f"record is too large ({len(text):,} bytes, at most {MAX_RECORD_BYTES:,})")
    try:
        record = json.loads(text)
    except RecursionError:
        raise ProvenanceError(f"nested more than {MAX_DEPTH} levels deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProvenanceError(f"not valid JSON ({str(exc).splitlines()[0]})") from None
    return validate_record(record)


def validate_record(record: Any) -> dict:
    """Return ``record`` if it is a well-formed provenance record, else raise :class:`ProvenanceError`.

    Checks: a JSON object, at most :data:`MAX_DEPTH` levels deep, and :data:`RECORD_SCHEMA`
    (``panel`` a short string, ``parameters`` an object, ``seed`` an integer or null ...).
    """
    if not isinstance(record, dict):
        raise ProvenanceError(f"a record must be a JSON object, not {_json_type(record)}")
    _check_depth(record)
    problem = _first_error(record, RECORD_SCHEMA)
    if problem:
        raise ProvenanceError(problem)
    return record


def validate_parameters(parameters: Any, schema: dict, panel: str = "panel") -> dict:
    """Return ``parameters`` if they satisfy the panel's JSON ``schema``, else raise :class:`ProvenanceError`."""
    if not isinstance(parameters, dict):
        raise ProvenanceError(f"{panel} parameters must be a JSON object, not {_json_type(parameters)}")
    _check_depth(parameters)
    problem = _first_error(parameters, schema)
    if problem:
        raise ProvenanceError(f"{panel} parameter {problem}")
    return parameters


def _json_type(value: Any) -> str:
    names = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false",
             type(None): "null"}
    return names.get(type(value), "something else")


# small helpers for panels' parameter schemas
def number(minimum: float | None = None, maximum: float | None = None, integer: bool = False) -> dict:
    """Schema of a number (an integer if ``integer``) in ``[minimum, maximum]``."""
    schema: dict = {"type": "integer" if integer else "number"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def one_of(*choices: Any) -> dict:
    """Schema of a value that must be one of ``choices``."""
    return {"enum": list(choices)}


def text(max_length: int = 10_000, nullable: bool = False) -> dict:
    """Schema of a string of at most ``max_length`` characters (or null if ``nullable``)."""
    return {"type": ["string", "null"] if nullable else "string", "maxLength": max_length}


def array(items: dict | None = None, min_items: int = 0, max_items: int = 10_000) -> dict:
    """Schema of a list of ``items``."""
    schema: dict = {"type": "array", "minItems": min_items, "maxItems": max_items}
    if items is not None:
        schema["items"] = items
    return schema


def obj(properties: dict, required: Iterable[str] = ()) -> dict:
    """Schema of an object whose listed ``properties`` (when present) follow their schemas."""
    schema: dict = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema
