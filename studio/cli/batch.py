"""Batch variants of the verbs: ``--executor serial|local|auto|ray://HOST:PORT --workers N``.

``codec rd``, ``generate image``, ``render fit`` and ``volume classify`` call
:func:`add_executor_options` when they register and hand over to the ``*_batch`` handlers here
when a batch is asked for (an executor, several inputs, or a sweep list). Each batch writes one
folder: the results, ``batch.json`` (task -> parameters, status, files, timings, host) and, for
RD sweeps, ``rd.csv``, ``rd.json`` and ``bd.csv``. Heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from studio.cli.common import CliError, run_with_progress

ENV_EXECUTOR = "SPECTRA_EXECUTOR"


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--executor`` and ``--workers`` (the batch options) to a verb."""
    group = parser.add_argument_group("batch options")
    group.add_argument("--executor", default=os.environ.get(ENV_EXECUTOR) or None,
                       help="run as a batch on: serial, local (Ray on this machine), auto (the cluster of "
                            "'ray start' here), ray://HOST:10001 or HOST:6379 (an existing Ray cluster); "
                            f"default ${ENV_EXECUTOR} or serial")
    group.add_argument("--workers", type=int, default=None,
                       help="tasks at once (local: Ray CPUs, default one per core; cluster: cap)")


def run_batch(batch, args: argparse.Namespace, folder, blobs: dict | None = None):
    """Run ``batch`` on the executor the options ask for; returns the BatchReport."""
    from engines.batch import batch_job, make_executor

    try:
        executor = make_executor(args.executor, args.workers)
        job = batch_job(batch, executor, folder, force=args.force, blobs=blobs)
        return run_with_progress(job, quiet=getattr(args, "json", False))
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def summary(report) -> dict:
    """The CLI result of a batch: folder, manifest, counts, executor, wall time, failures."""
    result = {"folder": str(report.folder), "manifest": str(report.manifest), "counts": report.summary,
              "executor": report.executor.get("executor"), "workers": report.executor.get("workers"),
              "startup_seconds": report.executor.get("startup_seconds"), "wall_seconds": report.wall_seconds}
    if report.failed:
        result["failed"] = [{"params": e["params"], "error": e["error"]} for e in report.failed]
    return result


