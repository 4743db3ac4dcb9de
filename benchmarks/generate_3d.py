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

``--jobs N`` distils N objects at once in worker processes (the per-object CPU time is unaffected).
``--rows-out F`` writes the per-object results as JSON; ``--merge F1 F2 ...`` prints the tables of
several such runs (one run split over separate processes, e.g. one per method and class range).
``--baseline`` also runs every SDS/SJC object with the settings before the speed-up (4 views per
step, up to 4,000 Gaussians, SJC t from 0.02) and prints the CPU-time ratio old/new and both accuracies.

Last run (2026-11-30, 1000 steps, seed 0, 1 thread per object, split over 13 processes on a 2-core
machine at load 4–23, so wall seconds are inflated; CPU s/obj is the cost on an idle core):

    method  front-arc acc  back acc  worst class  CPU s/obj  scaled-SVC acc  classes
    sds             1.000     0.600     0 (1.00)       57.1           0.614  0-9
    sjc             1.000     0.600     0 (1.00)       73.9           0.329  0-9
    vsd             1.000     0.200     0 (1.00)      139.8           0.657  0,1,3,5,7
    esd             1.000     0.300     0 (1.00)      160.6           0.857  0,1,3,5,7
    sdi             0.800     0.400     5 (0.00)      113.5           0.229  0,1,3,5,7

``--baseline`` (class 3): SDS 116.0 → 57.9 CPU s/object (2.00x); SJC class 3 before/after the
speed-up and t floor: 149.0 CPU s, front-arc 0.50 → 73.6 CPU s, 1.00. ``--image``: front PSNR in
the mask 30.1 dB mean (min 26.5 dB), ±30° views classified as the digit 1.000 (10 classes).

Run: ``python benchmarks/generate_3d.py [--steps 1000 --methods sds,sjc,vsd,esd,sdi --classes 0-9 --jobs 2 --image]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch


BACK_VIEWS = [(180.0, 0.0), (180.0, 15.0)]


def _classes(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(c) for c in text.split(",")]


_CLASSIFIERS: dict = {}


def _classifiers():
    """(unscaled, scaled) DigitClassifier, built once per process."""
    if not _CLASSIFIERS:
        from engines.generation.digits_data import DigitClassifier

        _CLASSIFIERS["pair"] = (DigitClassifier(standardize=False), DigitClassifier())
    return _CLASSIFIERS["pair"]


# The defaults before the speed-up (per-step cost about 2x): the --baseline comparison.
BASELINE = {"views_per_step": 4, "max_count": 4000, "sjc_t_min": 0.02}


def run_object(method: str, c: int, steps: int, seed: int, threads: int, save: str = "", baseline: bool = False) -> dict:
    """Distil class ``c`` with ``method`` (one process, ``threads`` torch threads) and score its views."""
    torch.set_num_threads(threads)
    from engines.distill3d import DistillSettings, distill_job
    from engines.distill3d.turntable import FRONT_ARC, orbit_views
    from engines.jobs import run_job

    clf, clf_scaled = _classifiers()
    settings = DistillSettings(class_label=c, method=method, steps=steps, seed=seed, **(BASELINE if baseline else {}))
    start, cpu = time.perf_counter(), time.process_time()
    result = run_job(distill_job(settings))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    views = orbit_views(result.scene, FRONT_ARC, settings.radius, settings.fov)
    back = orbit_views(result.scene, BACK_VIEWS, settings.radius, settings.fov)
    if save:
        from PIL import Image

        Path(save).mkdir(parents=True, exist_ok=True)
        strip = (np.concatenate(list(views), 1) * 255).round().astype(np.uint8)
        Image.fromarray(strip).save(Path(save) / f"{method}{'-old' if baseline else ''}-{c}.png")
    return {"method": method + ("-old" if baseline else ""), "class": c, "front": (clf.predict(views.mean(3)) == c).tolist(),
            "scaled": (clf_scaled.predict(views.mean(3)) == c).tolist(),
            "back": (clf.predict(back.mean(3)) == c).tolist(), "wall": wall, "cpu": cpu, "count": len(result.scene)}


def _warm(threads: int) -> None:
    """Load the model, compile/load the kernels and train the classifiers once in this process."""
    torch.set_num_threads(threads)
    from engines.distill3d import DistillSettings, distill_job
    from engines.jobs import run_job

    run_job(distill_job(DistillSettings(class_label=0, steps=2, count=50)))
    _classifiers()


def _report(row: dict) -> None:
    print(f"  {row['method']} class {row['class']}: front {np.mean(row['front']):.2f}, back {np.mean(row['back']):.2f}, "
          f"{row['wall']:.0f} s ({row['cpu']:.0f} s CPU), {row['count']} Gaussians", flush=True)


