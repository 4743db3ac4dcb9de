"""GL: the vispy 3D view (software OpenGL under Xvfb) agrees with the reference ray caster on
the phantom with a matched orthographic camera. Run with ``xvfb-run -a pytest -m gl``."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.gl


@pytest.fixture(scope="module")
def gl_view():
    if os.environ.get("QT_QPA_PLATFORM") in ("offscreen", "minimal") or not os.environ.get("DISPLAY"):
        pytest.skip("needs a display with OpenGL (run under xvfb-run -a)")
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from panels.volume.view3d import VolumeView

    view = VolumeView()
    view.resize(256, 256)
    view.show()
    if not view.ensure_canvas():
        pytest.skip(f"no OpenGL context: {view.gl_error}")
    view.canvas.size = (256, 256)
    yield app, view
    view.close()


def _settle(app, n=5):
    for _ in range(n):
        app.processEvents()
        time.sleep(0.02)


@pytest.mark.parametrize("azimuth,elevation", [(30.0, 20.0), (90.0, 0.0), (0.0, 60.0)])
def test_vispy_matches_reference_caster(gl_view, azimuth, elevation):
    from skimage.metrics import structural_similarity

    from engines.volume.phantom import make_phantom
    from engines.volume.raycast import render
    from engines.volume.tf import preset

    app, view = gl_view
    volume, _ = make_phantom(64, noise_hu=0.0)
    tf = preset("CT-AAA")
    view.set_volume(volume.data, volume.spacing, volume.value_range())
    view.set_tf(tf)
    view.set_method("dvr")
    view.set_step(0.5)
    view.reset_camera(azimuth, elevation)
    _settle(app)
    frame = view.render_image()[..., :3].astype(np.float32) / 255.0
    h, w = frame.shape[:2]
    reference = render(volume, tf=tf, azimuth=azimuth, elevation=elevation, size=(h, w),
                       pixel_size=view.view.camera.scale_factor / min(h, w), step=0.5,
                       background=np.array([17, 17, 17]) / 255.0, device="cpu").image  # the TF's shading
    score = structural_similarity(frame, reference, channel_axis=2, data_range=1.0)
    assert score >= 0.9, f"SSIM {score:.3f}"
    # a wrong camera (mirrored azimuth) must score clearly lower: the test can fail
    if azimuth:
        wrong = render(volume, tf=tf, azimuth=-azimuth, elevation=elevation, size=(h, w),
                       pixel_size=view.view.camera.scale_factor / min(h, w), step=0.5,
                       background=np.array([17, 17, 17]) / 255.0, device="cpu").image
        assert structural_similarity(frame, wrong, channel_axis=2, data_range=1.0) < score - 0.05


def test_step_change_keeps_image_with_opacity_correction(gl_view):
    from engines.volume.phantom import make_phantom
    from engines.volume.tf import TransferFunction1D

    app, view = gl_view
    volume, _ = make_phantom(64, noise_hu=0.0)
    tf = TransferFunction1D(color=[(-1000, 0.2, 0.2, 1.0), (0, 1.0, 0.5, 0.3), (1000, 1.0, 1.0, 1.0)],
                            opacity=[(-500, 0.0), (0, 0.02), (400, 0.05), (1000, 0.2)])
    view.set_volume(volume.data, volume.spacing, volume.value_range())
    view.set_tf(tf)
    view.reset_camera(30, 20)
    frames = []
    for step in (1.0, 0.5):
        view.set_step(step)
        _settle(app)
        frames.append(view.render_image()[..., :3].astype(np.float32) / 255.0)
    assert np.abs(frames[0] - frames[1]).mean() < 0.02


def test_panel_gl_export(qtbot, tmp_path, gl_view):
    from PIL import Image

    from panels.volume import VolumePanel
    from studio.export import read_provenance
    from studio.services import StudioServices

    services = StudioServices()
    panel = VolumePanel(services)
    qtbot.addWidget(panel)
    panel.parameters_widget()
    panel.resize(800, 600)
    panel.show()
    panel.on_shown()  # creates the canvas and loads the phantom
    assert services.jobs.wait_all(90)
    if not panel.view3d.has_gl:
        pytest.skip(f"no GL in the panel: {panel.view3d.gl_error}")
    panel.gl_export_check.setChecked(True)
    panel.size_spin.setValue(200)
    path = panel.export(str(tmp_path / "gl.png"))
    image = np.asarray(Image.open(path))
    assert image.shape[:2] == (200, 200) and image.max() > 50
    assert read_provenance(path)["parameters"]["renderer"] == "vispy"
    services.jobs.wait_all(30)


def test_crop_at_anisotropic_spacing_matches_reference_caster(gl_view):
    """The crop box in voxel indices clips the same mm box in the GL view and the export."""
    from skimage.metrics import structural_similarity

    from engines.volume.model import Volume
    from engines.volume.phantom import make_phantom
    from engines.volume.raycast import render
    from engines.volume.tf import preset

    app, view = gl_view
    phantom, _ = make_phantom(64, noise_hu=0.0)
    volume = Volume(phantom.data[:, :, ::2], spacing=(3.0, 2.0, 5.0), modality="CT")  # z, y, x mm
    crop = ((6, 50), (10, 40), (3, 24))
    tf = preset("CT-AAA")
    view.set_volume(volume.data, volume.spacing, volume.value_range(), affine=volume.affine)
    view.set_tf(tf)
    view.set_method("dvr")
    view.set_step(0.5)
    view.set_crop(crop)
    view.reset_camera(30.0, 20.0)
    _settle(app)
    frame = view.render_image()[..., :3].astype(np.float32) / 255.0
    view.set_crop(None)
    h, w = frame.shape[:2]
    kwargs = dict(tf=tf, azimuth=30.0, elevation=20.0, size=(h, w), pixel_size=view.view.camera.scale_factor / min(h, w),
                  step=0.5, background=np.array([17, 17, 17]) / 255.0, device="cpu")
    cropped = render(volume, crop=crop, **kwargs).image
    whole = render(volume, **kwargs).image
    score = structural_similarity(frame, cropped, channel_axis=2, data_range=1.0)
    other = structural_similarity(frame, whole, channel_axis=2, data_range=1.0)
    print(f"crop SSIM GL vs caster {score:.3f} (vs uncropped {other:.3f})")
    assert score >= 0.9, f"SSIM {score:.3f}"
    assert other < score - 0.05


def _show(gl_view, volume, tf, step=0.5, azimuth=30.0, elevation=20.0, tf2d=None):
    """The GL frame (H, W, 3) float of ``volume`` in DVR with ``tf`` (and a 2-D TF)."""
    app, view = gl_view
    view.set_volume(volume.data, volume.spacing, volume.value_range(), affine=volume.affine)
    view.set_tf(tf)
    view.set_method("dvr")
    view.set_step(step)
    view.set_tf2d(tf2d)
    view.reset_camera(azimuth, elevation)
    _settle(app)
    frame = view.render_image()[..., :3].astype(np.float32) / 255.0
    view.set_tf2d(None)
    return frame


def _gl_and_caster(gl_view, volume, tf, step=0.5, azimuth=30.0, elevation=20.0, **caster):
    from engines.volume.raycast import render

    view = gl_view[1]
    frame = _show(gl_view, volume, tf, step, azimuth, elevation)
    h, w = frame.shape[:2]
    kwargs = dict(tf=tf, azimuth=azimuth, elevation=elevation, size=(h, w), step=step, device="cpu",
                  pixel_size=view.view.camera.scale_factor / min(h, w), background=np.array([17, 17, 17]) / 255.0)
    return frame, render(volume, **{**kwargs, **caster}).image, lambda **more: render(volume, **{**kwargs, **more}).image


@pytest.mark.parametrize("name", ["CT-Bone", "MR-Default"])
def test_lit_live_view_matches_shaded_export(gl_view, name):
    """Slicer's presets are shaded: the live view lights them with the preset's material like the
    exported PNG (SSIM ≥ 0.95); the unlit caster image is clearly further away."""
    from skimage.metrics import structural_similarity

    from engines.volume.phantom import make_phantom
    from engines.volume.tf import preset

    volume, _ = make_phantom(64, noise_hu=0.0)
    tf = preset(name)
    assert tf.shading["shade"]
    frame, shaded, again = _gl_and_caster(gl_view, volume, tf)
    score = structural_similarity(frame, shaded, channel_axis=2, data_range=1.0)
    unlit = structural_similarity(frame, again(shading=False), channel_axis=2, data_range=1.0)
    print(f"{name}: SSIM live vs export {score:.4f} (vs unlit export {unlit:.4f})")
    assert score >= 0.95
    assert unlit < score - 0.015


def test_gradient_opacity_and_anisotropic_spacing_live(gl_view):
    """Gradient opacity (boundaries only) at anisotropic voxels: live and export agree."""
    from skimage.metrics import structural_similarity

    from engines.volume.model import Volume
    from engines.volume.phantom import make_phantom
    from engines.volume.tf import preset

    phantom, _ = make_phantom(64, noise_hu=0.0)
    volume = Volume(phantom.data[:, ::2, :], spacing=(4.0, 8.0, 4.0), modality="CT")
    tf = preset("CT-AAA").copy(gradient_opacity=[(0.0, 0.0), (20.0, 0.0), (60.0, 1.0)])
    assert tf.uses_gradient_opacity()
    frame, reference, again = _gl_and_caster(gl_view, volume, tf)
    score = structural_similarity(frame, reference, channel_axis=2, data_range=1.0)
    flat = structural_similarity(frame, again(tf=preset("CT-AAA")), channel_axis=2, data_range=1.0)
    print(f"gradient opacity: SSIM live vs export {score:.4f} (vs no gradient opacity {flat:.4f})")
    assert score >= 0.95 and flat < score - 0.02


def test_2d_tf_lookup_on_the_gpu_matches_the_export(gl_view):
    """The 2-D TF (value × |∇v|) is looked up per sample in the shader; the export classifies the
    voxels first (an RGBA volume). Both agree; the 1-D view of the same volume does not."""
    from skimage.metrics import structural_similarity

    from engines.volume.phantom import make_phantom
    from engines.volume.raycast import render
    from engines.volume.tf import preset
    from engines.volume.tf2d import TransferFunction2D, gradient_magnitude, rgba_volume_2d

    view = gl_view[1]
    volume, _ = make_phantom(64, noise_hu=0.0)
    gmag = gradient_magnitude(volume.data, volume.spacing)
    gmax = float(gmag.max())
    tf2d = TransferFunction2D([
        {"kind": "gauss", "center": (700.0, 0.5 * gmax), "size": (300.0, 0.3 * gmax), "color": (0.95, 0.9, 0.7), "opacity": 0.7},
        {"kind": "gauss", "center": (40.0, 0.05 * gmax), "size": (80.0, 0.08 * gmax), "color": (0.8, 0.3, 0.3), "opacity": 0.05},
    ])
    one_d = _show(gl_view, volume, preset("CT-AAA"))
    frame = _show(gl_view, volume, preset("CT-AAA"), tf2d=tf2d)
    h, w = frame.shape[:2]
    reference = render(volume, rgba=rgba_volume_2d(volume.data, volume.spacing, tf2d, gmag), reference_step=1.0,
                       azimuth=30.0, elevation=20.0, size=(h, w), pixel_size=view.view.camera.scale_factor / min(h, w),
                       step=0.5, background=np.array([17, 17, 17]) / 255.0, device="cpu").image
    score = structural_similarity(frame, reference, channel_axis=2, data_range=1.0)
    other = structural_similarity(one_d, reference, channel_axis=2, data_range=1.0)
    print(f"2D TF: SSIM GPU lookup vs pre-classified export {score:.4f} (1-D view vs it {other:.4f})")
    assert score >= 0.9 and other < score - 0.1


def test_new_volume_reuses_the_visual_and_markers(gl_view):
    """Opening another volume only uploads a texture: the same visual and orientation visuals, moved
    for the new grid, and the same image as a visual built from scratch."""
    from engines.volume.phantom import make_phantom
    from engines.volume.tf import preset
    from panels.volume.view3d import orientation_arrows

    app, view = gl_view
    small, _ = make_phantom(32, noise_hu=0.0)
    view.set_volume(small.data, small.spacing, small.value_range())
    visual, markers = view.visual, list(view.markers)
    volume, _ = make_phantom(48, noise_hu=0.0)
    data = volume.data[:40]  # another shape, anisotropic spacing
    spacing = (2.0, 1.0, 1.5)
    view.set_volume(data, spacing, volume.value_range())
    view.set_tf(preset("CT-Bone"))
    view.set_method("dvr")
    view.reset_camera(30.0, 20.0)
    assert view.visual is visual and view.markers == markers and len(markers) == 2  # one Line, one Text
    arrows = orientation_arrows(view._affine, data.shape, spacing)
    assert list(markers[1].text) == ["R", "A", "S"]
    for (_letter, start, end), spot in zip(arrows, markers[1].pos):
        assert np.allclose(spot[:3], end + 0.08 * (end - start), atol=1e-5)
    assert np.allclose(markers[0].pos, [point for _letter, start, end in arrows for point in (start, end)], atol=1e-5)
    _settle(app)
    reused = view.render_image().astype(np.float64)
    view.visual.parent = None
    view.visual = None
    view._build_visual()  # from scratch
    _settle(app)
    fresh = view.render_image().astype(np.float64)
    assert reused[..., :3].mean() > 20  # the bone shows
    assert np.abs(reused - fresh).mean() < 0.5


def test_slab_wise_upload_draws_the_same_image_as_one_upload(gl_view, monkeypatch):
    """A volume larger than SLAB_BYTES goes up in z-slabs over several event-loop turns, hidden
    until the last slab is in; the finished view equals the one-call upload pixel for pixel."""
    from engines.volume.phantom import make_phantom
    from engines.volume.tf import preset
    from panels.volume import view3d as view3d_module

    app, view = gl_view
    volume, _ = make_phantom(48, noise_hu=0.0)
    data = volume.data[:45]  # 45 slices: the last slab is shorter than the others

    def show(slab_bytes):
        monkeypatch.setattr(view3d_module, "SLAB_BYTES", slab_bytes)
        view.set_volume(data, volume.spacing, volume.value_range())
        view.set_tf(preset("CT-Bone"))
        view.set_method("dvr")
        view.reset_camera(30.0, 20.0)

    show(1 << 30)  # one call
    assert not view.upload_pending
    _settle(app)
    one_shot = view.render_image().astype(np.int16)
    show(4 * 48 * 48 * 4)  # 4 slices a slab: 12 turns
    assert view.upload_pending and not view.visual.visible
    turns = 0
    while view.upload_pending and turns < 2000:
        app.processEvents()
        time.sleep(0.001)  # the turns are timers a few ms apart
        turns += 1
    assert not view.upload_pending and view.visual.visible
    assert turns >= 6  # spread over turns, not done in one
    _settle(app)
    slabs = view.render_image().astype(np.int16)
    assert one_shot[..., :3].mean() > 20  # the bone shows
    assert np.array_equal(slabs, one_shot)


def test_letter_glyphs_warm_up_one_per_turn_into_one_shared_atlas(gl_view):
    """The canvas's warm-up renders the orientation letters' glyphs one per event-loop turn (each is a
    CPU signed-distance field) into one font atlas that the single Text visual then uses; a volume
    afterwards shows the R/A/S letters without rendering any glyph again."""
    from engines.volume.phantom import make_phantom
    from panels.volume.view3d import LETTER_GLYPHS, VolumeView

    app, _fixture_view = gl_view
    view = VolumeView()  # a fresh canvas, its warm-up followed turn by turn from the start
    view.resize(256, 256)
    view.show()
    assert view.ensure_canvas()
    font = view._fonts.get_font("OpenSans", bold=True, italic=False)
    assert not font._glyphs
    counts = []
    deadline = time.monotonic() + 20
    while (len(font._glyphs) < len(LETTER_GLYPHS) or not view.markers) and time.monotonic() < deadline:
        before = len(font._glyphs)
        app.processEvents()
        counts.append(len(font._glyphs) - before)
        time.sleep(0.005)
    assert set(font._glyphs) == set(LETTER_GLYPHS)
    assert max(counts) == 1  # never two glyphs in one turn
    line, label = view.markers
    assert label._font_manager is view._fonts and list(label.text) == ["R", "A", "S"]
    _settle(app, 20)
    assert not line.visible and not label.visible  # hidden again while there is no volume
    volume, _ = make_phantom(32, noise_hu=0.0)
    view.set_volume(volume.data, volume.spacing, volume.value_range())
    assert view.markers == [line, label] and line.visible and label.visible
    _settle(app)
    image = view.render_image(markers=True)
    assert set(font._glyphs) == set(LETTER_GLYPHS) and image is not None
    view.close()


def test_prepared_glyphs_equal_the_glyphs_vispy_renders():
    """Glyphs prepared off the GUI thread go into the atlas exactly as vispy's own rendering puts
    them (same patch bytes, same place, size, offset and texture coordinates)."""
    from vispy.visuals.text.text import FontManager

    from panels.volume import letter_glyphs
    from panels.volume.letter_glyphs import LETTER_GLYPHS, letter_fonts, prepare

    thread = threading.Thread(target=prepare)  # as the start-up warm-up does, on a worker
    thread.start()
    thread.join(60)
    assert all(("OpenSans", True, False, char) in letter_glyphs._prepared for char in LETTER_GLYPHS)
    ours = letter_fonts().get_font("OpenSans", bold=True, italic=False)
    theirs = FontManager(method="cpu").get_font("OpenSans", bold=True, italic=False)

    def uploads(font):
        return [(command[2], command[3]) for command in font._atlas._glir.clear() if command[0] == "DATA"]

    uploads(ours), uploads(theirs)  # the empty atlases' own first upload
    for char in LETTER_GLYPHS:
        a, b = ours[char], theirs[char]
        assert (a["size"], a["offset"], a["advance"]) == (b["size"], b["offset"], b["advance"])
        assert np.allclose(a["texcoords"], b["texcoords"])
        (offset_a, data_a), (offset_b, data_b) = uploads(ours)[-1], uploads(theirs)[-1]
        assert offset_a == offset_b and np.array_equal(data_a, data_b)


# -- progressive frames (coarse, then refined in bands) ---------------------------------------------
def _screen(view) -> np.ndarray:
    """What the widget's framebuffer holds now (RGB, top row first)."""
    from vispy.gloo import gl

    view.canvas.native.makeCurrent()
    width, height = (int(v) for v in view.canvas.physical_size)
    pixels = np.frombuffer(gl.glReadPixels(0, 0, width, height, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE), np.uint8)
    return pixels.reshape(height, width, 4)[::-1, :, :3].astype(np.int16)


