"""Paint-to-classify on the 128³ phantom: the update after a new stroke.

Strokes: three short brush strokes per class on each of three axial slices (simulated from
the phantom's labels on those slices), then one more stroke. Compared, in the same run:

- old path: the first Update of the previous panel computed the features in the same job as
  the classifier (features + classifier, exact evaluation, no smoothing);
- new path: features computed once when paint mode is entered (a job, timed separately);
  an Update after a new stroke only re-runs the classifier (coarse-to-fine evaluation +
  score smoothing) on the cached features;
- and the classifier alone with the exact evaluation (the previous per-update cost once
  features were cached);

for full- and half-resolution features, with IoU of bone and vessels on the full volume. The
scikit-image ``multiscale_basic_features`` time at 64³ is printed as an outside reference.

    .venv/bin/python benchmarks/volume_classify.py
"""

from __future__ import annotations

import time

import torch


def main() -> None:
    torch.set_num_threads(1)
    from skimage.feature import multiscale_basic_features

    from engines.volume.classify import ClassSpec, Strokes, classify, compute_features
    from engines.volume.phantom import LABELS, make_phantom, simulate_strokes

    volume, labels = make_phantom(128)
    strokes = Strokes([ClassSpec(LABELS[i]) for i in range(5)])
    for index, voxels in simulate_strokes(labels, {i: i for i in range(5)}, slices=(40, 64, 90), per_slice=3, seed=2).items():
        strokes.add(index, voxels)
    extra = simulate_strokes(labels, {2: 2}, slices=(70,), per_slice=1, seed=9)[2]  # the "new stroke"
    strokes.add(2, extra)
    print(f"{sum(len(v) for v in strokes.voxels.values())} painted voxels ({len(extra)} in the new stroke)")

    def iou(result, label):
        pred, truth = result.labels == label + 1, labels == label
        return (pred & truth).sum() / max((pred | truth).sum(), 1)

    t0 = time.perf_counter()
    multiscale_basic_features(volume.data[::2, ::2, ::2], sigma_min=1, sigma_max=8, num_sigma=4)
    print(f"reference: scikit-image multiscale_basic_features at 64^3: {time.perf_counter() - t0:5.2f} s")
    print("wall-clock seconds on a shared machine; the CPU time of the new update is given as well")
    print(f"{'features':10s} {'method':17s} {'old: feat+clf':>13s} {'clf exact':>10s} {'new update':>10s} {'speed-up':>9s}"
          f"   IoU bone/vessel exact -> new")
    for factor in (1, 2):
        t0 = time.perf_counter()
        features = compute_features(volume.data, factor=factor)
        t_feat = time.perf_counter() - t0
        grid = "x".join(map(str, features.shape))
        print(f"features at 1/{factor} ({grid}, {features.features.shape[-1]} channels): {t_feat:5.2f} s (once per volume)")
        for method, aggregate in (("forest", "mean"), ("similarity", "max"), ("similarity", "mean")):
            t0 = time.perf_counter()
            exact = classify(features, strokes, method=method, aggregate=aggregate, coarse_to_fine=False, smooth=0.0)
            t_exact = time.perf_counter() - t0
            t0, c0 = time.perf_counter(), time.process_time()
            new = classify(features, strokes, method=method, aggregate=aggregate)
            t_new, c_new = time.perf_counter() - t0, time.process_time() - c0
            old = t_feat + t_exact
            name = method if method == "forest" else f"similarity-{aggregate}"
            print(f"1/{factor:<8d} {name:17s} {old:12.2f}s {t_exact:9.2f}s {t_new:9.2f}s {old / t_new:8.1f}x"
                  f"   {iou(exact, 3):.3f}/{iou(exact, 2):.3f} -> {iou(new, 3):.3f}/{iou(new, 2):.3f}"
                  f"  (refined {100 * new.info['refined_fraction']:.0f} %, update CPU {c_new:.2f} s)")


if __name__ == "__main__":
    main()
