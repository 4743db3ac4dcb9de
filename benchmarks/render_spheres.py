"""Sphere renderer step time (forward + backward): every pixel x every sphere vs screen-box pair list, same run.

2000 spheres on a unit sphere (radius --radius), one 128x128 camera, float32 like a fit step.
Baseline: the dense renderer with the centre depth (the renderer before the pair list); ours: the
pair list with ray-sphere intersection depth. Also prints the largest pixel difference between the
pair list and the dense renderer computing the same (intersection-depth) image, in float32 (rounding
at sphere rims, where closeness -> 0) and float64.

    python benchmarks/render_spheres.py [--count 2000] [--size 128] [--repeat 3]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--radius", type=float, default=0.06)
    parser.add_argument("--repeat", type=int, default=3)
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
          f"(float64)")


if __name__ == "__main__":
    main()
