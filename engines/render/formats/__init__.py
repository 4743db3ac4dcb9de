"""Scene and posed-view file formats beyond the 3DGS ``.ply`` / ``.splat`` of :mod:`engines.render.io`.

Scenes: SuperSplat compressed PLY (:mod:`.compressed_ply`), Niantic SPZ (:mod:`.spz`).
:func:`save_scene` writes any supported scene format chosen by the file name.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SCENE_SUFFIXES", "save_scene", "scene_format"]

SCENE_SUFFIXES = (".ply", ".compressed.ply", ".splat", ".spz")


def scene_format(path: str | os.PathLike) -> str:
    """The scene format a file name asks for: one of ``SCENE_SUFFIXES`` (ValueError otherwise)."""
    name = Path(path).name.lower()
    for suffix in (".compressed.ply", ".ply", ".splat", ".spz"):
        if name.endswith(suffix):
            return suffix
    raise ValueError(f"{Path(path).name}: scenes are written as {', '.join(SCENE_SUFFIXES)}")


def save_scene(path: str | os.PathLike, scene, fmt: str | None = None) -> None:
    """Write ``scene`` as ``fmt`` (one of ``SCENE_SUFFIXES``; default: what the file name asks for).

    Pass ``fmt`` when ``path`` is a temporary name (atomic exports).
    """
    fmt = fmt or scene_format(path)
    if fmt == ".compressed.ply":
        from engines.render.formats.compressed_ply import save_compressed_ply

        save_compressed_ply(path, scene)
    elif fmt == ".spz":
        from engines.render.formats.spz import save_spz

        save_spz(path, scene)
    elif fmt == ".splat":
        from engines.render.io import save_splat

        save_splat(path, scene)
    else:
        from engines.render.io import save_ply

        save_ply(path, scene)
