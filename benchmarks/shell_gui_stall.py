"""The longest GUI-thread stall of the REAL studio window, phase by phase (goal: ≤ 100 ms everywhere).

A 5 ms QTimer on the GUI thread records how late each tick fires (lateness = gap − 5 ms) while
the real :class:`~studio.main_window.MainWindow` (all four panels) goes through what a user does:

  start-up     first paint → device detected, engines warmed up and the panels not shown yet built
               (one per event-loop turn; fresh process: torch not loaded)
  show Render  the first switch to Render (its 3D view is created)
  open .ply    a generated 500k-splat 3DGS scene (SH degree 3) dropped on the window (examined by a job,
               then opened in Render), until its first exact sort
  orbit        ten camera steps around that scene (re-sort + SH colours per view)
  open NIfTI   a 256³ int16 CT (.nii.gz) in Volume (phantom on first show, then the file), until
               the 3D view shows the full-quality frame
  orbit volume ten camera steps around that volume (coarse frames, then refinement bands)
  TF drag      the TF's level dragged through ten positions, then released
  show Codec   the first switch to Codec (its sample image is decoded by a job)
  open PNG     a 16 Mpx photo in Codec (decode, display, the automatic re-encode job)
  render fit   Start fit (Fit tab) on a 64² target, 40 steps
  ray-cast     File > Export of the Volume panel's PNG (reference ray caster)
  RD sweep     Run sweep in Codec (block codec + JPEG, 4 qualities, on the 512² sample)

and, in the same run, a baseline: the same start-up / open / sort work called directly on the GUI
thread, as the studio did before (fits, exports and sweeps were already jobs: no baseline).

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python benchmarks/shell_gui_stall.py [--quick]

``--quick`` uses a 100k-splat scene, a 128³ volume and a 4 Mpx photo.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_API", "pyside6")

GOAL_MS = 100.0
TICK_MS = 5


_SCHEDSTAT: dict[int, int] = {}  # thread id -> open descriptor of its schedstat (read at every probe tick)


def cpu_wait_seconds() -> float:
    """Seconds the calling thread has spent runnable but waiting for a CPU (Linux schedstat's
    run delay; 0 elsewhere). The file stays open: the probe reads it every 5 ms on the GUI thread."""
    import threading

    tid = threading.get_native_id()
    try:
        fd = _SCHEDSTAT.get(tid)
        if fd is None:
            fd = _SCHEDSTAT[tid] = os.open(f"/proc/self/task/{tid}/schedstat", os.O_RDONLY)
        return int(os.pread(fd, 128, 0).split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class GLFrames:
    """Times every vispy paintGL (the OpenGL frame drawn on the GUI thread; software GL on a
    machine without a GPU). The probe reports stalls with and without these frames."""

    spans: list[tuple[float, float]] = []  # noqa: RUF012

    @classmethod
    def install(cls) -> None:
        """Wrap vispy's Qt canvas paintGL (call before or after canvases exist)."""
        import vispy

        vispy.use(app="pyside6")
        from vispy.app.backends import _qt

        backend = _qt.CanvasBackendDesktop
        if getattr(backend.paintGL, "_timed", False):
            return
        original = backend.paintGL

        def paintGL(self):
            start = time.perf_counter()
            try:
                original(self)
            finally:
                cls.spans.append((start, time.perf_counter()))

        paintGL._timed = True
        backend.paintGL = paintGL

    @classmethod
    def inside(cls, start: float, end: float) -> float:
        """Seconds of GL frames drawn between ``start`` and ``end``."""
        total = 0.0
        for a, b in reversed(cls.spans):
            if b < start:
                break
            total += max(0.0, min(b, end) - max(a, start))
        return total