def _pump_until(app, condition, turns=2000):
    for _ in range(turns):
        if condition():
            return True
        app.processEvents()
        time.sleep(0.001)
    return condition()


def _bone_phantom(view, side=64):
    from engines.volume.phantom import make_phantom
    from engines.volume.tf import preset

    volume, _ = make_phantom(side, noise_hu=0.0)
    view.set_volume(volume.data, volume.spacing, volume.value_range())
    view.set_tf(preset("CT-Bone"))
    view.set_method("dvr")
    view.set_step(0.5)
    view.finish_upload()
    return volume


def test_progressive_view_ends_on_the_full_quality_frame(gl_view, monkeypatch):
    """A change draws a coarse frame first (sparser samples: visibly different), then full-quality
    bands; once ``exact`` the screen equals the full-quality render at the same camera."""
    app, view = gl_view
    _bone_phantom(view)
    frames = view.canvas.progressive
    monkeypatch.setattr(frames, "budget_ms", 1e-3)  # every frame counts as slow: coarse + thin bands
    monkeypatch.setattr(frames, "idle_ms", 0)
    for item in view.markers:  # the volume only (the widget and an offscreen buffer rasterise wide lines apart)
        item.visible = False
    view.reset_camera(40.0, 25.0)
    frames.forget_cost()
    drawn, bands = frames.frames_drawn, frames.bands_drawn
    assert _pump_until(app, lambda: frames.frames_drawn > drawn)
    assert frames.last_factor > 1 and frames.bands_drawn == bands and not view.exact
    coarse = _screen(view)
    assert _pump_until(app, lambda: view.exact)
    final = _screen(view)
    assert frames.bands_drawn - bands >= 8  # 256 rows in bands of a few rows
    reference = view.render_image()[..., :3].astype(np.int16)
    for item in view.markers:
        item.visible = True
    assert final.shape == reference.shape
    assert np.abs(final - reference).max() <= 1
    assert np.abs(coarse - reference).mean() > 0.5  # the first frame really was the coarse one
    assert reference.mean() > 20  # the bone shows


