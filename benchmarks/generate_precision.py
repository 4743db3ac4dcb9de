"""Precision presets and tiling side by side in one run: peak memory, weight bytes, time, quality.

Every row runs in a FRESH subprocess, so its peak memory is its own. The process imports, loads
the model and makes one untimed 1-step warm-up image (lazy imports, caches; quantized presets
quantize the cached model there, which then holds no full-precision copy); then the kernel's
RSS high-water mark is reset (``/proc/self/clear_refs`` = 5) and the measured images are made.
"peak MiB" is the high-water mark then (``VmHWM``), "run MiB" its part above the RSS before the
measured run (quantized copies of the weights, activations, decoded images). "weights MB" counts the denoiser and text encoder as the
preset runs them (packed int8/fp8/int4 weights plus scales; unquantized norms, biases and
embeddings in fp32). Presets that cannot run here (cpu-offload without a CUDA GPU) are listed
with the reason.

1. Digits model (own loop, 32x32): class accuracy of an independent classifier (SVC on the real
   scikit-learn digits) over ``--per-class`` x 10 samples per preset, and the mean pixel
   difference to the default preset (same seeds).
2. Tiny random SD pipeline (32x32): time and mean pixel difference to default (random weights:
   no quality meaning).
3. Tiling: the digits model and the tiny SD pipeline at ``--large`` pixels, untiled vs
   ``--tiles`` latent-pixel tiles (denoiser; VAE too for SD), peak memory, time, and the mean
   pixel difference to untiled.

Run: ``python benchmarks/generate_precision.py [--per-class 10] [--steps 10] [--large 256] [--tiles 32,64]``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

PRESETS = ("default", "low-memory", "int8", "fp8", "int4", "cpu-offload")


def _status_mib(key: str) -> float | None:
    """A ``kB`` line of /proc/self/status (``VmRSS``, ``VmHWM``) in MiB; None without /proc."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset this process's RSS high-water mark (Linux >= 4.0); False where not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _peak_mib() -> float:
    """This process's RSS high-water mark in MiB (``VmHWM``, or ``ru_maxrss`` without /proc)."""
    peak = _status_mib("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _weights_mb(loaded, preset: str) -> float:
    from engines.generation.precision import applied_precision, module_bytes

    if loaded.pipe is None:
        with applied_precision(preset, unet=loaded.unet) as replaced:
            return module_bytes(replaced.get("unet", loaded.unet)) / 1e6
    with applied_precision(preset, pipe=loaded.pipe):
        parts = [getattr(loaded.pipe, n, None) for n in ("unet", "transformer", "text_encoder", "text_encoder_2")]
        return sum(module_bytes(m) for m in parts if m is not None) / 1e6


def worker(spec: dict) -> dict:
    """One measurement in this (fresh) process: generate, save the images, report memory and time."""
    import torch

    torch.set_num_threads(1)
    from engines.generation.api import GenerationParams, generate_job
    from engines.generation.models import load_model, resolve_model
    from engines.jobs import run_job

    import diffusers.models  # noqa: F401 - counted in the import baseline, not in the run
    import transformers  # noqa: F401

    info = resolve_model(spec["runs"][0]["model"])
    preset = spec["runs"][0].get("precision") or "default"
    warm = dict(spec["runs"][0], steps=1, batch=1, width=0, height=0, tile_size=0)
    run_job(generate_job(GenerationParams(**warm)))  # untimed, at the model's own size
    import gc

    gc.collect()
    base_rss = _status_mib("VmRSS")
    if not _reset_peak():
        raise RuntimeError("cannot reset the RSS high-water mark (/proc/self/clear_refs); peaks would include imports")
    seconds, images = 0.0, []
    for params in spec["runs"]:
        start = time.perf_counter()
        images.append(run_job(generate_job(GenerationParams(**params))).images)
        seconds += time.perf_counter() - start
    peak = _peak_mib()
    np.save(spec["out"], np.concatenate(images))
    loaded = load_model(info, "cpu", preset)  # the cached variant the runs used (no reference held during them)
    return {"peak_mb": peak, "run_mb": peak - base_rss, "seconds": seconds,
            "weights_mb": _weights_mb(loaded, preset if loaded.precision == "default" else "default")}


def _measure(spec: dict, tmp: Path, name: str) -> tuple[dict, np.ndarray]:
    spec = dict(spec, out=str(tmp / f"{name}.npy"))
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else '?'}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), np.load(spec["out"])