class StallProbe:
    """Lateness of a fast GUI-thread timer, recorded per named phase (ms); ``worst_no_gl`` leaves
    out the time spent drawing OpenGL frames inside a gap, ``worst_frame`` is the longest frame;
    ``worst_gap`` splits the longest gap into the GUI thread's own CPU time and its wait for a CPU
    (the rest: waiting for the GIL, a lock or the OpenGL driver's threads)."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.worst: dict[str, float] = {}
        self.worst_no_gl: dict[str, float] = {}
        self.worst_frame: dict[str, float] = {}
        self.worst_work: dict[str, float] = {}  # CPU time the GUI thread itself spent between two ticks
        self.worst_gap: dict[str, tuple[float, float]] = {}  # the longest gap's (own CPU, CPU wait) ms
        self.last_cpu, self.last_wait = time.thread_time(), cpu_wait_seconds()
        self.phase = "idle"
        self.last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def trace_stalls(self, threshold_ms: float = 120.0) -> None:
        """Print the GUI thread's stack whenever it has not ticked for ``threshold_ms`` (diagnosis)."""
        import threading
        import traceback

        main = threading.main_thread().ident

        def watch() -> None:
            reported = None
            while True:
                time.sleep(0.02)
                late = (time.perf_counter() - self.last) * 1000.0
                if late > threshold_ms and reported != self.last:
                    reported = self.last
                    frame = sys._current_frames().get(main)
                    stack = "".join(traceback.format_stack(frame)[-12:]) if frame else "?"
                    print(f"--- GUI thread late {late:.0f} ms in {self.phase}:\n{stack}", file=sys.stderr, flush=True)

        threading.Thread(target=watch, daemon=True).start()

    def _tick(self) -> None:
        now, cpu, wait = time.perf_counter(), time.thread_time(), cpu_wait_seconds()
        late = max(0.0, (now - self.last) * 1000.0 - TICK_MS)
        gl = GLFrames.inside(self.last, now) * 1000.0 if late > 20 else 0.0
        work, waited = (cpu - self.last_cpu) * 1000.0, (wait - self.last_wait) * 1000.0
        self.last, self.last_cpu, self.last_wait = now, cpu, wait
        phase = self.phase
        self.worst_work[phase] = max(self.worst_work.get(phase, 0.0), work)
        if late >= self.worst.get(phase, 0.0):
            self.worst_gap[phase] = (work, waited)
        self.worst[phase] = max(self.worst.get(phase, 0.0), late)
        self.worst_no_gl[phase] = max(self.worst_no_gl.get(phase, 0.0), late - gl)
        self.worst_frame[phase] = max(self.worst_frame.get(phase, 0.0), gl)

    def start(self, phase: str) -> None:
        """Attribute the following ticks to ``phase``."""
        self._tick()
        self.phase = phase
        self.worst[phase] = self.worst_no_gl[phase] = self.worst_frame[phase] = self.worst_work[phase] = 0.0
        self.worst_gap[phase] = (0.0, 0.0)

    def stop(self) -> tuple[float, float, float, float, float, float]:
        """End the phase; returns its longest stall, the longest stall outside OpenGL frames, the
        longest OpenGL frame, the most CPU time the GUI thread itself spent between two ticks (its own
        work, whatever other processes do), and the longest gap's own CPU time and wait for a CPU, in ms."""
        self._tick()
        phase, self.phase = self.phase, "idle"
        return (self.worst[phase], self.worst_no_gl[phase], self.worst_frame[phase], self.worst_work[phase],
                *self.worst_gap[phase])


