"""Batch scaling: serial vs local Ray (1 and 2 workers) vs a separately started Ray head.

Two batches, both through the same batch layer (``engines.batch``):
  * RD sweep: 4 sample photos (512 px, written to PNG files and shipped by content) x jpeg, webp,
    avif x 4 qualities = 48 encodes with PSNR, SSIM and MS-SSIM;
  * generation sweep: 40 images of the shipped digits model (10 seeds x 2 samplers x 2 step counts).
Executors: ``serial`` (in this process, 1 torch thread per task - the baseline), ``local`` Ray with
1 and 2 CPUs (``ray.init`` in this process; its start-up time is reported separately), and the
same driver connecting to a Ray head started here with ``ray start --head --block`` on loopback
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray 2.60 on 127.0.0.1; token auth with a fresh
token in a temporary file), through its GCS address and through Ray Client (``ray://``). Every
run's output files are compared byte for byte with the serial run. The head is stopped at the end.

Run: ``python benchmarks/batch_scaling.py [--quick] [--no-cluster]``
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")


def make_inputs(folder: Path, quick: bool) -> list[str]:
    """The RD photos as PNG files (so they travel by content like a user's folder would)."""
    from PIL import Image

    from engines.codec.images import SAMPLES, sample_image

    paths = []
    for name in list(SAMPLES)[: 2 if quick else 4]:
        path = folder / f"{name}.png"
        Image.fromarray(sample_image(name)[:512, :512]).save(path)
        paths.append(str(path))
    return paths


def batches(inputs: list[str], quick: bool):
    """The two benchmark batches."""
    from engines.batch.sweeps import generation_batch, rd_batch
    from engines.generation.models import resolve_model

    specs = [{"codec": c, "label": c, "options": {}} for c in ("jpeg", "webp", "avif")]
    rd = rd_batch(inputs, specs, [30, 50, 70, 90], keep_streams=True, name="rd")
    seeds = list(range(3 if quick else 10))
    gen = generation_batch({"class_label": 4}, seeds, ["flow_euler", "ddim"], [10, 20], "digits-flow",
                           resolve_model("digits-flow").path, name="generate")
    return [rd, gen]


def run(batch, executor, folder: Path) -> tuple[float, float, dict]:
    """Wall time of one batch on ``executor`` (already started), the sum of its tasks' own run
    times (task-seconds; divided by the wall time = how many tasks ran at once on average) and
    its output files."""
    from engines.batch import MANIFEST, batch_job
    from engines.jobs import run_job

    clock = time.perf_counter()
    report = run_job(batch_job(batch, executor, folder))
    wall = time.perf_counter() - clock
    if report.summary["done"] != len(batch.tasks):
        raise SystemExit(f"{batch.name} on {executor.name}: {report.summary} {[e['error'] for e in report.failed][:3]}")
    busy = sum(e["seconds"] or 0.0 for e in report.tasks.values())
    return wall, busy, {p.name: p.read_bytes() for p in folder.iterdir() if p.name != MANIFEST}


def ray_session(kwargs: dict):
    """Start (or connect) Ray in this process; returns the seconds it took."""
    import logging

    import ray

    from engines.batch.executors import code_runtime_env

    clock = time.perf_counter()
    ray.init(runtime_env=code_runtime_env(), log_to_driver=False, logging_level=logging.WARNING, **kwargs)
    return time.perf_counter() - clock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_head(temp: Path, env: dict) -> tuple[subprocess.Popen, int, int]:
    """``ray start --head --block`` on loopback in its own process group; waits until it accepts."""
    port, client_port = free_port(), free_port()
    ray_cli = Path(sys.executable).with_name("ray")
    cmd = [str(ray_cli), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
           f"--ray-client-server-port={client_port}", "--num-cpus=2", "--include-dashboard=false",
           f"--temp-dir={temp}", "--disable-usage-stats"]
    log = open(temp.parent / "head.log", "w")  # noqa: SIM115 - closed with the process
    head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", client_port), timeout=1).close()
            return head, port, client_port
        except OSError:
            if head.poll() is not None:
                raise SystemExit(f"ray start --head failed; see {temp.parent / 'head.log'}") from None
            time.sleep(0.5)
    raise SystemExit("ray start --head did not come up within 180 s")


def stop_head(head: subprocess.Popen) -> None:
    """Stop the head we started (SIGTERM to its process group, then SIGKILL after 60 s)."""
    if head.poll() is None:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches (a smoke run)")
    parser.add_argument("--no-cluster", action="store_true", help="skip the ray start --head part")
    parser.add_argument("--no-local", action="store_true", help="skip the local Ray runs")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bsc", dir="/tmp"))
    # Ray reads its auth and address settings once per process: set them before it is imported, for the
    # local instances and the head alike (a fresh token in a 0600 file; loopback only)
    token = work / "token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    import ray
    import torch

    from engines.batch import RayExecutor, SerialExecutor

    torch.set_num_threads(1)
    inputs = make_inputs(work, args.quick)
    jobs = batches(inputs, args.quick)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (other work shares them)")
    print(f"batches: {', '.join(f'{b.name} {len(b.tasks)} tasks' for b in jobs)}")
    times: dict[str, dict] = {}
    busy: dict[str, dict] = {}
    reference: dict[str, dict] = {}
    identical: dict[str, bool] = {}

    def measure(label: str, executor) -> None:
        times[label], busy[label] = {}, {}
        for b in jobs:
            wall, task_seconds, files = run(b, executor, work / f"{label.replace(' ', '_').replace('/', '_')}-{b.name}")
            times[label][b.name] = wall
            busy[label][b.name] = task_seconds / wall
            if label == "serial":
                reference[b.name] = files
            else:
                identical[f"{label} {b.name}"] = files == reference[b.name]
            print(f"  {label:24s} {b.name:9s} {wall:7.1f} s  ({task_seconds / wall:.2f} tasks at once on average,"
                  f" load average {os.getloadavg()[0]:.1f})", flush=True)

    measure("serial", SerialExecutor())
    startup = {}
    for workers in () if args.no_local else (1, 2):
        label = f"local Ray, {workers} worker" + ("s" if workers > 1 else "")
        startup[label] = ray_session({"num_cpus": workers, "include_dashboard": False, "_temp_dir": str(work / f"r{workers}")})
        measure(label, RayExecutor())
        ray.shutdown()

    head = None
    if not args.no_cluster:
        try:
            clock = time.perf_counter()
            head, port, client_port = start_head(work / "h", dict(os.environ))
            head_seconds = time.perf_counter() - clock
            print(f"  ray start --head: up in {head_seconds:.1f} s (GCS 127.0.0.1:{port}, client 127.0.0.1:{client_port})")
            for label, address in ((f"head 127.0.0.1:{port}", f"127.0.0.1:{port}"),
                                   (f"ray://127.0.0.1:{client_port}", f"ray://127.0.0.1:{client_port}")):
                startup[label] = ray_session({"address": address})
                nodes = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]})
                print(f"  {label}: connected in {startup[label]:.1f} s, nodes {nodes}")
                measure(label, RayExecutor(address))
                ray.shutdown()
        finally:
            if head is not None:
                stop_head(head)

    base = times["serial"]
    print()
    print(f"{'executor':26s} {'start-up s':>10s}" + "".join(f" {b.name + ' s':>11s} {'speed-up':>8s}" for b in jobs)
          + f" {'total s':>8s} {'speed-up':>8s}")
    for label, row in times.items():
        total = sum(row.values())
        line = f"{label:26s} {startup.get(label, 0.0):10.1f}"
        for b in jobs:
            line += f" {row[b.name]:11.1f} {base[b.name] / row[b.name]:7.2f}x"
        line += f" {total:8.1f} {sum(base.values()) / total:7.2f}x"
        print(line)
    print("(batch times exclude the start-up column: ray.init in this process, or connecting to the head)")
    print("tasks at once on average (task-seconds / wall): " + "; ".join(
        f"{label} " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()) for label, row in busy.items()))
    print("outputs byte-identical to serial: " + ("all" if all(identical.values()) else
          ", ".join(k for k, v in identical.items() if not v) + " DIFFER"))
    print(f"machine load average after the run: {os.getloadavg()[0]:.2f}")
    autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled")
    if autogroup.exists() and autogroup.read_text().strip() == "1" and os.getloadavg()[0] > (os.cpu_count() or 1):
        print("note: the kernel shares CPU time per session (sched_autogroup) and the machine is oversubscribed:"
              " Ray's workers (one session) get about one session's share however many run, and serial runs in"
              " this driver's session; the speed-ups above measure the scheduler as much as the executors")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