def _unavailable(preset: str, pipeline: bool) -> str:
    from engines.generation.precision import preset_unavailable

    return preset_unavailable(preset, "cpu", pipeline=pipeline)


HEADER = f"{'preset':<12} {'peak MiB':>9} {'run MiB':>8} {'weights MB':>10} {'s/image':>8}"


def _preset_table(prefix: str, runs_for, pipeline: bool, tmp: Path, quality=None) -> None:
    """One row per preset: ``runs_for(preset)`` lists the GenerationParams dicts of the row;
    ``quality(images)`` (optional) adds a formatted column before the pixel difference."""
    reference = None
    for preset in PRESETS:
        reason = _unavailable(preset, pipeline=pipeline)
        if reason:
            print(f"{preset:<12} unavailable: {reason}")
            continue
        row, images = _measure({"runs": runs_for(preset)}, tmp, f"{prefix}-{preset}")
        reference = images.astype(np.int32) if reference is None else reference
        diff = np.abs(images.astype(np.int32) - reference).mean()
        extra = f" {quality(images)}" if quality else ""
        print(f"{preset:<12} {row['peak_mb']:>9.1f} {row['run_mb']:>8.1f} {row['weights_mb']:>10.3f} "
              f"{row['seconds'] / len(images):>8.3f}{extra} {diff:>11.2f}")


def digits_table(per_class: int, steps: int, tmp: Path) -> None:
    from engines.generation.digits_data import DigitClassifier

    clf = DigitClassifier()
    labels = np.repeat(np.arange(10), per_class)

    def accuracy(images):
        return f"{float((clf.predict(images[:, :, :, 0].astype(np.float64) / 255.0) == labels).mean()):>9.3f}"

    print(f"digits-flow (own loop, 32x32), {10 * per_class} samples, {steps} steps, flow_euler, 1 thread")
    print(f"{HEADER} {'accuracy':>9} {'|diff| /255':>11}")
    _preset_table("digits", lambda preset: [
        dict(model="digits-flow", class_label=d, steps=steps, seed=1000 + d * 100, batch=per_class, precision=preset)
        for d in range(10)], False, tmp, accuracy)


def sd_table(steps: int, tmp: Path, folder: Path) -> None:
    print(f"\ntiny random SD pipeline (32x32), 4 images, {steps} steps, ddim")
    print(f"{HEADER} {'|diff| /255':>11}")
    _preset_table("sd", lambda preset: [dict(model=str(folder), prompt="a red house", steps=steps, seed=3, batch=4,
                                             sampler="ddim", precision=preset)], True, tmp)


def tiling_table(steps: int, tmp: Path, folder: Path, size: int, tiles: list) -> None:
    print(f"\ntiling at {size}x{size}, 1 image, {steps} steps (tiles in latent pixels, overlap a quarter)")
    print(f"{'model':<20} {'tiles':<9} {'peak MiB':>9} {'run MiB':>8} {'s/image':>8} {'|diff| /255':>11}")
    models = (("digits-flow", dict(model="digits-flow", class_label=3), 1),
              ("tiny SD (VAE /2)", dict(model=str(folder), prompt="a red house", sampler="ddim"), 2))
    for name, base, factor in models:
        reference = None
        for tile_size in (0, *tiles):
            if tile_size * factor >= size:
                continue
            runs = [dict(base, steps=steps, seed=3, batch=1, width=size, height=size, tile_size=tile_size,
                         tile_overlap=max(8, tile_size // 4))]
            row, images = _measure({"runs": runs}, tmp, f"tile-{factor}-{tile_size}")
            reference = images.astype(np.int32) if reference is None else reference
            label = "untiled" if not tile_size else f"{tile_size}"
            print(f"{name:<20} {label:<9} {row['peak_mb']:>9.1f} {row['run_mb']:>8.1f} {row['seconds']:>8.2f} "
                  f"{np.abs(images.astype(np.int32) - reference).mean():>11.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--large", type=int, default=256, help="image side for the tiling table (pixels)")
    parser.add_argument("--tiles", default="32,64", help="tile sizes for the tiling table (latent pixels)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    from engines.generation.tiny import build_tiny_sd_pipeline

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folder = tmp / "tiny-sd"
        build_tiny_sd_pipeline(folder)
        digits_table(args.per_class, args.steps, tmp)
        sd_table(args.steps, tmp, folder)
        tiling_table(args.steps, tmp, folder, args.large, [int(t) for t in args.tiles.split(",")])


if __name__ == "__main__":
    main()