def _shown(view) -> np.ndarray:
    """What the view widget shows (the offscreen view's image), RGB in device pixels."""
    from qtpy.QtGui import QImage

    image = view.screen.image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(height, image.bytesPerLine())
    return rows[:, : 3 * width].reshape(height, width, 3).astype(np.int16)


def test_coarse_frames_on_software_gl_use_a_quarter_of_the_pixels_and_the_view_scales_them_up(gl_view, monkeypatch):
    """A coarse frame on software OpenGL is drawn into the lower-left quarter of the framebuffer (the
    same projection, half the pixels across); the view shows it scaled up, then each refined band
    over it, and finally exactly the full-quality frame."""
    from panels.volume import progressive_gl

    app, view = gl_view
    _bone_phantom(view)
    frames = view.canvas.progressive
    monkeypatch.setattr(frames, "budget_ms", 1e-3)
    monkeypatch.setattr(frames, "idle_ms", 10_000)  # no bands until the test asks
    monkeypatch.setattr(frames, "software", True)
    for item in view.markers:
        item.visible = False
    view.reset_camera(40.0, 25.0)
    reference = view.render_image()[..., :3].astype(np.int16)
    frames.forget_cost()
    drawn = frames.frames_drawn
    assert _pump_until(app, lambda: frames.frames_drawn > drawn)
    assert frames.frame_layout() == (progressive_gl.COARSE_PIXEL_DIVISOR, 0) and frames.last_factor > 1
    screen = _screen(view)
    height, width = screen.shape[:2]
    half_h, half_w = height // 2, width // 2
    quarter = screen[height - half_h:, :half_w]
    assert np.abs(screen[: height - half_h] - screen[0, 0]).max() == 0  # background only above the quarter ...
    assert np.abs(screen[:, half_w:] - screen[0, 0]).max() == 0  # ... and right of it
    assert quarter.mean() > 20  # the volume is drawn in the lower-left quarter only ...
    small = reference[: 2 * half_h, : 2 * half_w].reshape(half_h, 2, half_w, 2, 3).mean(axis=(1, 3))
    assert np.abs(quarter - small).mean() < 12  # ... as the full frame, half the size (sparser samples)
    shown = _shown(view)
    assert shown.shape == reference.shape
    assert np.abs(shown - reference).mean() < 12 and np.abs(shown - screen).mean() > 5  # scaled up for the view
    coarse_shown = shown
    frames._request_band()  # one band, then the view shows it over the scaled-up coarse frame
    assert _pump_until(app, lambda: frames.refined_rows > 0)
    rows = frames.refined_rows
    shown, screen = _shown(view), _screen(view)
    assert 0 < rows < height
    assert np.array_equal(shown[:rows], screen[:rows])
    assert np.array_equal(shown[rows:], coarse_shown[rows:])
    monkeypatch.setattr(frames, "idle_ms", 0)
    assert _pump_until(app, lambda: view.exact)
    assert np.array_equal(_shown(view), _screen(view))  # all rows refined: the framebuffer as it is
    for item in view.markers:
        item.visible = True


