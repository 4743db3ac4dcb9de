"""Turn exceptions into one clear line (the engines' helper, re-exported for the studio)."""

from engines.errors import describe_error

__all__ = ["describe_error"]
