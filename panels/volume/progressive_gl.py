"""Progressive frames for a vispy canvas whose full frame is slow (software OpenGL, big volumes).

On a machine without a GPU (Mesa llvmpipe) one ray-cast frame of a 256³ volume takes ~200 ms,
drawn on the GUI thread: every camera step or TF edit froze the window for that long. Here a
frame after a change is drawn *coarse* (the volume sampled ``factor`` times more sparsely; the shaded
method corrects opacity for its actual step; on software OpenGL also with half the pixels across,
into a corner of the framebuffer that :class:`~panels.offscreen_canvas.OffscreenCanvasView` scales
up), and once the
scene has been still for :data:`IDLE_MS` it is *refined* at full quality in horizontal bands, one
band per event-loop turn (OpenGL scissor test), so that no turn takes much more than
:data:`BUDGET_MS`. The bands write into the widget's preserved framebuffer; when the last band is
drawn the screen holds exactly the full-quality frame (``exact``).

The cost of a full frame is learnt from the full-quality draws (full frames, and the bands of a
whole refinement together: one band's rows say little, rows of empty sky cost nothing), and the cost of
a coarse frame from the coarse frames drawn at that factor: a coarse frame is not ``factor`` times
cheaper (every pixel still sets up its ray and composites; on llvmpipe a 16× coarser frame costs
about a sixth of a full one, a 4× coarser one 40 %), so the factor is the smallest one whose frame
fits the budget, measured or estimated with :data:`FIXED_SHARE`. A GPU, whose full frames cost a
few ms, draws them at once; a slow one adapts the factor and the number of bands. Renders for exports (``canvas.render``) never go through this: full quality.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from qtpy.QtCore import QTimer

from panels.opengl_info import is_software_renderer, renderer_name

#: GUI-thread time one frame or band should take (ms). Other work (a job on both cores, another
#: process) can make a draw take twice its estimate: 25 keeps that under 100 ms
BUDGET_MS = 25.0
#: quiet time after the last change before the bands start (ms): orbiting stays coarse and fluid
IDLE_MS = 120
#: coarsest sampling (times the user's step)
MAX_FACTOR = 16
#: the first coarse factor on software OpenGL, before any frame was timed (the cheapest preview;
#: the bands that follow refine it)
SOFTWARE_START_FACTOR = MAX_FACTOR
#: delay between two steps of a chunked GUI-thread task (bands, texture slabs), ms: a zero-delay timer
#: is dispatched with the posted events, ahead of due timers and input, so a chain of them ran back to back
TURN_MS = 2
#: share of a full frame's cost that a coarse frame still pays whatever its factor (ray set-up and
#: compositing per pixel); measured on llvmpipe, 256³ CT: 0.1-0.2. Used until a factor is measured
FIXED_SHARE = 0.2
#: a coarse frame on software OpenGL is also drawn with this many times fewer pixels across (into the
#: lower-left part of the framebuffer; the view scales it up): its fixed per-pixel cost drops with it
COARSE_PIXEL_DIVISOR = 2
#: thinnest refinement band (rows): every band costs a fixed overhead too
MIN_BAND_ROWS = 4
#: a band has at most this many times the rows of the one before (rows further down may cost more)
BAND_GROWTH = 1.5


def next_band(rows_left: int, ms_per_row: float, budget_ms: float, last_rows: int | None = None,
              min_rows: int = MIN_BAND_ROWS) -> int:
    """Rows of the next band: as many as ``budget_ms`` allows at ``ms_per_row`` (what the last band
    cost per row: the cost varies smoothly down the image), at most :data:`BAND_GROWTH` times the last
    band (empty sky above a volume costs nothing, the volume below it does), at least ``min_rows``, at
    most what is left."""
    rows = int(budget_ms / ms_per_row) if ms_per_row > 0 else rows_left
    if last_rows is not None:
        rows = min(rows, int(BAND_GROWTH * last_rows))
    return max(1, min(rows_left, max(min_rows, rows)))


class ProgressiveFrames:
    """Decides, for each draw of ``canvas``, between a full frame, a coarse frame and a refinement
    band, and times them (see the module docstring).

    ``set_factor(f)`` makes the scene ``f`` times coarser (``1``: full quality) and returns the
    factor it really applied (``1`` when the scene cannot be coarsened).
    """

    def __init__(self, canvas, set_factor: Callable[[int], int] | None = None,
                 budget_ms: float = BUDGET_MS, idle_ms: int = IDLE_MS) -> None:
        self.canvas = canvas
        self.set_factor = set_factor or (lambda factor: 1)
        self.budget_ms = float(budget_ms)
        self.idle_ms = int(idle_ms)
        self.full_ms: float | None = None  # learnt cost of one full-quality frame
        self.coarse_ms: dict[int, float] = {}  # learnt cost of one coarse frame, per factor
        self.software: bool | None = None  # known at the first draw (needs a current context)
        self.exact = False  # the screen holds the full-quality frame of the current scene
        self.drawing = False  # inside one of our draws (updates made by it are not changes)
        self.hold: Callable[[], bool] = lambda: False  # True while the scene is being replaced: the
        # last frame stays on screen and nothing is drawn
        self.last_factor = 1
        self.last_divisor = 1  # the last coarse frame covered 1/divisor of the framebuffer's width and height
        self.refined_rows = 0  # rows from the top drawn at full quality since the last frame
        self.frames_drawn = 0
        self.bands_drawn = 0
        self._rows_left = 0  # rows still to refine, counted from the top of the image
        self._ms_per_row = 0.0  # what the last band (or frame) cost per row at full quality
        self._last_rows: int | None = None  # rows of the last band of this refinement
        self._refine_ms = 0.0  # what the bands of this refinement cost so far
        self._band_due = False
        self._generation = 0
        self._target: tuple | None = None  # framebuffer and size the screen content belongs to
        self._idle = QTimer()
        self._idle.setSingleShot(True)
        self._idle.timeout.connect(self._request_band)

    # -- what the canvas tells us ------------------------------------------------------
    def changed(self) -> None:
        """The scene changed: the next draw is a new frame; pending bands are void."""
        if self.drawing:
            return
        self._generation += 1
        self._rows_left = 0
        self._band_due = False
        self.exact = False
        self._idle.stop()

    def forget_cost(self) -> None:
        """The cost of a frame changed (new volume, step, method, size): learn it again."""
        self.full_ms = None
        self.coarse_ms = {}
        self.changed()

    def scale_cost(self, ratio: float) -> None:
        """Frames now cost ``ratio`` times what they did (e.g. the sampling step changed)."""
        if self.full_ms is not None:
            self.full_ms *= float(ratio)
        self.coarse_ms = {factor: ms * float(ratio) for factor, ms in self.coarse_ms.items()}
        self.changed()

    def draw(self, draw_scene: Callable[[], None]) -> None:
        """Draw now: the next refinement band, a new (coarse or full) frame, or nothing when the
        preserved framebuffer already shows the exact current frame (a repaint Qt asked for)."""
        if self.frames_drawn and self.hold():
            return
        target = self._current_target()
        if self._band_due and self._rows_left > 0 and target == self._target:
            self._draw_band(draw_scene)
            return
        if self.exact and target == self._target and self.frames_drawn:
            return  # nothing changed since the exact frame: the widget kept it
        self._draw_frame(draw_scene, target)

    # -- frames and bands ------------------------------------------------------------------
    def frame_ms(self, factor: int) -> float | None:
        """What a frame ``factor`` times coarser costs: measured, else estimated from the full frame's
        cost (:data:`FIXED_SHARE` of it, plus the rest divided by the factor, all divided by the pixels
        saved on software OpenGL); None when unknown."""
        if factor in self.coarse_ms:
            return self.coarse_ms[factor]
        if self.full_ms is None:
            return None
        if factor <= 1:
            return self.full_ms
        pixels = COARSE_PIXEL_DIVISOR ** 2 if self.software else 1
        return self.full_ms * (FIXED_SHARE + (1.0 - FIXED_SHARE) / factor) / pixels

    def factor_for_frame(self) -> int:
        """The coarse factor the next frame is drawn with: the smallest whose frame fits the budget,
        measured, or estimated within half of it (an estimate is only a guess, and a frame over
        budget is a stall); :data:`MAX_FACTOR` when none does."""
        if self.full_ms is None and not self.coarse_ms:
            return SOFTWARE_START_FACTOR if self.software else 1
        for factor in range(1, MAX_FACTOR + 1):
            ms = self.frame_ms(factor)
            limit = self.budget_ms if factor in self.coarse_ms or factor == 1 else 0.5 * self.budget_ms
            if ms is not None and ms <= limit:
                return factor
        return MAX_FACTOR

    def _draw_frame(self, draw_scene: Callable[[], None], target) -> None:
        self._generation += 1
        self._idle.stop()
        if self.software is None:
            self.software = is_software_renderer(renderer_name())
        factor = self.factor_for_frame()
        divisor = COARSE_PIXEL_DIVISOR if factor > 1 and self.software else 1
        applied, ms = self._timed(draw_scene, factor, None, divisor)
        self.frames_drawn += 1
        self.last_factor = applied
        self.last_divisor = divisor if applied > 1 else 1
        self.refined_rows = 0
        self._target = target
        if applied > 1:
            old = self.coarse_ms.get(applied)
            self.coarse_ms[applied] = ms if old is None else 0.5 * (old + ms)
        else:
            self._learn(ms)
        self._band_due = False
        if applied <= 1 and factor <= 1:
            self._rows_left, self.exact = 0, True
            return
        height = max(1, int(self.canvas.physical_size[1]))
        self._rows_left = height
        # until a band is timed: the full frame's cost, or a generous guess from this coarse frame (it
        # had 1/applied of the samples and 1/divisor² of the pixels, and a fixed share besides)
        self._ms_per_row = (self.full_ms or ms * applied * self.last_divisor ** 2) / height
        self._last_rows = None
        self._refine_ms = 0.0
        self.exact = False
        self._idle.start(self.idle_ms)

    def _draw_band(self, draw_scene: Callable[[], None]) -> None:
        width, height = (int(v) for v in self.canvas.physical_size)
        rows = next_band(self._rows_left, self._ms_per_row, self.budget_ms, self._last_rows)
        top = self._rows_left  # GL rows count from the bottom: this band ends where the last began
        _applied, ms = self._timed(draw_scene, 1, (0, top - rows, width, rows))
        self.bands_drawn += 1
        self._band_due = False
        self._rows_left -= rows
        self.refined_rows += rows
        self._refine_ms += ms
        # the next rows cost at least the frame's average: rows of empty background above the volume
        # cost nothing and would make the first band through the volume far too tall
        self._ms_per_row, self._last_rows = max(ms / rows, (self.full_ms or 0.0) / max(height, 1)), rows
        if self._rows_left > 0:
            generation = self._generation
            QTimer.singleShot(TURN_MS, lambda: self._request_band(generation))
        else:
            self.exact = True
            self._learn(self._refine_ms)  # all rows drawn at full quality: what one full frame costs

    def _request_band(self, generation: int | None = None) -> None:
        if generation is not None and generation != self._generation:
            return
        if self._rows_left <= 0:
            return
        self._band_due = True
        self.canvas.request_draw()

    def frame_layout(self) -> tuple[int, int]:
        """What the framebuffer holds after the last draw, for the view that shows it: ``(divisor,
        refined)``: the last frame filled the lower-left 1/``divisor`` of it (1: all of it), and the top
        ``refined`` rows have been redrawn at full quality since."""
        return self.last_divisor, self.refined_rows

    def _timed(self, draw_scene, factor: int, scissor, divisor: int = 1) -> tuple[int, float]:
        """Draw (coarser by ``factor``, inside ``scissor`` (x, y, w, h) when given, into the lower-left
        1/``divisor`` of the framebuffer) and wait for the GL to finish; returns the factor applied and
        the milliseconds it took."""
        from vispy import gloo

        context = self.canvas.context
        self.drawing = True
        start = time.perf_counter()
        try:
            applied = self.set_factor(factor) if factor != 1 else 1
            if scissor is not None:
                context.set_state(scissor_test=True)
                context.set_scissor(*scissor)
            width, height = (int(v) for v in self.canvas.physical_size)
            if divisor > 1:  # the same projection into a smaller viewport: the scene drawn smaller
                context.set_viewport(0, 0, max(1, width // divisor), max(1, height // divisor))
            draw_scene()
            if divisor > 1:
                context.set_viewport(0, 0, width, height)
            if scissor is not None:
                context.set_state(scissor_test=False)
            context.flush_commands()
            gloo.gl.glFinish()
        finally:
            if factor != 1:
                self.set_factor(1)
            self.drawing = False
        return applied, (time.perf_counter() - start) * 1000.0

    def _learn(self, full_ms: float) -> None:
        self.full_ms = full_ms if self.full_ms is None else 0.5 * (self.full_ms + full_ms)

    def _current_target(self) -> tuple:
        native = self.canvas.native
        fbo = native.defaultFramebufferObject() if hasattr(native, "defaultFramebufferObject") else 0
        return (fbo, tuple(int(v) for v in self.canvas.physical_size))


def progressive_canvas(**kwargs):
    """A vispy ``SceneCanvas`` whose on-screen frames go through :class:`ProgressiveFrames`
    (``canvas.progressive``; set its ``set_factor``). vispy is imported here, not at module load."""
    from vispy import scene

    from panels.offscreen_canvas import offscreen_canvas_class

    class ProgressiveSceneCanvas(offscreen_canvas_class(scene.SceneCanvas)):
        """SceneCanvas with coarse frames and band refinement on screen (see the module)."""

        def update(self, node=None) -> None:
            progressive = getattr(self, "progressive", None)
            if progressive is not None and not self._drawing:
                progressive.changed()
            super().update(node)

        def frame_layout(self) -> tuple[int, int]:
            """See :meth:`ProgressiveFrames.frame_layout` (read by the view that shows the canvas)."""
            return self.progressive.frame_layout()

        def request_draw(self) -> None:
            """Ask for a draw that is not a change of the scene (the next band)."""
            super().update()

        def on_resize(self, event) -> None:
            progressive = getattr(self, "progressive", None)
            if progressive is not None:
                progressive.forget_cost()
            super().on_resize(event)

        def on_draw(self, event) -> None:
            if self._scene is None:
                return
            self._update_pending = False
            self.progressive.draw(self._draw_scene)

    canvas = ProgressiveSceneCanvas(**kwargs)
    canvas.unfreeze()  # vispy canvases refuse new attributes once built
    canvas.progressive = ProgressiveFrames(canvas)
    canvas.freeze()
    try:
        from qtpy.QtOpenGLWidgets import QOpenGLWidget

        canvas.native.setUpdateBehavior(QOpenGLWidget.UpdateBehavior.PartialUpdate)  # bands need the last frame kept
    except (ImportError, AttributeError):
        pass
    return canvas
