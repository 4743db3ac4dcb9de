"""``python main.py codec <verb>``: figures of merit, encode, inspect, RD sweeps.

Heavy imports (numpy, Pillow, the engine) happen inside the handlers so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from studio.cli.batch import add_executor_options
from studio.cli.common import CliError, add_force, add_verb, run_with_progress

_TRANSFORMS = ("dct", "wht", "sdct", "rdct", "bas2008", "jam-rdct", "minangle")
_CODECS = ("block", "jpeg", "webp", "avif", "jpeg2000", "jpegxl", "vq", "learned")


def _codec_arg(text: str) -> str:
    """``--codec``: one of :data:`_CODECS`, or ``learned:MODEL`` (a shipped name or a .pt file)."""
    name, _, model = text.partition(":")
    if name not in _CODECS or (model and name != "learned"):
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(_CODECS)}, or learned:MODEL)")
    return text


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the codec verbs."""
    p = add_verb(subparsers, "fom", _fom, "figures of merit of every transform at block length N (AR(1) model)")
    p.add_argument("--N", type=int, default=8, choices=(4, 8, 16, 32, 64), help="block length")
    p.add_argument("--alphabets", default="1,2,3", help="minimal-angle alphabet bounds M (entries 0..±M), comma separated")
    p.add_argument("--rho", type=float, default=0.95, help="AR(1) correlation coefficient")
    p.add_argument("--show-matrix", default=None, metavar="NAME", help="also print the integer matrix T of this transform (e.g. minangle-m2)")

    p = add_verb(subparsers, "encode", _encode, "encode an image (block codec or a real codec) and report bpp and quality metrics")
    p.add_argument("image", help="input image file, or sample:astronaut")
    p.add_argument("--out", required=True, help="output file (bitstream .ssbc for the block codec, .jpg/.webp/... otherwise)")
    p.add_argument("--codec", default="block", type=_codec_arg, help=f"codec: {', '.join(_CODECS)}; learned:MODEL picks a learned model")
    p.add_argument("--quality", type=float, default=75, help="quality 1..100 (IJG scaling for block/jpeg)")
    p.add_argument("--transform", default="dct", choices=_TRANSFORMS, help="block codec: transform")
    p.add_argument("--N", type=int, default=8, choices=(4, 8, 16, 32, 64), help="block codec: block length")
    p.add_argument("--alphabet", type=int, default=2, choices=(1, 2, 3), help="block codec: minimal-angle alphabet bound")
    p.add_argument("--preset", default="jpeg", choices=("jpeg", "flat"), help="block codec: quantization preset")
    p.add_argument("--qmatrix", default=None, help="block codec: JSON file with an 8x8 or NxN luma matrix (or {\"luma\":…, \"chroma\":…})")
    p.add_argument("--subsampling", default="4:2:0", choices=("4:4:4", "4:2:0", "4:2:2"), help="chroma subsampling (4:2:2 for jpeg only)")
    p.add_argument("--optimize", action="store_true", help="jpeg: optimized Huffman tables")
    p.add_argument("--progressive", action="store_true", help="jpeg: progressive")
    p.add_argument("--recon", default=None, help="also save the decoded image as PNG here")
    p.add_argument("--block-stats", default=None, help="block codec: per-block statistics CSV (plane,x,y,w,h,bits,nonzero)")
    add_force(p)

    p = add_verb(subparsers, "train", _train, "train a learned codec (GDN/IGDN, factorized prior, scale hyperprior, or the JPEG-initialised dct kind) on images")
    p.add_argument("images", nargs="*", help="training images (default: the bundled sample photos, astronaut and coffee held out)")
    p.add_argument("--out", required=True, help="model file (.pt); use it as --codec learned:FILE")
    p.add_argument("--kind", default="hyperprior", choices=("hyperprior", "factorized", "dct"),
                   help="dct: YCbCr + 8x8 DCT + learned steps + GDN, mean-scale hyperprior, one model for all rates")
    p.add_argument("--N", type=int, default=48, help="transform channels (dct: hyperprior channels)")
    p.add_argument("--M", type=int, default=64, help="latent channels (dct: always 192)")
    p.add_argument("--lambda", dest="lam", type=float, default=None,
                   help="rate-distortion weight: L = lambda 255^2 MSE + bpp (default 0.013; dct: 0.1 at step multiplier 1)")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--patch", type=int, default=128, help="training crop size")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default=None, help="continue training this model (.pt file or shipped name)")
    p.add_argument("--decay-last", type=float, default=0.0, help="fraction of the steps (at the end) run at lr/5")
    add_force(p)

    p = add_verb(subparsers, "tokens", _tokens, "token-quantizer lab: train a tiny tokenizer with VQ, VQ + rotation trick, FSQ, BSQ or IBQ and report code statistics")
    p.add_argument("images", nargs="*", help="training images (default: the bundled sample photos)")
    p.add_argument("--quantizer", default="fsq", choices=("vq", "vq-rotation", "fsq", "bsq", "ibq"))
    p.add_argument("--bits", type=int, default=10, help="bits per token (codebook 2^bits)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--eval", nargs="*", default=None, help="evaluation images (default: the held-out samples astronaut, coffee)")
    p.add_argument("--out", default=None, help="write the first evaluation image's tokens, range-coded, to this .sstk file")
    add_force(p)

    p = add_verb(subparsers, "decode", _decode, "decode a block-codec (.ssbc) or learned-codec (.sslc) bitstream to PNG")
    p.add_argument("bitstream", help=".ssbc or .sslc file written by 'codec encode'")
    p.add_argument("--out", required=True, help="output PNG")
    add_force(p)

    p = add_verb(subparsers, "inspect", _inspect, "JPEG inspector: quantization tables, subsampling, estimated quality, progressive, size")
    p.add_argument("file", help="JPEG file (other images get a short summary)")
    p.add_argument("--blocks", default=None, metavar="CSV", help="JPEG: decode every block (our Huffman decoder) and write plane,x,y,w,h,bits,nonzero per block")
    add_force(p)

    p = add_verb(subparsers, "rd", _rd, "rate-distortion sweep of several codecs with BD-rate against an anchor")
    p.add_argument("images", nargs="+", help="image files, folders of images or sample:NAME")
    p.add_argument("--codecs", nargs="+", default=["jpeg", "webp"], help="codec specs, e.g. jpeg webp avif jpeg2000 block:transform=rdct,N=8")
    p.add_argument("--qualities", default="10,20,30,40,50,60,70,80,90", help="quality ladder (comma separated)")
    p.add_argument("--anchor", default=None, help="anchor codec spec for BD-rate (default: the first)")
    p.add_argument("--metric", default="psnr_rgb", choices=("psnr_rgb", "psnr_y", "ssim", "ms_ssim"), help="distortion for BD (SSIM and MS-SSIM in dB: -10 log10(1 - value))")
    p.add_argument("--out", required=True, help="CSV (or .json) with one row per image x codec x quality; "
                   "a folder (or --executor) runs a batch: rd.csv, rd.json, bd.csv, batch.json in it")
    p.add_argument("--plot", default=None, help="PNG with the RD curves")
    p.add_argument("--no-ms-ssim", action="store_true", help="skip MS-SSIM (faster)")
    p.add_argument("--keep-streams", action="store_true", help="batch: keep every encoded file in the batch folder")
    add_executor_options(p)
    add_force(p)


