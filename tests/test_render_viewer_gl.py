"""The OpenGL splat view against the exact rasterizer after scripted camera moves (run under xvfb-run)."""

import numpy as np
import pytest
import torch

from engines.jobs import run_job
from engines.render.camera import Camera
from engines.render.project import covariance_3d
from engines.render.scene import Gaussians
from engines.render.sh import sh_to_color
from engines.render.still import still_job
from engines.render.synthetic import sphere_scene

pytestmark = pytest.mark.gl


@pytest.fixture(autouse=True)
def _collect_canvases():
    """Closed GL canvases are freed on this thread (a GC pass on a worker thread would abort Qt)."""
    import gc

    yield
    gc.collect()


def _canvas(qapp, scene, size=(320, 240), renderer="gl"):
    from qtpy.QtGui import QGuiApplication

    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        pytest.skip("no OpenGL context (run under xvfb-run)")
    from panels.render.viewer import SplatCanvas

    canvas = SplatCanvas(renderer=renderer)
    canvas.canvas.size = size
    canvas.canvas.show()
    qapp.processEvents()
    opacity = scene.opacities.numpy()[:, None]

    def color_fn(centre):
        rgb = sh_to_color(scene.sh, scene.means, torch.as_tensor(centre, dtype=torch.float32), scene.sh_degree)
        return np.concatenate([rgb.clamp(0, 1).numpy(), opacity], 1)

    canvas.set_splats(scene.means.numpy(), np.concatenate([scene.rgb.numpy(), opacity], 1),
                      covariance_3d(scene.quats, scene.scales).numpy(), np.zeros(len(scene), bool),
                      color_fn if scene.sh_degree else None)
    canvas.frame_all()
    return canvas


def _psnr_vs_exact(canvas, scene) -> float:
    """PSNR of the drawn view against the exact rasterizer at the camera read back from the view."""
    drawn = canvas.canvas.render()[..., :3].astype(np.float64) / 255
    K, view = canvas.camera_matrices()
    w, h = canvas.canvas.size
    cam = Camera(torch.from_numpy(K), torch.from_numpy(view), w, h)
    exact = run_job(still_job(scene, cam, "classic", (0.0, 0.0, 0.0), scene.sh_degree))
    assert drawn.shape == exact.shape and exact.mean() > 0.02
    return float(10 * np.log10(1.0 / max(np.mean((drawn - exact) ** 2), 1e-12)))


def _moves(canvas):
    """Scripted user moves: wheel zooms (real vispy events), pans, orbits, a fly step, frame all."""
    cam = canvas.view.camera
    for _ in range(4):
        yield "zoom", lambda: canvas.canvas.events.mouse_wheel(pos=(160, 120), delta=(0, 1), modifiers=())
    for _ in range(3):
        yield "pan", lambda: setattr(cam, "center", tuple(np.asarray(cam.center) + [0.05, 0.03, 0.0]))
    for _ in range(3):
        yield "orbit", lambda: (setattr(cam, "azimuth", cam.azimuth + 25), setattr(cam, "elevation", cam.elevation + 10))
    yield "fly", lambda: canvas.fly(0, 0, 1)
    yield "zoom out", lambda: canvas.canvas.events.mouse_wheel(pos=(160, 120), delta=(0, -3), modifiers=())
    yield "frame all", canvas.frame_all


@pytest.mark.parametrize("on_worker", [False, True])
def test_view_matches_exact_after_every_move(qapp, on_worker):
    scene = sphere_scene(400, footprint=0.15, sh_degree=1)  # view-dependent colours
    canvas = _canvas(qapp, scene)
    if on_worker:
        canvas.SYNC_LIMIT = 0  # sort + SH on the worker thread, as for large scenes
    scores = []
    for name, move in _moves(canvas):
        move()
        if on_worker:
            canvas.canvas.render()  # the first draw after the move requests the sort
            assert canvas.wait_sorted()
        else:
            assert not canvas.exact  # the move changed the camera ...
        scores.append((name, _psnr_vs_exact(canvas, scene)))
        assert canvas.exact  # ... and the drawn frame was sorted and coloured for it
    print("viewer PSNR per step (dB):", [(n, round(db, 1)) for n, db in scores])
    assert all(db >= 30 for _, db in scores), scores
    canvas.canvas.close()


