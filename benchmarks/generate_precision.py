"""Precision presets side by side in one run: denoiser weight bytes, time, and quality per preset.

Digits model: class accuracy of an independent classifier (SVC on the real scikit-learn digits)
over N samples per preset, and the mean pixel difference to the default preset (same seeds).
Tiny random SD pipeline: time and mean pixel difference (no quality meaning: random weights).

Run: ``python benchmarks/generate_precision.py [--per-class 10] [--steps 10]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.generation.api import GenerationParams, generate_job  # noqa: E402
from engines.generation.digits_data import DigitClassifier  # noqa: E402
from engines.generation.models import load_model, resolve_model  # noqa: E402
from engines.generation.precision import applied_precision, module_bytes  # noqa: E402
from engines.jobs import run_job  # noqa: E402


def _run(params: GenerationParams) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    images = run_job(generate_job(params)).images
    return images, time.perf_counter() - start


def digits_table(per_class: int, steps: int) -> None:
    clf = DigitClassifier()
    unet = load_model(resolve_model("digits-flow")).unet
    reference = None
    print(f"digits-flow, {10 * per_class} samples, {steps} steps, flow_euler")
    print(f"{'preset':<11} {'denoiser MB':>11} {'time s':>8} {'accuracy':>9} {'mean |diff| /255':>17}")
    for preset in ("default", "low-memory", "int8"):
        with applied_precision(preset, unet=unet) as replaced:
            size = module_bytes(replaced.get("unet", unet)) / 1e6
        images, seconds, correct = [], 0.0, 0
        for digit in range(10):
            out, dt = _run(GenerationParams(model="digits-flow", class_label=digit, steps=steps, seed=1000 + digit * 100,
                                            batch=per_class, precision=preset))
            seconds += dt
            correct += int((clf.predict(out[:, :, :, 0].astype(np.float64) / 255.0) == digit).sum())
            images.append(out)
        images = np.concatenate(images).astype(np.int32)
        reference = images if reference is None else reference
        diff = np.abs(images - reference).mean()
        print(f"{preset:<11} {size:>11.3f} {seconds:>8.2f} {correct / len(images):>9.3f} {diff:>17.2f}")


def sd_table(steps: int) -> None:
    from engines.generation.tiny import build_tiny_sd_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "tiny-sd"
        build_tiny_sd_pipeline(folder)
        reference = None
        print(f"\ntiny random SD pipeline (32x32), 4 images, {steps} steps, ddim")
        print(f"{'preset':<11} {'time s':>8} {'mean |diff| /255':>17}")
        for preset in ("default", "low-memory", "int8"):
            params = GenerationParams(model=str(folder), prompt="a red house", steps=steps, seed=3, batch=4,
                                      sampler="ddim", precision=preset)
            _run(params)  # warm: load once
            images, seconds = _run(params)
            images = images.astype(np.int32)
            reference = images if reference is None else reference
            print(f"{preset:<11} {seconds:>8.2f} {np.abs(images - reference).mean():>17.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    digits_table(args.per_class, args.steps)
    sd_table(args.steps)


if __name__ == "__main__":
    main()
