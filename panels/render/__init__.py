"""Render panel: Gaussian-splat viewer/editor and fitting (see :class:`RenderPanel`)."""

from panels.render.panel import RenderPanel

__all__ = ["RenderPanel"]
