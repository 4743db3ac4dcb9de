"""3D score distillation from the shipped digits model: does the object read as the digit?

For every method (SDS, SJC, VSD, ESD, SDI; same run, same seeds) and every class 0–9, distil a
scene with ``--steps`` steps, render it at azimuth −45…45° (step 15°) × elevation 0° and 15°
and let an INDEPENDENT digit classifier (scikit-learn SVC trained on the real load_digits
images; the SVC of benchmarks/generate_quality.py without its per-pixel StandardScaler, which turns a
faint background offset in the always-black border pixels into huge features) label the views;
the last column repeats the front-arc accuracy with the standardised SVC of generate_quality.py. "CPU s/obj" is the process
CPU time per object (one torch thread), i.e. the wall time on an otherwise idle core. Reports per method the
front-arc accuracy (fraction of the 14 × classes views labelled as the requested class), the
back-view accuracy (azimuth 180°, elevations 0° and 15°: a high value means the digit also
appears un-mirrored from behind, the Janus indicator), the mean and max wall time per object.
``--image`` adds the image → 3D check: one generated digit per class as the reference, PSNR of
the front view inside the mask and the accuracy of the ±30° views.

Run: ``python benchmarks/generate_3d.py [--steps 1000 --methods sds,sjc,vsd,esd,sdi --classes 0-9 --image]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch


def _classes(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(c) for c in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--methods", default="sds,sjc,vsd,esd,sdi")
    parser.add_argument("--classes", default="0-9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image", action="store_true", help="also run image → 3D on generated digits")
    parser.add_argument("--image-steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save", default="", help="folder for the front-arc renders (PNG strips)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from engines.distill3d import DistillSettings, distill_job
    from engines.distill3d.turntable import FRONT_ARC, orbit_views
    from engines.generation.digits_data import DigitClassifier
    from engines.jobs import run_job

    clf = DigitClassifier(standardize=False)
    clf_scaled = DigitClassifier()
    classes = _classes(args.classes)
    back = [(180.0, 0.0), (180.0, 15.0)]
    print(f"digits-flow → 3D, {args.steps} steps, classes {classes}, seed {args.seed}, {args.threads} thread(s)")
    print(f"{'method':7s} {'front-arc acc':>13s} {'back acc':>9s} {'worst class':>12s} {'s/object':>9s} {'max s':>7s} {'CPU s/obj':>9s} {'scaled-SVC acc':>14s}")
    for method in [m for m in args.methods.split(",") if m]:  # --methods "" runs only --image
        front_hits, back_hits, per_class, times, scaled_hits, cpu_times = [], [], {}, [], [], []
        for c in classes:
            settings = DistillSettings(class_label=c, method=method, steps=args.steps, seed=args.seed)
            start, cpu = time.perf_counter(), time.process_time()
            result = run_job(distill_job(settings))
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu)
            views = orbit_views(result.scene, FRONT_ARC, settings.radius, settings.fov)
            hits = clf.predict(views.mean(3)) == c
            front_hits += list(hits)
            scaled_hits += list(clf_scaled.predict(views.mean(3)) == c)
            per_class[c] = float(hits.mean())
            back_hits += list(clf.predict(orbit_views(result.scene, back, settings.radius, settings.fov).mean(3)) == c)
            if args.save:
                from PIL import Image

                Path(args.save).mkdir(parents=True, exist_ok=True)
                strip = (np.concatenate(list(views), 1) * 255).round().astype(np.uint8)
                Image.fromarray(strip).save(Path(args.save) / f"{method}-{c}.png")
        worst = min(per_class, key=per_class.get)
        print(f"{method:7s} {np.mean(front_hits):13.3f} {np.mean(back_hits):9.3f} "
              f"{worst:>5d} ({per_class[worst]:.2f}) {np.mean(times):9.1f} {np.max(times):7.1f} "
              f"{np.mean(cpu_times):9.1f} {np.mean(scaled_hits):14.3f}", flush=True)
    if args.image:
        from engines.generation.api import GenerationParams, generate_job

        psnrs, hits = [], []
        start = time.perf_counter()
        for c in classes:
            image = run_job(generate_job(GenerationParams(model="digits-flow", class_label=c, steps=20,
                                                          seed=100 + c))).images[0]
            settings = DistillSettings(class_label=c, steps=args.image_steps, views_per_step=1, count=600,
                                       seed=args.seed)
            result = run_job(distill_job(settings, reference=image))
            psnrs.append(result.reference_psnr)
            side = orbit_views(result.scene, [(-30.0, 0.0), (30.0, 0.0)], settings.radius, settings.fov)
            hits += list(clf.predict(side.mean(3)) == c)
        print(f"image→3D ({args.image_steps} steps): front PSNR in mask mean {np.mean(psnrs):.1f} dB, "
              f"min {np.min(psnrs):.1f} dB; ±30° views classified as the digit: {np.mean(hits):.3f}; "
              f"{(time.perf_counter() - start) / len(classes):.1f} s/object")


if __name__ == "__main__":
    main()