def test_stale_order_is_detected_by_the_comparison(qapp):
    """The comparison can fail: drawing the order/colours of the previous camera scores below 30 dB."""
    scene = sphere_scene(400, footprint=0.15, sh_degree=1)
    canvas = _canvas(qapp, scene)
    canvas.canvas.render()
    canvas.view.camera.azimuth += 180  # look from behind: the old order is back to front reversed
    canvas.sorted_view = canvas.camera_matrices()[1]  # pretend it is sorted: nothing gets redone
    assert _psnr_vs_exact(canvas, scene) < 30
    canvas.canvas.close()


def test_large_splat_drawn_at_true_size(qapp):
    """A splat ~900 px across (over any point-size cap) covers the same pixels as in the exact render."""
    g = Gaussians.from_activated(torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.1, -0.5]]),
                                 torch.tensor([[1.0, 0.6, 0.8], [0.05, 0.05, 0.05]]),
                                 torch.tensor([[0.9, 0.4, 0.2], [0.2, 0.5, 0.9]]), torch.tensor([0.8, 0.9]))
    canvas = _canvas(qapp, g, size=(480, 360))
    cam = canvas.view.camera
    cam.center, cam.distance = (0.0, 0.0, 0.0), 2.0
    canvas.canvas.render()
    K, view = canvas.camera_matrices()
    t = view[:3, :3] @ np.zeros(3) + view[:3, 3]
    assert 3 * 0.6 * K[0, 0] / t[2] > 256  # 3 sigma of the short axis beyond the old point-size caps
    assert _psnr_vs_exact(canvas, g) >= 30
    canvas.canvas.close()


def test_cpu_view_progressive_and_exact_at_rest(qapp):
    """Without a hardware GPU the view shows CPU frames: exact (≥ 30 dB) once the camera rests."""
    scene = sphere_scene(400, footprint=0.15, sh_degree=1)
    canvas = _canvas(qapp, scene, renderer="cpu")
    assert canvas.settle() and canvas.cpu_mode and not canvas.splats.visible
    scores = []
    for name, move in _moves(canvas):
        move()
        canvas.settle()
        scores.append((name, _psnr_vs_exact(canvas, scene)))
    print("CPU view PSNR per step (dB):", [(n, round(db, 1)) for n, db in scores])
    assert all(db >= 30 for _, db in scores), scores
    worker = canvas.progressive._thread
    canvas.canvas.close()  # closing the view stops its CPU-frame worker
    worker.join(5)
    assert not worker.is_alive()


def test_cpu_view_posts_the_camera_once_per_event_loop_turn(qapp, monkeypatch):
    """A resize moves the view's transforms about ten times; each posted the camera to the CPU
    renderer (its matrices, and an aborted frame for each in-between size). Now the camera is posted
    once per event-loop turn (3 posts here, 14 before), with the final size and camera; the frame
    shown is still exact."""
    scene = sphere_scene(400, footprint=0.15, sh_degree=1)
    canvas = _canvas(qapp, scene, renderer="cpu")
    assert canvas.settle() and canvas.cpu_mode
    posted = []
    original = canvas.progressive.request
    monkeypatch.setattr(canvas.progressive, "request", lambda K, view, w, h, *a: (posted.append((w, h)), original(K, view, w, h, *a))[1])
    canvas.canvas.size = (300, 220)
    canvas.view.camera.azimuth += 10.0
    canvas.view.camera.elevation += 5.0
    qapp.processEvents()
    pixel_scale = canvas.canvas.pixel_scale
    assert len(posted) <= 3 and posted[-1] == (round(300 * pixel_scale), round(220 * pixel_scale)), posted
    K, view = canvas.camera_matrices()
    assert np.allclose(canvas.progressive._wanted.view, view)  # the last camera posted is the final one
    assert canvas.settle()
    assert _psnr_vs_exact(canvas, scene) >= 30
    canvas.canvas.close()


