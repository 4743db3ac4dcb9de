"""``python main.py generate <verb>``: image generation headless.

Verbs: ``image`` (txt2img / class-conditional), ``edit`` (img2img, inpainting, ILVR),
``3d`` (score distillation into Gaussians/spheres, image → 3D), ``models`` (list usable models),
``train-digits`` (rebuild the shipped digits model).
Heavy imports (torch, diffusers, the engine) happen inside the handlers.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from engines.distill3d.settings import BACKGROUNDS, METHODS, PRIMITIVES, DistillSettings, validate
from engines.generation.params import (
    CONTROL_PREPROCESSORS,
    HIRES_MODES,
    LORA_MODES,
    PRECISION_PRESETS,
    GenerationParams,
)
from studio.cli.batch import add_executor_options, int_list
from studio.cli.common import CliError, add_force, add_verb, run_with_progress

#: the engine's defaults, which the options' defaults are (edit's --strength aside: 0.75 there)
_DEFAULT = GenerationParams()
#: ``generate 3d``'s options default to these
_DEFAULT_3D = DistillSettings()


def _add_model_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", action="append", default=[], metavar="DIR",
                        help="extra folder to scan for models (repeatable; also $SPECTRA_MODEL_DIRS, ':'-separated)")


def _model_dirs(args) -> list:
    dirs = list(getattr(args, "model_dir", []) or [])
    env = os.environ.get("SPECTRA_MODEL_DIRS", "")
    dirs += [d for d in env.split(os.pathsep) if d]
    return dirs


def _add_generation_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=_DEFAULT.model, help="model name (see 'generate models') or path")
    parser.add_argument("--prompt", default=_DEFAULT.prompt, help="text prompt (text-conditioned models)")
    parser.add_argument("--negative-prompt", default=_DEFAULT.negative_prompt, help="negative prompt")
    parser.add_argument("--class", dest="class_label", type=int, default=_DEFAULT.class_label,
                        help="class label (class-conditional models)")
    parser.add_argument("--sampler", default=_DEFAULT.sampler, help="sampler name (default: the model's); see 'generate models'")
    parser.add_argument("--lora", action="append", default=[], metavar="FILE[=WEIGHT]",
                        help="LoRA .safetensors (kohya/A1111 or diffusers/PEFT) applied for this run; repeatable")
    parser.add_argument("--lora-mode", default=_DEFAULT.lora_mode, choices=LORA_MODES,
                        help="fused: merged into the weights for the run; unfused: added as layer hooks, weights untouched")
    parser.add_argument("--embedding", action="append", default=[], metavar="FILE",
                        help="textual-inversion embedding (A1111 .pt/.safetensors: prompt uses its file name; "
                             "diffusers learned_embeds); repeatable")
    parser.add_argument("--vae", default=_DEFAULT.vae, metavar="PATH", help="use this VAE (folder or .safetensors) instead of the model's")
    parser.add_argument("--precision", default=_DEFAULT.precision,
                        choices=["", *PRECISION_PRESETS],
                        help="low-memory: attention slicing + VAE tiling; int8: dynamic int8 denoiser/text encoder "
                             "(CPU); fp8 / int4: weight-only quantized denoiser/text encoder; cpu-offload: model "
                             "offload (CUDA GPU only)")
    parser.add_argument("--hires-scale", type=float, default=_DEFAULT.hires_scale, help="hires fix: upscale by this factor (1..4) ...")
    parser.add_argument("--hires-strength", type=float, default=_DEFAULT.hires_strength, help="... and refine with img2img at this strength")
    parser.add_argument("--hires-mode", default=_DEFAULT.hires_mode, choices=HIRES_MODES,
                        help="hires fix upscales the image (pixel, bicubic) or the final latents (bicubic / nearest)")
    parser.add_argument("--tile-size", type=int, default=_DEFAULT.tile_size,
                        help="tiled denoising and VAE: tile size in latent pixels (multiple of 8; 0 = off)")
    parser.add_argument("--tile-overlap", type=int, default=_DEFAULT.tile_overlap, help="pixels shared by neighbouring tiles")
    parser.add_argument("--controlnet", default=_DEFAULT.controlnet, metavar="PATH",
                        help="ControlNet (diffusers folder or .safetensors) for SD-family models")
    parser.add_argument("--control-image", default=_DEFAULT.control_image, metavar="IMG", help="the ControlNet's control image")
    parser.add_argument("--control-preprocessor", default=_DEFAULT.control_preprocessor, choices=CONTROL_PREPROCESSORS,
                        help="turn the control image into edges / strokes / normalised depth / a blurred tile first")
    parser.add_argument("--control-options", default=_DEFAULT.control_options, metavar="K=V;...",
                        help="pre-processor options: canny low/high/sigma, scribble threshold/invert, depth invert, "
                             "tile factor/blur (e.g. 'low=50;high=150')")
    parser.add_argument("--control-scale", type=float, default=_DEFAULT.control_scale, help="ControlNet residual scale (0..5)")
    parser.add_argument("--control-start", type=float, default=_DEFAULT.control_start, help="ControlNet acts from this step fraction ...")
    parser.add_argument("--control-end", type=float, default=_DEFAULT.control_end, help="... to this one (0 <= start < end <= 1)")
    parser.add_argument("--steps", type=int_list, default=[_DEFAULT.steps], help="sampling steps (0 = model default); a list such as 4,10,25 sweeps")
    parser.add_argument("--cfg", type=float, default=_DEFAULT.cfg, help="classifier-free guidance scale (-1 = model default)")
    parser.add_argument("--seed", type=int, default=_DEFAULT.seed, help="seed (-1 = random; image i of a batch uses seed+i)")
    parser.add_argument("--batch", type=int, default=_DEFAULT.batch, help="number of images")
    parser.add_argument("--width", type=int, default=_DEFAULT.width, help="width in pixels (0 = model default)")
    parser.add_argument("--height", type=int, default=_DEFAULT.height, help="height in pixels (0 = model default)")
    parser.add_argument("--out", default=".", help="output folder")
    parser.add_argument("--name", default="gen", help="file name prefix: <name>-<seed>.png")
    _add_model_dir(parser)
    add_force(parser)


def register(subparsers) -> None:
    """Add the generate verbs."""
    p = add_verb(subparsers, "image", _image, "generate images from a prompt or a class label")
    _add_generation_args(p)
    p.add_argument("--seeds", default=None, help="sweep: seeds such as 0-99 or 1,5,9 (one image each)")
    p.add_argument("--samplers", default=None, help="sweep: samplers, comma separated")
    add_executor_options(p)
    p = add_verb(subparsers, "edit", _edit, "img2img (SDEdit strength), inpainting with a mask, ILVR reference guidance")
    _add_generation_args(p)
    p.add_argument("--init", required=False, default=None, help="input image (img2img / inpainting)")
    p.add_argument("--mask", default=None, help="mask image: white = regenerate, black = keep")
    p.add_argument("--reference", default=None, help="ILVR reference image")
    p.add_argument("--ilvr-n", type=int, default=_DEFAULT.ilvr_n, help="ILVR low-pass factor N (>= 2; larger keeps less of the reference)")
    p.add_argument("--strength", type=float, default=0.75, help="SDEdit strength: 0 keeps the input, 1 ignores it")
    _register_3d(subparsers)
    p = add_verb(subparsers, "models", _models, "list the models found (shipped and in --model-dir folders)")
    _add_model_dir(p)
    p = add_verb(subparsers, "train-digits", _train_digits, "retrain the shipped digits flow model (about 30 min on one CPU thread)")
    p.add_argument("--out", default=None, help="output model folder (default: the shipped assets/models/digits-flow)")
    p.add_argument("--steps", type=int, default=1500, help="training steps")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, default=None, help="stop (and save) after this many minutes")
    p.add_argument("--init-from", default=None, help="continue from a saved model folder")
    add_force(p)


def _read_image(path: str, role: str):
    import numpy as np

    from engines.imagefile import RGB_COPY_BYTES, ImageFileError, open_image

    if not path:
        return None
    if not Path(path).is_file():
        raise CliError(f"{role} image not found: {path}")
    try:
        image = open_image(path, extra_bytes_per_pixel=RGB_COPY_BYTES)
    except ImageFileError as exc:
        raise CliError(f"{role} image: {exc}") from None
    return np.asarray(image.convert("L" if role == "mask" else "RGB"))


def _read_control(path: str):
    """The control image file (16-bit depth kept), or None when no path is given."""
    from engines.generation.controlnet import read_control_image

    if not path:
        return None
    if not Path(path).is_file():
        raise CliError(f"control image not found: {path}")
    try:
        return read_control_image(path)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def generation_settings(args) -> dict:
    """The GenerationParams fields the options of ``generate image`` / ``edit`` set, except model,
    seed and batch (the first ``--steps`` value); shared by single runs and sweeps."""
    return dict(
        prompt=args.prompt, negative_prompt=args.negative_prompt, class_label=args.class_label,
        sampler=args.sampler, steps=args.steps[0], cfg=args.cfg, width=args.width, height=args.height,
        strength=getattr(args, "strength", _DEFAULT.strength), ilvr_n=getattr(args, "ilvr_n", _DEFAULT.ilvr_n),
        loras=";".join(args.lora), lora_mode=args.lora_mode, embeddings=";".join(args.embedding), vae=args.vae,
        precision=args.precision, hires_scale=args.hires_scale, hires_strength=args.hires_strength,
        hires_mode=args.hires_mode, tile_size=args.tile_size, tile_overlap=args.tile_overlap,
        controlnet=args.controlnet, control_image=args.control_image, control_preprocessor=args.control_preprocessor,
        control_scale=args.control_scale, control_start=args.control_start, control_end=args.control_end,
        control_options=args.control_options,
    )


def _check_out_folder(out: Path) -> None:
    """Refuse an ``--out`` folder that cannot be made: it, or the nearest part of it that exists, is a file."""
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise CliError(f"--out must be a folder, but {existing} is a file")


def _run(args, init=None, mask=None, reference=None, inputs=None) -> dict:
    from engines.generation.api import GenerationParams, generate_job, provenance_for
    from engines.generation.models import ModelError
    from studio.export import ExportError, save_png

    out = Path(args.out)
    _check_out_folder(out)
    params = GenerationParams(model=args.model, seed=args.seed, batch=args.batch, **generation_settings(args))
    if params.seed >= 0 and not args.force:
        for i in range(max(1, params.batch)):
            target = out / f"{args.name}-{params.seed + i}.png"
            if target.exists():
                raise CliError(f"{target} exists (use --force to overwrite)")
    control = None
    if params.controlnet or params.control_image:
        control = _read_control(params.control_image)
        inputs = dict(inputs or {}, control=params.control_image)
    try:
        result = run_with_progress(generate_job(params, init=init, mask=mask, reference=reference,
                                                model_folders=_model_dirs(args), control=control))
    except ModelError as exc:
        raise CliError(str(exc)) from None
    files = []
    try:
        out.mkdir(parents=True, exist_ok=True)  # only now that there is something to write
        for i in range(result.images.shape[0]):
            target = out / f"{args.name}-{result.seeds[i]}.png"
            save_png(target, result.images[i], provenance_for(result, i, inputs), force=args.force)
            files.append(str(target))
    except (ExportError, OSError) as exc:
        raise CliError(str(exc)) from None
    p = result.params
    return {"files": files, "seeds": result.seeds, "model": result.model["name"], "mode": result.mode,
            "sampler": p["sampler"], "steps": p["steps"], "cfg": p["cfg"], "size": [p["width"], p["height"]],
            "seconds": result.seconds, "device": result.device}


def _image(args) -> dict:
    from studio.cli.batch import generation_batch_verb, wants_generation_batch

    if wants_generation_batch(args):
        return generation_batch_verb(args, _model_dirs(args), generation_settings(args))
    return _run(args)


def _edit(args) -> dict:
    if len(args.steps) > 1:
        raise CliError("edit takes one --steps value (sweeps: generate image)")
    if not args.init and not args.reference:
        raise CliError("edit needs --init IMG (img2img/inpainting) and/or --reference IMG --ilvr-n N")
    if args.mask and not args.init:
        raise CliError("--mask needs --init")
    if args.reference and args.ilvr_n < 2:
        raise CliError("--reference needs --ilvr-n N with N >= 2")
    init = _read_image(args.init, "init")
    mask = _read_image(args.mask, "mask")
    reference = _read_image(args.reference, "reference")
    if not args.init:
        args.strength = 1.0
    inputs = {"init": args.init, "mask": args.mask, "reference": args.reference}
    return _run(args, init=init, mask=mask, reference=reference, inputs=inputs)


def _models(args) -> dict:
    from engines.generation.models import scan_models

    models, problems = scan_models(_model_dirs(args))
    rows = [{"name": m.name, "kind": m.kind, "prediction": m.prediction_type, "conditioning": m.conditioning,
             "size": f"{m.size[1]}x{m.size[0]}", "samplers": m.samplers, "default_sampler": m.default_sampler,
             "path": m.path} for m in models]
    from engines.device import get_device
    from engines.generation.precision import PRESETS, preset_unavailable

    device = get_device()  # which precision presets can run here, and why not
    presets = {name: preset_unavailable(name, device) or "available" for name in PRESETS}
    return {"models": rows, "problems": problems, "precision_presets": presets}


def _train_digits(args) -> dict:
    import torch

    from engines.generation.models import SHIPPED_MODELS_DIR, clear_cache
    from engines.generation.train_digits import train_digits_job

    out = Path(args.out) if args.out else SHIPPED_MODELS_DIR / "digits-flow"
    if out.exists() and not args.force:
        raise CliError(f"{out} exists (use --force to overwrite)")
    if args.steps < 1:
        raise CliError("--steps must be at least 1")
    if args.init_from and not (Path(args.init_from) / "unet").is_dir():
        raise CliError(f"--init-from: {args.init_from} is not a saved digits model folder (no unet/ in it)")
    if args.threads is None:
        torch.set_num_threads(1)
    result = run_with_progress(train_digits_job(out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                                seed=args.seed, max_minutes=args.max_minutes,
                                                init_from=args.init_from))
    clear_cache()
    return result


def _pair_text(pair: tuple) -> str:
    return ",".join(f"{v:g}" for v in pair)


def _register_3d(subparsers) -> None:
    d = _DEFAULT_3D
    p = add_verb(subparsers, "3d", _distill_3d, "text/class/image to 3D Gaussians or spheres by score distillation")
    p.add_argument("--model", default=d.model, help="model name (see 'generate models') or path")
    p.add_argument("--class", dest="class_label", type=int, default=d.class_label,
                   help="class label (class-conditional models)")
    p.add_argument("--prompt", default=d.prompt, help="text prompt (text-conditioned models; view suffixes are added)")
    p.add_argument("--negative-prompt", default=d.negative_prompt, help="negative prompt (text models)")
    p.add_argument("--image", default=None, help="reference image for image to 3D (alpha or automatic mask)")
    p.add_argument("--method", default=d.method, help=" | ".join(METHODS))
    p.add_argument("--steps", type=int, default=d.steps, help="optimisation steps")
    p.add_argument("--guidance", type=float, default=d.guidance, help="CFG scale, diffusers convention u + s(c - u)")
    p.add_argument("--primitive", default=d.primitive, help=" | ".join(PRIMITIVES))
    p.add_argument("--count", type=int, default=d.count, help="initial number of primitives")
    p.add_argument("--sh-degree", type=int, default=d.sh_degree, help="SH degree of the Gaussians' colour (0 or 1)")
    p.add_argument("--views", type=int, default=d.views_per_step, help="random orbit views per step")
    p.add_argument("--azimuth", default=_pair_text(d.azimuth), help="training azimuth range in degrees (A,B)")
    p.add_argument("--elevation", default=_pair_text(d.elevation), help="training elevation range in degrees (A,B)")
    p.add_argument("--background", default=d.background, help=" | ".join(BACKGROUNDS))
    p.add_argument("--fourier", action="store_true", help="image to 3D: score distillation on the Fourier amplitude")
    p.add_argument("--seed", type=int, default=d.seed, help="seed (same seed, same .ply)")
    p.add_argument("--out", required=True, help="output .ply (3DGS layout) with a .json provenance sidecar")
    p.add_argument("--turntable", default=None, help="also write a 36-frame turntable (.webp or .gif)")
    p.add_argument("--classes", type=int_list, default=None, help="batch: class labels such as 0-9 (one .ply each)")
    p.add_argument("--prompts", default=None, help="batch: prompts separated by '|' (one .ply each)")
    p.add_argument("--seeds", type=int_list, default=None, help="batch: seeds such as 0-3 (per class or prompt)")
    add_executor_options(p)
    _add_model_dir(p)
    add_force(p)


def _distill_settings(args) -> DistillSettings:
    """The DistillSettings the ``generate 3d`` options describe (checked: CliError on a bad value)."""
    from studio.cli.common import parse_pair

    settings = DistillSettings(
        model=args.model, class_label=args.class_label, prompt=args.prompt, negative_prompt=args.negative_prompt,
        method=args.method, steps=args.steps, guidance=args.guidance, primitive=args.primitive, count=args.count,
        sh_degree=args.sh_degree, views_per_step=args.views, azimuth=parse_pair(args.azimuth, float, "--azimuth"),
        elevation=parse_pair(args.elevation, float, "--elevation"), background=args.background,
        fourier=args.fourier, seed=args.seed)
    try:
        validate(settings)
    except ValueError as exc:
        raise CliError(_as_option_message(str(exc), args)) from None
    return settings


def _as_option_message(message: str, args) -> str:
    """``message`` about a DistillSettings field, naming the option that sets it instead
    ("views_per_step must be …" → "--views must be …"); other messages unchanged."""
    field = message.split(" ", 1)[0]
    dest = {"views_per_step": "views"}.get(field, field)
    if field.isidentifier() and field in DistillSettings.__dataclass_fields__ and hasattr(args, dest):
        return "--" + dest.replace("_", "-") + message[len(field):]
    return message


def _distill_3d(args) -> dict:
    from engines.distill3d import distill_job
    from engines.generation.models import ModelError
    from studio.export import ExportError
    from studio.export_3d import check_outputs, save_distill_outputs

    settings = _distill_settings(args)
    if args.class_label is not None and args.prompt:
        raise CliError("give either --class or --prompt, not both")
    if args.classes or args.prompts or args.seeds or args.executor is not None:
        from studio.cli.batch import distill_batch_verb

        return distill_batch_verb(args, settings, _model_dirs(args))
    try:
        check_outputs(args.out, args.turntable, args.force)
    except ExportError as exc:
        raise CliError(str(exc)) from None
    reference = None
    if args.image:
        import numpy as np

        from engines.imagefile import RGB_COPY_BYTES, ImageFileError, open_image

        if not Path(args.image).is_file():
            raise CliError(f"reference image not found: {args.image}")
        try:
            image = open_image(args.image, extra_bytes_per_pixel=RGB_COPY_BYTES)
            reference = np.asarray(image.convert("RGBA" if "A" in image.getbands() else "RGB"))
        except (ImageFileError, OSError, ValueError) as exc:
            raise CliError(f"reference image: {exc}") from None
    try:
        result = run_with_progress(distill_job(settings, reference, model_folders=_model_dirs(args)), quiet=args.json)
        written = save_distill_outputs(result, args.out, args.turntable, force=args.force, reference=args.image)
    except (ModelError, ValueError, OSError) as exc:  # ExportError is a ValueError
        raise CliError(str(exc)) from None
    out = {"out": written["ply"], "method": args.method, "primitive": args.primitive, "count": len(result.scene),
           "steps": args.steps, "seconds": round(result.seconds, 1), "model": result.model["name"]}
    if "turntable" in written:
        out["turntable"] = written["turntable"]
    if result.reference_psnr is not None:
        out["reference_psnr_db"] = round(result.reference_psnr, 2)
    return out