def test_gradient_opacity_waits_for_the_panels_gradient_job(gl_view, monkeypatch):
    """With a TF whose opacity depends on |∇v|, a new volume made the view compute the whole-volume
    gradient on the GUI thread (seconds for a big CT). The panel sets an upper bound of |∇v| until its
    gradient job reports; the bound holds every value and the job's value then replaces it."""
    import engines.volume.tf2d as tf2d
    from panels.volume.view3d import gradient_upper_bound

    app, view = gl_view
    volume = _bone_phantom(view)
    calls, original = [], tf2d.gradient_magnitude
    monkeypatch.setattr(tf2d, "gradient_magnitude", lambda *a, **k: (calls.append(1), original(*a, **k))[1])
    view.set_volume(volume.data, volume.spacing, volume.value_range())
    bound = gradient_upper_bound(volume.value_range(), volume.spacing)
    view.set_gradient_range(bound)  # as the panel does until its gradient job reports
    view.set_tf(view._tf.copy(gradient_opacity=[(0.0, 0.0), (40.0, 1.0), (4000.0, 1.0)]))
    view.finish_upload()
    _settle(app)
    assert calls == [] and view.gradient_range() == bound  # nothing computed here
    exact = float(original(volume.data, volume.spacing).max())
    assert bound >= exact  # an upper bound meanwhile
    view.set_gradient_range(exact)  # the job reports
    assert view.gradient_range() == exact and calls == []