# -- helpers ---------------------------------------------------------------------------------
def _load(path: str):
    from engines.codec.images import load_image

    try:
        return load_image(path)
    except FileNotFoundError as exc:
        raise CliError(f"file not found: {path}") from exc
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def _write(path, writer, provenance, force):
    from studio.export import ExportError, save_with_sidecar

    try:
        return save_with_sidecar(path, writer, provenance, force=force)
    except ExportError as exc:
        raise CliError(str(exc)) from exc


def _png(path, image, provenance, force):
    from studio.export import ExportError, save_png

    try:
        return save_png(path, image, provenance, force=force)
    except ExportError as exc:
        raise CliError(str(exc)) from exc


def _finite(value):
    """``value`` with non-finite floats replaced by None (JSON has no Infinity/NaN)."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _fmt_db(value) -> str:
    import math

    if value is None:
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.2f}"


def _print_metrics(result: dict) -> None:
    """Human-readable summary of an ``encode`` result."""
    p = result["psnr"]
    print(f"{result['output']}: {result['codec']}, {result['width']}x{result['height']}, {result['bytes']} bytes, {result['bpp']:.4f} bpp")
    if "entropy_bpp" in result:
        print(f"  bitstream: header {result['header_bytes']} B + payload {result['payload_bytes']} B; zeroth-order entropy estimate {result['entropy_bpp']:.4f} bpp")
    print(
        f"  PSNR dB: RGB {_fmt_db(p['rgb'])} (R {_fmt_db(p['R'])}, G {_fmt_db(p['G'])}, B {_fmt_db(p['B'])}); "
        f"Y {_fmt_db(p['Y'])}, Cb {_fmt_db(p['Cb'])}, Cr {_fmt_db(p['Cr'])}; YUV (6:1:1) {_fmt_db(p['yuv'])}"
    )
    if any(v is not None and v == float("inf") for v in p.values()):
        print("  (inf: that channel was reproduced exactly)")
    for key, label in (("ssim", "SSIM"), ("ms_ssim", "MS-SSIM")):
        value = result.get(key)
        print(f"  {label}: {value:.4f}" if value is not None else f"  {label}: n/a ({result.get(key + '_note', 'not computed')})")
    for key in ("recon", "block_stats"):
        if key in result:
            print(f"  {key.replace('_', ' ')}: {result[key]}")


def _check_targets(paths, force: bool) -> None:
    """Fail before any work when an output cannot be written (exists without --force, or its
    folder is missing), so a run never leaves some outputs written and others not."""
    from studio.export import ExportError, check_target

    seen = set()
    for p in filter(None, paths):
        target = Path(p)
        if target.resolve() in seen:
            raise CliError(f"{target} is given for two outputs")
        seen.add(target.resolve())
        try:
            check_target(target, force=force)
        except ExportError as exc:
            raise CliError(str(exc)) from None


def _warn_suffix(out: Path, codec: str) -> None:
    """Warn (stderr) when ``out``'s extension does not match what ``codec`` writes; refuse (CliError)
    the extension of another image or stream format: the file would not open as what its name says."""
    import sys

    from engines.codec.images import IMAGE_SUFFIXES
    from engines.codec.realcodecs import CODECS

    usual = {"block": ".ssbc"}.get(codec) or CODECS[codec][1]
    alike = {".jpg": (".jpg", ".jpeg", ".jfif"), ".jp2": (".jp2", ".j2k", ".jpf")}.get(usual, (usual,))
    suffix = out.suffix.lower()
    if suffix in alike:
        return
    if suffix in {*IMAGE_SUFFIXES, ".jxl", *(spec[1] for spec in CODECS.values())}:
        raise CliError(f"{out.name}: a {codec} stream saved as {suffix} would not open as one; use {usual}")
    print(f"warning: {out.name}: a {codec} stream is normally saved as {usual} (writing it anyway)", file=sys.stderr)


def _inputs(paths):
    return [p for p in paths if not str(p).startswith("sample:")]


# -- verbs -------------------------------------------------------------------------------------
def _fom(args: argparse.Namespace) -> dict:
    import numpy as np

    from engines.codec.fom import fom_table
    from engines.codec.transforms import get_transform

    try:
        alphabets = tuple(int(a) for a in args.alphabets.split(","))
    except ValueError as exc:
        raise CliError(f"--alphabets must be integers like 1,2,3 (got {args.alphabets!r})") from exc
    if any(a not in (1, 2, 3) for a in alphabets):
        raise CliError("--alphabets values must be 1, 2 or 3")
    if not (0 < args.rho < 1):
        raise CliError("--rho must be between 0 and 1")
    rows = fom_table(args.N, alphabets, args.rho)
    result = {"N": args.N, "rho": args.rho, "transforms": rows}
    if args.show_matrix:
        name = args.show_matrix.strip().lower()
        m = alphabets[0]
        if name.startswith("minangle-m"):
            suffix = name[len("minangle-m") :]
            if suffix not in ("1", "2", "3"):
                raise CliError(f"--show-matrix: write minangle-m1, minangle-m2 or minangle-m3 (got {args.show_matrix!r})")
            name, m = "minangle", int(suffix)
        try:
            tr = get_transform(name, args.N, m)
        except ValueError as exc:
            raise CliError(f"--show-matrix: {exc}") from exc
        T = np.asarray(tr.T if tr.T is not None else tr.matrix, dtype=float) + 0.0  # no "-0"
        result["matrix"] = T.tolist()
    if not args.json:
        head = f"{'transform':14s} {'err.energy':>10s} {'MSE':>8s} {'Cg* dB':>8s} {'eta %':>8s} {'dev.orth':>8s} {'adds':>6s} {'shifts':>6s} {'mults':>6s}  method"
        print(f"N = {args.N}, AR(1) rho = {args.rho}")
        print(head)
        for r in rows:
            print(
                f"{r['transform']:14s} {r['error_energy'] + 0.0:10.4f} {r['mse']:8.4f} {r['coding_gain_db']:8.4f} "
                f"{r['efficiency_pct']:8.4f} {r['orthogonality_deviation']:8.4f} {r['additions']:6d} {r['shifts']:6d} "
                f"{r['multiplications']:6d}  {r['ops_method']}"
            )
        print("ops: 1-D, one N-vector; 'additions/shifts only' = the engine's fast algorithm (run and tested"
              " against the matrix product); the exact DCT row counts a butterfly + floating-point products (run: scipy.fft);"
              " the scaling S is merged into quantization")
        if "matrix" in result:
            print(f"T ({args.show_matrix}):")
            for row in result["matrix"]:
                print(" ".join(f"{v:5g}" for v in row))
        return {}
    return result


def _read_qmatrix(path):
    import numpy as np

    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise CliError(f"file not found: {path}") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise CliError(f"{path}: not a JSON matrix ({exc})") from exc
    if isinstance(data, dict):
        luma, chroma = data.get("luma"), data.get("chroma", data.get("luma"))
    else:
        luma = chroma = data
    try:
        luma, chroma = np.asarray(luma, dtype=float), np.asarray(chroma, dtype=float)
    except (TypeError, ValueError) as exc:
        raise CliError(f"{path}: matrix entries must be numbers") from exc
    for m in (luma, chroma):
        if m.ndim != 2 or m.shape[0] != m.shape[1] or not np.all(np.isfinite(m)) or m.min() < 1:
            raise CliError(f"{path}: a quantization matrix must be square with finite entries >= 1")
    return luma, chroma


def _encode(args: argparse.Namespace) -> dict:
    from engines.codec.metrics import all_metrics
    from studio.export import make_provenance

    if not (1 <= args.quality <= 100):
        raise CliError("--quality must be between 1 and 100")
    args.codec, _, args.learned_model = args.codec.partition(":")
    if args.block_stats and args.codec != "block":
        raise CliError("--block-stats needs --codec block")
    _check_targets([args.out, args.recon, args.block_stats], args.force)
    _warn_suffix(Path(args.out), args.codec)
    image = _load(args.image)
    out = Path(args.out)
    params = {k: getattr(args, k) for k in ("codec", "quality", "subsampling")}
    if args.codec == "block":
        from engines.codec.blockcodec import BlockCodecParams, decode, encode

        if args.subsampling == "4:2:2":
            raise CliError("the block codec supports 4:4:4 and 4:2:0")
        luma = chroma = None
        if args.qmatrix:
            luma, chroma = _read_qmatrix(args.qmatrix)
        bp = BlockCodecParams(args.transform, args.N, args.alphabet, args.quality, args.preset, args.subsampling, luma, chroma)
        try:
            enc = encode(image, bp)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        data, decoded = enc.bitstream, decode(enc.bitstream).image
        params.update(bp.to_dict())
        extra = {
            "entropy_bpp": enc.entropy_bpp,
            "header_bytes": enc.header_bytes,
            "payload_bytes": enc.payload_bytes,
            "encode_seconds": enc.seconds,
        }
    else:
        from engines.codec.realcodecs import run_codec

        options = {"subsampling": args.subsampling} if args.codec in ("jpeg", "avif") else {}
        if args.codec == "jpeg":
            options.update(optimize=args.optimize, progressive=args.progressive)
        if args.codec == "learned":
            options = {"model": args.learned_model or "dct-default"}
        try:
            res = run_codec(image, args.codec, args.quality, **options)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
        data, decoded = res.data, res.decoded
        params.update(options)
        extra = {"encode_seconds": res.encode_seconds, "decode_seconds": res.decode_seconds}
    prov = make_provenance("codec", f"codec.{args.codec}", params, inputs=_inputs([args.image]))

    def writer(tmp):
        with open(tmp, "wb") as fh:
            fh.write(data)

    written = _write(out, writer, prov, args.force)
    metrics = all_metrics(image, decoded, len(data))
    result = {"output": str(written), "codec": args.codec, "width": image.shape[1], "height": image.shape[0]}
    result.update(metrics)
    result.update(extra)
    if args.recon:
        result["recon"] = str(_png(args.recon, decoded, prov, args.force))
    if args.block_stats:
        import csv
        import io

        buf = io.StringIO()
        writer_csv = csv.DictWriter(buf, fieldnames=["plane", "x", "y", "w", "h", "bits", "nonzero"])
        writer_csv.writeheader()
        writer_csv.writerows(enc.block_stats())
        text = buf.getvalue()
        result["block_stats"] = str(_write(args.block_stats, lambda tmp: Path(tmp).write_text(text), prov, args.force))
    if not args.json:
        _print_metrics(result)
        return {}
    if any(v == float("inf") for v in result["psnr"].values()):
        result["psnr_note"] = "null = infinite PSNR (channel reproduced exactly)"
    return _finite(result)


def _decode(args: argparse.Namespace) -> dict:
    from engines.codec.blockcodec import BitstreamError, decode
    from studio.export import make_provenance

    path = Path(args.bitstream)
    if not path.is_file():
        raise CliError(f"file not found: {path}" if not path.exists() else f"{path} is a folder")
    if Path(args.out).suffix.lower() != ".png":
        raise CliError(f"--out must end in .png (got {Path(args.out).name})")
    _check_targets([args.out], args.force)
    data = path.read_bytes()
    if data[:4] == b"SSLC":
        return _decode_learned(path, data, args)
    try:
        dec = decode(data, name=path.name)
    except BitstreamError as exc:
        raise CliError(str(exc)) from exc
    prov = make_provenance("codec", "codec.block.decode", dec.params.to_dict(), inputs=[path])
    written = _png(args.out, dec.image, prov, args.force)
    return {"output": str(written), "width": dec.image.shape[1], "height": dec.image.shape[0], "transform": dec.params.transform, "N": dec.params.N}


def _decode_learned(path: Path, data: bytes, args: argparse.Namespace) -> dict:
    from engines.codec.learned import decompress
    from studio.export import make_provenance

    try:
        image = decompress(data, name=path.name)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    prov = make_provenance("codec", "codec.learned.decode", {}, inputs=[path])
    written = _png(args.out, image, prov, args.force)
    return {"output": str(written), "width": image.shape[1], "height": image.shape[0], "codec": "learned"}


def _train(args: argparse.Namespace) -> dict:
    from engines.codec.learned import default_lambda, default_training_images, save_model, train_job
    from studio.export import make_provenance

    out = Path(args.out)
    if out.suffix != ".pt":
        raise CliError("--out must end in .pt")
    _check_targets([out], args.force)
    images = [_load(p) for p in args.images] if args.images else default_training_images()
    if args.lam is None:
        args.lam = default_lambda(args.kind)
    try:
        job = train_job(images, kind=args.kind, N=args.N, M=args.M, lam=args.lam, steps=args.steps, patch=args.patch,
                        batch=args.batch, lr=args.lr, seed=args.seed, init=args.init, decay_last=args.decay_last)
        model, config = run_with_progress(job)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    config["trained_on"] = [Path(p).name for p in args.images] or "bundled sample photos"
    params = {k: getattr(args, k) for k in ("kind", "N", "M", "lam", "steps", "patch", "batch", "lr", "seed", "init", "decay_last")}
    prov = make_provenance("codec", "codec.learned.train", params, inputs=_inputs(args.images))
    written = _write(out, lambda tmp: save_model(model, tmp, config), prov, args.force)
    tail = config["history_tail"][-1]
    return {"output": str(written), "kind": args.kind, "steps": args.steps, "train_seconds": config["train_seconds"],
            "last_step": {"bpp": round(tail["bpp"], 4), "psnr": round(tail["psnr"], 2)}}


def _tokens(args: argparse.Namespace) -> dict:
    from engines.codec.learned import HELD_OUT_SAMPLES, default_training_images
    from engines.codec.token_lab import train_tokenizer_job

    if args.out is not None:
        if Path(args.out).suffix != ".sstk":
            raise CliError("--out must end in .sstk")
        _check_targets([args.out], args.force)
    train = [_load(p) for p in args.images] if args.images else default_training_images()
    evals = [_load(p) for p in args.eval] if args.eval else [_load(f"sample:{n}") for n in HELD_OUT_SAMPLES]
    try:
        model, out = run_with_progress(train_tokenizer_job(train, args.quantizer, args.bits, steps=args.steps, eval_images=evals,
                                                           eval_every=max(args.steps // 4, 1)))
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    final = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out["final"].items()}
    result = {"quantizer": args.quantizer, "bits_per_token": args.bits, "steps": args.steps, **final}
    if args.out is not None:
        from engines.codec.token_file import write_model_tokens
        from engines.codec.token_lab import reconstruct
        from studio.export import make_provenance

        _, idx, _ = reconstruct(model, evals[0])
        data = write_model_tokens(model, idx, (idx.shape[0] * 4, idx.shape[1] * 4))
        params = {"quantizer": args.quantizer, "bits": args.bits, "steps": args.steps}
        prov = make_provenance("codec", "codec.tokens.train", params, inputs=_inputs(args.images))
        written = _write(args.out, lambda tmp: Path(tmp).write_bytes(data), prov, args.force)
        result.update(output=str(written), file_bytes=len(data), file_bits_per_token=round(8 * len(data) / idx.size, 4))
    return result


def _inspect(args: argparse.Namespace) -> dict:
    from engines.codec.realcodecs import inspect_jpeg

    path = Path(args.file)
    if not path.exists():
        raise CliError(f"file not found: {path}")
    if path.is_dir():
        raise CliError(f"{path} is a folder")
    head = path.read_bytes()[:4]
    if head == b"SSBC":
        return _inspect_ssbc(path, args.json)
    if head[:2] == b"\xff\xd8":
        try:
            info = inspect_jpeg(str(path))
            if args.blocks:
                info["internals"] = _jpeg_blocks(path, Path(args.blocks), args.force)
        except ValueError as exc:
            raise CliError(f"{path.name}: {exc}") from exc
        if args.blocks and not args.json:
            t = info["internals"]
            print(f"blocks: {t['block_bits']} bits in blocks + {t['padding_bits']} padding bits + {t['stuffed_bytes']} stuffed bytes"
                  f" + {t['header_and_marker_bytes']} header/marker bytes = {t['bytes']} bytes; per-block CSV {args.blocks}")
        if not args.json:
            print(f"{path.name}: {info['width']}x{info['height']} {info['mode']}, {info['bytes']} bytes ({info['bpp']:.3f} bpp)")
            print(f"{info['process']}, subsampling {info['subsampling']}, {info['scans']} scan(s), restart interval {info['restart_interval'] or 'none'}, EOI {'present' if info['eoi'] else 'MISSING'}")
            print(f"IJG quality: {info['quality_note']}")
            print(f"markers: {' '.join(info['markers'])}")
            for tid, table in info["quantization"].items():
                print(f"quantization table {tid}:")
                for row in table:
                    print("  " + " ".join(f"{v:3d}" for v in row))
            for h in info["huffman_tables"]:
                print(f"Huffman {h['class']} table {h['id']}: {h['symbols']} symbols, code lengths {h['code_length_counts']}")
            return {}
        return info
    from engines.imagefile import open_image

    im = open_image(path, error=CliError)
    info = {"format": im.format, "width": im.width, "height": im.height, "mode": im.mode}
    size = os.path.getsize(path)
    info.update(bytes=size, bpp=8.0 * size / (info["width"] * info["height"]), note="quantization tables are shown for JPEG files only")
    return info


def _jpeg_blocks(path: Path, out: Path, force: bool) -> dict:
    """Decode a JPEG's blocks with our entropy decoder; write the per-block CSV; return the bit accounting."""
    import csv
    import io

    from engines.codec.jpeg_internals import jpeg_internals_job

    _check_targets([out], force)
    res = run_with_progress(jpeg_internals_job(str(path), with_pixels=False))
    rows = res.block_stats()

    def writer(tmp):
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        Path(tmp).write_text(buf.getvalue())

    _write(out, writer, {"engine": "codec.jpeg_internals", "parameters": {"file": str(path)}}, force)
    return res.summary()


