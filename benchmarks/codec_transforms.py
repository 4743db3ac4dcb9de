"""Block-transform throughput on a 4096x4096 image: the approximate transforms' fast
(additions/shifts-only) algorithms vs the exact DCT through scipy.fft, in the same run.

    .venv/bin/python benchmarks/codec_transforms.py [--size 4096] [--repeat 3]

Both sides do the separable 2-D forward transform of every N x N block (float32 in, float32
math where the library allows). Prints megapixels per second and the ratio to scipy.fft.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.codec.transforms import get_transform


def _best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    from scipy.fft import dctn

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (args.size, args.size)).astype(np.float32) - 128.0
    mpix = args.size * args.size / 1e6
    cases = [(8, "rdct", 1), (8, "sdct", 1), (8, "bas2008", 1), (8, "wht", 1), (8, "minangle", 2), (16, "minangle", 3), (16, "jam-rdct", 1), (32, "minangle", 3)]
    print(f"{args.size}x{args.size} image, best of {args.repeat}; baseline = scipy.fft.dctn(type 2, ortho) on the blocks")
    print(f"{'N':>3} {'transform':14s} {'adds':>5} {'shifts':>6} {'ours ms':>9} {'scipy ms':>9} {'ours Mpx/s':>11} {'ratio':>7}  {'matmul ms':>9}")
    baseline_cache = {}
    for n, name, m in cases:
        blocks = img.reshape(args.size // n, n, args.size // n, n).transpose(0, 2, 1, 3)
        blocks = np.ascontiguousarray(blocks)
        if n not in baseline_cache:
            baseline_cache[n] = _best(lambda blocks=blocks: dctn(blocks, type=2, axes=(-2, -1), norm="ortho", workers=1), args.repeat)
        base = baseline_cache[n]
        tr = get_transform(name, n, m)
        ours = _best(lambda tr=tr, blocks=blocks: tr.forward(blocks, fast=True), args.repeat)
        M = tr.matrix.astype(np.float32)
        mm = _best(lambda M=M, blocks=blocks: np.matmul(np.matmul(M, blocks), M.T), args.repeat)
        label = f"{name}-m{m}" if name == "minangle" else name
        print(
            f"{n:>3} {label:14s} {tr.ops['additions']:>5} {tr.ops['shifts']:>6} {ours * 1e3:9.1f} {base * 1e3:9.1f} "
            f"{mpix / ours:11.1f} {base / ours:7.2f}x {mm * 1e3:9.1f}"
        )
    print("ratio > 1: the fast integer algorithm is faster than scipy.fft's exact DCT (numpy, one thread).")


if __name__ == "__main__":
    main()
