"""Paint-to-classify: IoU per class, update time after a new stroke, stability and uncertainty,
on the 128³ CT phantom and on a harder synthetic volume (two touching organs of similar
intensity and a thin tube, :func:`engines.volume.phantom.make_organs_phantom`).

Strokes are simulated from the ground truth on a few axial slices (brush strokes inside each
structure). For each method the same run prints:

- the features time (once per volume, cached by the panel);
- ``update``: the classification after one new stroke, wall-clock and CPU seconds - the
  baseline is the exact evaluation without the cache of unchanged classes (what an update
  cost before), ours the incremental coarse-to-fine path; ratio printed;
- IoU per class (full resolution);
- stability: for each class, one more stroke of that class is added; the largest change of
  any *other* class's IoU (aim < 0.05);
- uncertainty: error rate among the 5 % most uncertain voxels vs overall (how well the
  uncertainty overlay points at where a stroke would help), and the mean IoU after one
  guided round: 40 clicks on the most uncertain voxels of one slice, labelled from the truth.

    .venv/bin/python benchmarks/volume_classify.py [--size 128] [--methods forest,similarity-max]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def _strokes(labels, names, seed):
    from engines.volume.classify import ClassSpec, Strokes
    from engines.volume.phantom import simulate_strokes

    n = labels.shape[0]
    slices = tuple(int(n * f) for f in (0.31, 0.5, 0.7))
    strokes = Strokes([ClassSpec(names[i]) for i in sorted(names)])
    for index in sorted(names):
        thin = (labels == index).sum() < 0.002 * labels.size
        picked = simulate_strokes(labels, {index: index}, slices=slices if not thin else tuple(range(n // 5, 4 * n // 5, n // 10)),
                                  per_slice=3, radius=0 if thin else 1, seed=seed + index)
        if index in picked:
            strokes.add(index, picked[index])
    return strokes


def _extra_stroke(labels, index, seed):
    from engines.volume.phantom import simulate_strokes

    n = labels.shape[0]
    for s in (int(n * 0.42), int(n * 0.58), int(n * 0.25), int(n * 0.8)):
        thin = (labels == index).sum() < 0.002 * labels.size
        got = simulate_strokes(labels, {index: index}, slices=(s,), per_slice=1, radius=0 if thin else 1, seed=seed)
        if index in got:
            return got[index]
    return None


def _ious(result, labels, names):
    out = {}
    for index in names:
        pred, truth = result.labels == index + 1, labels == index
        out[index] = float((pred & truth).sum() / max((pred | truth).sum(), 1))
    return out


def run(volume, labels, names, methods, title):
    from engines.volume.classify import classify, compute_features

    print(f"\n== {title}: {'x'.join(map(str, volume.shape))}, classes {', '.join(names.values())}")
    strokes = _strokes(labels, names, seed=2)
    new = _extra_stroke(labels, 1, seed=11)
    print(f"{sum(len(v) for v in strokes.voxels.values())} painted voxels; the new stroke: {len(new)} voxels of {names[1]!r}")
    t0 = time.perf_counter()
    features = compute_features(volume.data)
    print(f"features {'x'.join(map(str, features.shape))} x {features.features.shape[-1]}: {time.perf_counter() - t0:.2f} s (once per volume)")
    header = "  ".join(f"{names[i][:10]:>10s}" for i in names)
    print(f"{'method':16s} {'update: baseline':>16s} {'ours':>12s} {'ratio':>6s}  IoU {header}   stability"
          "  uncert. err top5%/all  mean IoU -> guided")
    for method in methods:
        algo, aggregate = (method.split("-") + ["mean"])[:2] if method != "forest" else ("forest", "mean")
        kwargs = {"method": algo, "aggregate": aggregate}
        before = classify(features, strokes, **kwargs)  # the state before the new stroke (feeds the cache)
        after_strokes = strokes.copy()
        after_strokes.add(1, new)
        t0, c0 = time.perf_counter(), time.process_time()
        classify(features, after_strokes, coarse_to_fine=False, smooth=0.0, **kwargs)
        base_wall, base_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        result = classify(features, after_strokes, previous=before, **kwargs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        ious = _ious(result, labels, names)
        worst = 0.0
        for index in names:
            extra = _extra_stroke(labels, index, seed=23 + index)
            if extra is None:
                continue
            more = after_strokes.copy()
            more.add(index, extra)
            changed = _ious(classify(features, more, previous=result, **kwargs), labels, names)
            worst = max([worst] + [abs(changed[j] - ious[j]) for j in names if j != index])
        wrong = result.labels != labels.astype(np.int64) + 1
        top = result.uncertainty >= np.quantile(result.uncertainty, 0.95)
        guided = after_strokes.copy()
        z = labels.shape[0] // 2 + 7
        order = np.argsort(result.uncertainty[z].ravel())[::-1][:40]
        for yx in np.stack(np.unravel_index(order, labels.shape[1:]), axis=1):
            guided.add(int(labels[z, yx[0], yx[1]]), [[z, int(yx[0]), int(yx[1])]])
        guided_ious = _ious(classify(features, guided, previous=result, **kwargs), labels, names)
        print(f"{method:16s} {base_wall:7.2f}s ({base_cpu:4.2f} CPU) {wall:5.2f}s ({cpu:4.2f}) {base_cpu / max(cpu, 1e-6):5.1f}x"
              f"      {'  '.join(f'{ious[i]:10.3f}' for i in names)}   {worst:9.3f}   {wrong[top].mean():9.2f} / {wrong.mean():.3f}"
              f"   {np.mean(list(ious.values())):.3f} -> {np.mean(list(guided_ious.values())):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--methods", default="forest,similarity-max,similarity-mean")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from engines.volume.phantom import LABELS, ORGAN_LABELS, make_organs_phantom, make_phantom

    print("times: wall-clock on a shared 2-core machine, and CPU seconds of this process (single-threaded)")
    methods = args.methods.split(",")
    volume, labels = make_phantom(args.size)
    run(volume, labels, LABELS, methods, "CT phantom")
    volume, labels = make_organs_phantom(args.size)
    run(volume, labels, ORGAN_LABELS, methods, "organs + thin tube")


if __name__ == "__main__":
    main()