def pump(condition, timeout: float, settle: float = 0.3) -> bool:
    """Run the real event loop until ``condition()`` holds (then ``settle`` s more) or ``timeout``."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    deadline = time.monotonic() + timeout
    state = {"met": None}

    def check() -> None:
        now = time.monotonic()
        if state["met"] is None and condition():
            state["met"] = now
        if (state["met"] is not None and now - state["met"] >= settle) or now > deadline:
            loop.quit()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(20)
    loop.exec()
    timer.stop()
    return state["met"] is not None


def on_gui_thread(function) -> None:
    """Call ``function`` from the event loop (so the probe sees the stall it causes) and wait for it."""
    from qtpy.QtCore import QTimer

    done = []
    QTimer.singleShot(0, lambda: (function(), done.append(True)))
    pump(lambda: bool(done), 3600, settle=0.05)


# -- inputs ------------------------------------------------------------------------------------
def make_inputs(folder: Path, quick: bool) -> dict[str, Path]:
    """The 500k-splat .ply, the 256³ NIfTI and the 16 Mpx PNG (smaller with ``quick``)."""
    import nibabel as nib
    import numpy as np
    from PIL import Image

    from engines.render.io import save_ply
    from engines.render.synthetic import sphere_scene
    from engines.volume.phantom import make_phantom

    splats, side, pixels = (100_000, 128, 2048) if quick else (500_000, 256, 4096)
    paths = {"ply": folder / f"scene_{splats // 1000}k.ply", "nii": folder / f"ct_{side}.nii.gz",
             "png": folder / f"photo_{pixels * pixels // 10**6}mpx.png"}
    save_ply(paths["ply"], sphere_scene(splats, footprint=0.004, sh_degree=3))
    ct = make_phantom(side)[0].data.astype(np.int16)
    nib.save(nib.Nifti1Image(ct.transpose(2, 1, 0), np.diag([1.0, 1.0, 1.0, 1.0])), str(paths["nii"]))
    yy, xx = np.mgrid[0:pixels, 0:pixels].astype(np.float32) / pixels
    noise = np.random.default_rng(0).integers(0, 24, (pixels, pixels, 3), dtype=np.uint8)
    rgb = np.stack([xx * 200, yy * 200, (xx + yy) * 100], -1).astype(np.uint8) + noise
    Image.fromarray(rgb).save(paths["png"], compress_level=1)
    return paths


# -- start-up (fresh processes: torch not imported yet) -------------------------------------------
def startup_child(mode: str) -> None:
    """Print the longest stall from first paint until the device is known (and, for the studio,
    the engines are warmed up). ``baseline``: device detection on the GUI thread, as before."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from studio.gc_guard import install as collect_on_gui_thread
    from studio.main_window import MainWindow
    from studio.settings import StudioSettings

    collect_on_gui_thread(app, freeze_long_lived=True)  # as studio.app.run_gui does
    settings = StudioSettings(os.path.join(tempfile.mkdtemp(), "settings.ini"))
    GLFrames.install()
    probe = StallProbe()
    if mode == "baseline":
        import studio.startup

        studio.startup.StartupLoader.detect_device = lambda self, device, threads: None  # the old code path:
        window = MainWindow(settings, warm_up=False)

        def old_apply_compute_settings() -> None:  # what _apply_compute_settings did on the GUI thread
            from engines import device

            device.set_device_override(settings.device)
            window.device_label.setText(f"device: {device.device_label()}")

        from qtpy.QtCore import QTimer

        QTimer.singleShot(400, old_apply_compute_settings)
        ready = lambda: "detecting" not in window.device_label.text() and window.device_label.text() != "device: …"
    else:
        window = MainWindow(settings, warm_up=True)
        ready = lambda: not window.startup.busy and "detecting" not in window.device_label.text()
    window.show()
    app.processEvents()  # first paint
    probe.start("start-up")
    started = time.perf_counter()
    pump(ready, 300, settle=0.5)
    print(json.dumps({"max_ms": probe.stop(), "seconds": time.perf_counter() - started,
                      "device": window.device_label.text()}))
    sys.stdout.flush()
    os._exit(0)


def startup_phase(mode: str) -> dict:
    """Run :func:`startup_child` in a fresh interpreter."""
    out = subprocess.run([sys.executable, __file__, "--startup-child", mode], capture_output=True, text=True,
                         timeout=900, cwd=str(ROOT), check=False)
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"start-up child failed:\n{out.stderr[-2000:]}")


