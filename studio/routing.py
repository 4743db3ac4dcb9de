"""Decide which panel receives a dropped or opened file (no Qt).

Rules, in order:
1. a missing path is an error;
2. a file with Spectra Studio provenance (PNG chunk or sidecar) restores the panel named in it;
3. otherwise the panels whose ``can_open`` accepts the path are the candidates: none means
   unsupported, one is chosen, several go to the active panel if it is one of them, else the
   user is asked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

OPEN, RESTORE, ASK, UNSUPPORTED, ERROR = "open", "restore", "ask", "unsupported", "error"


@dataclass
class Route:
    """The routing decision for one path."""

    action: str
    path: str
    panel: str | None = None
    candidates: list[str] = field(default_factory=list)
    provenance: dict | None = None
    message: str = ""


def route_path(
    path: str | os.PathLike,
    acceptors: Sequence[tuple[str, Callable[[str], bool]]],
    active: str | None = None,
) -> Route:
    """Route ``path`` among ``acceptors`` (``(panel_name, can_open)`` pairs, in switcher order)."""
    from studio.export import ExportError, read_provenance

    path = os.fspath(path)
    name = Path(path).name or path
    if not os.path.exists(path):
        return Route(ERROR, path, message=f"{name}: no such file or folder")
    names = [panel for panel, _ in acceptors]
    if os.path.isfile(path):
        try:
            provenance = read_provenance(path)
        except ExportError as exc:
            return Route(ERROR, path, message=str(exc))
        if provenance and provenance.get("panel") in names:
            return Route(RESTORE, path, panel=provenance["panel"], provenance=provenance)
    candidates = []
    for panel, can_open in acceptors:
        try:
            if can_open(path):
                candidates.append(panel)
        except Exception:  # a broken acceptor must not break routing
            continue
    if not candidates:
        kind = Path(path).suffix or ("folder" if os.path.isdir(path) else "file")
        return Route(UNSUPPORTED, path, message=f"{name}: no panel opens {kind} files")
    if len(candidates) == 1:
        return Route(OPEN, path, panel=candidates[0], candidates=candidates)
    if active in candidates:
        return Route(OPEN, path, panel=active, candidates=candidates)
    return Route(ASK, path, candidates=candidates, message=f"{name} can be opened by several panels")
