"""Quality against steps on the shipped digits model: classifier accuracy and a Fréchet distance.

For each sampler (UniPC, DDIM, Euler; flow Euler as the native reference) and 5 / 10 / 20 / 50
steps, generate ``--per-class`` samples of every digit and report (a) the accuracy of an
independent SVC digit classifier and (b) the Fréchet distance between the classifier's
decision features of the samples and of the real digits (lower is better). Prints the ratio of
each cell's Fréchet distance to the 50-step value of the same sampler.

Run: ``python benchmarks/generate_quality.py [--per-class 5 --samplers unipc,ddim,euler,flow_euler]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch


def frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets ``a`` (N, D) and ``b`` (M, D)."""
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = np.real(linalg.sqrtm(s1 @ s2))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=5)
    parser.add_argument("--samplers", default="unipc,ddim,euler,flow_euler")
    parser.add_argument("--steps", default="5,10,20,50")
    parser.add_argument("--cfg", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from engines.generation.api import GenerationParams, generate_job
    from engines.generation.digits_data import DigitClassifier, digits_32
    from engines.jobs import run_job

    clf = DigitClassifier()
    real, _ = digits_32()
    real_feats = clf.features(real)
    steps_list = [int(s) for s in args.steps.split(",")]
    print(f"digits-flow, {args.per_class * 10} samples per cell, CFG {args.cfg}, {args.threads} thread(s)")
    rng = np.random.default_rng(0)
    floor = [frechet(clf.features(real[rng.choice(len(real), args.per_class * 10, replace=False)]), real_feats)
             for _ in range(5)]
    print(f"noise floor: Fréchet distance of {args.per_class * 10} real digits to all real digits = "
          f"{np.mean(floor):.2f} ± {np.std(floor):.2f}")
    print(f"{'sampler':12s} {'steps':>5s} {'accuracy':>9s} {'Fréchet':>9s} {'FD/FD@max':>9s} {'seconds':>8s}")
    for sampler in args.samplers.split(","):
        rows = []
        for steps in steps_list:
            start = time.perf_counter()
            images, labels = [], []
            for digit in range(10):
                result = run_job(generate_job(GenerationParams(
                    model="digits-flow", class_label=digit, steps=steps, seed=500 + digit * 97,
                    batch=args.per_class, sampler=sampler, cfg=args.cfg)))
                images.append(result.images[:, :, :, 0].astype(np.float64) / 255.0)
                labels += [digit] * args.per_class
            images = np.concatenate(images)
            acc = float((clf.predict(images) == np.array(labels)).mean())
            fd = frechet(clf.features(images), real_feats)
            rows.append((steps, acc, fd, time.perf_counter() - start))
        top = rows[-1][2]
        for steps, acc, fd, sec in rows:
            print(f"{sampler:12s} {steps:5d} {acc:9.3f} {fd:9.2f} {fd / top:9.2f} {sec:8.1f}")


if __name__ == "__main__":
    main()
