"""Fitting strategies side by side: 3DGS density control (default) vs 3DGS-MCMC, same budget, same run.

Two tasks: a photo (skimage ``astronaut`` at --side px, 2D mode) and posed views (a synthetic sphere
scene rendered from --views Fibonacci cameras, evaluated on 4 held-out cameras). For each strategy it
prints the Gaussian count and PSNR along the run (PSNR against count), the final PSNR and the time.
MCMC runs twice: gsplat's 5 % growth per refine step, and 25 % so that it reaches the same budget in
a short run.

    python benchmarks/render_fit.py [--steps 400] [--count 300] [--max-count 1500]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(targets, cameras, settings, held_out=None):
    """(result, seconds, final PSNR on held-out views or on the targets)."""
    from engines.jobs import run_job
    from engines.render.fit import evaluate, fit_job

    t0 = time.perf_counter()
    result = run_job(fit_job(targets, cameras, settings))
    seconds = time.perf_counter() - t0
    score = evaluate(result.scene, *held_out, settings) if held_out else result.final_psnr
    return result, seconds, score


def curve(result, points: int = 5) -> str:
    """'count@step: PSNR' at a few steps (PSNR of the training view of that step)."""
    hist = result.history
    picks = [hist[min(len(hist) - 1, round(i * (len(hist) - 1) / (points - 1)))] for i in range(points)]
    return ", ".join(f"{h['count']}@{h['step']}: {h['psnr']:.1f}" for h in picks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--max-count", type=int, default=1500)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--views", type=int, default=12)
    args = parser.parse_args()
    import numpy as np
    import torch
    from PIL import Image
    from skimage import data

    from engines.render.camera import fibonacci_cameras
    from engines.render.fit import FitSettings
    from engines.render.synthetic import render_views, sphere_scene

    torch.set_num_threads(1)
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((args.side, args.side), Image.LANCZOS))
    truth = sphere_scene(2000, footprint=0.08, sh_degree=0)
    cams = fibonacci_cameras(args.views + 4, 3.5, width=48, height=48)
    train, test = cams[:args.views], cams[args.views:]
    images = render_views(truth, cams)
    tasks = [("photo", [photo], None, None),
             ("posed views", images[:args.views], train, (test, images[args.views:]))]
    for name, targets, cameras, held in tasks:
        for strategy, growth in (("default", 1.05), ("mcmc", 1.05), ("mcmc", 1.25)):
            settings = FitSettings(count=args.count, steps=args.steps, strategy=strategy, max_count=args.max_count,
                                   seed=0, densify_every=25, mcmc_growth=growth)
            result, seconds, score = run(targets, cameras, settings, held)
            where = "held-out views" if held else "photo"
            label = strategy if strategy == "default" else f"mcmc x{growth}"
            print(f"{name:12s} {label:9s} final {len(result.scene):5d} Gaussians, PSNR {score:.2f} dB ({where}), "
                  f"{seconds:.1f} s | count@step: PSNR  {curve(result)}", flush=True)


if __name__ == "__main__":
    main()