def test_progressive_view_draws_once_when_frames_are_cheap(gl_view, monkeypatch):
    """With a budget no frame exceeds (a GPU), a change is one full-quality frame, no bands."""
    app, view = gl_view
    _bone_phantom(view)
    frames = view.canvas.progressive
    monkeypatch.setattr(frames, "budget_ms", 1e9)
    monkeypatch.setattr(frames, "software", False)
    for item in view.markers:  # the volume only (the widget and an offscreen buffer rasterise wide lines apart)
        item.visible = False
    frames.forget_cost()
    view.reset_camera(10.0, 15.0)
    bands = frames.bands_drawn
    assert _pump_until(app, lambda: view.exact)
    assert frames.last_factor == 1 and frames.bands_drawn == bands
    screen = _screen(view)
    reference = view.render_image()[..., :3].astype(np.int16)
    for item in view.markers:
        item.visible = True
    assert np.abs(screen - reference).max() <= 1 and reference.mean() > 20


def test_tf_edits_and_new_volumes_relink_no_shader_program(gl_view, monkeypatch):
    """A TF edit writes the colormap texture in place and a new volume reuses the transform: no
    program re-link (hundreds of ms on software GL); the in-place LUT draws what a new colormap draws."""
    from vispy import gloo
    from vispy.color import Colormap

    from engines.volume.tf import preset

    app, view = gl_view
    volume = _bone_phantom(view)
    view.set_crop(((2, 60), (0, 63), (5, 50)))  # six clipping planes (a new count re-links: before counting)
    _settle(app)
    links = []
    original = gloo.Program.set_shaders
    monkeypatch.setattr(gloo.Program, "set_shaders", lambda self, *a, **k: (links.append(1), original(self, *a, **k))[1])
    view.set_tf(preset("CT-AAA"))
    _settle(app)
    view.set_volume(volume.data[:, :, ::-1].copy(), (2.0, 1.0, 0.5), volume.value_range())
    view.finish_upload()
    view.set_crop(((3, 61), (1, 62), (4, 51)))
    _settle(app)
    in_place = view.render_image().astype(np.int16)
    assert links == []
    view.visual.cmap = Colormap(view.colormap_lut())  # vispy's own path: a new colormap function
    view._apply_lighting()
    rebuilt = view.render_image().astype(np.int16)
    assert len(links) >= 1  # the counter sees re-links
    view.visual.clipping_planes = view.visual.clipping_planes  # vispy's setter: a new clipping function
    assert np.abs(view.render_image().astype(np.int16) - rebuilt).max() <= 1  # the in-place planes were right
    view.set_crop(None)
    assert np.abs(in_place - rebuilt).max() <= 1 and in_place[..., :3].mean() > 5


