"""Paint-to-classify timings on the 128³ phantom: features (once) and the update after a new
stroke, for feature similarity (Engel et al.) and the random forest, at full and half
resolution; the baseline is scikit-image's multiscale_basic_features at half resolution.

    .venv/bin/python benchmarks/volume_classify.py
"""

from __future__ import annotations

import time

import numpy as np
import torch


def main() -> None:
    torch.set_num_threads(1)
    from skimage.feature import multiscale_basic_features

    from engines.volume.classify import ClassSpec, Strokes, classify, compute_features
    from engines.volume.phantom import LABELS, make_phantom

    volume, labels = make_phantom(128)
    rng = np.random.default_rng(1)
    strokes = Strokes([ClassSpec(LABELS[i]) for i in range(5)])
    for label in range(5):
        for z in (40, 64, 90):
            idx = np.argwhere(labels[z] == label)
            pick = idx[rng.choice(len(idx), min(10, len(idx)), replace=False)]
            strokes.add(label, np.c_[np.full(len(pick), z), pick])
    t0 = time.perf_counter()
    multiscale_basic_features(volume.data[::2, ::2, ::2], sigma_min=1, sigma_max=8, num_sigma=4)
    t_sk = time.perf_counter() - t0
    print(f"scikit-image multiscale_basic_features at 64^3 (baseline): {t_sk:6.2f} s")
    for factor in (1, 2):
        t0 = time.perf_counter()
        features = compute_features(volume.data, factor=factor)
        t_feat = time.perf_counter() - t0
        print(f"features at 1/{factor} ({features.features.shape[0]}^3, {features.features.shape[-1]} channels): {t_feat:6.2f} s"
              + (f"   ratio vs scikit-image 64^3: {t_sk / t_feat:4.1f}x" if factor == 2 else ""))
        for method in ("similarity", "forest"):
            t0 = time.perf_counter()
            result = classify(features, strokes, method=method)
            t_upd = time.perf_counter() - t0
            iou = [((result.labels == l + 1) & (labels == l)).sum() / max(((result.labels == l + 1) | (labels == l)).sum(), 1)
                   for l in (3, 2)]
            print(f"  update ({method:10s}): {t_upd:6.2f} s   IoU bone {iou[0]:.2f} vessel {iou[1]:.2f} (first strokes only)")


if __name__ == "__main__":
    main()
