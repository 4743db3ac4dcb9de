"""vispy splat viewer: depth-sorted, alpha-blended Gaussian billboards (OpenGL point sprites).

Each splat is a point sprite of diameter 2·3σ_max (perspective-scaled in the vertex shader)
with a Gaussian falloff and its opacity; splats are re-sorted back to front whenever the
camera moves. Import of vispy happens when a :class:`SplatCanvas` is created (lazily).
"""

from __future__ import annotations

import math

import numpy as np

VERT = """
attribute vec3 a_position;
attribute vec4 a_color;
attribute vec3 a_cov_a;   // world covariance xx xy xz
attribute vec3 a_cov_b;   // yy yz zz
attribute float a_selected;
uniform mat4 u_view;      // world -> camera, OpenCV (x right, y down, z forward)
uniform float u_focal;    // pixels (framebuffer)
uniform float u_point_scale;
varying vec4 v_color;
varying vec3 v_conic;
varying float v_size;
varying float v_selected;
void main() {
    gl_Position = $transform(vec4(a_position, 1.0));
    v_color = a_color;
    v_selected = a_selected;
    vec3 t = (u_view * vec4(a_position, 1.0)).xyz;
    float z = max(t.z, 1e-4);
    mat3 W = mat3(u_view[0].xyz, u_view[1].xyz, u_view[2].xyz);
    mat3 S = mat3(a_cov_a.x, a_cov_a.y, a_cov_a.z,
                  a_cov_a.y, a_cov_b.x, a_cov_b.y,
                  a_cov_a.z, a_cov_b.y, a_cov_b.z) * (u_point_scale * u_point_scale);
    vec3 j0 = vec3(u_focal / z, 0.0, -u_focal * t.x / (z * z)) * W;  // rows of J*W
    vec3 j1 = vec3(0.0, u_focal / z, -u_focal * t.y / (z * z)) * W;
    float a = dot(j0, S * j0) + 0.3;
    float b = dot(j0, S * j1);
    float c = dot(j1, S * j1) + 0.3;
    float det = max(a * c - b * b, 1e-8);
    v_conic = vec3(c / det, -b / det, a / det);
    float mid = 0.5 * (a + c);
    float lam = mid + sqrt(max(0.1, mid * mid - det));
    v_size = clamp(2.0 * ceil(3.0 * sqrt(lam)), 1.0, 512.0);
    gl_PointSize = t.z < 0.01 ? 0.0 : v_size;
}
"""

FRAG = """
varying vec4 v_color;
varying vec3 v_conic;
varying float v_size;
varying float v_selected;
void main() {
    vec2 d = (gl_PointCoord - 0.5) * v_size;
    float power = -0.5 * (v_conic.x * d.x * d.x + v_conic.z * d.y * d.y) - v_conic.y * d.x * d.y;
    float a = min(0.99, v_color.a * exp(power));
    if (a < 1.0 / 255.0) discard;
    vec3 rgb = mix(v_color.rgb, vec3(1.0, 0.85, 0.1), 0.6 * v_selected);
    gl_FragColor = vec4(rgb, a);
}
"""


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