def _inspect_ssbc(path: Path, as_json: bool) -> dict:
    """Summary of a block-codec bitstream written by ``codec encode``."""
    from engines.codec.blockcodec import BitstreamError, decode

    data = path.read_bytes()
    try:
        dec = decode(data, name=path.name)
    except BitstreamError as exc:
        raise CliError(str(exc)) from exc
    h, w = dec.image.shape[:2]
    info = {"format": "Spectra block codec (SSBC)", "width": w, "height": h, "bytes": len(data), "bpp": 8.0 * len(data) / (w * h)}
    info.update(dec.params.to_dict())
    if as_json:
        return _finite(info)
    print(f"{path.name}: {info['format']}, {w}x{h}, {len(data)} bytes ({info['bpp']:.3f} bpp)")
    print("  " + ", ".join(f"{k} {v}" for k, v in dec.params.to_dict().items() if not isinstance(v, (list, dict))))
    print("  decode it with: python main.py codec decode FILE --out image.png")
    return {}


def _rd(args: argparse.Namespace) -> dict:
    from engines.codec.plot import render_rd_plot
    from engines.codec.rd import bd_per_image, bd_table, curves_from_rows, parse_codec_spec, rd_sweep_job, rows_to_csv
    from engines.codec.realcodecs import CODECS, available_codecs
    from studio.export import make_provenance

    try:
        qualities = [float(q) for q in args.qualities.split(",")]
    except ValueError as exc:
        raise CliError(f"--qualities must be numbers like 10,20,30 (got {args.qualities!r})") from exc
    if any(not (1 <= q <= 100) for q in qualities):
        raise CliError("qualities must be between 1 and 100")
    try:
        specs = [parse_codec_spec(c) for c in args.codecs]
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    ok = available_codecs()
    for s in specs:
        if s["codec"] not in CODECS:
            raise CliError(f"unknown codec {s['codec']!r}; choose from {', '.join(CODECS)}")
        if s["codec"] not in ok:
            raise CliError(f"codec {s['codec']} is not available on this machine")
    if args.anchor is not None:
        labels = [s["label"] for s in specs]
        if args.anchor not in labels:
            raise CliError(f"--anchor {args.anchor!r} must be one of the --codecs ({', '.join(labels)})")
    if args.metric == "ms_ssim" and args.no_ms_ssim:
        raise CliError("--metric ms_ssim needs MS-SSIM (drop --no-ms-ssim)")
    from studio.cli.batch import rd_batch_verb, wants_rd_batch

    if wants_rd_batch(args):
        return rd_batch_verb(args, specs, qualities)
    out = Path(args.out)
    _check_targets([out, args.plot], args.force)
    if len(set(qualities)) < 4:
        import sys

        print(f"warning: {len(set(qualities))} qualities given; BD-rate needs at least 4 points per curve", file=sys.stderr)
    from engines.codec.images import IMAGE_SUFFIXES
    from studio.cli.batch import expand_files

    images = [(Path(p).name if not p.startswith("sample:") else p, _load(p))
              for p in expand_files(args.images, IMAGE_SUFFIXES)]
    rows = run_with_progress(rd_sweep_job(images, specs, qualities, with_ms_ssim=not args.no_ms_ssim))
    curves = curves_from_rows(rows, args.metric)
    try:
        table = bd_table(curves, args.anchor)
        per_image = bd_per_image(rows, args.metric, args.anchor) if len(images) > 1 else []
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    params = {"codecs": args.codecs, "qualities": qualities, "anchor": args.anchor or args.codecs[0], "metric": args.metric}
    prov = make_provenance("codec", "codec.rd", params, inputs=_inputs(args.images), extra={"bd": table})
    if out.suffix.lower() == ".json":
        # strict JSON: infinite PSNR (lossless) becomes null
        text = json.dumps(_finite({"rows": rows, "curves": curves, "bd": table, "bd_per_image": per_image}), indent=2, default=float, allow_nan=False)
    else:
        text = rows_to_csv(rows)

    def writer(tmp):
        Path(tmp).write_text(text)

    written = _write(out, writer, prov, args.force)
    result = {"output": str(written), "rows": len(rows), "bd": table, "bd_per_image": per_image}
    if args.plot:
        result["plot"] = str(_png(args.plot, render_rd_plot(curves, title=", ".join(n for n, _ in images)[:60]), prov, args.force))
        result["plot_backend"] = "Pillow"
    if args.json:
        return _finite(result)
    print(f"{len(rows)} rows -> {written}" + (f"; plot -> {result['plot']}" if args.plot else ""))
    anchor = table[0]["anchor"] if table else "-"
    print(f"BD against {anchor} ({args.metric}; negative BD-rate = fewer bits for the same quality):")
    print(f"  {'codec':32s} {'BD-rate cubic':>14s} {'BD-PSNR cubic':>14s} {'BD-rate PCHIP':>14s} {'BD-PSNR PCHIP':>14s}")

    def rate(v):
        return f"{v:+13.2f}%" if v is not None else f"{'n/a':>14s}"

    def db(v):
        return f"{v:+11.3f} dB" if v is not None else f"{'n/a':>14s}"

    for row in table:
        print(
            f"  {row['codec'][:32]:32s} {rate(row['bd_rate_cubic'])} {db(row['bd_psnr_cubic'])}"
            f" {rate(row['bd_rate_pchip'])} {db(row['bd_psnr_pchip'])}" + (f"  ({row['note']})" if row.get("note") else "")
        )
    if per_image:
        print("per image (each image's own curves):")
        for row in per_image:
            name = f"{row['image'][:16]} {row['codec']}"
            print(f"  {name[:32]:32s} {rate(row['bd_rate_cubic'])} {db(row['bd_psnr_cubic'])} {rate(row['bd_rate_pchip'])} {db(row['bd_psnr_pchip'])}")
    return {}
