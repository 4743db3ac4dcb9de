"""Decide which panel receives a dropped or opened file, by its content (no Qt, no panel built).

Rules, in order:
1. a missing path is an error;
2. the content is sniffed once (:func:`engines.filekinds.sniff`: magic bytes, folder layout);
3. a file with a valid Spectra Studio provenance record (PNG chunk or sidecar) restores the
   panel named in it, and that panel also opens the file when it can (``open_file``); a
   malformed record is an error and nothing is applied;
4. otherwise the panels whose acceptor takes the content are the candidates: none means
   unsupported, one is chosen whatever panel is active, several go to the active panel if it
   is one of them, else the user is asked.

An acceptor is ``accepts(path, kind) -> bool`` — a panel class's :meth:`Panel.accepts`, which
needs no panel instance.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from engines.filekinds import MISSING, UNKNOWN, describe, sniff

OPEN, RESTORE, ASK, UNSUPPORTED, ERROR = "open", "restore", "ask", "unsupported", "error"

Acceptor = Callable[[str, str], bool]


@dataclass(frozen=True)
class PathFacts:
    """What the examination found of a path with one ``stat``: opening it then asks the file system nothing."""

    exists: bool
    is_dir: bool = False

    @classmethod
    def of(cls, path: str | os.PathLike) -> PathFacts:
        """Stat ``path`` (on a worker: a network share may take seconds)."""
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            return cls(False)
        return cls(True, stat.S_ISDIR(info.st_mode))


_examined: dict[str, PathFacts] = {}  # paths being opened now, with what their examination found


@contextmanager
def examined(path: str, facts: PathFacts | None) -> Iterator[None]:
    """While a routed path is opened (``panel.open_file``), :func:`path_exists` / :func:`path_is_dir`
    answer from ``facts`` (found by the examine job) instead of asking the file system on the GUI thread."""
    if facts is None:
        yield
        return
    key = os.fspath(path)
    _examined[key] = facts
    try:
        yield
    finally:
        _examined.pop(key, None)


def path_facts(path: str | os.PathLike) -> PathFacts:
    """What the examination found of ``path`` while it is being opened, else a ``stat`` now."""
    return _examined.get(os.fspath(path)) or PathFacts.of(path)


def path_exists(path: str | os.PathLike) -> bool:
    """``os.path.exists`` that asks nothing of the file system for a path being opened after its examination."""
    return path_facts(path).exists


def path_is_dir(path: str | os.PathLike) -> bool:
    """``os.path.isdir``, likewise (see :func:`path_exists`)."""
    return path_facts(path).is_dir


def path_is_file(path: str | os.PathLike) -> bool:
    """``os.path.isfile`` (a path that exists and is no folder), likewise (see :func:`path_exists`)."""
    facts = path_facts(path)
    return facts.exists and not facts.is_dir


@dataclass
class Route:
    """The routing decision for one path."""

    action: str
    path: str
    panel: str | None = None
    candidates: list[str] = field(default_factory=list)
    provenance: dict | None = None
    message: str = ""
    kind: str = UNKNOWN
    open_file: bool = True  # for RESTORE: the panel also opens the file itself
    facts: PathFacts | None = None  # what the examination found (exists, folder)


def _accepts(acceptor: Acceptor, path: str, kind: str) -> bool:
    try:
        return bool(acceptor(path, kind))
    except Exception:  # noqa: BLE001 - a broken acceptor must not break routing
        return False


def unsupported_message(name: str, path: str, kind: str) -> str:
    """``"notes.docx: no panel opens .docx files"`` / ``"scans: no panel opens an empty folder"``."""
    suffix = "".join(Path(path).suffixes[-2:]).lower() if kind == UNKNOWN else ""
    if kind == UNKNOWN and os.path.isdir(path):
        return f"{name}: no panel opens this folder (no DICOM series, model or posed views in it)"
    if kind == UNKNOWN and suffix:
        return f"{name}: no panel opens {suffix} files"
    if kind == UNKNOWN:
        return f"{name}: no panel opens this file (its type is not recognised)"
    return f"{name}: no panel opens {describe(kind)}"


def failure_message(path: str | os.PathLike, reason: str) -> str:
    """``"<name>: <reason>"`` for "Cannot open …", naming the file once: the loaders' reasons often name
    it already (``trunc.ply is truncated: …``, ``x.vp: a Slicer .vp file …``, ``file not found: /d/x.png``,
    ``cannot read x.png: …``), so the reason's own mentions of it become "it" at the start and
    mid-sentence, and are dropped as a leading label or a trailing ``: <path>``. A mention is the path,
    a path ending in the name, or (for a name with a suffix, which is no ordinary word) the bare name."""
    path = os.fspath(path)
    name = Path(path).name or path
    word, whole = re.escape(name), "\x00"  # the full path, marked before the patterns run
    alone = r"(?![\w\-/\\]|\.\w)"
    forms = [whole, r"(?<![\w.\-/\\])[^\s:]*[/\\]" + word + alone]
    if "." in name.strip("."):
        forms.append(r"(?<![\w.\-/\\])" + word + alone)
    mention = "(?:" + "|".join(forms) + ")"
    text = reason.strip().replace(os.path.abspath(path), whole).replace(path, whole)
    text = re.sub(rf"^(?:{mention}|{word}):\s*", "", text)
    text = re.sub(rf":\s*{mention}\.?$", "", text)
    text = re.sub(mention, "it", text)
    return f"{name}: {text}" if text else name


def route_path(
    path: str | os.PathLike,
    acceptors: Sequence[tuple[str, Acceptor]],
    active: str | None = None,
) -> Route:
    """Route ``path`` among ``acceptors`` (``(panel_name, accepts)`` pairs, in switcher order)."""
    from studio.export import ExportError, read_provenance

    path = os.fspath(path)
    name = Path(path).name or path
    kind = sniff(path)
    facts = PathFacts.of(path)
    if kind == MISSING:
        return Route(ERROR, path, message=f"{name}: no such file or folder", kind=kind, facts=facts)
    names = dict(acceptors)
    if facts.exists and not facts.is_dir:
        try:
            provenance = read_provenance(path)
        except ExportError as exc:  # "Cannot open <name>: <reason>", as a panel's failure reads
            return Route(ERROR, path, message=failure_message(path, str(exc)), kind=kind, facts=facts)
        panel = provenance.get("panel") if provenance else None
        if panel in names:
            return Route(RESTORE, path, panel=panel, provenance=provenance, kind=kind,
                         open_file=_accepts(names[panel], path, kind), facts=facts)
    candidates = [panel for panel, acceptor in acceptors if _accepts(acceptor, path, kind)]
    if not candidates:
        return Route(UNSUPPORTED, path, message=unsupported_message(name, path, kind), kind=kind, facts=facts)
    if len(candidates) == 1:
        return Route(OPEN, path, panel=candidates[0], candidates=candidates, kind=kind, facts=facts)
    return choose_panel(Route(ASK, path, candidates=candidates, kind=kind, facts=facts,
                              message=f"{name} ({describe(kind)}) can be opened by several panels"), active)


def choose_panel(route: Route, active: str | None) -> Route:
    """Rule 4's last step: an ``ASK`` route whose candidates include the ``active`` panel opens there;
    any other route is returned as it is. (A drop is sniffed on a worker with no active panel, and
    this runs on the GUI thread when it is opened, with the panel active then.)"""
    if route.action != ASK or active not in route.candidates:
        return route
    return Route(OPEN, route.path, panel=active, candidates=route.candidates, kind=route.kind, facts=route.facts)


def route_paths_job(paths: Sequence[str], acceptors: Sequence[tuple[str, Acceptor]]):
    """Job (worker thread): :func:`route_path` for each of ``paths`` in order, with no active panel
    (the caller applies :func:`choose_panel` when it opens each one); returns the routes.
    Sniffing a folder of thousands of files or a file on a network share takes a while."""
    from engines.jobs import Progress

    routes = []
    for index, path in enumerate(paths):
        yield Progress(index, len(paths), f"examining {Path(path).name or path}")
        routes.append(route_path(path, acceptors))
    return routes


def openable_paths_job(paths: Sequence[str], acceptor: Acceptor, suffixes: Sequence[str] = ()):
    """Job (worker thread): the files among ``paths`` (in order, without repeats) that exist and that
    ``acceptor`` takes by their sniffed content, or whose name ends in one of ``suffixes``.
    Each check stats the file and reads its first bytes: slow on a network share."""
    from engines.jobs import Progress

    kept = []
    for index, path in enumerate(paths):
        yield Progress(index, len(paths), f"checking {Path(path).name or path}")
        if path in kept or not os.path.isfile(path):
            continue
        if path.lower().endswith(tuple(suffixes)) or _accepts(acceptor, path, sniff(path)):
            kept.append(path)
    return kept