class SplatCanvas:
    """A vispy SceneCanvas showing a Gaussian scene; ``native`` is the Qt widget."""

    def __init__(self, parent=None) -> None:
        from vispy import scene
        from vispy.visuals import Visual

        class SplatVisual(Visual):
            def __init__(self):
                Visual.__init__(self, vcode=VERT, fcode=FRAG)
                self._draw_mode = "points"
                self.set_gl_state("translucent", depth_test=False, blend=True,
                                  blend_func=("src_alpha", "one_minus_src_alpha"))
                self.shared_program["u_focal"] = 500.0
                self.shared_program["u_point_scale"] = 1.0
                self.shared_program["u_view"] = np.eye(4, dtype=np.float32)
                self._n = 0

            def set_data(self, pos, col, cov, sel):
                from vispy import gloo

                self._n = len(pos)
                cov = np.asarray(cov, np.float32).reshape(-1, 6)
                self.shared_program["a_position"] = gloo.VertexBuffer(np.ascontiguousarray(pos, np.float32))
                self.shared_program["a_color"] = gloo.VertexBuffer(np.ascontiguousarray(col, np.float32))
                self.shared_program["a_cov_a"] = gloo.VertexBuffer(np.ascontiguousarray(cov[:, :3]))
                self.shared_program["a_cov_b"] = gloo.VertexBuffer(np.ascontiguousarray(cov[:, 3:]))
                self.shared_program["a_selected"] = gloo.VertexBuffer(np.ascontiguousarray(sel, np.float32))
                self.update()

            def _prepare_transforms(self, view):
                view.view_program.vert["transform"] = view.get_transform()

            def _prepare_draw(self, view):
                return self._n > 0

        Splats = scene.visuals.create_visual_node(SplatVisual)
        self.canvas = scene.SceneCanvas(keys=None, show=False, bgcolor="black", parent=parent)
        self.view = self.canvas.central_widget.add_view()
        self.view.camera = scene.TurntableCamera(fov=45.0, up="-y", elevation=0.0, azimuth=90.0)  # looks along +z
        self.splats = Splats(parent=self.view.scene)
        self.positions = np.zeros((0, 3), np.float32)
        self.colors = np.zeros((0, 4), np.float32)
        self.covs = np.zeros((0, 6), np.float32)
        self.selected = np.zeros(0, bool)
        self._last_dir: np.ndarray | None = None
        self.point_scale = 1.0
        self.crop_lines = scene.visuals.Line(pos=np.zeros((2, 3), np.float32), color=(0.3, 0.9, 1.0, 1.0), width=2,
                                             connect="segments", parent=self.view.scene)
        self.crop_lines.visible = False
        self.crop_box: tuple[np.ndarray, np.ndarray] | None = None
        self.view.scene.transform.changed.connect(lambda *_: self._resort())
        self.canvas.events.resize.connect(lambda *_: self._update_focal())
        self.canvas.events.key_press.connect(self._on_key)

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
        """The Qt widget."""
        return self.canvas.native

    def set_background(self, rgb) -> None:
        """Background colour (r, g, b) in [0, 1]."""
        self.canvas.bgcolor = tuple(rgb) + (1.0,)
        self.canvas.update()

    def set_point_scale(self, scale: float) -> None:
        """Multiply every splat's drawn size."""
        self.point_scale = float(scale)
        self.splats.shared_program["u_point_scale"] = self.point_scale
        self.canvas.update()

    def set_splats(self, positions, colors_rgba, covariances, selected, color_fn=None) -> None:
        """New data: positions (N,3), colours (N,4) in [0,1], world covariances (N,3,3), selection (N,).

        ``color_fn(camera_centre)`` (optional) recomputes view-dependent colours whenever the view turns.
        """
        self.color_fn = color_fn
        self.positions = np.asarray(positions, np.float32)
        self.colors = np.asarray(colors_rgba, np.float32)
        cov = np.asarray(covariances, np.float32).reshape(-1, 3, 3)
        self.covs = np.stack([cov[:, 0, 0], cov[:, 0, 1], cov[:, 0, 2], cov[:, 1, 1], cov[:, 1, 2], cov[:, 2, 2]], 1)
        self.selected = np.asarray(selected, bool)
        self._last_dir = None
        self._resort(force=True)

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
        from engines.render.camera import scene_frame

        centre, radius = scene_frame(self.positions)
        cam = self.view.camera
        cam.center = tuple(float(c) for c in centre)
        cam.distance = 1.15 * radius / math.sin(math.radians(cam.fov) / 2)
        cam.scale_factor = 2 * radius
        self._resort(force=True)

    def camera_matrices(self, width: int | None = None, height: int | None = None):
        """(K, viewmat) of the current view for an image of ``width``x``height`` (default: canvas size)."""
        from engines.render.camera import scene_frame

        cw, ch = self.canvas.size
        centre, radius = scene_frame(self.positions) if len(self.positions) else (np.zeros(3), 1.0)
        K, view = projection_from_transform(self.view.scene.transform, centre, radius, cw, ch)
        if width and height:
            K = K.copy()
            K[0] *= width / cw
            K[1] *= height / ch
        return K, view

    def _update_focal(self) -> None:
        self._update_camera_uniforms()
        self.canvas.update()

    def _update_camera_uniforms(self) -> None:
        """Upload the view matrix and focal length the vertex shader uses for the EWA footprint."""
        if len(self.positions) == 0:
            return
        try:
            K, view = self.camera_matrices()
        except (np.linalg.LinAlgError, ValueError):
            return
        scale = getattr(self.canvas, "pixel_scale", 1.0) or 1.0
        self.splats.shared_program["u_view"] = view.T.astype(np.float32)  # GLSL is column-major
        self.splats.shared_program["u_focal"] = float(K[1, 1]) * scale

    def _resort(self, force: bool = False) -> None:
        """Sort splats back to front for the current camera and upload them."""
        if len(self.positions) == 0:
            self.splats.set_data(np.zeros((0, 3)), np.zeros((0, 4)), np.zeros((0, 6)), np.zeros(0))
            return
        try:
            _, view = self.camera_matrices()
        except (np.linalg.LinAlgError, ValueError):
            return
        direction = view[2, :3]  # camera forward (OpenCV z) in world coordinates
        if not force and self._last_dir is not None and np.allclose(direction, self._last_dir, atol=1e-4):
            return
        self._last_dir = direction
        if self.color_fn is not None:
            self.colors = np.asarray(self.color_fn(-view[:3, :3].T @ view[:3, 3]), np.float32)
        depth = self.positions @ direction
        order = np.argsort(-depth, kind="stable")  # far first: drawn under the near ones
        self._update_camera_uniforms()
        self.splats.set_data(self.positions[order], self.colors[order], self.covs[order],
                             self.selected[order].astype(np.float32))
