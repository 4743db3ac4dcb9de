"""Minimal-angle search time: the engine's structured search vs two baselines, same run.

    .venv/bin/python benchmarks/codec_minangle.py

* ours: half rows only (symmetry), even rows from the N/2 solution, sorted-magnitude
  enumeration of non-increasing vectors (C(N/2 + M, M) candidates per odd row);
* baseline A (codec.md §2): every row searched at full length, C(N + M, M) candidates each;
* baseline B (small N only): brute force over all (2M+1)^(N/2) signed half rows.
Both baselines must reach the same minimal angles (checked); the ratios are printed.

Then (``--apply-size``, 0 skips) the found transforms are applied to every block of an image,
``Transform.forward(fast=True)`` vs scipy.fft's exact DCT in the same run (codec_transforms.py).
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.codec.minangle import angle, minimal_angle_row, minimal_angle_search
from engines.codec.transforms import dct_matrix


def full_length_search(n: int, m: int) -> tuple[np.ndarray, float]:
    C = dct_matrix(n)
    t0 = time.perf_counter()
    T = np.zeros((n, n))
    T[0] = 1
    for k in range(1, n):
        T[k] = minimal_angle_row(C[k], m)[0]
    return T, time.perf_counter() - t0


def brute_half(n: int, m: int) -> tuple[list[float], float]:
    C = dct_matrix(n)
    t0 = time.perf_counter()
    cand = np.array(list(itertools.product(range(-m, m + 1), repeat=n // 2)), dtype=float)
    cand = cand[np.any(cand != 0, axis=1)]
    norms = np.linalg.norm(cand, axis=1)
    best = []
    for k in range(1, n):
        h = C[k, : n // 2]
        best.append(float(np.max(cand @ h / norms) / np.linalg.norm(h)))
    return best, time.perf_counter() - t0


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--apply-size", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"{'N':>3} {'M':>2} {'ours ms':>9} {'full-length ms':>15} {'ratio':>7} {'brute ms':>9} {'ratio':>8}  same angles")
    for n in (8, 16, 32, 64):
        for m in (1, 2, 3):
            ours = minimal_angle_search(n, m)
            T_full, t_full = full_length_search(n, m)
            C = dct_matrix(n)
            ang_ours = [angle(C[k], ours["T"][k]) for k in range(n)]
            ang_full = [angle(C[k], T_full[k]) for k in range(n)]
            same = max(abs(a - b) for a, b in zip(ang_ours, ang_full)) < 1e-9
            brute = ""
            if (2 * m + 1) ** (n // 2) <= 5**8:
                best, t_b = brute_half(n, m)
                ok = all(abs(math.cos(angle(C[k, : n // 2], ours["T"][k, : n // 2])) - best[k - 1]) < 1e-9 for k in range(1, n))
                same = same and ok
                brute = f"{t_b * 1e3:9.1f} {t_b / ours['seconds']:7.0f}x"
            else:
                brute = f"{'—':>9} {'':8}"
            print(f"{n:>3} {m:>2} {ours['seconds'] * 1e3:9.2f} {t_full * 1e3:15.1f} {t_full / ours['seconds']:6.1f}x {brute}  {same}")
    if args.apply_size:
        from benchmarks.codec_transforms import all_cases, compare

        print()
        compare([c for c in all_cases(32) if c[1] == "minangle"], args.apply_size, args.repeat)


if __name__ == "__main__":
    main()
