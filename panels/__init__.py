"""Qt widgets, one module or package per panel. The registry below is what the main window loads.

A panel talks to its engine only through ``services.jobs`` (the studio's job queue).
"""

from __future__ import annotations

import importlib

#: (panel name, "module:Class"), in switcher order
PANEL_REGISTRY = [
    ("generate", "panels.generate:GeneratePanel"),
    ("render", "panels.render:RenderPanel"),
    ("volume", "panels.volume:VolumePanel"),
    ("codec", "panels.codec:CodecPanel"),
]


def load_panel_class(spec: str):
    """Import ``"module:Class"`` and return the class."""
    module_name, class_name = spec.split(":")
    return getattr(importlib.import_module(module_name), class_name)
