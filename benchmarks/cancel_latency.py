"""Cancel latency per panel: from JobQueue.cancel() to the job's real stop (state "cancelled").

Each panel's long job runs on the studio's real JobQueue (worker thread, throttled events, as the
panels submit it). Once it has run for ``--warm`` seconds the benchmark cancels it and measures
how long the job stays "cancelling" (the generator is still inside a computation that cannot
be interrupted) until the queue reports "cancelled". Goal: under 1 s for every job.

For the volume ray caster the same render is also cancelled with the previous slab budget
(no ray chunks: one whole slab of up to 4M samples between two cancellation points) so the
effect of the ray chunks shows side by side; likewise the 200k-splat still with one rasterizer
call (as before) and rendered in steps (projection chunks, composited bands).

The other long jobs of every panel (benchmarks/cancel_jobs.py: diffusers pipeline, Generate → 3D,
sphere fit, RayGauss, paint features / classify, learned-codec and tokenizer training, compare,
RD on the batch executor ...) follow; the table is grouped by panel. ``--only TEXT`` keeps the
jobs whose name contains TEXT.

    .venv/bin/python benchmarks/cancel_latency.py [--warm 1.5] [--volume 192] [--image 512] [--only codec]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_API", "pyside6")

import numpy as np
import torch
from qtpy.QtCore import QCoreApplication

from engines.jobs import CancelToken
from studio.jobs import CANCELLED, CANCELLING, FINAL_STATES, RUNNING, JobQueue


def measure(queue: JobQueue, name: str, factory, warm: float, ready=None) -> dict:
    """Run ``factory(token)`` on the queue; once ``ready(record)`` holds, let it run ``warm`` s more,
    cancel it and return how long it took to really stop."""
    token = CancelToken()
    handle = queue.submit(name, "bench", lambda: factory(token), cancel_token=token)
    deadline = time.monotonic() + 600
    ready = ready or (lambda record: record.state == RUNNING)
    while not ready(handle.record) and handle.state not in FINAL_STATES and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.002)
    started = time.monotonic()
    while time.monotonic() - started < warm and handle.state not in FINAL_STATES:
        QCoreApplication.processEvents()
        time.sleep(0.002)
    if handle.state in FINAL_STATES:
        return {"job": name, "latency": None, "note": f"ended ({handle.state}) before the cancel"}
    asked = time.monotonic()
    handle.cancel()
    saw_cancelling = handle.state == CANCELLING
    while handle.state not in FINAL_STATES and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.001)
    latency = time.monotonic() - asked
    queue.wait_all(60)
    ok = handle.state == CANCELLED
    return {"job": name, "latency": latency, "note": ("" if ok else f"ended {handle.state}") +
            ("" if saw_cancelling else " (no cancelling state)")}


def _one_call_still(scene, camera):
    """The still job as it was: the whole (up to 1024²) tile in one uninterruptible rasterizer call."""
    from engines.jobs import Progress
    from engines.render.rasterize import rasterize_scene

    yield Progress(0, 1, "rendering")
    with torch.no_grad():
        image = rasterize_scene(scene, camera.to(torch.float32))[0]
    yield Progress(1, 1, "done")
    return image.clamp(0, 1).numpy()


def jobs(args, panel: str):
    """(name, factory(cancel_token), ready) for the first long jobs of ``panel``, built like the panels build them."""
    for entry in _first_jobs(args):
        if entry[0].startswith(panel + ":"):
            yield entry


def _first_jobs(args):
    from engines.codec.blockcodec import BlockCodecParams
    from engines.codec.images import sample_image
    from engines.codec.rd import rd_sweep_job
    from engines.codec.tasks import encode_job
    from engines.generation.api import GenerationParams, generate_job
    from engines.render.camera import frame_camera
    from engines.render.fit import FitSettings, fit_job
    from engines.render.scene import Gaussians
    from engines.render.still import still_job
    from engines.volume.phantom import make_phantom
    from engines.volume.raycast import render_job
    from engines.volume.tf import preset

    params = GenerationParams(model="digits-flow", steps=200, batch=4, seed=1)
    yield ("generate: start (cold: diffusers import + model load; then sampling)",
           lambda tok: generate_job(params, device="cpu", cancel=tok), None)
    yield ("generate: sampling (digits-flow, 200 steps, batch 4)",
           lambda tok: generate_job(params, device="cpu", cancel=tok), lambda record: record.message.startswith("step"))
    photo = sample_image("astronaut")[::2, ::2].copy()
    yield ("render: fit (3000 Gaussians, 2000 steps)",
           lambda tok: fit_job([photo], None, FitSettings(count=3000, steps=2000, preview_every=10)), None)
    g = torch.Generator().manual_seed(0)
    n = args.splats
    scene = Gaussians(torch.randn(n, 3, generator=g), torch.nn.functional.normalize(torch.randn(n, 4, generator=g)),
                      torch.randn(n, 3, generator=g) - 4.5, torch.randn(n, generator=g), torch.randn(n, 16, 3, generator=g))
    camera = frame_camera(scene.means.numpy(), 20.0, 10.0, 1280, 720, 45.0)
    yield (f"render: still ({n:,} splats, 1280x720), before: one rasterizer call per tile",
           lambda tok: _one_call_still(scene, camera), None, 0.3)
    yield (f"render: still ({n:,} splats, 1280x720), now", lambda tok: still_job(scene, camera), None, 0.3)
    volume = make_phantom(args.volume)[0]
    tf = preset("CT-Bone")
    kwargs = {"tf": tf, "mode": "dvr", "azimuth": 30.0, "elevation": 20.0, "size": args.image, "step": 0.5,
              "shading": True, "device": "cpu"}
    yield (f"volume: ray cast ({args.volume}³, {args.image}², shaded), before: no ray chunks",
           lambda tok: render_job(volume, max_chunk_samples=10**12, **kwargs), None)
    yield (f"volume: ray cast ({args.volume}³, {args.image}², shaded), now", lambda tok: render_job(volume, **kwargs), None)
    big = np.tile(sample_image("astronaut"), (4, 4, 1))
    yield (f"codec: encode ({big.shape[1]}x{big.shape[0]})",
           lambda tok: encode_job(big, BlockCodecParams(quality=50)), None, 0.1)
    yield ("codec: encode (astronaut 512x512: usually done before the cancel)",
           lambda tok: encode_job(sample_image("astronaut"), BlockCodecParams(quality=50)), None)
    yield ("codec: RD sweep (astronaut, 3 codecs x 9 qualities)",
           lambda tok: rd_sweep_job([("astronaut", sample_image("astronaut"))], ["block", "jpeg", "webp"]), None)


def _timed_gaps(job) -> tuple[float, float, float]:
    """Drive ``job`` on this thread: (wall s, CPU s, longest time between two yields s)."""
    t0, c0 = time.perf_counter(), time.process_time()
    last, gap = t0, 0.0
    for _ in job:
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    now = time.perf_counter()
    return now - t0, time.process_time() - c0, max(gap, now - last)


def classify_slab_cost(args, repeat: int = 5) -> None:
    """Volume classify with the full-resolution passes (labels, uncertainty, class colours) in one
    piece (before) and in slabs (now): wall / CPU time of the whole job and its longest stretch
    without a cancellation point. Before and now alternate (a shared machine's load hits both);
    medians of ``repeat`` runs after a warm-up run; torch single-threaded for steadier CPU figures."""
    from benchmarks.cancel_jobs import classify_inputs
    from engines.volume import classify as engine
    from engines.volume.classify import compute_features
    from panels.volume.panel import _classify_job

    volume, strokes, classes, factor = classify_inputs(args.volume)
    features = compute_features(volume.data, factor=factor)
    slab, threads = engine.SLAB_VOXELS, torch.get_num_threads()
    print(f"\nvolume classify ({args.volume}³, features cached, 1 torch thread): the full-resolution passes in one "
          f"piece (before) vs in slabs of {slab:,} voxels (now); medians of {repeat}")
    print(f"{'method':>11} {'before: wall':>13} {'CPU':>6} {'gap':>7}   {'now: wall':>10} {'CPU':>6} {'gap':>7}   CPU now/before")
    torch.set_num_threads(1)
    try:
        for method in ("similarity", "forest"):
            rows = {"before": [], "now": []}
            for trial in range(repeat + 1):
                for label, voxels in (("before", 1 << 62), ("now", slab)):
                    engine.SLAB_VOXELS = voxels
                    timing = _timed_gaps(_classify_job(volume.data, features, strokes, method, classes, factor))
                    if trial:  # the first round warms up
                        rows[label].append(timing)
                    engine.SLAB_VOXELS = slab
            (bw, bc, bg), (nw, nc, ng) = (np.median(rows[k], axis=0) for k in ("before", "now"))
            print(f"{method:>11} {bw:12.2f}s {bc:5.2f}s {bg * 1000:5.0f}ms   {nw:9.2f}s {nc:5.2f}s {ng * 1000:5.0f}ms   "
                  f"{nc / max(bc, 1e-9):.3f}x", flush=True)
    finally:
        engine.SLAB_VOXELS = slab
        torch.set_num_threads(threads)


def _grouped(args):
    """The jobs of :func:`jobs` and :mod:`benchmarks.cancel_jobs` as ``(name, factory, ready, warm)``
    (``warm`` None = ``--warm``; short jobs bring a shorter one), grouped by panel with a header
    line per panel; ``args.only`` filters by name."""
    from benchmarks.cancel_jobs import all_jobs

    panel = None
    for panel_name in ("generate", "render", "volume", "codec"):
        for entry in [*jobs(args, panel_name), *all_jobs(args, panel_name)]:
            name, factory, ready, short = (*entry, None) if len(entry) == 3 else entry
            if args.only and args.only not in name:
                continue
            if panel != panel_name:
                panel = panel_name
                print(f"-- {panel_name}", flush=True)
            yield name, factory, ready, short


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", type=float, default=1.0, help="seconds a job runs before it is cancelled")
    parser.add_argument("--repeat", type=int, default=3, help="cancels per job (the first one is cold)")
    parser.add_argument("--volume", type=int, default=192, help="phantom size (voxels per side)")
    parser.add_argument("--image", type=int, default=512, help="ray-cast image size")
    parser.add_argument("--splats", type=int, default=200_000, help="splats in the still-render scene")
    parser.add_argument("--only", default="", help="only the jobs whose name contains this text (e.g. 'volume:')")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    app = QCoreApplication.instance() or QCoreApplication(sys.argv)
    queue = JobQueue(max_running=1)
    print(f"{'cold':>8} {'warm max':>9} {'warm med':>9}   job (cancel after {args.warm:.1f}-{args.warm * 2:.1f} s of running)")
    worst = []
    for name, factory, ready, short in _grouped(args):
        rows = []
        for trial in range(max(1, args.repeat)):
            warm = (short if short is not None else args.warm) * (1.0 + trial / max(1, args.repeat - 1))
            rows.append(measure(queue, name, factory, warm, ready))
        times = [r["latency"] for r in rows if r["latency"] is not None]
        notes = sorted({r["note"].strip() for r in rows if r["note"].strip()})
        cold = "—" if rows[0]["latency"] is None else f"{rows[0]['latency'] * 1000:.0f}"
        later = times[1:] if rows[0]["latency"] is not None else times
        steady_max = f"{max(later) * 1000:.0f}" if later else "—"
        steady_med = f"{float(np.median(later)) * 1000:.0f}" if later else "—"
        if later:
            if "before:" not in name:  # the "before" rows are the old code paths, shown for comparison
                worst.append((max(later), name))
        print(f"{cold:>8} {steady_max:>9} {steady_med:>9}   {name} {'; '.join(notes)}", flush=True)
    if worst:
        slow = [n for t, n in worst if t >= 1.0]
        print(f"\nafter warm-up: worst {max(worst)[0] * 1000:.0f} ms; {len(worst) - len(slow)}/{len(worst)} jobs stop within 1 s"
              " (the 'before' rows left out)"
              + (f" (over: {'; '.join(slow)})" if slow else ""))
    if not args.only or args.only in "volume: classify":
        classify_slab_cost(args)
    del app


if __name__ == "__main__":
    main()