def test_frames_pause_while_a_volume_goes_up(gl_view, monkeypatch):
    """During a slab-wise upload the last frame stays on screen (nothing drawn); afterwards a new frame."""
    from engines.volume.phantom import make_phantom
    from panels.volume import view3d as view3d_module

    app, view = gl_view
    _bone_phantom(view)
    _settle(app)
    frames = view.canvas.progressive
    monkeypatch.setattr(view3d_module, "SLAB_BYTES", 4 * 48 * 48 * 4)
    volume, _ = make_phantom(48, noise_hu=0.0)
    view.set_volume(volume.data, volume.spacing, volume.value_range())
    assert view.upload_pending and frames.hold()
    draws = []  # (kind, whether the upload was still going on)
    for kind in ("_draw_frame", "_draw_band"):
        original = getattr(frames, kind)
        monkeypatch.setattr(frames, kind, lambda *a, _o=original, _k=kind: (draws.append((_k, view.upload_pending)), _o(*a))[1])
    turns = 0
    while view.upload_pending and turns < 5000:
        view.canvas.update()  # asks for frames all along
        app.processEvents()
        time.sleep(0.001)
        turns += 1
    assert turns >= 6 and not frames.hold()
    assert _pump_until(app, lambda: view.exact)
    assert draws and draws[0][0] == "_draw_frame"  # drawn again once the volume is in ...
    assert not any(pending for _kind, pending in draws)  # ... and never while it went up


