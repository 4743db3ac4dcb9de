"""``python main.py volume <verb>``: info, render, classify, phantom, tf (no heavy imports at module top).

FILE may be any volume file or DICOM folder, or ``phantom:`` / ``phantom:256`` /
``sample:phantom`` for the built-in CT phantom.
"""

from __future__ import annotations

import argparse

from studio.cli.batch import add_executor_options
from studio.cli.common import CliError, add_force, add_verb, parse_pair, run_with_progress


def _load(args: argparse.Namespace):
    from engines.volume.model import VolumeReadError
    from engines.volume.readers import open_volume

    if args.max_voxels < 1:
        raise CliError("--max-voxels must be at least 1")
    try:
        return open_volume(args.file, max_voxels=args.max_voxels, downsample=args.downsample)
    except VolumeReadError as exc:
        raise CliError(str(exc)) from exc


def _add_input(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="volume file, DICOM folder, or phantom:[SIZE]")
    parser.add_argument("--max-voxels", type=int, default=512**3, help="refuse (or downsample) volumes larger than this")
    parser.add_argument("--downsample", action="store_true", help="downsample volumes above --max-voxels instead of refusing")


def _info(args: argparse.Namespace) -> dict:
    volume = _load(args)
    result = volume.summary()
    result["file"] = args.file
    return result


def _tf_for(args, volume):
    from engines.volume.tf import default_tf, load_tf, preset

    if args.tf:
        try:
            return load_tf(args.tf, map_name=args.tf_map, value_range=volume.value_range())
        except (ValueError, OSError) as exc:
            raise CliError(str(exc)) from exc
    if args.mode != "dvr":
        return None
    if volume.modality == "CT":
        return preset("CT-Bone")
    lo, hi = volume.value_range()
    return default_tf(lo, hi)


def _render(args: argparse.Namespace) -> dict:
    from engines.volume.raycast import check_view, render_job
    from studio.export import ExportError, check_target, make_provenance, save_png

    azimuth, elevation = parse_pair(args.view, float, "--view")
    if args.size < 8 or args.size > 4096:
        raise CliError("--size must be between 8 and 4096")
    try:
        check_view(azimuth, elevation, args.step, args.zoom)
        check_target(args.out, (".png",), force=args.force)
    except ValueError as exc:  # ExportError is one
        raise CliError(str(exc)) from None
    volume = _load(args)
    tf = _tf_for(args, volume)
    shading = None if args.shading == "auto" else args.shading == "on"
    try:
        result = run_with_progress(render_job(
            volume, tf=tf, mode=args.mode, azimuth=azimuth, elevation=elevation, size=args.size,
            step=args.step, shading=shading, zoom=args.zoom,
        ))
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    parameters = {
        "file": args.file, "tf": tf.to_dict() if tf is not None else None, "mode": args.mode,
        "view": [azimuth, elevation], "size": args.size, "step": args.step, "shading": result.info["shading"],
        "zoom": args.zoom,
    }
    provenance = make_provenance("volume", "engines.volume.raycast.render", parameters,
                                 device=result.info["device"], inputs=[args.file])
    try:
        path = save_png(args.out, result.image, provenance, force=args.force)
    except ExportError as exc:
        raise CliError(str(exc)) from exc
    return {"out": str(path), "mode": args.mode, "size": args.size, "samples": result.info["samples"],
            "seconds": round(result.info["seconds"], 3), "tf": tf.name if tf is not None else "grey window"}


def _classify(args: argparse.Namespace) -> dict:
    import numpy as np

    from engines.volume.classify import classify_job, features_job, load_strokes
    from engines.volume.writers import save_nifti
    from studio.export import ExportError, make_provenance

    if args.more_files or args.executor is not None:
        from studio.cli.batch import classify_batch_verb

        return classify_batch_verb(args, [args.file, *args.more_files])
    name = args.out.lower()
    if not (name.endswith((".nii", ".nii.gz"))):
        raise CliError("--out must end in .nii or .nii.gz")
    volume = _load(args)
    try:
        strokes = load_strokes(args.strokes)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    try:
        features = run_with_progress(features_job(volume.data, factor=args.feature_factor,
                                                  extractor=args.feature_model))
        result = run_with_progress(classify_job(features, strokes, method=args.method, aggregate=args.aggregate))
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    parameters = {"file": args.file, "strokes": args.strokes, "method": args.method, "aggregate": args.aggregate,
                  "feature_factor": features.factor, "feature_model": args.feature_model,
                  "classes": [c.name for c in strokes.classes]}
    provenance = make_provenance("volume", "engines.volume.classify", parameters, inputs=[args.file, args.strokes])
    try:
        path = save_nifti(args.out, result.labels, provenance, like=volume, force=args.force)
    except ExportError as exc:
        raise CliError(str(exc)) from exc
    counts = np.bincount(result.labels.ravel(), minlength=len(strokes.classes) + 1)
    return {"out": str(path), "method": args.method,
            "voxels_per_class": {"unclassified": int(counts[0]),
                                 **{c.name: int(counts[i + 1]) for i, c in enumerate(strokes.classes)}}}


