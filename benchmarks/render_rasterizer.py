"""Forward + backward time of the numba CPU rasterizer vs the vectorized-torch reference.

Scene (rendering reference §11): random Gaussians in front of a 50° camera, ~2 px footprint,
opacity 0.5, float32, one thread. Both backends render the same scene in this run; the ratio
is printed. The dense reference costs minutes, so by default it is timed on a band of rows and
scaled to the full height (labelled "extrapolated"; ``--full-reference`` times the whole image).
The plain-torch pair-list backend ("pairs") is timed too, as a stronger torch baseline, and so is
the numba path forced onto one thread ("numba_serial"). The numba tile-parallel path uses
``NUMBA_NUM_THREADS`` threads (default: all cores); torch uses ``--threads``. The load average and
the cores the parallel run actually got (CPU time / wall time) are printed because the machine
may be shared.

    NUMBA_NUM_THREADS=2 python benchmarks/render_rasterizer.py [--large] [--full-reference] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

import engines.render.rasterize as R
from engines.render.camera import intrinsics
from engines.render.rasterize import rasterize
from engines.render.reference import composite_reference


def make_scene(n: int, size: int, seed: int = 0):
    """n Gaussians uniformly in the frustum at depth 2..6 with ~2 px std-dev footprints."""
    g = torch.Generator().manual_seed(seed)
    K = intrinsics(size, size, 50.0).float()
    f = K[0, 0].item()
    z = 2 + 4 * torch.rand(n, generator=g)
    half = math.tan(math.radians(25))
    x = (torch.rand(n, generator=g) * 2 - 1) * half * z
    y = (torch.rand(n, generator=g) * 2 - 1) * half * z
    means = torch.stack([x, y, z], 1)
    scales = (2.0 * z / f)[:, None] * (0.5 + torch.rand(n, 3, generator=g))
    quats = torch.randn(n, 4, generator=g)
    opac = torch.full((n,), 0.5)
    colors = torch.rand(n, 3, generator=g)
    return means, quats, scales, opac, colors, torch.eye(4), K


def tile_pairs(scene, size):
    """Number of (tile, splat) pairs the numba backend bins for this scene."""
    import numpy as np

    from engines.render import _kernels as kern
    from engines.render.project import project_gaussians

    means, quats, scales, opac, _colors, view, K = scene
    p = project_gaussians(means, quats, scales, opac, view, K, size, size)
    mx, my = p.means2d[:, 0].detach().numpy(), p.means2d[:, 1].detach().numpy()
    order = np.argsort(p.depths.numpy(), kind="stable")
    return int(kern.bin_tiles(mx, my, p.radii.numpy().astype(np.int64), order, size, size, kern.TILE)[0][-1])


def time_backend(scene, size, backend, height=None, rows_from=0):
    means, quats, scales, opac, colors, view, K = scene
    K = K.clone()
    K[1, 2] -= rows_from
    params = [t.clone().requires_grad_() for t in (means, quats, scales, opac, colors)]
    c0 = time.process_time()
    t0 = time.perf_counter()
    image, alpha, _ = rasterize(*params, view, K, size, height or size, backend=backend)
    t1 = time.perf_counter()
    (image.sum() + alpha.sum()).backward()
    t2 = time.perf_counter()
    time_backend.cores = (time.process_time() - c0) / max(t2 - t0, 1e-9)  # CPU time / wall time
    return t1 - t0, t2 - t1, image.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--large", action="store_true", help="also run 100k Gaussians at 512²")
    parser.add_argument("--full-reference", action="store_true", help="time the reference on the whole image")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # checkpointed reference: bounded memory, every pixel still against every splat
    R.BACKENDS["reference"] = lambda *a, **k: composite_reference(*a, chunk=256, checkpoint=True, **k)
    import numba

    warm = make_scene(200, 32)
    time_backend(warm, 32, "numba")  # JIT / cache load outside the timing
    time_backend(warm, 32, "numba_serial")
    numba.get_num_threads()  # starts numba's OpenMP layer, which resets torch's thread count
    torch.set_num_threads(args.threads)
    print(f"torch threads {torch.get_num_threads()}, numba threads {numba.get_num_threads()} "
          f"(layer {numba.threading_layer()}), load average before {os.getloadavg()[0]:.2f}", flush=True)
    cases = [(10_000, 256, 64)] + ([(100_000, 512, 16)] if args.large else [])
    for n, size, band in cases:
        scene = make_scene(n, size)
        pairs = tile_pairs(scene, size)
        runs = [(*time_backend(scene, size, "numba_parallel"), time_backend.cores) for _ in range(3)]
        fw, bw, img, cores = min(runs, key=lambda r: r[0] + r[1])
        fast = fw + bw
        runs = [time_backend(scene, size, "numba_serial") for _ in range(3)]
        sf, sb, simg = min(runs, key=lambda r: r[0] + r[1])
        assert torch.equal(simg, img), "parallel and serial numba differ"
        pf, pb, pimg = time_backend(scene, size, "pairs")
        if args.full_reference:
            band = size
        rf, rb, ref_img = time_backend(scene, size, "reference", height=band, rows_from=(size - band) // 2)
        start = (size - band) // 2
        err = (ref_img - img[start:start + band]).abs().max().item()
        scale = size / band
        rf, rb = rf * scale, rb * scale
        ref = rf + rb
        note = "" if band == size else f", reference extrapolated from a {band}-row band"
        print(f"{n:>7d} Gaussians @ {size}²  (forward + backward, seconds)", flush=True)
        print(f"        {'reference (torch, dense)':<28s} fwd {rf:8.3f}  bwd {rb:8.3f}  total {ref:8.3f}")
        print(f"        {'pairs (torch, pair list)':<28s} fwd {pf:8.3f}  bwd {pb:8.3f}  total {pf + pb:8.3f}")
        print(f"        {'numba, 1 thread':<28s} fwd {sf:8.3f}  bwd {sb:8.3f}  total {sf + sb:8.3f}")
        print(f"        {f'numba, {numba.get_num_threads()} threads':<28s} fwd {fw:8.3f}  bwd {bw:8.3f}  "
              f"total {fast:8.3f}  (used {cores:.2f} cores on average)")
        auto = "parallel" if pairs >= R.PARALLEL_MIN_PAIRS else "1 thread"
        if auto == "1 thread":
            fw, bw, fast = sf, sb, sf + sb
        print(f"        ours = backend 'numba' (auto): {pairs:,} tile pairs -> {auto}; total {fast:.3f}")
        print(f"        speed-up of ours vs reference {ref / fast:.0f}x, vs pairs {(pf + pb) / fast:.1f}x, "
              f"vs numba 1 thread {(sf + sb) / fast:.2f}x "
              f"(max |numba - reference| {err:.1e}, max |numba - pairs| {(pimg - img).abs().max().item():.1e}{note}); load average now {os.getloadavg()[0]:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
