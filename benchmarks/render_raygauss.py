"""RayGauss (volumetric ray casting) vs splatting, per frame and per fit step, same run, ratios printed.

Scene: ``sphere_scene`` Gaussians (footprint shrinking with the count, as a fit would make them),
one camera framing it at --size², float32, one torch thread. For each count:

* frame (forward, no gradients): splatting (numba rasterizer, what stills and fits use) vs RayGauss
  with every ray through every Gaussian ("brute force", the first version: ``tile=None``) vs RayGauss
  with 16 px tiles that keep only the Gaussians whose 3.5σ bounding sphere meets the tile's frustum,
  each ray integrating only the Gaussians within 3.5σ of it ("tiled", the default);
* fit step: forward + ``loss.backward()`` for means, scales, opacities, colours, same three.

Prints seconds, the ratios RayGauss / splatting and brute / tiled, and the largest difference
between the brute-force and tiled images (float summation order only). Brute force is skipped
above --brute-max Gaussians (it grows as pixels x Gaussians x slabs).

    python benchmarks/render_raygauss.py [--counts 250,1000,4000] [--size 64] [--slabs 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(fn, repeat: int) -> float:
    """Best-of-``repeat`` seconds of ``fn()``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _leaves(scene, grad: bool) -> dict:
    """Fresh copies of the fitted parameters (what a fit step differentiates)."""
    return {k: v.detach().clone().requires_grad_(grad) for k, v in
            {"means": scene.means, "log_scales": scene.log_scales, "logits": scene.opacity_logits,
             "rgb": scene.rgb}.items()}


def _splat(scene, cam, grad: bool):
    """Splatting (numba rasterizer) image; with ``grad``, also the backward pass of a squared loss."""
    import torch

    from engines.render.rasterize import rasterize

    p = _leaves(scene, grad)
    image, _, _ = rasterize(p["means"], scene.quats, p["log_scales"].exp(), torch.sigmoid(p["logits"]), p["rgb"],
                            cam.viewmat, cam.K, cam.width, cam.height)
    if grad:
        image.square().sum().backward()
    return image.detach()


def _ray(scene, cam, grad: bool, tile, slabs: int):
    """RayGauss image (``tile`` None: brute force); with ``grad``, also the backward pass."""
    import torch

    from engines.render.raygauss import opacity_to_density, raygauss

    p = _leaves(scene, grad)
    scales = p["log_scales"].exp()
    dens = opacity_to_density(torch.sigmoid(p["logits"]), scales)
    image, _ = raygauss(p["means"], scene.quats, scales, dens, p["rgb"], cam.viewmat, cam.K, cam.width, cam.height,
                        slabs=slabs, tile=tile)
    if grad:
        image.square().sum().backward()
    return image.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="250,1000,4000")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--slabs", type=int, default=32, help="slabs per ray (the fit's default)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--brute-max", type=int, default=4000, help="skip brute force above this count")
    args = parser.parse_args()
    import torch

    from engines.render.camera import frame_camera
    from engines.render.rasterize import warm_kernels
    from engines.render.synthetic import sphere_scene

    torch.set_num_threads(1)
    warm_kernels(("classic",))
    print(f"{args.size}x{args.size}, {args.slabs} slabs, float32, 1 torch thread, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for count in (int(c) for c in args.counts.split(",")):
        scene = sphere_scene(count, footprint=0.5 / count ** 0.5, sh_degree=0)
        cam = frame_camera(scene.means, 30.0, 15.0, args.size, args.size).to(torch.float32)

        splat = lambda grad, c=cam, sc=scene: _splat(sc, c, grad)
        ray = lambda grad, tile, c=cam, sc=scene: _ray(sc, c, grad, tile, args.slabs)

        brute = count <= args.brute_max
        row = {}
        for label, grad in (("frame", False), ("fit step", True)):
            ctx = torch.enable_grad() if grad else torch.no_grad()
            with ctx:
                t_splat = timed(lambda g=grad, f=splat: f(g), args.repeat)
                t_tiled = timed(lambda g=grad, f=ray: f(g, 16), args.repeat)
                t_brute = timed(lambda g=grad, f=ray: f(g, None), 1) if brute else float("nan")
            row[label] = (t_splat, t_brute, t_tiled)
        with torch.no_grad():
            diff = float((ray(False, 16) - ray(False, None)).abs().max()) if brute else float("nan")
        for label, (t_splat, t_brute, t_tiled) in row.items():
            brute_text = (f"RayGauss brute force {t_brute * 1000:.0f} ms ({t_brute / t_splat:.0f}x splatting, "
                          f"{t_brute / t_tiled:.1f}x tiled)" if brute else "brute force skipped")
            print(f"{count:5d} Gaussians, {label:8s}: splatting {t_splat * 1000:.0f} ms | RayGauss tiled "
                  f"{t_tiled * 1000:.0f} ms ({t_tiled / t_splat:.0f}x splatting) | {brute_text}", flush=True)
        if brute:
            print(f"{count:5d} Gaussians: max |tiled - brute force| {diff:.1e}", flush=True)


if __name__ == "__main__":
    main()
