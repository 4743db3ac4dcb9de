"""vispy splat viewer: depth-sorted, alpha-blended Gaussian quads (instanced, OpenGL).

Each splat is one screen-aligned quad covering the same ±radius pixel box as the exact
rasterizer (radius = ceil(3·sqrt(λ_max)) of the dilated EWA footprint, computed in the vertex
shader), so large splats are drawn at their true size. The back-to-front order and SH colours
follow the camera being drawn (see :class:`SplatCanvas`). vispy is imported when a
:class:`SplatCanvas` is created (lazily).
"""

from __future__ import annotations

import math
import os

import numpy as np

VERT = """
attribute vec2 a_corner;  // quad corner in {-1, 1}^2; the 4 corners repeat the splat's attributes
attribute vec3 a_position;
attribute vec4 a_color;
attribute vec3 a_cov_a;   // world covariance xx xy xz
attribute vec3 a_cov_b;   // yy yz zz
attribute float a_selected;
uniform mat4 u_view;      // world -> camera, OpenCV (x right, y down, z forward)
uniform vec2 u_focal;     // fx, fy in canvas pixels
uniform vec2 u_lim;       // x/z, y/z clamp of the Jacobian (1.3 x half the field of view)
uniform vec2 u_size;      // canvas size in pixels
uniform float u_point_scale;
uniform float u_near;
varying vec4 v_color;
varying vec3 v_conic;
varying vec2 v_offset;    // pixels from the projected mean (x right, y down)
varying float v_selected;
void main() {
    v_color = a_color;
    v_selected = a_selected;
    vec3 t = (u_view * vec4(a_position, 1.0)).xyz;
    if (t.z <= u_near) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); return; }
    float z = t.z;
    float tx = clamp(t.x / z, -u_lim.x, u_lim.x) * z;
    float ty = clamp(t.y / z, -u_lim.y, u_lim.y) * z;
    mat3 W = mat3(u_view[0].xyz, u_view[1].xyz, u_view[2].xyz);
    mat3 S = mat3(a_cov_a.x, a_cov_a.y, a_cov_a.z,
                  a_cov_a.y, a_cov_b.x, a_cov_b.y,
                  a_cov_a.z, a_cov_b.y, a_cov_b.z) * (u_point_scale * u_point_scale);
    vec3 j0 = vec3(u_focal.x / z, 0.0, -u_focal.x * tx / (z * z)) * W;  // rows of J*W
    vec3 j1 = vec3(0.0, u_focal.y / z, -u_focal.y * ty / (z * z)) * W;
    float a = dot(j0, S * j0) + 0.3;
    float b = dot(j0, S * j1);
    float c = dot(j1, S * j1) + 0.3;
    float det = a * c - b * b;
    if (det <= 0.0) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); return; }
    v_conic = vec3(c / det, -b / det, a / det);
    float mid = 0.5 * (a + c);
    float radius = ceil(3.0 * sqrt(mid + sqrt(max(0.1, mid * mid - det))));  // as the exact rasterizer
    v_offset = a_corner * radius;
    vec4 centre = $transform(vec4(a_position, 1.0));
    gl_Position = centre + vec4(2.0 * v_offset.x / u_size.x, -2.0 * v_offset.y / u_size.y, 0.0, 0.0) * centre.w;
}
"""

FRAG = """
varying vec4 v_color;
varying vec3 v_conic;
varying vec2 v_offset;
varying float v_selected;
void main() {
    vec2 d = v_offset;
    float power = -0.5 * (v_conic.x * d.x * d.x + v_conic.z * d.y * d.y) - v_conic.y * d.x * d.y;
    float a = min(0.99, v_color.a * exp(power));
    if (a < 1.0 / 255.0) discard;
    vec3 rgb = mix(v_color.rgb, vec3(1.0, 0.85, 0.1), 0.6 * v_selected);
    gl_FragColor = vec4(rgb, a);
}
"""

SPLAT_DTYPE = np.dtype([("a_position", np.float32, 3), ("a_cov_a", np.float32, 3), ("a_cov_b", np.float32, 3),
                        ("a_selected", np.float32)])
_CORNERS = np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]], np.float32)
_QUAD = np.array([0, 1, 2, 2, 1, 3], np.uint32)  # two triangles per splat