@pytest.mark.parametrize("azimuth,elevation", [(30.0, 20.0), (-60.0, 10.0), (150.0, -30.0), (0.0, 89.0)])
def test_camera_fit_keeps_the_orientation_arrows_and_letters_in_view(gl_view, azimuth, elevation):
    """The R/A/S arrows start at a corner of the box and point out of it: after Reset camera their
    tips and letters are inside the view for any angle (the R arrow was cut at the bottom edge),
    on an anisotropic grid with rotated axes."""
    from engines.volume.phantom import make_phantom
    from panels.volume.view3d import orientation_arrows

    app, view = gl_view
    volume, _ = make_phantom(48, noise_hu=0.0)
    data, spacing = volume.data[:30], (2.5, 0.9, 0.7)
    angle = np.radians(25.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-spacing[0], spacing[1], -spacing[2]])  # flipped and rotated axes
    view.set_volume(data, spacing, volume.value_range(), affine=affine)
    view.reset_camera(azimuth, elevation)
    _settle(app)
    transform = view.view.scene.node_transform(view.canvas.scene)
    width, height = view.canvas.size
    for _letter, start, end in orientation_arrows(affine, data.shape, spacing):
        for point in (end, end + 0.08 * (end - start)):  # the arrow's tip and its letter's anchor
            x, y = transform.map(np.append(point, 1.0))[:2] / transform.map(np.append(point, 1.0))[3]
            assert 0 <= x <= width and 0 <= y <= height, (azimuth, elevation, _letter, x, y, width, height)


