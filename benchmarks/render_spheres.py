"""Sphere renderer step time (forward + backward): every pixel x every sphere vs screen-box pair list, same run.

2000 spheres on a unit sphere (radius --radius), one 128x128 camera, float32 like a fit step.
Baseline: the dense renderer with the centre depth (the renderer before the pair list); ours: the
pair list with ray-sphere intersection depth. Also prints the largest pixel difference between the
pair list and the dense renderer computing the same (intersection-depth) image, in float32 (rounding
at sphere rims, where closeness -> 0) and float64.

Density control (clone / split / prune) for spheres, default setting against forced on / off, same run:
a refit of 40 known spheres from a perturbed start (6 views, 32x32: the default leaves it off, a split
breaks the near fit) and a photo fit from 60 spheres (astronaut 32x32: the default keeps it on).

    python benchmarks/render_spheres.py [--count 2000] [--size 128] [--repeat 3] [--fit-steps 150]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def step_time(fn, args, kwargs, repeat: int) -> float:
    """Best-of-``repeat`` seconds for one forward + backward."""
    best = float("inf")
    for _ in range(repeat):
        params = [a.detach().clone().requires_grad_() for a in args[:4]]
        t0 = time.perf_counter()
        image, _ = fn(*params, *args[4:], **kwargs)
        image.square().sum().backward()
        best = min(best, time.perf_counter() - t0)
    return best


def density_control(steps: int) -> None:
    """PSNR of sphere fits with the default density setting and with it forced the other way."""
    import numpy as np
    from skimage import data, transform

    from engines.jobs import run_job
    from engines.render.fit import FitSettings, densify_enabled, fit_job
    from engines.render.synthetic import sphere_refit_problem

    _, cams, views, init = sphere_refit_problem(40)
    photo = transform.resize(data.astronaut(), (32, 32), anti_aliasing=True).astype(np.float32)
    tasks = [("refit of 40 known spheres", views, cams, init, {"lr_means": 2e-3, "lambda_dssim": 0.0}),
             ("photo from 60 spheres", [photo], None, None, {"count": 60, "densify_every": 25, "max_count": 600,
                                                             "seed": 3})]
    for name, targets, cameras, start, extra in tasks:
        parts = []
        for densify in (None, True, False):
            settings = FitSettings(primitive="spheres", steps=steps, densify=densify, **extra)
            t0 = time.perf_counter()
            result = run_job(fit_job(targets, cameras, settings, init=start))
            label = {None: f"default ({'on' if densify_enabled(settings, start) else 'off'})", True: "on",
                     False: "off"}[densify]
            parts.append(f"{label} {result.final_psnr:.1f} dB, {len(result.scene.centres)} spheres, "
                         f"{time.perf_counter() - t0:.0f} s")
        print(f"density control, {name}: " + " | ".join(parts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--radius", type=float, default=0.06)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fit-steps", type=int, default=150, help="steps of the density-control fits (0: skip)")
    args = parser.parse_args()
    import torch

    from engines.render.camera import orbit_camera
    from engines.render.pulsar import render_spheres, render_spheres_dense

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    d = torch.randn(args.count, 3, generator=g)
    centres = d / d.norm(dim=1, keepdim=True)
    radii = args.radius * (0.5 + torch.rand(args.count, generator=g))
    colors, opac = torch.rand(args.count, 3, generator=g), 0.5 + 0.5 * torch.rand(args.count, generator=g)
    cam = orbit_camera(30, 20, 3.5, width=args.size, height=args.size).to(torch.float32)
    inputs = (centres, radii, colors, opac, cam.viewmat, cam.K, args.size, args.size)
    kw = {"gamma": 0.5}
    dense_old = step_time(render_spheres_dense, inputs, dict(kw, depth="centre"), args.repeat)
    dense_new = step_time(render_spheres_dense, inputs, kw, args.repeat)
    pairs = step_time(render_spheres, inputs, kw, args.repeat)
    with torch.no_grad():
        a, _ = render_spheres(*inputs, **kw)
        b, _ = render_spheres_dense(*inputs, **kw)
        double = tuple(x.double() for x in inputs[:6]) + inputs[6:]
        a64, _ = render_spheres(*double, **kw)
        b64, _ = render_spheres_dense(*double, **kw)
    print(f"{args.count} spheres @ {args.size}x{args.size}, forward+backward per step: "
          f"dense (centre depth, before) {dense_old * 1000:.0f} ms | dense (intersection depth) {dense_new * 1000:.0f} ms"
          f" | pair list (intersection depth) {pairs * 1000:.0f} ms | speed-up vs before {dense_old / pairs:.1f}x | "
          f"max |pair list - dense| {float((a - b).abs().max()):.1e} (float32), {float((a64 - b64).abs().max()):.1e} "
          f"(float64)", flush=True)
    if args.fit_steps:
        density_control(args.fit_steps)


if __name__ == "__main__":
    main()
