"""The Generate panel."""

from panels.generate.panel import GeneratePanel

__all__ = ["GeneratePanel"]
