"""``python main.py render <verb>``: render Gaussian-splat scenes, fit them to images, inspect files.

Heavy imports (torch, the render engine) happen inside the handlers so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from studio.cli.batch import add_executor_options
from studio.cli.common import CliError, add_force, add_verb, parse_pair, run_with_progress

PANEL = "render"


def _load_scene(path: str):
    from engines.render.io import SceneFileError, load_scene

    if Path(path).is_dir():
        raise CliError(f"{path} is a folder, not a scene file")
    try:
        return load_scene(path)
    except SceneFileError as exc:
        raise CliError(str(exc)) from exc


def _check_out(path: str, suffixes: tuple[str, ...], force: bool) -> None:
    """Refuse an ``--out`` with another suffix, or one that cannot be written (studio.export.check_target)."""
    from studio.export import ExportError, check_target

    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise CliError(f"--out must end with {' or '.join(suffixes)} (got {out.name})")
    try:
        check_target(out, force=force)
    except ExportError as exc:
        raise CliError(str(exc)) from None


def _parse_colour(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise CliError(f"--background must be R,G,B in [0,1] (got {text!r})") from exc
    if len(values) != 3 or not all(0.0 <= v <= 1.0 for v in values):
        raise CliError(f"--background must be three values in [0,1] (got {text!r})")
    return values  # type: ignore[return-value]


def cmd_image(args: argparse.Namespace) -> dict:
    """Render a scene from an orbit camera to a PNG."""
    az, el = parse_pair(args.orbit, float, "--orbit")
    width, height = parse_pair(args.size, int, "--size")
    if not (1 <= width <= 8192 and 1 <= height <= 8192):
        raise CliError("--size must be between 1 and 8192 pixels per side")
    _check_out(args.out, (".png",), args.force)
    background = _parse_colour(args.background)
    scene = _load_scene(args.scene)
    if len(scene) == 0:
        raise CliError(f"{Path(args.scene).name} contains no Gaussians")
    import numpy as np
    import torch

    from engines.device import get_device
    from engines.render.camera import frame_camera
    from engines.render.still import render_tiled
    from studio.export import make_provenance, save_png

    up = (0.0, -1.0, 0.0) if args.up == "-y" else {"y": (0, 1, 0), "z": (0, 0, 1), "-z": (0, 0, -1)}[args.up]
    camera = frame_camera(scene.means, az, el, width, height, args.fov, up, args.distance)
    device = get_device()
    dev_scene = scene
    if device != "cpu":
        from dataclasses import replace

        dev_scene = replace(scene, **{k: getattr(scene, k).to(device) for k in
                                      ("means", "quats", "log_scales", "opacity_logits", "sh")})
    if args.mode == "raygauss":  # volumetric ray casting (CPU, brute force per tile)
        from engines.render.raygauss import raygauss_still_job

        if args.slabs < 3:
            raise CliError("--slabs must be at least 3")
        job, engine, device = raygauss_still_job(scene, camera, background, args.sh_degree, args.slabs,
                                                 dtype=np.uint8), "engines.render.raygauss", "cpu"
    else:  # in tiles: memory stays bounded for big stills
        job = render_tiled(dev_scene, camera, args.aa, background, args.sh_degree, dtype=np.uint8, device=device)
        engine = "engines.render.rasterize"
    with torch.no_grad():
        pixels, coverage, visible = run_with_progress(job, quiet=args.json)
    params = {"orbit": [az, el], "size": [width, height], "aa": args.aa, "fov": args.fov, "up": args.up,
              "distance": args.distance, "background": list(background), "sh_degree": args.sh_degree,
              "camera": camera.as_dict(), "mode": args.mode}
    if args.mode == "raygauss":
        params["slabs"] = args.slabs
    prov = make_provenance(PANEL, engine, params, device=device, inputs=[args.scene])
    save_png(args.out, pixels, prov, force=args.force)
    return {"out": os.fspath(args.out), "gaussians": len(scene), "visible": visible,
            "size": [width, height], "aa": args.aa, "mode": args.mode, "coverage": round(coverage, 4)}


def cmd_fit(args: argparse.Namespace) -> dict:
    """Fit Gaussians or spheres to a photo (2D mode) or to posed views; write a 3DGS .ply."""
    from engines.render.fit import MAX_PRIMITIVES

    if args.count < 1 or args.steps < 1:
        raise CliError("--count and --steps must be at least 1")
    if args.max_count is not None and args.max_count < 1:
        raise CliError("--max-count must be at least 1")
    if max(args.count, args.max_count or 0) > MAX_PRIMITIVES:
        raise CliError(f"--count and --max-count must be at most {MAX_PRIMITIVES:,}")
    if not args.target and not args.views:
        raise CliError("give a TARGET image or --views FOLDER")
    if args.more_targets or args.executor is not None or (args.target and Path(args.target).is_dir()):
        from studio.cli.batch import fit_batch_verb

        return fit_batch_verb(args, [t for t in [args.target, *args.more_targets] if t])
    _check_out(args.out, (".ply",), args.force)
    import numpy as np

    from engines.render.fit import FitSettings, fit_job
    from engines.render.formats.posed import load_posed_views
    from engines.render.io import save_ply
    from studio.export import make_provenance, save_with_sidecar

    inputs = []
    init = None
    if args.views:
        try:
            views = load_posed_views(args.views, args.max_size if args.max_size else None)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        images, cameras, init = views.images, views.cameras, views.init
        inputs.append(args.views)
    else:
        from PIL import Image

        from engines.imagefile import RGB_COPY_BYTES, open_image

        path = Path(args.target)
        if not path.is_file():
            raise CliError(f"{path} does not exist")
        im = open_image(path, error=CliError, extra_bytes_per_pixel=RGB_COPY_BYTES).convert("RGB")
        images = [np.asarray(im)]
        if args.max_size and max(images[0].shape[:2]) > args.max_size:
            scale = args.max_size / max(images[0].shape[:2])
            images = [np.asarray(im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                                           Image.LANCZOS))]
        cameras = None
        inputs.append(args.target)
    settings = FitSettings(primitive=args.primitive, count=args.count, steps=args.steps, aa_mode=args.aa,
                           seed=args.seed, densify=not args.no_densify, sh_degree=args.sh_degree,
                           max_count=max(args.count, args.max_count or min(10 * args.count, MAX_PRIMITIVES)),
                           strategy=args.strategy,
                           renderer=args.renderer,
                           mip_filter3d=args.mip_3d)
    try:
        start = init.with_degree(args.sh_degree) if init is not None and args.primitive == "gaussians" else None
        result = run_with_progress(fit_job(images, cameras, settings, init=start), quiet=args.json)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    scene = result.gaussians()
    params = {k: v for k, v in vars(settings).items()}
    params.update({"views": args.views, "target": args.target})
    prov = make_provenance(PANEL, "engines.render.fit", params, seed=args.seed, device="cpu", inputs=inputs,
                           extra={"final_psnr": result.final_psnr,
                                  "cameras": [c.as_dict() for c in result.cameras]})
    save_with_sidecar(args.out, lambda tmp: save_ply(tmp, scene), prov, force=args.force)
    return {"out": os.fspath(args.out), "primitive": args.primitive, "count": len(scene), "steps": args.steps,
            "psnr_db": round(result.final_psnr, 2), "mode": result.mode}


def cmd_info(args: argparse.Namespace) -> dict:
    """Print statistics of a scene file."""
    scene = _load_scene(args.scene)
    import numpy as np

    lo, hi = scene.bounds()
    opac = scene.opacities.numpy() if len(scene) else np.zeros(1)
    scales = scene.scales.numpy() if len(scene) else np.zeros((1, 3))
    return {"file": os.fspath(args.scene), "format": Path(args.scene).suffix.lower().lstrip("."),
            "file_size_bytes": Path(args.scene).stat().st_size, "gaussians": len(scene),
            "sh_degree": scene.sh_degree, "bounds_min": [round(float(v), 5) for v in lo],
            "bounds_max": [round(float(v), 5) for v in hi],
            "opacity_mean": round(float(opac.mean()), 4), "scale_median": round(float(np.median(scales)), 6),
            "extra_properties": sorted(scene.extra)}


def cmd_convert(args: argparse.Namespace) -> dict:
    """Convert a scene between .ply, .compressed.ply, .splat and .spz (format from the --out name)."""
    from engines.render.formats import SCENE_SUFFIXES, save_scene, scene_format

    try:
        fmt = scene_format(args.out)
    except ValueError as exc:
        raise CliError(f"--out must end with {', '.join(SCENE_SUFFIXES)} (got {Path(args.out).name})") from exc
    _check_out(args.out, (Path(args.out).suffix.lower(),), args.force)
    scene = _load_scene(args.scene)
    if args.sh_degree is not None:
        scene = scene.with_degree(min(args.sh_degree, scene.sh_degree))
    from studio.export import make_provenance, save_with_sidecar

    prov = make_provenance(PANEL, "engines.render.formats", {"format": fmt, "sh_degree": scene.sh_degree},
                           inputs=[args.scene])
    save_with_sidecar(args.out, lambda tmp: save_scene(tmp, scene, fmt), prov, force=args.force)
    return {"out": os.fspath(args.out), "format": fmt, "gaussians": len(scene), "sh_degree": scene.sh_degree,
            "file_size_bytes": Path(args.out).stat().st_size}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the render verbs: image, fit, info, convert."""
    p = add_verb(subparsers, "image", cmd_image, "render a .ply/.splat scene to a PNG from an orbit camera")
    p.add_argument("scene", help="scene file (.ply 3DGS or compressed, .splat, .spz)")
    p.add_argument("--orbit", default="0,0",
                   help="azimuth,elevation in degrees around the scene centre (negative: --orbit=-30,10)")
    p.add_argument("--size", default="512,512", help="image width,height in pixels")
    p.add_argument("--aa", default="classic", choices=["classic", "mip", "analytic"], help="anti-aliasing mode")
    p.add_argument("--fov", type=float, default=50.0, help="horizontal field of view in degrees")
    p.add_argument("--distance", type=float, default=1.1, help="camera distance in units of the framing distance")
    p.add_argument("--up", default="-y", choices=["-y", "y", "z", "-z"], help="world up axis (3DGS/COLMAP: -y)")
    p.add_argument("--background", default="0,0,0", help="background colour R,G,B in [0,1]")
    p.add_argument("--sh-degree", type=int, default=None, choices=[0, 1, 2, 3], help="limit the SH degree")
    p.add_argument("--mode", default="splat", choices=["splat", "raygauss"],
                   help="splat: the exact rasterizer; raygauss: volumetric ray casting (slow, small scenes)")
    p.add_argument("--slabs", type=int, default=64, help="depth slabs per ray for --mode raygauss")
    p.add_argument("--out", required=True, help="output PNG")
    add_force(p)

    p = add_verb(subparsers, "fit", cmd_fit, "fit Gaussians or spheres to a photo or to posed views")
    p.add_argument("target", nargs="?", help="target image (2D photo-to-Gaussians mode)")
    p.add_argument("more_targets", nargs="*", metavar="TARGET",
                   help="more target images or folders: a batch (one .ply each; --out is then a folder)")
    p.add_argument("--views", help="posed views: a folder with cameras.json, a transforms.json (nerfstudio / "
                   "instant-ngp) or a COLMAP model (sparse/0; points3D start the Gaussians)")
    p.add_argument("--primitive", default="gaussians", choices=["gaussians", "spheres"])
    p.add_argument("--count", type=int, default=1000, help="initial number of primitives")
    p.add_argument("--steps", type=int, default=500, help="optimization steps")
    p.add_argument("--aa", default="classic", choices=["classic", "mip", "analytic"], help="anti-aliasing mode")
    p.add_argument("--sh-degree", type=int, default=0, choices=[0, 1, 2, 3])
    p.add_argument("--max-size", type=int, default=128,
                   help="downscale the photo (or each posed view) so its longer side is at most this")
    p.add_argument("--max-count", type=int, default=None,
                   help="cap on the Gaussian count (default 10x --count; the fixed budget with --strategy mcmc)")
    p.add_argument("--renderer", default="splat", choices=["splat", "raygauss"],
                   help="raygauss: fit through volumetric ray casting (slow; clone/split off, mcmc works)")
    p.add_argument("--strategy", default="default", choices=["default", "mcmc"],
                   help="density control: 3DGS clone/split/prune with opacity resets, or 3DGS-MCMC relocation")
    p.add_argument("--mip-3d", action="store_true",
                   help="Mip-Splatting 3D smoothing filter while fitting posed views (baked into the saved scene)")
    p.add_argument("--no-densify", action="store_true", help="disable clone/split/prune")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output .ply (3DGS layout) with a .json provenance sidecar")
    add_executor_options(p)
    add_force(p)

    p = add_verb(subparsers, "convert", cmd_convert,
                 "convert a scene: .ply, .compressed.ply (SuperSplat), .splat, .spz (Niantic), by the --out name")
    p.add_argument("scene", help="scene file (.ply, .compressed.ply, .splat, .spz)")
    p.add_argument("--sh-degree", type=int, default=None, choices=[0, 1, 2, 3], help="drop SH bands above this")
    p.add_argument("--out", required=True, help="output scene (.ply, .compressed.ply, .splat or .spz)")
    add_force(p)

    p = add_verb(subparsers, "info", cmd_info, "statistics of a .ply/.splat/.spz scene")
    p.add_argument("scene", help="scene file")