def _phantom(args: argparse.Namespace) -> dict:
    from engines.volume.phantom import LABELS, make_phantom
    from engines.volume.writers import save_nifti
    from studio.export import ExportError, check_target, make_provenance

    if not 16 <= args.size <= 512:
        raise CliError("--size must be between 16 and 512")
    try:  # both outputs, before either is written
        for path in (args.out, args.labels):
            if path:
                check_target(path, (".nii", ".nii.gz"), force=args.force, sidecar=True)
    except ExportError as exc:
        raise CliError(str(exc)) from None
    volume, labels = make_phantom(args.size, seed=args.seed)
    params = {"size": args.size, "seed": args.seed}
    written = []
    try:
        written.append(str(save_nifti(args.out, volume.data, make_provenance("volume", "engines.volume.phantom", params, seed=args.seed), like=volume, force=args.force)))
        if args.labels:
            written.append(str(save_nifti(args.labels, labels, make_provenance("volume", "engines.volume.phantom", {**params, "labels": LABELS}, seed=args.seed), like=volume, force=args.force)))
    except (ExportError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    return {"written": written, "labels": {str(k): v for k, v in LABELS.items()}}


def _tf(args: argparse.Namespace) -> dict:
    from engines.volume.tf import load_tf
    from engines.volume.tf_exchange import tf_file_map_names, write_tf_file
    from studio.export import ExportError, make_provenance

    if args.list:
        return {"file": args.input, "maps": tf_file_map_names(args.input)}
    if not args.out:
        raise CliError("--out is required (or use --list)")
    value_range = parse_pair(args.range, float, "--range") if args.range else None
    if value_range is not None and not value_range[1] > value_range[0]:
        raise CliError("--range must be LO,HI with HI > LO")
    try:
        tf = load_tf(args.input, map_name=args.map, value_range=value_range)
        provenance = make_provenance("volume", "engines.volume.tf_exchange",
                                     {"input": args.input, "map": args.map, "format": args.format, "range": args.range},
                                     inputs=[args.input] if not args.input.lower().startswith("preset:") else [])
        path = write_tf_file(tf, args.out, fmt=args.format, force=args.force, provenance=provenance)
    except (ValueError, OSError, ExportError) as exc:
        raise CliError(str(exc)) from exc
    return {"out": str(path), "name": tf.name, "color_points": len(tf.color), "opacity_points": len(tf.opacity)}


def register(subparsers) -> None:
    """Add the volume verbs."""
    p = add_verb(subparsers, "info", _info, "print shape, spacing, value range and metadata of a volume")
    _add_input(p)

    p = add_verb(subparsers, "render", _render, "render a volume with the reference ray caster to a PNG")
    _add_input(p)
    p.add_argument("--tf", default=None, help="preset:NAME (any of Slicer's 25, e.g. CT-Bone, MR-Default), a TF .json, Slicer .vp, ParaView colormap .json, Inviwo .itf or .1dt")
    p.add_argument("--tf-map", default=None, help="which colour map of a ParaView JSON holding several")
    p.add_argument("--mode", choices=["dvr", "mip", "minip", "avg"], default="dvr", help="compositing mode")
    p.add_argument("--view", default="30,20", help="camera azimuth,elevation in degrees")
    p.add_argument("--size", type=int, default=512, help="image width and height in pixels")
    p.add_argument("--step", type=float, default=1.0, help="sample distance in voxels (opacity is corrected)")
    p.add_argument("--zoom", type=float, default=1.0, help="zoom factor (1 = the whole volume fits)")
    p.add_argument("--shading", choices=["auto", "on", "off"], default="auto", help="gradient shading (auto = the TF's setting)")
    p.add_argument("--out", required=True, help="output PNG (with provenance)")
    add_force(p)

    p = add_verb(subparsers, "classify", _classify, "classify voxels from painted strokes and write a label volume")
    _add_input(p)
    p.add_argument("more_files", nargs="*", metavar="FILE",
                   help="more volumes: a batch (one label volume each; --out is then a folder)")
    add_executor_options(p)
    p.add_argument("--strokes", required=True, help='strokes JSON: {"classes": [...], "strokes": [{"class": 0, "voxels": [[z, y, x], ...]}]}')
    p.add_argument("--method", choices=["similarity", "forest"], default="forest", help="random forest on the painted voxels, or cosine similarity (Engel et al.)")
    p.add_argument("--aggregate", choices=["mean", "max"], default="mean", help="how similarities to a class's annotations combine")
    p.add_argument("--feature-factor", type=int, default=0, help="compute features every N voxels (0 = automatic)")
    p.add_argument("--feature-model", default=None, help="optional local TorchScript feature extractor (1,1,z,y,x) -> (1,C,z,y,x)")
    p.add_argument("--out", required=True, help="label volume (.nii.gz); 0 = unclassified, i+1 = class i")
    add_force(p)

    p = add_verb(subparsers, "phantom", _phantom, "write the procedural CT phantom (and its labels) as NIfTI")
    p.add_argument("--size", type=int, default=128, help="voxels per side")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--out", required=True, help="HU volume (.nii.gz)")
    p.add_argument("--labels", default=None, help="also write the label volume (.nii.gz)")
    add_force(p)

    p = add_verb(subparsers, "tf", _tf, "convert a transfer function between formats (.vp, ParaView .json, .itf, .1dt, ours)")
    p.add_argument("input", metavar="TF", help="preset:NAME or a TF file (.json, .vp, .itf, .1dt)")
    p.add_argument("--out", default=None, help="output: .vp (Slicer), .pv.json (ParaView) or .json (Spectra Studio)")
    p.add_argument("--format", choices=["auto", "vp", "paraview", "spectra"], default="auto", help="output format (auto = by suffix)")
    p.add_argument("--map", default=None, help="colour map name when a ParaView file holds several")
    p.add_argument("--range", default=None, help="LO,HI value range for normalised positions (.itf, .1dt)")
    p.add_argument("--list", action="store_true", help="list the colour maps in a ParaView file and exit")
    add_force(p)