# -- the studio's phases ---------------------------------------------------------------------------
def run_studio(paths: dict[str, Path], out_dir: Path) -> tuple[dict, object]:
    """Drive the real window through every phase; returns ``{phase: max stall ms}`` and the window."""
    import numpy as np

    from studio.main_window import MainWindow
    from studio.settings import StudioSettings

    results: dict[str, tuple] = {}
    GLFrames.install()
    window = MainWindow(StudioSettings(str(out_dir / "settings.ini")), warm_up=True)
    window.resize(1400, 900)
    window.show()
    pump(lambda: not window.startup.busy, 600)
    jobs_idle = lambda: all(r.state in ("done", "cancelled", "failed") for r in window.jobs.records())
    probe = StallProbe()

    probe.start("show Render")  # the first switch: the panel was built while idle, its view starts now
    window.show_panel("render")
    render = window.panel("render")
    pump(lambda: not render.loading and jobs_idle() and render.canvas is not None, 120, settle=0.5)
    results["show Render"] = probe.stop()
    def canvas_exact() -> bool:  # the view shows the current camera (GL sort, or the CPU view's full frame)
        canvas = render.canvas
        if canvas is None:
            return True
        if getattr(canvas, "cpu_mode", False):
            return not canvas.progressive.busy
        return canvas.exact

    probe.start("open .ply")
    window.open_paths([str(paths["ply"])])  # as a drop or File > Open does: examined by a job
    pump(lambda: render.scene_path == str(paths["ply"]) and jobs_idle() and canvas_exact(), 900, settle=1.0)
    results["open .ply"] = probe.stop()
    print(f"  open .ply: {len(render.scene):,} splats, {results['open .ply'][0]:.0f} ms", flush=True)

    if render.canvas is not None:
        probe.start("orbit")
        for _ in range(10):
            render.canvas.view.camera.azimuth += 6.0
            render.canvas.canvas.update()
            pump(lambda: False, 0.15, settle=0)
        pump(canvas_exact, 120, settle=0.5)
        results["orbit"] = probe.stop()

    window.show_panel("volume")
    volume = window.panel("volume")
    probe.start("open NIfTI")
    window.open_paths([str(paths["nii"])])  # as a drop or File > Open does: examined by a job
    pump(lambda: volume.source_path == str(paths["nii"]) and jobs_idle() and volume.view3d.exact, 900, settle=1.0)
    results["open NIfTI"] = probe.stop()
    print(f"  open NIfTI: {volume.volume.shape}, {results['open NIfTI'][0]:.0f} ms", flush=True)

    if volume.view3d.canvas is not None:
        volume_camera = volume.view3d.view.camera
        probe.start("orbit volume")
        for _ in range(10):
            volume_camera.azimuth += 6.0
            pump(lambda: False, 0.15, settle=0)
        pump(lambda: volume.view3d.exact, 120, settle=0.5)
        results["orbit volume"] = probe.stop()
        results["TF drag"] = drag_tf(volume, probe)
        frames = volume.view3d.canvas.progressive
        print(f"  orbit volume: a full frame costs ≈ {frames.full_ms or 0:.0f} ms of GL; drawn "
              f"{frames.last_factor}× coarser, then refined in bands of ≈ {frames.budget_ms:.0f} ms", flush=True)

    probe.start("show Codec")  # the first switch: the sample image is decoded by a job
    window.show_panel("codec")
    codec = window.panel("codec")
    pump(lambda: codec.image is not None and jobs_idle(), 300, settle=0.5)
    results["show Codec"] = probe.stop()
    codec.p_auto.setChecked(False)  # no automatic 16 Mpx re-encode: the open is measured
    probe.start("open PNG")
    window.open_paths([str(paths["png"])])  # as a drop or File > Open does: examined by a job
    pump(lambda: codec.image_path == str(paths["png"]) and jobs_idle(), 900, settle=1.0)
    results["open PNG"] = probe.stop()
    print(f"  open PNG: {codec.image.shape}, {results['open PNG'][0]:.0f} ms", flush=True)

    window.show_panel("render")
    render.receive("image", (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8))
    render.restore_parameters({"count": 400, "steps": 40})
    probe.start("render fit")
    render.start_button.click()
    pump(lambda: render.fit_handle is None and render.fit_result is not None, 900)
    results["render fit"] = probe.stop()

    window.show_panel("volume")
    target = out_dir / "raycast.png"
    probe.start("ray-cast export")
    window.export_to(str(target), force=True)
    pump(lambda: target.exists() and jobs_idle(), 900)
    results["ray-cast export"] = probe.stop()

    window.show_panel("codec")
    codec.open_file("sample:astronaut")
    pump(lambda: codec.image_path is None and jobs_idle(), 300)
    for name, box in codec.rd_checks.items():
        box.setChecked(name in ("block", "jpeg") and box.isEnabled())
    codec.rd_qualities.setText("20, 40, 60, 80")
    probe.start("RD sweep")
    codec.rd_run.click()
    pump(lambda: not codec.rd_cancel.isEnabled() and jobs_idle(), 900)
    results["RD sweep"] = probe.stop()
    return results, window


