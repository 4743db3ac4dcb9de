"""The 3D view: a vispy SceneCanvas with a Volume visual, created lazily.

DVR uses :class:`~panels.volume.shaded_volume.ShadedVolumeVisual`: the TF's colormap plus, in
the shader, gradient opacity, opacity correction for the current ``relative_step_size`` and the
preset's material (ambient, diffuse, specular, power), as the reference caster does, so the live
view and the exported PNG agree. The other methods use vispy's own snippets with the TF's alphas
opacity-corrected in the colormap. Pre-classified RGBA
volumes (2-D / semantic TFs) are drawn with ``method='translucent'``, their alpha channel
opacity-corrected on upload. When no OpenGL context
can be made (e.g. ``QT_QPA_PLATFORM=offscreen``) the view shows a message and the panel falls
back to reference ray-caster previews (:meth:`show_fallback_image`).

Frame: the scene is the volume's own voxel grid scaled to mm (voxel ``(z, y, x)`` at
``(x·dx, y·dy, z·dz)``), the frame the reference caster renders in; crop planes are given in
those mm. Orientation axes at the grid's corner show where patient Right, Anterior and Superior
point (from the volume's RAS affine), so rotated or flipped scans read correctly.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QImage, QPixmap
from qtpy.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from engines.volume.geometry import crop_planes
from engines.volume.tf import TransferFunction1D, correct_opacity
from panels.volume.letter_glyphs import LETTER_GLYPHS, letter_fonts
from panels.volume.progressive_gl import TURN_MS

#: the orientation letters' first frame comes this long after the volume's (their program and glyph atlas
#: are then built in a frame of their own)
LETTERS_DELAY_MS = 60
#: colours of the R, A, S orientation arrows (Slicer's convention: red, green/yellow, blue)
AXIS_COLORS = {"R": (0.95, 0.3, 0.3, 1.0), "A": (0.9, 0.85, 0.2, 1.0), "S": (0.35, 0.55, 1.0, 1.0)}


def orientation_arrows(affine, shape, spacing) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(letter, start, end) in scene mm for arrows toward patient R, A and S, drawn from the
    low corner of the voxel box; ``affine`` is the (z, y, x) → RAS matrix."""
    inverse = np.linalg.inv(np.asarray(affine, dtype=float)[:3, :3])
    step_xyz = np.asarray(spacing, dtype=float)[::-1]
    start = -0.5 * step_xyz
    length = 0.3 * float(np.max((np.asarray(shape)[::-1]) * step_xyz))
    arrows = []
    for letter, world in zip("RAS", np.eye(3)):
        index_zyx = inverse @ world
        scene = index_zyx[::-1] * step_xyz
        scene = scene / max(float(np.linalg.norm(scene)), 1e-12)
        arrows.append((letter, start, start + length * scene))
    return arrows


#: the camera fit leaves this much room around an arrow's letter (its glyph extends past its anchor)
LETTER_MARGIN = 1.12

#: entries of the TF colormap sent to vispy (its LUT texture holds 1024; narrow boxes such as CT-Lung need them)
LUT_SIZE = 1024

#: the scalar volume on the GPU: normalised 16-bit (the data mapped to 0..1 over its value range, in
#: 65,536 levels: finer than a CT's 4,096), half the memory, allocation and upload of float32
TEXTURE_FORMAT = "r16"
#: the texture's value range as vispy sees it (uint16 levels: sampled as 0..1 in the shader)
TEXTURE_CLIM = (0.0, 65535.0)


def scalar_texture(data: np.ndarray, clim) -> np.ndarray:
    """``data`` mapped to 0..65535 over ``clim`` (uint16, rounded): the 3D view's texture."""
    lo, hi = float(clim[0]), float(clim[1])
    scaled = (np.asarray(data, dtype=np.float32) - np.float32(lo)) * np.float32(65535.0 / max(hi - lo, 1e-6))
    return np.clip(scaled + np.float32(0.5), 0.0, 65535.0).astype(np.uint16)


#: textures larger than this go up in z-slabs of about this size, one slab per event-loop turn
#: (software GL copies a 256³ volume in one call for a few hundred ms: it would stall the GUI)
SLAB_BYTES = 4 << 20