def test_orientation_letters_upload_their_filter_kernel_once(gl_view, monkeypatch):
    """vispy's Text assigns its font's filter kernel (16×1024 RGBA) to a sampler at every draw; as an
    array it was uploaded again in every frame (on software OpenGL each upload also waits for the
    frames in flight). The letters' font keeps it as a texture: frames upload no kernel, and draw
    the same letters."""
    from vispy.gloo import gl

    app, view = gl_view
    _bone_phantom(view)
    view.finish_upload()
    _settle(app)  # the letters' first frame comes a few turns after the volume's
    assert view.markers[1].visible
    first = view.render_image(markers=True)
    uploads = []
    original = gl.glTexSubImage2D
    monkeypatch.setattr(gl, "glTexSubImage2D", lambda *a: (uploads.append(np.shape(a[-1])), original(*a))[1])
    camera = view.view.camera
    for step in range(4):
        camera.azimuth += 5.0
        view.render_image(markers=True)
    camera.azimuth -= 20.0
    again = view.render_image(markers=True)
    assert [shape for shape in uploads if shape == (16, 1024, 4)] == []
    assert np.abs(again.astype(np.int16) - first).max() <= 1


def test_first_show_starts_the_phantom_at_once_and_the_canvas_a_turn_later(qtbot):
    """The panel's first layout and paint are a turn of their own: on_shown() starts the phantom's job
    (so a file opened right after wins, see test_shell_responsive) but creates the 3D canvas from a
    timer; the phantom then arrives in that canvas with its orientation letters."""
    if os.environ.get("QT_QPA_PLATFORM") in ("offscreen", "minimal") or not os.environ.get("DISPLAY"):
        pytest.skip("needs a display with OpenGL (run under xvfb-run -a)")
    from panels.volume import VolumePanel
    from studio.services import StudioServices

    services = StudioServices()
    panel = VolumePanel(services)
    qtbot.addWidget(panel)
    panel.resize(800, 600)
    panel.show()
    panel.on_shown()
    assert panel.loading and panel.view3d.canvas is None
    qtbot.waitUntil(lambda: panel.view3d.canvas is not None or panel.view3d.gl_error is not None, timeout=5000)
    if panel.view3d.gl_error is not None:
        pytest.skip(f"no OpenGL context: {panel.view3d.gl_error}")
    assert services.jobs.wait_all(90)
    qtbot.waitUntil(lambda: len(panel.view3d.markers) == 2 and panel.view3d.markers[1].visible, timeout=5000)
    assert panel.volume is not None and panel.view3d.visual is not None
