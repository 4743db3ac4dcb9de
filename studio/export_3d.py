"""Writing a 3D distillation result: 3DGS ``.ply`` and turntable animation, each with a provenance sidecar.

Used by the ``generate 3d`` verb and the Generate panel's 3D mode; the provenance parameters
come from :func:`engines.distill3d.provenance_parameters`.
"""

from __future__ import annotations

import os
from pathlib import Path

from studio.export import ExportError, FileExistsErrorNoForce, make_provenance, save_with_sidecar, sidecar_path

__all__ = ["TURNTABLE_SUFFIXES", "check_outputs", "save_distill_outputs"]

TURNTABLE_SUFFIXES = {".webp": "WEBP", ".gif": "GIF"}


def check_outputs(ply: str | os.PathLike, turntable: str | os.PathLike | None, force: bool) -> None:
    """Raise :class:`ExportError` (one sentence) before any work if an output path is unusable."""
    paths = [(Path(ply), (".ply",))]
    if turntable:
        paths.append((Path(turntable), tuple(TURNTABLE_SUFFIXES)))
    for path, suffixes in paths:
        if path.suffix.lower() not in suffixes:
            raise ExportError(f"{path.name}: the file name must end in {' or '.join(suffixes)}")
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise ExportError(f"folder {folder} does not exist")
        if not force:
            for candidate in (path, sidecar_path(path)):
                if candidate.exists():
                    raise FileExistsErrorNoForce(f"{candidate} exists (use --force to overwrite)")


def save_distill_outputs(result, ply: str | os.PathLike, turntable: str | os.PathLike | None = None, *,
                         force: bool = False, reference: str | None = None, frames: int = 36,
                         frame_size: int = 128) -> dict:
    """Save ``result`` (a DistillResult) as ``ply`` and optionally a ``frames``-frame turntable; returns paths."""
    from engines.distill3d import provenance_parameters
    from engines.distill3d.turntable import save_animation, turntable_frames
    from engines.render.io import save_ply

    check_outputs(ply, turntable, force)
    params = provenance_parameters(result, reference)
    inputs = [reference] if reference else []
    prov = make_provenance("generate", "engines.distill3d", params, seed=result.settings.seed, device="cpu",
                           inputs=inputs)
    scene = result.gaussians()
    if turntable:  # rendered before anything is written: a failing render leaves no .ply behind
        s = result.settings
        radius = 1.4 * s.radius  # a little wider than the training views, so nothing is cut at the frame edge
        images = turntable_frames(result.scene, frames, 15.0, radius, s.fov, frame_size, result.background)
    save_with_sidecar(ply, lambda tmp: save_ply(tmp, scene), prov, force=True)
    written = {"ply": os.fspath(ply)}
    if turntable:
        fmt = TURNTABLE_SUFFIXES[Path(turntable).suffix.lower()]
        tprov = dict(prov, parameters=dict(params, turntable={"frames": frames, "size": frame_size,
                                                                "elevation": 15.0, "radius": radius,
                                                                "of": os.fspath(ply)}))
        save_with_sidecar(turntable, lambda tmp: save_animation(tmp, images, fmt), tprov, force=True)
        written["turntable"] = os.fspath(turntable)
    return written
