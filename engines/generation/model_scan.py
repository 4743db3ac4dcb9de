"""The model list as a job: scanning the model folders reads every candidate's JSON and weight
header (slow on a network share or with many models), so the Generate panel runs it on a worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from engines.generation import models as model_files
from engines.jobs import Progress, wait_in_thread


@dataclass
class ModelScan:
    """What :func:`scan_models_job` found: ``models`` (folder scan, then the extra models),
    ``problems`` (one line per broken candidate), and for a ``wanted`` model its path
    (``wanted_path``, listed in ``models``; ``wanted_added`` if the folders did not hold it) or why
    it is not available (``wanted_problem``)."""

    models: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    wanted_path: str | None = None
    wanted_problem: str | None = None
    wanted_added: bool = False


def list_models(folders=(), extra_models=(), wanted: str | None = None, fallback: str | None = None) -> ModelScan:
    """Scan ``folders`` (and the shipped folder), inspect ``extra_models`` and resolve ``wanted``
    (a name or path; ``fallback``, a path, when that name is unknown), as :class:`ModelScan`."""
    found, problems = model_files.scan_models(list(folders))
    scan = ModelScan(list(found), list(problems))
    known = {m.path for m in scan.models}
    for path in extra_models:
        if path in known:
            continue
        try:
            scan.models.append(model_files.inspect_model(path))
            known.add(path)
        except model_files.ModelError as exc:
            scan.problems.append(str(exc))
    if wanted:
        try:
            info = _resolve(wanted, fallback, folders, found)
        except model_files.ModelError as exc:
            scan.wanted_problem = str(exc)
        else:
            scan.wanted_path = info.path
            if info.path not in known:
                scan.models.append(info)
                scan.wanted_added = True
    return scan


def _resolve(wanted: str, fallback: str | None, folders, found: list):
    """``wanted`` among ``found`` or on disk; ``fallback`` if that fails and it is given."""
    try:
        return model_files.resolve_model(wanted, folders, scanned=found)
    except model_files.ModelError as exc:
        if not fallback:
            raise
        try:
            return model_files.resolve_model(fallback, folders, scanned=found)
        except model_files.ModelError:
            raise exc from None


def scan_models_job(folders=(), extra_models=(), wanted: str | None = None, fallback: str | None = None):
    """Job: :func:`list_models` on a helper thread (a cancel stops the job within a poll)."""
    return (yield from wait_in_thread(list_models, list(folders), list(extra_models), wanted, fallback,
                                      announce=Progress(0, 1, "scanning model folders")))