def _print_tables(methods: list, rows: dict) -> None:
    """The summary table (one line per method, over the classes it ran) and the per-class accuracies."""
    print(f"{'method':7s} {'front-arc acc':>13s} {'back acc':>9s} {'worst class':>12s} {'s/object':>9s} "
          f"{'max s':>7s} {'CPU s/obj':>9s} {'scaled-SVC acc':>14s} {'classes':>8s}")
    for m in methods:
        classes = sorted(c for mm, c in rows if mm == m)
        objs = [rows[(m, c)] for c in classes]
        per_class = {c: float(np.mean(rows[(m, c)]["front"])) for c in classes}
        worst = min(per_class, key=per_class.get)
        print(f"{m:7s} {np.mean([o['front'] for o in objs]):13.3f} {np.mean([o['back'] for o in objs]):9.3f} "
              f"{worst:>5d} ({per_class[worst]:.2f}) {np.mean([o['wall'] for o in objs]):9.1f} "
              f"{np.max([o['wall'] for o in objs]):7.1f} {np.mean([o['cpu'] for o in objs]):9.1f} "
              f"{np.mean([o['scaled'] for o in objs]):14.3f} {len(classes):8d}")
    every = sorted({c for _, c in rows})
    print("\nfront-arc accuracy per class (14 views each; bar: >= 0.90 for every class with SDS and SJC)")
    print(f"{'method':7s} " + " ".join(f"{c:>5d}" for c in every))
    for m in methods:
        print(f"{m:7s} " + " ".join(f"{np.mean(rows[(m, c)]['front']):5.2f}" if (m, c) in rows else "    -"
                                   for c in every))


def _print_merged(files: list) -> None:
    """The tables of the per-object rows of several runs (same steps and seed, split over processes)."""
    rows = {}
    for name in files:
        for row in json.loads(Path(name).read_text()):
            rows[(row["method"], row["class"])] = row
    _print_tables(list(dict.fromkeys(m for m, _ in rows)), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--methods", default="sds,sjc,vsd,esd,sdi")
    parser.add_argument("--classes", default="0-9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image", action="store_true", help="also run image → 3D on generated digits")
    parser.add_argument("--image-steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1, help="objects distilled in parallel (worker processes)")
    parser.add_argument("--baseline", action="store_true", help="also run SDS/SJC with the pre-speed-up settings")
    parser.add_argument("--rows-out", default="", help="also write the per-object results to this JSON file")
    parser.add_argument("--merge", nargs="+", default=None,
                        help="print the tables of several --rows-out files (runs split over processes) and stop")
    parser.add_argument("--save", default="", help="folder for the front-arc renders (PNG strips)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.merge:
        return _print_merged(args.merge)

    classes = _classes(args.classes)
    methods = [m for m in args.methods.split(",") if m]  # --methods "" runs only --image
    tasks = [(m, c, args.steps, args.seed, args.threads, args.save, False) for m in methods for c in classes]
    if args.baseline:
        tasks += [(m, c, args.steps, args.seed, args.threads, args.save, True) for m in methods if m in ("sds", "sjc")
                  for c in classes]
    print(f"digits-flow → 3D, {args.steps} steps, classes {classes}, seed {args.seed}, {args.threads} thread(s), "
          f"{args.jobs} worker(s)", flush=True)
    rows: dict = {}
    start = time.perf_counter()
    if args.jobs > 1 and tasks:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn"), initializer=_warm,
                                 initargs=(args.threads,)) as pool:
            for row in pool.map(run_object, *zip(*tasks)):
                rows[(row["method"], row["class"])] = row
                _report(row)
    else:
        if tasks:
            _warm(args.threads)
        for task in tasks:
            row = run_object(*task)
            rows[(row["method"], row["class"])] = row
            _report(row)
    if args.rows_out:
        Path(args.rows_out).write_text(json.dumps(list(rows.values())))
    if tasks:
        print(f"\nall {len(tasks)} objects in {time.perf_counter() - start:.0f} s wall")
        shown = methods + [m + "-old" for m in methods if args.baseline and m in ("sds", "sjc")]
        _print_tables(shown, rows)
        for m in shown:
            if m.endswith("-old"):
                old = np.mean([rows[(m, c)]["cpu"] for c in classes])
                new = np.mean([rows[(m[:-4], c)]["cpu"] for c in classes])
                print(f"{m[:-4]}: CPU s/object before {old:.1f}, now {new:.1f}: {old / new:.2f}x faster")
    if args.image:
        from engines.distill3d import DistillSettings, distill_job
        from engines.distill3d.turntable import orbit_views
        from engines.generation.api import GenerationParams, generate_job
        from engines.jobs import run_job

        clf = _classifiers()[0]
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
