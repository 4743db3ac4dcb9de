"""Turn exceptions into one clear line for the CLI, the log and notifications (no Qt)."""

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
    kind = type(exc).__name__
    if "out of memory" in text.lower():
        return f"out of memory: {text}"
    if isinstance(exc, (ValueError, KeyError, OSError)) and text:
        return text
    return f"{kind}: {text}" if text else kind