def projection_from_transform(transform, centre: np.ndarray, radius: float, width: int, height: int):
    """Fit the 3x4 camera matrix of a vispy scene->canvas transform and split it into (K, viewmat).

    The transform is sampled at 12 points around ``centre``; returns OpenCV-style K (3,3) and
    world->camera (4,4) numpy arrays (image y down, z forward).
    """
    from scipy.linalg import rq

    rng = np.random.default_rng(0)
    pts = centre + radius * rng.uniform(-1, 1, size=(12, 3))
    mapped = np.asarray(transform.map(pts))
    uv = mapped[:, :2] / mapped[:, 3:4]
    rows = []
    for (x, y, z), (u, v) in zip(pts, uv):
        X = [x, y, z, 1.0]
        rows.append([*X, 0, 0, 0, 0, *(-u * np.array(X))])
        rows.append([0, 0, 0, 0, *X, *(-v * np.array(X))])
    _, _, vt = np.linalg.svd(np.asarray(rows))
    P = vt[-1].reshape(3, 4)
    if (P[2, :3] @ centre + P[2, 3]) < 0:  # the scene centre is in front of the camera
        P = -P
    K, R = rq(P[:, :3])
    signs = np.diag(np.sign(np.diag(K)))
    K, R = K @ signs, signs @ R
    t = np.linalg.solve(K, P[:, 3])
    if np.linalg.det(R) < 0:
        R, t = -R, -t
    scale = K[2, 2]
    K = K / scale
    view = np.eye(4)
    view[:3, :3] = R
    view[:3, 3] = t
    return K, view


def box_edges(lo, hi) -> np.ndarray:
    """The 12 edges of the axis-aligned box [lo, hi] as 24 segment end points (24, 3) float32."""
    lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
    corners = np.array([[(hi if (i >> a) & 1 else lo)[a] for a in range(3)] for i in range(8)], np.float32)
    edges = [(i, i | (1 << a)) for i in range(8) for a in range(3) if not (i >> a) & 1]
    return corners[np.array(edges).reshape(-1)]


def sorted_splats(positions: np.ndarray, view: np.ndarray, color_fn=None):
    """Draw order for world->camera ``view``: (triangle indices back to front, colours (N,4) or None).

    The colours are ``color_fn(camera centre)`` (view-dependent SH) when given. Pure numpy/torch
    (no GL): runs on a worker thread for large scenes.
    """
    colors = None
    if color_fn is not None:
        colors = np.asarray(color_fn(-view[:3, :3].T @ view[:3, 3]), np.float32)
    depth = positions @ view[2, :3].astype(np.float32)  # camera z up to a constant
    order = np.argsort(-depth, kind="stable").astype(np.uint32)  # far first: drawn under the near ones
    return (order[:, None] * 4 + _QUAD).reshape(-1), colors


def covariance_upper(covariances) -> np.ndarray:
    """World covariances as the viewer's (N, 6) float32 upper triangles (xx, xy, xz, yy, yz, zz); an
    (N, 6) array is taken as it is (prepared by the open job)."""
    cov = np.asarray(covariances, np.float32)
    if cov.ndim == 2 and cov.shape[1] == 6:
        return cov
    cov = cov.reshape(-1, 3, 3)
    return np.stack([cov[:, 0, 0], cov[:, 0, 1], cov[:, 0, 2], cov[:, 1, 1], cov[:, 1, 2], cov[:, 2, 2]], 1)


#: shown over the CPU view until the first frame of a scene arrives (a full frame can take seconds)
CPU_HINT = "Rendering on the CPU…"


