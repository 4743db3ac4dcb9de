"""Progressive CPU frames for the splat view when OpenGL is a software renderer (llvmpipe) or forced.

:class:`ProgressiveRenderer` renders on one worker thread with :func:`engines.render.preview.render_preview`:
while the camera moves, coarse frames at a resolution scale that adapts so a frame takes about
``TARGET`` seconds of wall time (a smoothed measure, so a contended CPU lowers the level); once the
camera has rested for ``SETTLE`` seconds (longer when camera updates arrive further apart, as on a
loaded machine: 3 × their running mean interval), the full-resolution frame (same rules as the exact
rasterizer) starts at once: a coarse frame of an older camera still in flight is aborted and no
coarse frame of the resting camera is queued before it. When even the smallest scale misses the
target, coarse frames draw every 2nd, 4th, ... splat (``stride``). A newer camera aborts a full frame
in flight within 64 splats. The GUI thread only posts cameras (:meth:`request`) and picks finished
frames up (:meth:`take`, polled by a timer; the poll also aborts a stale coarse frame). While the
view is hidden (another tab or panel shown: :class:`PauseWhenHidden`) nothing renders and the frame
in flight is aborted: a full frame of a large scene took the CPU from a fit started on the Fit tab.
:data:`FRAME_VERT`/:data:`FRAME_FRAG` draw a frame as a texture over the whole view.

On a HiDPI screen the views ask for frames in device pixels (:func:`device_frame_size`: logical size ×
pixel ratio, at most :data:`MAX_FRAME_PIXELS`), so the full frame is drawn 1:1 (a frame of the logical
size was enlarged 2× on screen: blurry); coarse frames keep the pixel counts of the logical size (their
scale is divided by the ratio), so moving costs what it did. At rest a ``still`` frame at the logical
size (every splat; what the view showed before, ~1/3 of the cost) comes first, then the full frame in
device pixels (~3× the logical frame's time): the view is as quick to a still frame as before, then sharp.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from qtpy.QtCore import QEvent, QObject

from panels.opengl_info import SOFTWARE_RENDERERS, is_software_renderer  # noqa: F401 - re-exported
from panels.render.widgets import to_uint8

FRAME_VERT = """
attribute vec2 a_pos;
varying vec2 v_uv;
void main() {
    v_uv = vec2(0.5 * (a_pos.x + 1.0), 0.5 * (1.0 - a_pos.y));  // image row 0 at the top
    gl_Position = vec4(a_pos, 0.0, 1.0);
}
"""

FRAME_FRAG = """
uniform sampler2D u_frame;
varying vec2 v_uv;
void main() {
    gl_FragColor = vec4(texture2D(u_frame, v_uv).rgb, 1.0);
}
"""


#: the most pixels a full frame is rendered at (2560 x 1600); a larger HiDPI view gets a lower ratio
MAX_FRAME_PIXELS = 2560 * 1600


def device_frame_size(width: int, height: int, ratio: float) -> tuple[int, int, float]:
    """``(w, h, r)``: the size in device pixels to render a ``width`` x ``height`` (logical) view at on
    a screen of pixel ``ratio``, and the ratio used - ``ratio``, lowered so w·h ≤ :data:`MAX_FRAME_PIXELS`
    (never below 1: a huge view renders at its logical size)."""
    width, height = max(1, int(width)), max(1, int(height))
    cap = float(np.sqrt(MAX_FRAME_PIXELS / (width * height)))
    r = max(1.0, min(float(ratio or 1.0), cap))
    return max(1, round(width * r)), max(1, round(height * r)), r


@dataclass(frozen=True)
class _View:
    K: np.ndarray
    view: np.ndarray
    width: int
    height: int
    generation: int
    ratio: float = 1.0  # device pixels per logical pixel of width x height
    key: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # compared on every GUI poll and worker turn: a tuple once, not np.allclose each time
        rounded = np.round(np.concatenate([self.K.ravel(), self.view.ravel()]), 9) + 0.0  # -0.0 -> 0.0
        object.__setattr__(self, "key", (self.generation, self.width, self.height, self.ratio, rounded.tobytes()))

    def same(self, other: _View | None) -> bool:
        """The same camera, image size and scene (matrices equal to 1e-9)."""
        return other is not None and (other is self or self.key == other.key)


class ProgressiveRenderer:
    """Coarse CPU frames while the camera moves, the full frame once it rests (one worker thread)."""

    COARSE, STILL, FULL = "coarse", "still", "full"  # the kinds of frames, see :meth:`_next_job`

    SETTLE = 0.12  # seconds without camera change before the full frame starts
    TARGET = 0.05  # wall seconds per coarse frame the level aims at (leaves the GUI thread its share)
    MIN_SCALE, MAX_SCALE = 0.1, 0.5
    MAX_STRIDE = 32

    def __init__(self, threads: int = 2, uint8_frames: bool = False) -> None:
        """``uint8_frames``: :meth:`take` hands out :func:`~panels.render.widgets.to_uint8` of each frame, converted on the
        worker (a 4 Mpx float frame took ~25 ms of the GUI thread to convert); else the float frame."""
        self.threads = threads
        self.uint8_frames = bool(uint8_frames)
        self.scale = self.MIN_SCALE  # start cheap: the first frames of a move come fast, the level
        self.stride = 4  # climbs (one step per quick frame) to what the CPU keeps up with
        self._prep = None
        self._subsets: dict = {}  # stride -> PreviewScene with every stride-th splat (coarse frames)
        self._background = (0.0, 0.0, 0.0)
        self._generation = 0
        self._wanted: _View | None = None
        self._changed_at = 0.0
        self._interval = 0.0  # running mean of the time between camera changes during a move
        self._coarse_for: _View | None = None  # last camera a frame (coarse or full) was made for
        self._full_for: _View | None = None
        self._still_for: _View | None = None  # last camera a still (logical-size) frame was made for
        self._result = None  # (image, view, full) waiting for the GUI
        self._job = None  # (view, full, abort flag) of the frame being rendered
        self._smoothed = None  # running mean of coarse frame wall times
        self.aborted = 0  # frames given up (newer camera, or a stale coarse frame once at rest)
        self._cond = threading.Condition()
        self._stop = False
        self._paused = False
        # per frame: (exact: every splat, a still or full frame, not a coarse level; wall s; CPU s of this thread)
        self.frame_times: list[tuple[bool, float, float]] = []
        self._thread = threading.Thread(target=self._run, name="splat-cpu-view", daemon=True)
        self._thread.start()

    def set_scene(self, prep, background=(0.0, 0.0, 0.0)) -> None:
        """New splats (:class:`~engines.render.preview.PreviewScene`) or background: frames start over."""
        with self._cond:
            self._prep, self._background = prep, tuple(float(c) for c in background)
            self._subsets = {1: prep}
            self._generation += 1
            self._coarse_for = self._full_for = self._still_for = None
            self._wanted = None
            self._cond.notify_all()

    def request(self, K, view, width: int, height: int, ratio: float = 1.0) -> None:
        """The camera being shown now (called on every draw); a change starts coarse frames. ``K``,
        ``width`` and ``height`` give the full frame (device pixels on a HiDPI screen); ``ratio`` is
        the device pixels per logical pixel they include: coarse frames are rendered at their scale
        divided by it (the pixel counts of the logical size)."""
        wanted = _View(np.array(K, np.float64), np.array(view, np.float64), int(width), int(height),
                       self._generation, max(1.0, float(ratio)))
        with self._cond:
            if wanted.same(self._wanted):
                return
            self._wanted = wanted
            now = time.monotonic()
            gap = now - self._changed_at
            if gap < 1.0:  # within a move (a longer pause starts a new one)
                self._interval = 0.7 * self._interval + 0.3 * gap
            self._changed_at = now
            self._check_abort()
            self._cond.notify_all()

    @property
    def settle_time(self) -> float:
        """Seconds without a camera change after which the camera counts as resting."""
        return max(self.SETTLE, min(1.0, 3.0 * self._interval))

    def _check_abort(self) -> None:
        """Abort the frame in flight when it is no longer wanted (called with the lock held): a still or
        full frame as soon as the camera changed, a coarse one of an older camera once the camera rests."""
        if self._job is None:
            return
        view, exact, abort = self._job
        if view.same(self._wanted) or abort[0]:
            return
        if exact or time.monotonic() - self._changed_at >= self.settle_time:
            abort[0] = 1

    def take(self):
        """The newest finished frame as (image (h,w,3), full: bool), or None; the image is float32 in
        [0, 1], or uint8 with ``uint8_frames``."""
        with self._cond:
            self._check_abort()
            result, self._result = self._result, None
        return None if result is None else (result[0], result[2])

    @property
    def busy(self) -> bool:
        """True while the shown camera has no full frame yet."""
        with self._cond:
            self._check_abort()
            return self._wanted is not None and not self._wanted.same(self._full_for)

    def wait_full(self, timeout: float = 30.0) -> bool:
        """Block until the full frame of the current camera is made (tests, benchmarks)."""
        end = time.monotonic() + timeout
        while self.busy and time.monotonic() < end:
            time.sleep(0.005)
        return not self.busy

    def set_paused(self, paused: bool) -> None:
        """Render nothing while ``paused`` (the view is hidden; the frame in flight is aborted and
        rendered again on resume); the latest camera is rendered once resumed."""
        with self._cond:
            self._paused = bool(paused)
            if self._paused and self._job is not None:
                self._job[2][0] = 1
            self._cond.notify_all()

    def close(self) -> None:
        """Stop the worker thread."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def _next_job(self):
        """(view, kind) to render next, or None after waiting (called with the lock held). ``kind``:
        COARSE while the camera moves; at rest FULL (the requested size), preceded on a HiDPI view
        (``ratio`` > 1) by a STILL frame at the logical size."""
        wanted = self._wanted
        if self._paused or wanted is None or self._prep is None or wanted.same(self._full_for):
            self._cond.wait(0.5)
            return None
        rest = time.monotonic() - self._changed_at
        settle = self.settle_time
        if rest >= settle:  # at rest: the full frame now, no coarse frame queued before it
            return wanted, self.STILL if wanted.ratio > 1 and not wanted.same(self._still_for) else self.FULL
        if not wanted.same(self._coarse_for):
            return wanted, self.COARSE
        self._cond.wait(settle - rest)
        return None

    def _adapt(self, elapsed: float) -> None:
        """Aim coarse frames at TARGET wall seconds, smoothed over frames so the level follows CPU
        contention without flapping. One ladder of levels: every splat at a resolution scale between
        MAX_SCALE and MIN_SCALE, then, at MIN_SCALE, every 2nd, 4th, ... splat (``stride``)."""
        smooth = elapsed if self._smoothed is None else 0.6 * self._smoothed + 0.4 * elapsed
        if self.stride > 1 or (smooth > self.TARGET and self.scale <= self.MIN_SCALE * 1.001):
            self.scale = self.MIN_SCALE
            if smooth > self.TARGET and self.stride < self.MAX_STRIDE:
                self.stride *= 2
                smooth = None  # measure the new level afresh
            elif smooth < 0.35 * self.TARGET and self.stride > 1:  # x2 cost stays under the target
                self.stride //= 2
                smooth = None
        else:  # cost ~ pixel count ~ scale²
            ratio = float(np.clip(np.sqrt(self.TARGET / max(smooth, 1e-4)), 0.6, 1.4))
            scale = float(np.clip(self.scale * ratio, self.MIN_SCALE, self.MAX_SCALE))
            smooth *= (scale / self.scale) ** 2  # expected time at the new scale
            self.scale = scale
        self._smoothed = smooth

    def _run(self) -> None:
        from engines.render.preview import Cancelled, render_preview
        from engines.thread_priority import lower_current_thread

        lower_current_thread()  # frames give way to the GUI thread, like jobs (its preview pool inherits it)
        while True:
            with self._cond:
                if self._stop:
                    return
                job = self._next_job()
                if job is None:
                    continue
                prep, background = self._prep, self._background
                view, kind = job
                exact = kind != self.COARSE  # every splat; aborted as soon as the camera changes
                stride = 1 if exact else self.stride
                if stride not in self._subsets:
                    self._subsets[stride] = prep.subset(stride)
                prep = self._subsets[stride]
                abort = np.zeros(1, np.int8)
                self._job = (view, exact, abort)
            scale = 1.0 if kind == self.FULL else (1.0 if exact else self.scale) / view.ratio
            start, cpu = time.perf_counter(), time.thread_time()
            try:  # coarse frames on this thread alone (small; their CPU time is measurable), exact ones in bands
                image = render_preview(prep, view.K, view.view, view.width, view.height, background, scale=scale,
                                       threads=self.threads if exact else 1,
                                       bands=4 * self.threads if exact else 1, abort=abort)
                if self.uint8_frames:
                    image = to_uint8(image)
            except Cancelled:
                with self._cond:
                    self._job = None
                    self.aborted += 1
                continue
            except Exception:  # noqa: BLE001 - a bad frame must not kill the view; try the next camera
                with self._cond:
                    self._job = None
                    self._coarse_for = self._full_for = view
                continue
            elapsed = time.perf_counter() - start
            self.frame_times.append((exact, elapsed, time.thread_time() - cpu))
            del self.frame_times[:-500]
            if not exact:
                self._adapt(elapsed)
            with self._cond:
                self._job = None
                if view.generation != self._generation:
                    continue
                self._result = (image, view, kind == self.FULL)
                self._coarse_for = view
                if kind == self.STILL:
                    self._still_for = view
                elif kind == self.FULL:
                    self._full_for = view


class PauseWhenHidden(QObject):
    """Pauses a :class:`ProgressiveRenderer` while ``widget`` is hidden and resumes it when shown."""

    def __init__(self, widget, renderer: ProgressiveRenderer) -> None:
        super().__init__(widget)
        self.renderer = renderer
        widget.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
        """Hide / Show events of the view's widget pause / resume the renderer."""
        renderer = getattr(self, "renderer", None)  # None: this filter's Python side is being torn down
        kind = event.type()
        if renderer is not None and kind == QEvent.Hide:
            renderer.set_paused(True)
        elif renderer is not None and kind == QEvent.Show:
            renderer.set_paused(False)
        return False