def _batch_folder(out: str, force: bool) -> Path:
    from engines.batch import prepare_folder

    folder = Path(out)
    if folder.suffix and not folder.is_dir():
        raise CliError(f"a batch writes a folder: give --out a folder name (got {out})")
    if folder.exists() and any(folder.iterdir()) and not force:
        raise CliError(f"{folder} is not empty (use --force to add to it)")
    try:
        return prepare_folder(folder, force, create=False)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def expand_files(paths: list[str], suffixes) -> list[str]:
    """``paths`` with every folder replaced by its files having one of ``suffixes`` (sorted)."""
    out = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(str(f) for f in path.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
            if not found:
                raise CliError(f"folder {p} holds no files ending in {', '.join(suffixes)}")
            out += found
        else:
            out.append(p)
    return out


# -- codec rd ----------------------------------------------------------------------------------
def wants_rd_batch(args: argparse.Namespace) -> bool:
    """``codec rd`` runs as a batch with an executor or when ``--out`` is a folder."""
    out = Path(args.out)
    return args.executor is not None or out.is_dir() or not out.suffix


def rd_batch_verb(args: argparse.Namespace, specs: list[dict], qualities: list[float]) -> dict:
    """``codec rd`` as a batch: one task per image x codec x quality; tables + BD in the folder."""
    from engines.batch.sweeps import rd_batch, rd_tables
    from engines.codec.images import IMAGE_SUFFIXES

    images = expand_files(args.images, IMAGE_SUFFIXES)
    for p in images:
        if not p.startswith("sample:") and not Path(p).is_file():
            raise CliError(f"file not found: {p}")
    folder = _batch_folder(args.out, args.force)
    batch = rd_batch(images, specs, qualities, with_ms_ssim=not args.no_ms_ssim, keep_streams=args.keep_streams)
    report = run_batch(batch, args, folder)
    rows = [r["row"] for r in report.records()]
    result = summary(report)
    if rows:
        try:
            tables = rd_tables(rows, args.metric, args.anchor)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        from studio.export import atomic_write_bytes

        for name, data in tables.items():
            atomic_write_bytes(folder / name, data, force=True)
        result["tables"] = sorted(tables)
    result["rows"] = len(rows)
    return result


# -- generate image ----------------------------------------------------------------------------
def wants_generation_batch(args: argparse.Namespace) -> bool:
    """``generate image`` runs as a batch with an executor, ``--seeds``, ``--samplers`` or several ``--steps``."""
    return bool(args.executor is not None or args.seeds or args.samplers or len(args.steps) > 1)


def int_list(text: str) -> list[int]:
    """argparse type for ``4,10,25`` / ``0-99`` lists."""
    from engines.batch.sweeps import parse_int_list

    try:
        return parse_int_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


_INPUT_LABELS = {"lora": "LoRA file", "embedding": "embedding file", "vae": "VAE", "controlnet": "ControlNet",
                 "control": "control image"}


def generation_batch_verb(args: argparse.Namespace, model_dirs: list[str], settings: dict) -> dict:
    """``generate image`` sweep: one image per seed x sampler x steps; ``settings`` = every other
    GenerationParams field of the single run. The model and the files they name go by content."""
    from engines.batch.sweeps import generation_batch, generation_file_inputs, parse_int_list
    from engines.generation.models import ModelError, resolve_model

    try:
        seeds = parse_int_list(args.seeds, "--seeds") if args.seeds else [max(args.seed, 0)]
        info = resolve_model(args.model, model_dirs)
    except (ValueError, ModelError) as exc:
        raise CliError(str(exc)) from exc
    if Path(info.path).is_file():
        raise CliError("batches ship model folders to their workers; single-file models are not supported yet")
    samplers = [s.strip() for s in (args.samplers or args.sampler).split(",")] if (args.samplers or args.sampler) else [""]
    for s in samplers:
        if s and s not in info.samplers:
            raise CliError(f"sampler {s!r} does not suit model {info.name} (choose: {', '.join(info.samplers)})")
    if len(seeds) * len(samplers) * len(args.steps) > 100_000:
        raise CliError("that sweep has more than 100000 images")
    base = {k: v for k, v in settings.items() if k not in ("sampler", "steps", "seed", "batch")}
    try:
        files = generation_file_inputs(base)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    for role, path in files.items():
        if not Path(path).exists():
            kind = role.rstrip("0123456789")
            raise CliError(f"{_INPUT_LABELS.get(kind, kind)} not found: {path}")
    folder = _batch_folder(args.out, args.force)
    batch = generation_batch(base, seeds, samplers, args.steps, info.name, info.path, prefix=args.name)
    report = run_batch(batch, args, folder)
    result = summary(report)
    result["images"] = sum(e["status"] == "done" for e in report.tasks.values())
    return result


# -- generate 3d -------------------------------------------------------------------------------
def distill_batch_verb(args: argparse.Namespace, settings, model_dirs: list[str]) -> dict:
    """``generate 3d`` over several classes / prompts / seeds: one ``.ply`` (+ sidecar) each."""
    from dataclasses import asdict

    from engines.batch.sweeps import distill_batch
    from engines.generation.models import ModelError, resolve_model

    if args.image or args.turntable:
        raise CliError("batches distil classes or prompts; run image to 3D and turntables one at a time")
    try:
        info = resolve_model(args.model, model_dirs)
    except (ValueError, ModelError) as exc:
        raise CliError(str(exc)) from exc
    if Path(info.path).is_file():
        raise CliError("batches ship model folders to their workers; single-file models are not supported yet")
    prompts = [p.strip() for p in (args.prompts or "").split("|") if p.strip()]
    folder = _batch_folder(args.out, args.force)
    batch = distill_batch(asdict(settings), args.classes or [], prompts, args.seeds or [args.seed], info.name, info.path)
    report = run_batch(batch, args, folder)
    result = summary(report)
    result["scenes"] = [e["record"]["file"] for e in report.tasks.values() if e["status"] == "done"]
    return result


# -- render fit --------------------------------------------------------------------------------
def fit_batch_verb(args: argparse.Namespace, targets: list[str]) -> dict:
    """``render fit`` over several photos: one ``.ply`` (+ sidecar) per photo."""
    from engines.batch.sweeps import fit_batch
    from engines.codec.images import IMAGE_SUFFIXES
    from engines.render.fit import MAX_PRIMITIVES

    if args.views:
        raise CliError("batches fit photos (2D mode); run --views fits one at a time")
    targets = expand_files(targets, IMAGE_SUFFIXES)
    settings = {"primitive": args.primitive, "count": args.count, "steps": args.steps, "aa_mode": args.aa,
                "seed": args.seed, "densify": not args.no_densify, "sh_degree": args.sh_degree,
                "max_count": max(args.count, args.max_count or min(10 * args.count, MAX_PRIMITIVES)),
                "strategy": args.strategy,
                "mip_filter3d": args.mip_3d}
    folder = _batch_folder(args.out, args.force)
    report = run_batch(fit_batch(targets, settings, args.max_size), args, folder)
    result = summary(report)
    result["psnr_db"] = {e["record"]["file"]: e["record"]["psnr_db"] for e in report.tasks.values() if e["status"] == "done"}
    return result


# -- volume classify ---------------------------------------------------------------------------
def classify_batch_verb(args: argparse.Namespace, volumes: list[str]) -> dict:
    """``volume classify`` over several volumes with one strokes file: one label volume each."""
    from engines.batch.sweeps import classify_batch

    for v in volumes:
        if not Path(v).exists():
            raise CliError(f"file not found: {v} (batches read volume files or DICOM folders)")
    if not Path(args.strokes).is_file():
        raise CliError(f"strokes file not found: {args.strokes}")
    options = {"method": args.method, "aggregate": args.aggregate, "feature_factor": args.feature_factor,
               "max_voxels": args.max_voxels, "downsample": args.downsample}
    folder = _batch_folder(args.out, args.force)
    report = run_batch(classify_batch(volumes, args.strokes, options), args, folder)
    result = summary(report)
    result["labels"] = [e["record"]["file"] for e in report.tasks.values() if e["status"] == "done"]
    return result