class SplatCanvas:
    """A vispy SceneCanvas showing a Gaussian scene; ``native`` is the Qt widget.

    Before every draw the camera being drawn is read back from the scene transform; when it differs
    from the one the splats were last sorted for, the back-to-front order and view-dependent (SH)
    colours are recomputed for it — on this thread up to ``SYNC_LIMIT`` splats (so every drawn frame
    is exact), on a worker thread above it (the previous order is drawn until the new one is ready).
    """

    SYNC_LIMIT = 150_000

    @staticmethod
    def make_scene_canvas():
        """The off-screen vispy canvas a SplatCanvas draws on (its OpenGL context is created here: about
        half the view's set-up, so the panel can make it in an idle turn before the view)."""
        from vispy import scene

        from panels.offscreen_canvas import offscreen_canvas_class

        return offscreen_canvas_class(scene.SceneCanvas)(keys=None, show=False, bgcolor="black")

    def __init__(self, parent=None, renderer: str | None = None, scene_canvas=None) -> None:
        """``renderer``: "gl" (splats drawn by OpenGL), "cpu" (progressive CPU frames) or "auto" (CPU when
        the OpenGL driver is a software rasterizer); default from ``$SPECTRA_VIEW_RENDERER``, else auto.
        ``scene_canvas``: one made by :meth:`make_scene_canvas` before (else made here)."""
        from vispy import app, gloo, scene
        from vispy.visuals import Visual

        from panels.render.cpu_view import FRAME_FRAG, FRAME_VERT
        from panels.render.widgets import to_uint8

        owner = self
        self.renderer = (renderer or os.environ.get("SPECTRA_VIEW_RENDERER") or "auto").lower()
        if self.renderer not in ("auto", "gl", "cpu"):
            raise ValueError(f"unknown view renderer {self.renderer!r}; use auto, gl or cpu")
        self.gl_renderer: str | None = None  # GL_RENDERER, read at the first draw
        self.progressive = None  # ProgressiveRenderer in CPU mode
        self._gl_splats_stale = False  # CPU mode skipped the OpenGL buffers of the current splats
        self._hint = None  # a label over the view until the CPU view's first frame of a scene arrives
        self._camera_post_due = False  # CPU mode: the camera is posted at the next event-loop turn
        self.last_frame: np.ndarray | None = None  # the CPU frame shown last, (H, W, 3) uint8 in device pixels
        self.renderer_chosen = None  # optional callback once GL_RENDERER is known and the mode chosen

        class FrameVisual(Visual):
            """The latest CPU frame as a texture over the whole view."""

            def __init__(self):
                Visual.__init__(self, vcode=FRAME_VERT, fcode=FRAME_FRAG)
                self._draw_mode = "triangle_strip"
                self.set_gl_state(depth_test=False, blend=False)
                self.shared_program["a_pos"] = gloo.VertexBuffer(np.array([[-1, -1], [1, -1], [-1, 1], [1, 1]],
                                                                          np.float32))
                self._texture = gloo.Texture2D(np.zeros((1, 1, 3), np.uint8), interpolation="linear")
                self.shared_program["u_frame"] = self._texture
                self.has_frame = False

            def set_frame(self, image: np.ndarray) -> None:
                """The frame to show: (H, W, 3) uint8 (as converted on the worker) or float in [0, 1]."""
                self._texture.set_data(to_uint8(image))
                self.has_frame = True

            def _prepare_transforms(self, view):
                pass

            def _prepare_draw(self, view):
                owner._before_draw_cpu()
                return self.has_frame

        class SplatVisual(Visual):
            def __init__(self):
                Visual.__init__(self, vcode=VERT, fcode=FRAG)
                self._draw_mode = "triangles"
                self.set_gl_state("translucent", depth_test=False, blend=True,
                                  blend_func=("src_alpha", "one_minus_src_alpha"))
                self.shared_program["u_focal"] = (500.0, 500.0)
                self.shared_program["u_lim"] = (1.0, 1.0)
                self.shared_program["u_size"] = (800.0, 600.0)
                self.shared_program["u_near"] = 0.01
                self.shared_program["u_point_scale"] = 1.0
                self.shared_program["u_view"] = np.eye(4, dtype=np.float32)
                self._vbo = gloo.VertexBuffer(np.zeros(4, SPLAT_DTYPE))
                self._colors = gloo.VertexBuffer(np.zeros((4, 4), np.float32))
                self._corners = gloo.VertexBuffer(np.zeros((4, 2), np.float32))
                self._corner_count = 0  # splats whose quad corners the buffer holds
                self._index_buffer = gloo.IndexBuffer(np.zeros(0, np.uint32))
                self._n = 0

            def set_splats(self, data: np.ndarray, colors: np.ndarray) -> None:
                """Per-splat attributes (repeated on the 4 corners of each quad); nothing drawn until ordered."""
                self._n = 0
                if not len(data):
                    return
                self._vbo.set_data(np.repeat(data, 4))
                if self._corner_count != len(data):  # the same quads while the splat count stays
                    self._corners.set_data(np.tile(_CORNERS, (len(data), 1)))
                    self._corner_count = len(data)
                for name in SPLAT_DTYPE.names:
                    self.shared_program[name] = self._vbo[name]
                self.shared_program["a_corner"] = self._corners
                self.set_colors(colors)

            def set_colors(self, colors: np.ndarray) -> None:
                self._colors.set_data(np.repeat(np.ascontiguousarray(colors, np.float32), 4, axis=0))
                self.shared_program["a_color"] = self._colors

            def set_order(self, indices: np.ndarray) -> None:
                self._index_buffer.set_data(indices)
                self._n = len(indices) // 6

            def _prepare_transforms(self, view):
                view.view_program.vert["transform"] = view.get_transform()

            def _prepare_draw(self, view):
                owner._before_draw()
                return self._n > 0

        Splats = scene.visuals.create_visual_node(SplatVisual)
        from panels.offscreen_canvas import OffscreenCanvasView

        self.canvas = scene_canvas if scene_canvas is not None else self.make_scene_canvas()
        self.widget = OffscreenCanvasView(self.canvas, parent, background="#000000")  # what the window shows
        self.view = self.canvas.central_widget.add_view(border_width=0, margin=0)  # the view fills the canvas
        self.view.camera = scene.TurntableCamera(fov=45.0, up="-y", elevation=0.0, azimuth=90.0)  # looks along +z
        self.frame = scene.visuals.create_visual_node(FrameVisual)(parent=self.view.scene)
        self.frame.visible = False
        self.frame.order = -1  # under the crop box lines
        self.splats = Splats(parent=self.view.scene)
        self.positions = np.zeros((0, 3), np.float32)
        self._frame = None  # (positions, centre, radius): scene_frame of those positions
        self.colors = np.zeros((0, 4), np.float32)
        self.covs = np.zeros((0, 6), np.float32)
        self.selected = np.zeros(0, bool)
        self.color_fn = None
        self.sorted_view: np.ndarray | None = None  # the camera the uploaded order/colours are for
        self._generation = 0
        self._pool = None
        self._job = None  # (future, view, generation) of the worker sort
        self._wanted: np.ndarray | None = None
        self._poll = app.Timer(0.015, connect=self._collect, start=False)
        self._cpu_timer = app.Timer(0.01, connect=self._take_frame, start=False)
        self.point_scale = 1.0
        self.crop_lines = scene.visuals.Line(pos=np.zeros((2, 3), np.float32), color=(0.3, 0.9, 1.0, 1.0), width=2,
                                             connect="segments", parent=self.view.scene)
        self.crop_lines.visible = False
        self.crop_box: tuple[np.ndarray, np.ndarray] | None = None
        self.canvas.events.key_press.connect(self._on_key)
        self.canvas.events.close.connect(self._on_close)

    def _on_close(self, _event=None) -> None:
        """Stop the CPU-frame worker and the sort pool with the canvas."""
        if self.progressive is not None:
            self.progressive.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    _FLY_KEYS = {"W": (0, 0, 1), "S": (0, 0, -1), "A": (-1, 0, 0), "D": (1, 0, 0), "Q": (0, 1, 0), "E": (0, -1, 0)}  # noqa: RUF012

    def _on_key(self, event) -> None:
        key = getattr(event.key, "name", "") if event.key is not None else ""
        step = self._FLY_KEYS.get(str(key).upper())
        if step is not None:
            self.fly(*step)

    def fly(self, right: float, down: float, forward: float, step: float = 0.05) -> None:
        """Move the view (camera and its orbit centre) by ``step`` x distance along camera axes (WASD/QE)."""
        try:
            _, view = self.camera_matrices()
        except (np.linalg.LinAlgError, ValueError):
            return
        cam = self.view.camera
        delta = (right * view[0, :3] + down * view[1, :3] + forward * view[2, :3]) * step * float(cam.distance or 1.0)
        cam.center = tuple(np.asarray(cam.center, np.float64) + delta)
        self.canvas.update()

    @property
    def native(self):
        """The Qt widget in the window (the canvas's own OpenGL widget is never shown, see
        :mod:`panels.offscreen_canvas`)."""
        return self.widget

    def set_background(self, rgb) -> None:
        """Background colour (r, g, b) in [0, 1]."""
        self.canvas.bgcolor = tuple(rgb) + (1.0,)
        self._push_cpu_scene()
        self.canvas.update()

    def set_point_scale(self, scale: float) -> None:
        """Multiply every splat's drawn size."""
        self.point_scale = float(scale)
        self.splats.shared_program["u_point_scale"] = self.point_scale
        self._push_cpu_scene()
        self.canvas.update()

    def set_splats(self, positions, colors_rgba, covariances, selected, color_fn=None, frame=None) -> None:
        """New data: positions (N,3), colours (N,4) in [0,1], world covariances (N,3,3), selection (N,).

        ``color_fn(camera_centre)`` (optional) recomputes view-dependent colours for every camera drawn;
        ``frame`` (optional) is :func:`~engines.render.camera.scene_frame` of ``positions``, computed
        by the caller's job (else once here, on the first camera query, and kept while the positions stay).
        """
        self.color_fn = color_fn
        positions = np.asarray(positions, np.float32).reshape(-1, 3)
        if frame is not None:
            self._frame = (positions, np.asarray(frame[0], np.float64), float(frame[1]))
        elif self._frame is None or self._frame[0] is not positions:
            self._frame = None
        self.positions = positions
        self.colors = np.asarray(colors_rgba, np.float32).reshape(-1, 4)
        self.covs = covariance_upper(covariances)
        self.selected = np.asarray(selected, bool).reshape(-1)
        self._gl_splats_stale = self.progressive is not None
        if not self._gl_splats_stale:  # the CPU view does not draw them (500k splats: ~0.1 s of copies)
            self._push_gl_splats()
        self._push_cpu_scene()
        self._generation += 1
        self.sorted_view = None
        self._wanted = None
        self.canvas.update()

    def set_crop_box(self, lo, hi, visible: bool = True) -> None:
        """Show the axis-aligned box [lo, hi] (world xyz, 3 each) as a wireframe (12 edges)."""
        lo, hi = np.asarray(lo, np.float32), np.asarray(hi, np.float32)
        self.crop_box = (lo, hi)
        self.crop_lines.set_data(pos=box_edges(lo, hi))
        self.crop_lines.visible = bool(visible)
        self.canvas.update()

    def frame_all(self) -> None:
        """Centre the camera on the scene and fit it in view."""
        if len(self.positions) == 0:
            return
        centre, radius = self.scene_frame()
        cam = self.view.camera
        cam.center = tuple(float(c) for c in centre)
        cam.distance = 1.15 * radius / math.sin(math.radians(cam.fov) / 2)
        cam.scale_factor = 2 * radius
        self.canvas.update()

    def scene_frame(self) -> tuple[np.ndarray, float]:
        """(centre, radius) of the splats (see :func:`~engines.render.camera.scene_frame`), computed
        once per set of positions: camera queries run on every frame and must not scan every splat."""
        if self._frame is None or self._frame[0] is not self.positions:
            from engines.render.camera import scene_frame

            self._frame = (self.positions, *scene_frame(self.positions))
        return self._frame[1], self._frame[2]

    def camera_matrices(self, width: int | None = None, height: int | None = None):
        """(K, viewmat) of the current view for an image of ``width``x``height`` (default: canvas size)."""
        cw, ch = self.canvas.size
        centre, radius = self.scene_frame() if len(self.positions) else (np.zeros(3), 1.0)
        K, view = projection_from_transform(self.view.scene.transform, centre, radius, cw, ch)
        if width and height:
            K = K.copy()
            K[0] *= width / cw
            K[1] *= height / ch
        return K, view

    @property
    def exact(self) -> bool:
        """True when the uploaded order and colours are those of the current camera."""
        if self.sorted_view is None:
            return not len(self.positions)
        try:
            _, view = self.camera_matrices()
        except (np.linalg.LinAlgError, ValueError):
            return False
        return bool(np.allclose(view, self.sorted_view, rtol=0, atol=1e-9))

    @property
    def cpu_mode(self) -> bool:
        """True when the view shows progressive CPU frames instead of OpenGL splats."""
        return self.progressive is not None

    def _detect_renderer(self) -> None:
        """At the first draw (GL context current): read GL_RENDERER and pick the CPU view if it is software."""
        if self.gl_renderer is not None:
            return
        from panels.opengl_info import is_software_renderer, renderer_name

        self.gl_renderer = renderer_name() or "unknown"  # unknown driver: treated like a hardware one
        if self.renderer == "cpu" or (self.renderer == "auto" and is_software_renderer(self.gl_renderer)):
            self._set_cpu_mode(True)
        if self.renderer_chosen is not None:
            self.renderer_chosen()

    def _set_cpu_mode(self, on: bool) -> None:
        from panels.render.cpu_view import PauseWhenHidden, ProgressiveRenderer

        if on and self.progressive is None:
            self.progressive = ProgressiveRenderer(uint8_frames=True)
            self._pause_when_hidden = PauseWhenHidden(self.widget, self.progressive)
            self.view.update = self._camera_moved_cpu  # camera changes post the camera, without a redraw
            self._push_cpu_scene()
        elif not on and self.progressive is not None:
            self.widget.removeEventFilter(self._pause_when_hidden)
            self.progressive.close()
            self.progressive = None
            self._cpu_timer.stop()
            del self.view.update
            self._set_hint(None)
            if self._gl_splats_stale:
                self._push_gl_splats()
                self.sorted_view = None
        self.frame.visible = on
        self.splats.visible = not on
        self.canvas.update()

    def _push_gl_splats(self) -> None:
        """The splats' per-quad OpenGL attributes (built when OpenGL draws them)."""
        base = np.empty(len(self.positions), SPLAT_DTYPE)
        base["a_position"] = self.positions
        base["a_cov_a"], base["a_cov_b"] = self.covs[:, :3], self.covs[:, 3:]
        base["a_selected"] = self.selected
        self.splats.set_splats(base, self.colors)
        self._gl_splats_stale = False

    def _push_cpu_scene(self) -> None:
        """The splats as a PreviewScene (selection tint and point scale applied) for the CPU view."""
        if self.progressive is None:
            return
        from engines.render.preview import PreviewScene

        tint = self.selected.astype(np.float32)[:, None] * 0.6
        highlight = np.array([1.0, 0.85, 0.1], np.float32)
        mix = lambda rgb: rgb[:, :3] * (1 - tint) + highlight * tint  # as the GL fragment shader
        fn = self.color_fn
        prep = PreviewScene(self.positions, self.covs * self.point_scale ** 2, self.colors[:, 3].copy(),
                            mix(self.colors), None if fn is None else (lambda centre: mix(np.asarray(fn(centre)))))
        bg = self.canvas.bgcolor.rgb if hasattr(self.canvas.bgcolor, "rgb") else (0.0, 0.0, 0.0)
        self.progressive.set_scene(prep, bg)
        self._set_hint(CPU_HINT if len(self.positions) else None)
        self.canvas.update()

    def _set_hint(self, text: str | None) -> None:
        """Show ``text`` in a small label over the view (None hides it)."""
        if text is None:
            if self._hint is not None:
                self._hint.hide()
            return
        if self._hint is None:
            from qtpy.QtWidgets import QLabel

            self._hint = QLabel(self.widget)
            self._hint.setStyleSheet("color: #ddd; background: rgba(0, 0, 0, 150); padding: 4px 8px; border-radius: 4px;")
        self._hint.setText(text)
        self._hint.adjustSize()
        native = self.widget
        self._hint.move(max(0, (native.width() - self._hint.width()) // 2), max(0, (native.height() - self._hint.height()) // 2))
        self._hint.show()
        self._hint.raise_()

    @property
    def hint(self) -> str | None:
        """The text shown over the view (e.g. while the first CPU frame renders), or None."""
        return self._hint.text() if self._hint is not None and not self._hint.isHidden() else None

    def _camera_moved_cpu(self, *_args) -> None:
        """CPU view: the camera (or the view box) changed. Post the camera to the CPU renderer instead of
        redrawing the frame already on screen: the canvas redraws when a new frame arrives
        (:meth:`_take_frame`), so a loaded GUI thread spends its time on frames, not on repeats."""
        if self.progressive is None or not len(self.positions):
            self.canvas.update()
            return
        if not self._camera_post_due:  # once per event-loop turn: a resize moves the transforms ~10 times
            from qtpy.QtCore import QTimer

            self._camera_post_due = True
            QTimer.singleShot(0, self._post_due_camera)

    def _post_due_camera(self) -> None:
        self._camera_post_due = False
        self._post_cpu_camera()

    def _before_draw_cpu(self) -> None:
        """CPU view: post the camera being drawn; frames arrive through :meth:`_take_frame`."""
        self._detect_renderer()
        self._post_cpu_camera()

    def _post_cpu_camera(self) -> None:
        """The camera being drawn to the CPU renderer, at the framebuffer's device pixels (the frame
        texture then covers it 1:1 on a HiDPI screen; capped, see :func:`device_frame_size`)."""
        if self.progressive is None:
            return
        from panels.render.cpu_view import device_frame_size

        cw, ch = self.canvas.size
        width, height, ratio = device_frame_size(cw, ch, self.canvas.pixel_scale)
        try:
            K, view = self.camera_matrices(width, height)
        except (np.linalg.LinAlgError, ValueError):
            return
        self.progressive.request(K, view, width, height, ratio)
        if not self._cpu_timer.running:
            self._cpu_timer.start()

    def _take_frame(self, _event=None) -> None:
        """GUI timer: show the newest finished CPU frame."""
        if self.progressive is None:
            self._cpu_timer.stop()
            return
        result = self.progressive.take()
        if result is not None:
            self.last_frame = result[0]
            self.frame.set_frame(result[0])
            self._set_hint(None)
            self.canvas.update()
        elif not self.progressive.busy:
            self._cpu_timer.stop()

    def settle(self, timeout: float = 30.0) -> bool:
        """Block until the current view is drawn exactly (sorted for it, or its full CPU frame shown)."""
        self.canvas.render()  # a draw posts the current camera
        if self.progressive is None:
            return self.wait_sorted(timeout)
        ok = self.progressive.wait_full(timeout)
        self._take_frame()
        return ok

    def _before_draw(self) -> None:
        """Camera uniforms for the camera being drawn; re-sort (and SH colours) when it changed."""
        self._detect_renderer()
        if len(self.positions) == 0 or self.progressive is not None:
            return
        try:
            K, view = self.camera_matrices()
        except (np.linalg.LinAlgError, ValueError):
            return
        prog = self.splats.shared_program
        cw, ch = self.canvas.size
        prog["u_view"] = view.T.astype(np.float32)  # GLSL is column-major
        prog["u_focal"] = (float(K[0, 0]), float(K[1, 1]))
        prog["u_lim"] = (1.3 * 0.5 * cw / float(K[0, 0]), 1.3 * 0.5 * ch / float(K[1, 1]))
        prog["u_size"] = (float(cw), float(ch))
        if self.sorted_view is not None and np.allclose(view, self.sorted_view, rtol=0, atol=1e-9):
            return
        if len(self.positions) <= self.SYNC_LIMIT:
            self._show(view, sorted_splats(self.positions, view, self.color_fn))
        else:
            if self.sorted_view is None and self._job is None and self.splats._n == 0:
                first = np.arange(len(self.positions), dtype=np.uint32)[:, None] * 4 + _QUAD
                self._show(None, (first.reshape(-1), None))  # unsorted until the first sort arrives
            self._request(view)

    def _show(self, view, result) -> None:
        indices, colors = result
        if colors is not None:
            self.splats.set_colors(colors)
        self.splats.set_order(indices)
        self.sorted_view = view

    def _request(self, view: np.ndarray) -> None:
        """Sort for ``view`` on the worker thread (the latest request wins)."""
        if self._job is not None:
            if not np.allclose(view, self._job[1], rtol=0, atol=1e-9):
                self._wanted = view
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            from engines.thread_priority import lower_current_thread

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="splat-sort", initializer=lower_current_thread)
        future = self._pool.submit(sorted_splats, self.positions, view, self.color_fn)
        self._job = (future, view, self._generation)
        self._poll.start()

    def _collect(self, _event=None) -> None:
        """Upload a finished worker sort (GUI thread, timer) and start the next wanted one."""
        if self._job is None or not self._job[0].done():
            return
        future, view, generation = self._job
        self._job = None
        if generation == self._generation and future.exception() is None:
            self._show(view, future.result())
        wanted, self._wanted = self._wanted, None
        if wanted is not None and generation == self._generation:
            self._request(wanted)
        else:
            self._poll.stop()
        self.canvas.update()

    def wait_sorted(self, timeout: float = 10.0) -> bool:
        """Block until a worker sort in flight is uploaded (tests, benchmarks); True when exact."""
        import time

        end = time.monotonic() + timeout
        while self._job is not None and time.monotonic() < end:
            self._job[0].result(timeout=max(0.0, end - time.monotonic()))
            self._collect()
        return self.exact