VISPY_METHODS = {"dvr": "shaded", "mip": "mip", "minip": "minip", "avg": "average", "iso": "iso",
                 "rgba": "translucent"}


def gradient_upper_bound(clim, spacing) -> float:
    """An upper bound of |∇v| for values in ``clim`` on a grid of ``spacing`` (mm): what a gradient
    lookup table can span until the whole-volume gradient is known (no value of it is larger)."""
    lo, hi = clim
    return float(np.sqrt(sum(((hi - lo) / max(float(s), 1e-6)) ** 2 for s in spacing))) or 1.0


class VolumeView(QWidget):
    """vispy volume rendering with a reference-image fallback."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.message = QLabel("3D view starts when the panel is shown")
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setStyleSheet("color: #bbb; background: #111;")
        self.message.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.message.setMinimumSize(200, 200)
        self.layout_.addWidget(self.message)
        self.canvas = None
        self.view = None
        self.visual = None
        self.gl_error: str | None = None
        self._data: np.ndarray | None = None
        self._spacing = (1.0, 1.0, 1.0)
        self._clim = (0.0, 1.0)
        self._method = "dvr"
        self._step = 1.0
        self._tf: TransferFunction1D | None = None
        self._iso = 0.5
        self._rgba: np.ndarray | None = None
        self._texture: np.ndarray | None = None
        self._crop = None
        self._affine: np.ndarray | None = None
        self.markers: list = []
        self._tf2d = None
        self._gmax: float | None = None
        self._upload: dict | None = None  # a texture going up slab by slab: data, next z, slab depth
        self._upload_generation = 0

    # -- lifecycle --------------------------------------------------------------------
    def ensure_canvas(self) -> bool:
        """Create the vispy canvas (once). Returns False (and keeps the message) if GL fails."""
        if self.canvas is not None:
            return True
        if self.gl_error is not None:
            return False
        from qtpy.QtGui import QGuiApplication

        platform = QGuiApplication.platformName() if QGuiApplication.instance() else ""
        if platform in ("offscreen", "minimal"):
            self.gl_error = f"OpenGL is not available on the '{platform}' Qt platform"
            self.message.setText(f"3D view unavailable: {self.gl_error}.\nShowing reference ray-caster renders.")
            return False
        try:
            import vispy
            from vispy import scene

            from panels.offscreen_canvas import OffscreenCanvasView
            from panels.volume.progressive_gl import progressive_canvas

            vispy.use(app="pyside6")
            canvas = progressive_canvas(keys=None, show=False, bgcolor="#111111")
            canvas.progressive.set_factor = self._coarse_factor
            canvas.progressive.hold = lambda: self._upload is not None  # the last frame stays meanwhile
            view = canvas.central_widget.add_view()
            view.camera = scene.cameras.TurntableCamera(fov=0.0, azimuth=30.0, elevation=20.0)
            self.screen = OffscreenCanvasView(canvas, self, background="#111111")
            self.layout_.addWidget(self.screen)
            self.message.hide()
            self.canvas, self.view = canvas, view
            self._fonts = letter_fonts()
        except Exception as exc:  # noqa: BLE001 - no GL context, missing backend ...: show why, fall back
            self.gl_error = str(exc).splitlines()[0] if str(exc) else "no details"
            self.message.setText(f"3D view unavailable: {self.gl_error}.\nShowing reference ray-caster renders.")
            return False
        if self._data is not None:
            self._build_visual()
        else:  # a later turn: the canvas's first (empty) frame and the volume program do not share one
            QTimer.singleShot(30, self._build_placeholder)
        return True

    def _build_placeholder(self) -> None:
        """The shaded visual over an empty 1³ volume (draws nothing): its program is built soon after
        the canvas, so opening a volume later only uploads a texture."""
        from panels.volume.shaded_volume import ShadedVolume

        if self.visual is not None or self._data is not None or self.view is None:
            return  # a volume came first: its own visual compiles the program
        self.visual = ShadedVolume(np.zeros((1, 1, 1), np.uint16), clim=TEXTURE_CLIM, method=VISPY_METHODS["dvr"],
                                   relative_step_size=self._step, threshold=0.5, texture_format=TEXTURE_FORMAT,
                                   parent=self.view.scene)
        QTimer.singleShot(30, self._warm_up_program)

    def _warm_up_program(self) -> None:
        """First warm-up turn: the placeholder drawn with the colormap, lighting and crop state a
        volume gets, so the shader program is compiled now and not with the first real volume."""
        if self.visual is None or self._data is not None or not hasattr(self.visual, "set_lighting"):
            return
        from vispy.color import Colormap

        self.visual.cmap = Colormap(self.colormap_lut())
        self.visual.clipping_planes = None
        self.visual.set_lighting()
        self.canvas.update()
        QTimer.singleShot(60, self._warm_up_letters)

    def _warm_up_letters(self, pending: str | None = None) -> None:
        """Next warm-up turns: the letters' glyphs put into the atlas one per event-loop turn (copied
        when the start-up warm-up prepared them, else rendered here: a CPU distance field, 15-40 ms
        each), then the orientation letters drawn once; a last turn hides them again while there is
        no volume."""
        if self._data is not None or self.canvas is None:
            return
        pending = LETTER_GLYPHS if pending is None else pending
        if pending:
            self._fonts.get_font("OpenSans", bold=True, italic=False)[pending[0]]  # renders and caches the glyph
            QTimer.singleShot(TURN_MS, lambda: self._warm_up_letters(pending[1:]))
            return
        self._place_markers(orientation_arrows(np.eye(4), (1, 1, 1), (1.0, 1.0, 1.0)))
        self.markers[1].visible = False  # the arrows' program first, the letters' in the next frame
        self.canvas.update()
        QTimer.singleShot(60, self._warm_up_text)

    def _warm_up_text(self) -> None:
        if self._data is not None or self.canvas is None:
            return
        self.markers[1].visible = True
        self.canvas.update()
        QTimer.singleShot(60, self._end_warm_up)

    def _end_warm_up(self) -> None:
        if self._data is None:
            for item in self.markers:
                item.visible = False
            if self.canvas is not None:
                self.canvas.update()

    @property
    def exact(self) -> bool:
        """Whether the screen shows the full-quality frame of the current scene (True without GL:
        the fallback images are reference renders)."""
        return self.canvas is None or (self.canvas.progressive.exact and self._upload is None)

    def _coarse_factor(self, factor: int) -> int:
        """Sample the scalar volume ``factor`` times more sparsely for the next draw (1: the
        user's step); returns the factor applied (the shaded method corrects opacity for the
        actual step; a pre-classified RGBA volume has its correction baked in: not coarsened)."""
        visual = self.visual
        if visual is None or self._rgba is not None or not hasattr(visual, "set_lighting"):
            return 1
        visual.shared_program["u_relative_step_size"] = self._step * factor
        return factor

    def _frame_cost_changed(self) -> None:
        if self.canvas is not None:
            self.canvas.progressive.forget_cost()

    @property
    def has_gl(self) -> bool:
        """Whether the vispy canvas exists."""
        return self.canvas is not None

    def show_fallback_image(self, image: np.ndarray) -> None:
        """Show an (H, W, 3) float/uint8 image instead of the GL view."""
        if self.canvas is not None:
            return
        img = np.ascontiguousarray((np.clip(image, 0, 1) * 255).astype(np.uint8) if image.dtype != np.uint8 else image)
        h, w = img.shape[:2]
        qimage = QImage(img.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
        self._fallback = QPixmap.fromImage(qimage)
        self._show_fallback()

    def _show_fallback(self) -> None:
        pixmap = getattr(self, "_fallback", None)
        if pixmap is None:
            return
        size = self.message.size()
        if size.width() > 16 and size.height() > 16:
            pixmap = pixmap.scaled(size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        self.message.setPixmap(pixmap)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.canvas is None:
            self._show_fallback()

    # -- state ------------------------------------------------------------------------
    def set_volume(self, data: np.ndarray, spacing, clim, affine=None, texture: np.ndarray | None = None) -> None:
        """New scalar volume ``(Z, Y, X)`` with spacing (z, y, x) mm and value window ``clim``;
        ``affine`` ((z, y, x) → RAS) orients the R/A/S axes (axis-aligned RAS when None);
        ``texture`` is the data already mapped over ``clim`` (:func:`scalar_texture`, prepared on a worker)."""
        # float32 only where needed (the texture comes prepared): no full-volume copy on the GUI thread
        self._data = data if texture is not None else np.ascontiguousarray(data, dtype=np.float32)
        self._spacing = tuple(float(s) for s in spacing)
        if affine is None:
            affine = np.zeros((4, 4))
            affine[2, 0], affine[1, 1], affine[0, 2], affine[3, 3] = (*self._spacing, 1.0)
        self._affine = np.asarray(affine, dtype=float)
        self._gmax = None
        self._clim = (float(clim[0]), float(clim[1]))
        self._texture = texture
        self._rgba = None
        if self.canvas is not None:
            self._build_visual()
            self.reset_camera()

    def set_rgba(self, rgba: np.ndarray | None) -> None:
        """Show a pre-classified RGBA volume (None returns to the scalar volume)."""
        self._rgba = rgba
        if self.canvas is not None:
            self._build_visual()

    def set_tf(self, tf: TransferFunction1D) -> None:
        """Apply a TF (opacity-corrected colormap)."""
        self._tf = tf
        self._apply_cmap()

    def set_method(self, method: str, iso_threshold: float | None = None) -> None:
        """dvr, mip, minip, avg or iso (threshold in data units)."""
        if method != self._method:
            self._frame_cost_changed()
        self._method = method
        if iso_threshold is not None:
            self._iso = float(iso_threshold)
        if self.visual is not None and self._rgba is None:
            if self.visual.method != VISPY_METHODS[method]:  # the setter rebuilds the shader program
                self.visual.method = VISPY_METHODS[method]
            if method == "iso":
                lo, hi = self._clim
                self.visual.threshold = float(np.clip((self._iso - lo) / max(hi - lo, 1e-6), 0, 1))
            self._apply_cmap()

    def set_step(self, step: float) -> None:
        """Sampling step in voxels (vispy relative_step_size); re-bakes the opacity correction."""
        if float(step) != self._step and self.canvas is not None:
            self.canvas.progressive.scale_cost(self._step / max(float(step), 1e-6))  # samples per ray ∝ 1 / step
        self._step = float(step)
        if self.visual is not None:
            if self._rgba is not None:
                self._build_visual()  # re-bake the corrected alpha
                return
            self.visual.relative_step_size = self._step
            self._apply_cmap()

    def set_crop(self, crop) -> None:
        """Crop box ((z0, z1), (y0, y1), (x0, x1)) in voxel indices, as six clipping planes in
        scene mm (the same box the reference caster crops to)."""
        self._crop = crop
        if self.visual is None:
            return
        planes = np.empty((0, 2, 3)) if crop is None else np.asarray(crop_planes(crop, self._spacing), dtype=float)
        current = getattr(self.visual, "clipping_planes", None)
        clip = getattr(self.visual, "_clip_func", None)
        if current is not None and clip is not None and len(current) == len(planes):
            # same number of planes: new uniform values only (the setter rebuilds the shader program)
            self.visual._clipping_planes = planes
            for index, (position, normal) in enumerate(planes):
                clip[f"clipping_plane_pos{index}"] = tuple(position)
                clip[f"clipping_plane_norm{index}"] = tuple(normal)
            self.visual.update()
            return
        self.visual.clipping_planes = planes

    def reset_camera(self, azimuth: float = 30.0, elevation: float = 20.0) -> None:
        """Fit the volume (and its orientation arrows with their letters) and restore the default angles."""
        if self.view is None:
            return
        cam = self.view.camera
        cam.azimuth, cam.elevation = azimuth, elevation
        cam.set_range()
        if self._data is not None:
            Z, Y, X = self._data.shape
            sz, sy, sx = self._spacing
            center = np.array([(X - 1) * sx / 2, (Y - 1) * sy / 2, (Z - 1) * sz / 2])
            cam.center = tuple(center)
            radius = float(np.linalg.norm([(X - 1) * sx, (Y - 1) * sy, (Z - 1) * sz])) / 2
            if self._affine is not None:  # the arrows leave the box from a corner: their tips and letters too
                for _letter, start, end in orientation_arrows(self._affine, self._data.shape, self._spacing):
                    tip = end + 0.08 * (end - start)  # where _place_markers puts the letter
                    radius = max(radius, LETTER_MARGIN * float(np.linalg.norm(tip - center)))
            cam.scale_factor = 2.0 * radius
        self.canvas.update()

    def render_image(self, size=None, markers: bool = False) -> np.ndarray | None:
        """The GL frame as (H, W, 4) uint8, or None without GL; the orientation axes are left
        out unless ``markers`` (exports show the data only)."""
        if self.canvas is None:
            return None
        self.finish_upload()
        for item in self.markers:
            item.visible = markers
        try:
            return self.canvas.render(size=size, alpha=True)
        finally:
            for item in self.markers:
                item.visible = True

    def _build_markers(self) -> None:
        """The R/A/S arrows and letters: created once, moved for every new volume."""
        if self._data is None or self._affine is None:
            for item in self.markers:
                item.visible = False
            return
        self._place_markers(orientation_arrows(self._affine, self._data.shape, self._spacing))

    def _place_markers(self, arrows) -> None:
        """Create (first time) or move and show the arrows and letters: one Line visual (three
        segments) and one Text visual (three strings), so only two shader programs are built."""
        from vispy import scene

        segments = np.array([point for _letter, start, end in arrows for point in (start, end)], dtype=np.float32)
        spots = np.array([end + 0.08 * (end - start) for _letter, start, end in arrows], dtype=np.float32)
        if not self.markers:
            letters = [letter for letter, _start, _end in arrows]
            colors = np.array([AXIS_COLORS[letter] for letter in letters], dtype=np.float32)
            line = scene.visuals.Line(segments, color=np.repeat(colors, 2, axis=0), width=3, connect="segments",
                                      parent=self.view.scene)
            label = scene.visuals.Text(letters, color=colors, font_size=14, bold=True, font_manager=self._fonts,
                                       pos=spots, parent=self.view.scene)
            line.order = label.order = 10
            self.markers = [line, label]
            label.visible = False  # its program and glyph atlas in a later frame than the volume's and the arrows'
            QTimer.singleShot(LETTERS_DELAY_MS, self._reveal_letters)
            return
        line, label = self.markers
        line.set_data(segments)
        label.pos = spots
        line.visible = label.visible = True

    def _reveal_letters(self) -> None:
        """Show the orientation letters created a few turns ago (when there is a volume)."""
        if self._data is not None and len(self.markers) == 2 and self.canvas is not None:
            self.markers[1].visible = True
            self.canvas.update()

    # -- internals --------------------------------------------------------------------
    def _build_visual(self) -> None:
        from vispy import scene
        from vispy.visuals.transforms import STTransform

        if self._data is None:
            return
        self._frame_cost_changed()
        if self._rgba is None and self._reuse_scalar_visual():
            return
        self._upload = None  # a slab upload into the old visual is void
        if self.visual is not None:
            self.visual.parent = None
            self.visual = None
        if self._rgba is not None:
            vol = np.array(self._rgba, dtype=np.float32)
            if abs(self._step - 1.0) > 1e-9:  # opacity correction baked into the alpha channel
                vol[..., 3] = correct_opacity(vol[..., 3], self._step, 1.0)
            visual = scene.visuals.Volume(vol, clim=(0.0, 1.0), method="translucent", relative_step_size=self._step,
                                          parent=self.view.scene)
        else:
            from panels.volume.shaded_volume import ShadedVolume

            visual = ShadedVolume(self._scalar_texture(), clim=TEXTURE_CLIM, method=VISPY_METHODS[self._method],
                                  relative_step_size=self._step, threshold=0.5, texture_format=TEXTURE_FORMAT,
                                  parent=self.view.scene)
        sz, sy, sx = self._spacing
        visual.transform = STTransform(scale=(sx, sy, sz))
        self.visual = visual
        self._build_markers()
        self.set_method(self._method)
        self.set_crop(self._crop)
        self._apply_cmap()

    def _scalar_texture(self) -> np.ndarray:
        """The data mapped to 0..65535 over clim (uint16): the prepared texture, else computed here."""
        if self._texture is not None:
            return self._texture
        return scalar_texture(self._data, self._clim)

    def _reuse_scalar_visual(self) -> bool:
        """A new scalar volume into the existing shaded visual (only its texture is uploaded: no new
        program, no shader compilation); False when there is no such visual yet."""
        from vispy.visuals.transforms import STTransform

        visual = self.visual
        if visual is None or not hasattr(visual, "set_lighting"):
            return False
        texture = self._scalar_texture()
        if texture.ndim == 3 and texture.nbytes > SLAB_BYTES:
            self._start_slab_upload(texture)
        else:
            self._upload = None
            visual.set_data(texture, clim=TEXTURE_CLIM)
            visual.visible = True
        sz, sy, sx = self._spacing
        if isinstance(visual.transform, STTransform):
            visual.transform.scale = (sx, sy, sz)  # a new transform object would rebuild the shader program
        else:
            visual.transform = STTransform(scale=(sx, sy, sz))
        self._build_markers()
        self.set_method(self._method)
        self.set_crop(self._crop)
        self._apply_cmap()
        return True

    # -- slab-wise texture upload -----------------------------------------------------------
    @property
    def upload_pending(self) -> bool:
        """Whether a volume texture is still going up slab by slab (the volume is hidden meanwhile)."""
        return self._upload is not None

    def _start_slab_upload(self, texture: np.ndarray) -> None:
        """Allocate the full texture once, then send it in z-slabs of about :data:`SLAB_BYTES`,
        one per event-loop turn; the visual stays hidden until the last slab is in."""
        visual = self.visual
        visual.visible = False
        gl_texture = visual._texture
        gl_texture.resize(texture.shape, internalformat=gl_texture.internalformat)
        Z, Y, X = texture.shape
        visual.shared_program["u_shape"] = (X, Y, Z)
        visual.shared_program["u_rgb_mode"] = 0
        visual.shared_program["clim"] = gl_texture.clim_normalized
        visual._last_data = texture
        if visual._vol_shape != texture.shape:
            visual._vol_shape = texture.shape
            visual._need_vertex_update = True
        depth = max(1, SLAB_BYTES // max(texture[0].nbytes, 1))
        self._upload = {"data": texture, "z": 0, "depth": depth, "allocated": False}
        self._upload_generation += 1
        generation = self._upload_generation
        QTimer.singleShot(TURN_MS, lambda: self._upload_turn(generation))

    def _upload_turn(self, generation: int) -> None:
        """One event-loop turn of the slab upload: the next slab, then the next turn."""
        if generation != self._upload_generation or self._upload is None:
            return
        self._upload_slab()
        if self._upload is not None:
            QTimer.singleShot(TURN_MS, lambda: self._upload_turn(generation))

    def _upload_slab(self) -> None:
        """Send the next z-slab to the GPU now (the first turn only allocates the texture: software GL
        clears a 64 MB texture in ~50 ms); show the visual after the last slab."""
        upload, visual = self._upload, self.visual
        if not upload["allocated"]:
            upload["allocated"] = True
            self._flush_gl()
            return
        data, z0 = upload["data"], upload["z"]
        z1 = min(z0 + upload["depth"], data.shape[0])
        visual._texture.set_data(data[z0:z1], offset=(z0, 0, 0))
        self._flush_gl()
        upload["z"] = z1
        if z1 >= data.shape[0]:
            self._upload = None
            visual.visible = True
            self._frame_cost_changed()
            self.canvas.update()

    def _flush_gl(self) -> None:
        """Run the queued GL commands now (this turn), not in the next frame."""
        try:
            self.canvas.set_current()
            self.canvas.context.flush_commands()
        except Exception:  # noqa: BLE001, S110 - no current context yet: the next frame sends them
            pass

    def finish_upload(self) -> None:
        """Send what is left of a slab upload at once (exports and tests need the full volume)."""
        while self._upload is not None:
            self._upload_slab()

    def colormap_lut(self) -> np.ndarray:
        """The (LUT_SIZE, 4) LUT sent to vispy: TF over clim; alpha corrected for the step except in
        DVR, whose shader corrects it after gradient opacity."""
        lo, hi = self._clim
        if self._tf is None:
            lut = np.linspace(0, 1, LUT_SIZE)[:, None].repeat(4, axis=1)
        else:
            lut = self._tf.lut(lo, hi, LUT_SIZE).astype(np.float64)
        if self._method == "dvr":
            pass  # the shaded method corrects opacity (after gradient opacity) in the shader
        elif self._method in ("mip", "minip", "avg", "iso"):
            lut[:, 3] = 1.0
        return lut.astype(np.float32)

    def _apply_cmap(self) -> None:
        if self.visual is None or self._rgba is not None or self._data is None:
            return
        lut = self.colormap_lut()
        if not self._update_lut_in_place(lut):
            from vispy.color import Colormap

            self.visual.cmap = Colormap(lut)
        self._apply_lighting()
        self.canvas.update()

    def _update_lut_in_place(self, lut: np.ndarray) -> bool:
        """Write ``lut`` into the visual's colormap texture when it already has one of that size:
        a new vispy Colormap changes the shader's colormap function, and every such change
        re-links the program (hundreds of ms on software GL for each TF edit)."""
        from vispy.color import Colormap

        visual = self.visual
        current = getattr(visual, "cmap", None)
        data = getattr(current, "texture_map_data", None)
        try:
            texture = visual.shared_program["texture2D_LUT"]
        except (KeyError, AttributeError):
            return False
        if not isinstance(current, Colormap) or data is None or data.shape != (len(lut), 1, 4) or texture is None:
            return False
        data[:, 0, :] = np.clip(lut, 0.0, 1.0)
        texture.set_data(data)
        visual.update()
        return True

    def set_gradient_range(self, gmax: float) -> None:
        """Largest |∇v| (data units / mm), when the panel has it from its gradient job."""
        self._gmax = float(gmax) if gmax and np.isfinite(gmax) else None
        if self._tf2d is not None or (self._tf is not None and self._tf.uses_gradient_opacity()):
            self._apply_cmap()

    def set_tf2d(self, tf2d) -> None:
        """Draw DVR with a 2-D TF (value × |∇v|) looked up on the GPU, or back to the 1-D TF (None)."""
        self._tf2d = tf2d
        self._apply_cmap()

    def gradient_range(self) -> float:
        """Largest |∇v| (data units / mm) of the volume: the top of the gradient lookup tables (computed
        here only when nobody set it: the panel sets :func:`gradient_upper_bound`, then its job's value)."""
        if self._gmax is None:
            from engines.volume.tf2d import gradient_magnitude

            self._gmax = float(np.max(gradient_magnitude(self._data, self._spacing))) or 1.0
        return self._gmax

    def _apply_lighting(self) -> None:
        """Material, spacing, gradient opacity and opacity correction of the shaded method."""
        if not hasattr(self.visual, "set_lighting") or self._method != "dvr":
            return
        tf = self._tf
        lo, hi = self._clim
        if self._tf2d is not None:  # 2-D lookup over (value, |∇v|), unlit like the export's RGBA path
            gmax = self.gradient_range()
            table = self._tf2d.classify(np.linspace(lo, hi, 256, dtype=np.float32)[None, :],
                                        np.linspace(0.0, gmax, 128, dtype=np.float32)[:, None])
            self.visual.set_lighting(spacing=self._spacing, value_scale=max(hi - lo, 1e-6), gmax=gmax,
                                     reference_step=self._tf2d.reference_step, shade=False, tf2d=table)
            return
        shading = tf.shading if tf is not None else {}
        gradient_lut = None
        gmax = 1.0
        if tf is not None and tf.uses_gradient_opacity():
            gmax = self.gradient_range()
            gradient_lut = tf.gradient_factor(np.linspace(0.0, gmax, 256))
        self.visual.set_lighting(
            spacing=self._spacing, value_scale=max(hi - lo, 1e-6), gmax=gmax,
            reference_step=tf.reference_step if tf is not None else 1.0,
            shade=bool(shading.get("shade", False)),
            material=(shading.get("ambient", 0.1), shading.get("diffuse", 0.9), shading.get("specular", 0.2),
                      shading.get("power", 10.0)),
            gradient_lut=gradient_lut)
