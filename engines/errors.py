"""Turn exceptions into one clear line for the CLI, the log, notifications and batch reports (no Qt)."""

from __future__ import annotations


def describe_error(exc: BaseException) -> str:
    """A one-line, user-facing description of ``exc``."""
    if isinstance(exc, FileNotFoundError):
        name = exc.filename or str(exc)
        return f"file not found: {name}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename or exc}"
    if isinstance(exc, MemoryError):
        return "out of memory: try a smaller size, fewer items or the CPU device"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "out of memory" in text.lower():
        return text if text.lower().startswith("out of memory") else f"out of memory: {text}"
    if isinstance(exc, KeyError):
        return f"missing entry {text}" if text else "missing entry"
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror.lower()}{where}"
    if isinstance(exc, (ValueError, OSError)) and text:
        return text
    # a bug rather than bad input: still one line without a class name; --traceback shows the rest
    return f"internal error ({text})" if text else "internal error (run with --traceback for details)"