def drag_tf(volume, probe, phase: str = "TF drag") -> tuple:
    """Drag the level of the Volume panel's TF through ten positions (as the TF editor does), then
    release; until the 3D view shows the full-quality frame. Returns the probe's figures."""
    base = volume.tf
    lo, hi = base.x_range()
    probe.start(phase)
    for i in range(10):
        volume._on_editor_changed(base.windowed((lo + hi) / 2 + 15.0 * i, hi - lo), final=False)
        pump(lambda: False, 0.1, settle=0)
    volume._on_editor_changed(base.windowed((lo + hi) / 2 + 150.0, hi - lo), final=True)
    pump(lambda: volume.view3d.exact, 120, settle=0.5)
    return probe.stop()


def run_baseline(paths: dict[str, Path], window) -> dict:
    """The same reads and preparation called on the GUI thread, as the studio did before."""
    from engines.codec.images import load_image
    from engines.render.io import load_scene
    from engines.volume.readers import read_volume
    from panels.render.panel import viewer_arrays
    from panels.render.viewer import sorted_splats
    from panels.volume.panel import prepare_volume

    results: dict[str, tuple] = {}
    probe = StallProbe()
    render = window.panel("render")
    color_fn = render.canvas.color_fn if render.canvas is not None else None
    view = render.canvas.camera_matrices()[1] if render.canvas is not None else None

    def open_ply() -> None:
        scene = load_scene(paths["ply"])
        means = viewer_arrays(scene)[0]
        if view is not None:
            sorted_splats(means, view, color_fn)

    volume = window.panel("volume")
    if volume.view3d.canvas is not None:  # the same drag as before: a new vispy colormap (a program
        from panels.volume.view3d import VolumeView  # re-link) per edit, and every frame drawn in full

        frames = volume.view3d.canvas.progressive
        in_place, budget = VolumeView._update_lut_in_place, frames.budget_ms
        VolumeView._update_lut_in_place = lambda self, lut: False
        frames.budget_ms, frames.full_ms = 1e9, 0.0
        try:
            window.show_panel("volume")
            results["TF drag"] = drag_tf(volume, probe)
        finally:
            VolumeView._update_lut_in_place, frames.budget_ms, frames.full_ms = in_place, budget, None
    for phase, work in [
        ("open .ply", open_ply),
        ("orbit", (lambda: sorted_splats(render.canvas.positions, view, color_fn)) if view is not None else None),
        ("open NIfTI", lambda: prepare_volume(read_volume(paths["nii"]))),
        ("open PNG", lambda: load_image(paths["png"])),
    ]:
        if work is None:
            continue
        probe.start(phase)
        on_gui_thread(work)
        results[phase] = probe.stop()
    return results


