"""Peak memory of a big still: tiled rendering (``render image``) vs one untiled rasterizer call, same run.

Each configuration runs in a fresh Python process that renders a small scene to a PNG and reports
its own peak resident set size (``ru_maxrss``):
  * untiled: ``rasterize_scene`` on the whole image + float-to-PNG conversion (the pre-tiling path);
  * tiled: :func:`engines.render.still.render_tiled` into a uint8 image (what ``python main.py render
    image --size W,H`` does now).

    python benchmarks/render_still_memory.py [--sizes 2048,4096,8192] [--baseline-max 4096]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {root!r})
import numpy as np, torch
torch.set_num_threads(1)
from engines.jobs import run_job
from engines.render.camera import frame_camera
from engines.render.rasterize import rasterize_scene
from engines.render.still import render_tiled
from engines.render.synthetic import sphere_scene
from studio.export import save_png
size, mode, out = {size}, {mode!r}, {out!r}
scene = sphere_scene(2000, footprint=0.08)
camera = frame_camera(scene.means, 30, 10, size, size, 50.0)
t0 = time.perf_counter()
if mode == "untiled":
    with torch.no_grad():
        image = rasterize_scene(scene, camera.to(torch.float32))[0].clamp(0, 1).numpy()
else:
    image, _, _ = run_job(render_tiled(scene, camera, dtype=np.uint8))
save_png(out, image, {{"panel": "render"}}, force=True)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
print(json.dumps({{"rss_mb": rss, "seconds": time.perf_counter() - t0}}))
"""


def measure(size: int, mode: str) -> dict:
    """Run one configuration in a child process; returns its peak RSS (MiB) and render+save time."""
    with tempfile.TemporaryDirectory() as tmp:
        code = CHILD.format(root=str(ROOT), size=size, mode=mode, out=str(Path(tmp) / "still.png"))
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2048,4096,8192")
    parser.add_argument("--baseline-max", type=int, default=4096, help="largest size for the untiled baseline")
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        t0 = time.perf_counter()
        tiled = measure(size, "tiled")
        line = f"{size}x{size}: tiled peak RSS {tiled['rss_mb']:.0f} MiB ({tiled['seconds']:.1f} s)"
        if size <= args.baseline_max:
            untiled = measure(size, "untiled")
            line += (f" | untiled {untiled['rss_mb']:.0f} MiB ({untiled['seconds']:.1f} s)"
                     f" | ratio {untiled['rss_mb'] / tiled['rss_mb']:.1f}x")
        print(line + f"  [{time.perf_counter() - t0:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