def test_scene_frame_computed_once_per_positions(qapp, monkeypatch):
    """Camera queries use the scene's frame kept per set of positions (or given by the open job),
    equal to engines' scene_frame, and recomputed when the positions change."""
    import engines.render.camera as camera

    scene = sphere_scene(2000, footprint=0.05)
    canvas = _canvas(qapp, scene)
    expected = camera.scene_frame(scene.means.numpy())
    calls = []
    original = camera.scene_frame
    monkeypatch.setattr(camera, "scene_frame", lambda m, *a, **k: (calls.append(len(m)), original(m, *a, **k))[1])
    for _ in range(3):
        canvas.camera_matrices()
    assert calls == []  # frame_all in _canvas computed it already
    centre, radius = canvas.scene_frame()
    assert np.allclose(centre, expected[0]) and radius == pytest.approx(expected[1])
    moved = scene.means.numpy() + np.float32([1.0, 0.0, 0.0])
    canvas.set_splats(moved, canvas.colors, np.zeros((len(moved), 3, 3)), canvas.selected)
    assert np.allclose(canvas.scene_frame()[0], expected[0] + [1.0, 0.0, 0.0], atol=1e-5) and calls == [2000]
    canvas.set_splats(moved, canvas.colors, np.zeros((len(moved), 3, 3)), canvas.selected, frame=((5.0, 5.0, 5.0), 2.0))
    assert np.allclose(canvas.scene_frame()[0], 5.0) and canvas.scene_frame()[1] == 2.0 and calls == [2000]


def test_cpu_view_skips_gl_buffers_until_gl_draws(qapp):
    """In CPU mode a new scene does not build the OpenGL per-quad buffers (~0.1 s of copies for 500k
    splats on the GUI thread); switching to OpenGL builds them and draws the new scene exactly."""
    first = sphere_scene(300, footprint=0.15, sh_degree=0)
    canvas = _canvas(qapp, first, renderer="cpu")
    assert canvas.settle() and canvas.cpu_mode
    built = canvas.splats._corner_count
    scene = sphere_scene(500, footprint=0.12, sh_degree=0, seed=3)
    opacity = scene.opacities.numpy()[:, None]
    canvas.set_splats(scene.means.numpy(), np.concatenate([scene.rgb.numpy(), opacity], 1),
                      covariance_3d(scene.quats, scene.scales).numpy(), np.zeros(len(scene), bool))
    assert canvas.splats._corner_count == built != len(scene)  # nothing built for the GL splats
    canvas.renderer = "gl"
    canvas._set_cpu_mode(False)
    assert not canvas.cpu_mode and canvas.splats._corner_count == len(scene)
    canvas.canvas.render()
    assert _psnr_vs_exact(canvas, scene) >= 30
    canvas.canvas.close()


def test_cpu_view_shows_a_hint_until_the_first_frame(qapp):
    """The CPU view says it is rendering until the first frame of a scene is on screen (it used to be
    black for seconds); the hint goes when the frame arrives and comes back for the next scene."""
    from panels.render.viewer import CPU_HINT

    scene = sphere_scene(300, footprint=0.15, sh_degree=0)
    canvas = _canvas(qapp, scene, renderer="cpu")
    canvas.canvas.render()  # the first draw picks the CPU view
    assert canvas.cpu_mode and canvas.hint == CPU_HINT
    assert canvas.settle() and canvas.hint is None
    assert _psnr_vs_exact(canvas, scene) >= 30  # the frame replacing the hint is the scene
    other = sphere_scene(200, footprint=0.1, sh_degree=0, seed=5)
    opacity = other.opacities.numpy()[:, None]
    canvas.set_splats(other.means.numpy(), np.concatenate([other.rgb.numpy(), opacity], 1),
                      covariance_3d(other.quats, other.scales).numpy(), np.zeros(len(other), bool))
    assert canvas.hint == CPU_HINT
    assert canvas.settle() and canvas.hint is None
    canvas.canvas.close()