def studio_run(paths: dict[str, Path], out_dir: Path, with_baseline: bool) -> dict:
    """One measured run in this process: start-up (a fresh child), the studio's phases and, if
    asked, the baseline. Returns ``{"ours", "base", "startup"}``."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from studio.gc_guard import install as collect_on_gui_thread

    collect_on_gui_thread(app, freeze_long_lived=True)  # garbage collection as in the application (studio.app.run_gui)
    startup = startup_phase("studio")
    print("studio window …", flush=True)
    ours, window = run_studio(paths, out_dir)
    base = None
    if with_baseline:
        print("baseline: the same work on the GUI thread …", flush=True)
        base = run_baseline(paths, window)
    window.jobs.cancel_all()
    window.jobs.wait_all(10)
    return {"ours": {"start-up": startup["max_ms"], **ours}, "base": base, "startup": startup}


def print_table(runs: list[dict], base: dict) -> None:
    """Per phase: the worst and median stall over the runs, how many runs missed the goal, the
    worst run's breakdown, and the baseline."""
    n = len(runs)
    print(f"\nLongest GUI-thread stall per phase, ms (5 ms probe; {os.cpu_count()} CPUs; goal ≤ {GOAL_MS:.0f} ms; "
          f"{n} run{'s' if n > 1 else ''})")
    print("  stall: longest gap between probe ticks (worst run; median over the runs); outside GL: without the")
    print("  OpenGL frames drawn on the GUI thread (software OpenGL here; GL frame: the longest); GUI work: most CPU")
    print("  time the GUI thread itself spent between two ticks; longest gap: of which the GUI thread's own CPU time")
    print("  / its wait for a CPU (the rest: waiting for the GIL, a lock or the GL driver's threads); baseline: the")
    print("  same work called on the GUI thread as the studio did before (stall / GUI work)")
    print(f"{'phase':<16}{'stall':>6}{'median':>7}{'> goal':>7}{'outside GL':>11}{'GL frame':>9}{'GUI work':>9}"
          f"{'longest gap':>13}{'baseline':>15}")
    for phase in runs[0]:
        rows = [run[phase] for run in runs if phase in run]
        worst = max(rows, key=lambda r: r[0])
        stalls = sorted(r[0] for r in rows)
        median = stalls[len(stalls) // 2] if len(stalls) % 2 else (stalls[len(stalls) // 2 - 1] + stalls[len(stalls) // 2]) / 2
        over = sum(1 for r in rows if r[0] > GOAL_MS)
        ref = base.get(phase)
        none = "(new)" if phase.startswith("show ") else "(a job)"
        ref_text = f"{ref[0]:7.0f} / {ref[3]:5.0f}" if ref is not None else f"{none:>15}"
        gap = f"{worst[4]:5.0f} / {worst[5]:4.0f}" if len(worst) > 5 else f"{'–':>11}"
        print(f"{phase:<16}{worst[0]:6.0f}{median:7.0f}{f'{over}/{n}':>7}{worst[1]:11.0f}{worst[2]:9.0f}"
              f"{max(r[3] for r in rows):9.0f}{gap:>13}{ref_text}")
    met = all(run[phase][0] <= GOAL_MS for run in runs for phase in run)
    clean = sum(1 for run in runs if all(v[0] <= GOAL_MS for v in run.values()))
    print(f"goal ≤ {GOAL_MS:.0f} ms in every phase: {'met' if met else 'NOT met'} ({clean} of {n} runs within it everywhere)")


def main() -> None:
    """Measure every phase (studio and baseline) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs (100k splats, 128³, 4 Mpx)")
    parser.add_argument("--runs", type=int, default=1, help="measured runs, each in a fresh process (default 1: in this one)")
    parser.add_argument("--startup-child", choices=["studio", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--run-child", help=argparse.SUPPRESS)  # a JSON file: the inputs and whether to run the baseline
    args = parser.parse_args()
    if args.startup_child:
        startup_child(args.startup_child)
        return
    if args.run_child:
        job = json.loads(Path(args.run_child).read_text())
        result = studio_run({k: Path(v) for k, v in job["paths"].items()}, Path(job["out"]), job["baseline"])
        print(json.dumps(result))
        sys.stdout.flush()
        os._exit(0)
    print("start-up baseline (a fresh process) …", flush=True)
    startup_base = startup_phase("baseline")
    out_dir = Path(tempfile.mkdtemp(prefix="gui_stall_"))
    print(f"generating inputs in {out_dir} …", flush=True)
    paths = make_inputs(out_dir, args.quick)
    if args.runs <= 1:
        results = [studio_run(paths, out_dir, with_baseline=True)]
    else:
        results = []
        for i in range(args.runs):
            job = out_dir / f"run{i}.json"
            job.write_text(json.dumps({"paths": {k: str(v) for k, v in paths.items()}, "out": str(out_dir / f"run{i}"),
                                       "baseline": i == 0}))
            (out_dir / f"run{i}").mkdir()
            print(f"run {i + 1} of {args.runs} (a fresh process) …", flush=True)
            out = subprocess.run([sys.executable, __file__, "--run-child", str(job)], capture_output=True, text=True,
                                 timeout=3600, cwd=str(ROOT), check=False)
            line = next((x for x in reversed(out.stdout.splitlines()) if x.startswith("{")), None)
            if line is None:
                raise RuntimeError(f"run {i + 1} failed:\n{out.stderr[-3000:]}")
            results.append(json.loads(line))
    base = {"start-up": startup_base["max_ms"], **results[0]["base"]}
    print_table([r["ours"] for r in results], base)
    first = results[0]["startup"]
    print(f"(start-up: studio ready in {first['seconds']:.1f} s, {first['device']}; load average at the end "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: other processes compete for the CPUs and a preempted "
          f"thread holding the GIL delays the GUI thread too)")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
