"""Overhead of the studio's job + preview path against calling the same model and sampler directly.

Baseline: a minimal loop (FlowMatchEulerDiscreteScheduler + the shipped UNet, CFG, no previews).
Ours: (a) the engine job ``generate_job`` with a preview (predicted x0 grid) every step, driven by
``run_job``; (b) the same job through the studio's Qt ``JobQueue`` (worker thread, throttled
signals, a callback that converts each preview to a QImage). Prints times and ratios (goal < 1.05).

Run: ``python benchmarks/generate_overhead.py [--steps 20 --batch 8 --repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch


def direct(unet, steps: int, batch: int, label: int, cfg: float, seed: int) -> torch.Tensor:
    """The baseline: a bare sampling loop, same model, sampler, noise and guidance."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from engines.generation.sampling import noise_for_seeds

    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    scheduler.set_timesteps(steps)
    x = noise_for_seeds([seed + i for i in range(batch)], (1, 32, 32))
    labels = torch.full((batch,), label)
    null = torch.full((batch,), 10)
    with torch.inference_mode():
        for t in scheduler.timesteps:
            tt = t.float().repeat(2 * batch)
            out = unet(torch.cat([x, x]), tt, class_labels=torch.cat([null, labels])).sample
            u, c = out.chunk(2)
            x = scheduler.step(u + cfg * (c - u), t, x).prev_sample
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from engines.generation.api import GenerationParams, generate_job
    from engines.generation.models import load_model, resolve_model
    from engines.jobs import Preview, run_job

    info = resolve_model("digits-flow")
    unet = load_model(info).unet
    params = GenerationParams(model="digits-flow", class_label=3, steps=args.steps, batch=args.batch, seed=5,
                              cfg=3.0, sampler="flow_euler")

    previews = []

    def engine_path():
        return run_job(generate_job(params), lambda e: previews.append(e) if isinstance(e, Preview) else None)

    from qtpy.QtCore import QCoreApplication

    from studio.jobs import JobQueue

    app = QCoreApplication.instance() or QCoreApplication([])
    queue = JobQueue()

    def studio_path():
        from qtpy.QtGui import QImage

        box = {}

        def on_event(event):
            if isinstance(event, Preview):
                img = event.image
                QImage(img.data, img.shape[1], img.shape[0], 3 * img.shape[1], QImage.Format_RGB888).copy()

        queue.submit("bench", "generate", lambda: generate_job(params), on_event=on_event,
                     on_result=lambda r: box.setdefault("r", r))
        queue.wait_all(600)
        return box["r"]

    # warm-up (model load, first-call allocations) and a correctness check
    ref = direct(unet, args.steps, args.batch, 3, 3.0, 5)
    ours = engine_path()
    ref_u8 = ((ref.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)[:, 0].numpy()
    assert (abs(ours.images[:, :, :, 0].astype(int) - ref_u8.astype(int))).max() <= 1, "paths disagree"
    studio_path()
    names = ("direct", "engine job + previews", "studio JobQueue")
    wall = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for _ in range(args.repeats):
        for name, fn in zip(names, (lambda: direct(unet, args.steps, args.batch, 3, 3.0, 5), engine_path, studio_path)):
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    print(f"digits-flow, flow_euler, {args.steps} steps, batch {args.batch}, CFG 3, {args.threads} thread(s), "
          f"median of {args.repeats} (process CPU time is robust to other load on the machine)")
    base_wall, base_cpu = statistics.median(wall["direct"]), statistics.median(cpu["direct"])
    for name in names:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(f"  {name:24s} wall {w * 1000:8.1f} ms (ratio {w / base_wall:5.3f})   "
              f"CPU {c * 1000:8.1f} ms (ratio {c / base_cpu:5.3f})")
    del app


if __name__ == "__main__":
    main()
