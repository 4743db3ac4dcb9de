"""Posed views from COLMAP sparse models and transforms.json, written from the format descriptions."""

import json
import struct

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from engines.render.camera import fibonacci_cameras
from engines.render.formats.colmap import ColmapError, read_colmap_model
from engines.render.formats.posed import load_posed_views
from engines.render.synthetic import render_views, sphere_scene


@pytest.fixture(scope="module")
def truth():
    scene = sphere_scene(150, footprint=0.2)
    cams = fibonacci_cameras(3, 3.5, width=40, height=30)
    cams[1].K[0, 0] *= 1.1  # fx != fy
    images = [np.clip(np.rint(im * 255), 0, 255).astype(np.uint8) for im in render_views(scene, cams)]
    return scene, cams, images


def _qvec(view):
    x, y, z, w = Rotation.from_matrix(view[:3, :3]).as_quat()
    return [w, x, y, z]


def _write_colmap_bin(folder, cams, names, points, colors):
    folder.mkdir(parents=True)
    out = struct.pack("<Q", len(cams))
    for i, cam in enumerate(cams):
        K = cam.K.numpy()
        out += struct.pack("<iiQQ", i + 1, 1, cam.width, cam.height)  # PINHOLE
        out += struct.pack("<4d", K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    (folder / "cameras.bin").write_bytes(out)
    out = struct.pack("<Q", len(cams))
    for i, (cam, name) in enumerate(zip(cams, names)):
        view = cam.viewmat.numpy()
        out += struct.pack("<idddddddi", i + 1, *_qvec(view), *view[:3, 3], i + 1) + name.encode() + b"\x00"
        out += struct.pack("<Q", 2) + struct.pack("<ddq", 1.5, 2.5, 0) + struct.pack("<ddq", 3.0, 4.0, -1)
    (folder / "images.bin").write_bytes(out)
    out = struct.pack("<Q", len(points))
    for j, (p, c) in enumerate(zip(points, colors)):
        out += struct.pack("<QdddBBBd", j, *p, *c, 0.5) + struct.pack("<Q", 1) + struct.pack("<ii", 1, 0)
    (folder / "points3D.bin").write_bytes(out)


def _write_colmap_txt(folder, cams, names, points, colors):
    folder.mkdir(parents=True)
    lines = ["# Camera list", *(f"{i + 1} SIMPLE_RADIAL {c.width} {c.height} {c.K[0, 0].item()!r} "
                                f"{c.K[0, 2].item()!r} {c.K[1, 2].item()!r} 0.01" for i, c in enumerate(cams))]
    (folder / "cameras.txt").write_text("\n".join(lines) + "\n")
    lines = ["# Image list"]
    for i, (cam, name) in enumerate(zip(cams, names)):
        view = cam.viewmat.numpy()
        lines.append(" ".join(repr(float(v)) for v in [*_qvec(view), *view[:3, 3]]).join([f"{i + 1} ", f" {i + 1} {name}"]))
        lines.append("" if i % 2 else "1.5 2.5 -1")
    (folder / "images.txt").write_text("\n".join(lines) + "\n")
    lines = [f"{j} {float(p[0])!r} {float(p[1])!r} {float(p[2])!r} {c[0]} {c[1]} {c[2]} 0.5 1 0" for j, (p, c) in enumerate(zip(points, colors))]
    (folder / "points3D.txt").write_text("\n".join(lines) + "\n")


def _save_images(folder, names, images):
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in zip(names, images):
        Image.fromarray(image).save(folder / name)


def test_colmap_binary_and_text_models(tmp_path, truth):
    scene, cams, images = truth
    names = ["b.png", "a.png", "c.png"]
    points = scene.means.numpy()[:40].astype(np.float64)
    colors = (np.arange(120).reshape(40, 3) * 2).astype(np.uint8)
    _save_images(tmp_path / "bin" / "images", names, images)
    _write_colmap_bin(tmp_path / "bin" / "sparse" / "0", cams, names, points, colors)
    views = load_posed_views(tmp_path / "bin")
    assert views.kind == "colmap" and len(views.images) == 3
    order = np.argsort(names)  # views come sorted by image name
    for k, i in enumerate(order):
        np.testing.assert_array_equal(views.images[k], images[i])
        np.testing.assert_allclose(views.cameras[k].K.numpy(), cams[i].K.numpy(), atol=1e-9)
        np.testing.assert_allclose(views.cameras[k].viewmat.numpy(), cams[i].viewmat.numpy(), atol=1e-9)
    assert len(views.init) == 40
    np.testing.assert_allclose(views.init.means.numpy(), points, atol=1e-6)
    np.testing.assert_allclose(views.init.rgb.numpy(), colors / 255.0, atol=1e-6)
    assert 0.09 < float(views.init.opacities.mean()) < 0.11
    # the same model as text (SIMPLE_RADIAL: focal fx shared, distortion reported, not applied)
    same_f = [c for c in cams]
    _save_images(tmp_path / "txt" / "images", names, images)
    _write_colmap_txt(tmp_path / "txt" / "sparse", same_f, names, points, colors)
    text = load_posed_views(tmp_path / "txt")
    assert any("distortion" in n for n in text.notes)
    for k, i in enumerate(order):
        np.testing.assert_allclose(text.cameras[k].viewmat.numpy(), cams[i].viewmat.numpy(), atol=1e-9)
        assert abs(text.cameras[k].K[1, 1].item() - cams[i].K[0, 0].item()) < 1e-9
    np.testing.assert_allclose(text.init.means.numpy(), views.init.means.numpy(), atol=1e-6)
    half = load_posed_views(tmp_path / "bin", max_side=20)  # downscaled images, K scaled with them
    assert half.images[0].shape == (15, 20, 3)
    assert abs(half.cameras[0].K[0, 2].item() - cams[order[0]].K[0, 2].item() / 2) < 1e-9


def test_colmap_pose_convention_by_hand(tmp_path):
    """World point (1, 0, 0) seen by a camera rotated 90° about y, centre at (0, 0, -5) after rotation."""
    model = tmp_path / "m"
    model.mkdir()
    (model / "cameras.txt").write_text("1 PINHOLE 100 80 50 60 50 40\n")
    q = [np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0]  # R = Ry(90°): (x, y, z) -> (z, y, -x)
    (model / "images.txt").write_text(f"7 {q[0]} {q[1]} {q[2]} {q[3]} 0 0 5 1 view.png\n\n")
    m = read_colmap_model(model)
    from engines.render.formats.colmap import colmap_camera

    K, view, w, h = colmap_camera(m, m.images[0])
    p = view[:3, :3] @ np.array([0.0, 0.0, -1.0]) + view[:3, 3]  # R·(0,0,-1) = (-1, 0, 0); + t
    np.testing.assert_allclose(p, [-1.0, 0.0, 5.0], atol=1e-12)
    u, v = K[0, 0] * p[0] / p[2] + K[0, 2], K[1, 1] * p[1] / p[2] + K[1, 2]
    assert (w, h) == (100, 80) and abs(u - (50 - 50 / 5)) < 1e-9 and abs(v - 40) < 1e-9


def test_transforms_json_nerfstudio_and_blender(tmp_path, truth):
    _, cams, images = truth
    names = ["f0.png", "f1.png", "f2.png"]
    _save_images(tmp_path / "ns" / "images", names, images)
    flip = np.diag([1.0, -1.0, -1.0, 1.0])
    frames = [{"file_path": f"images/{n}", "transform_matrix": (np.linalg.inv(c.viewmat.numpy()) @ flip).tolist(),
               "fl_x": c.K[0, 0].item(), "fl_y": c.K[1, 1].item()} for n, c in zip(names, cams)]
    meta = {"camera_model": "OPENCV", "cx": 20.0, "cy": 15.0, "w": 40, "h": 30, "k1": 0.0, "frames": frames}
    (tmp_path / "ns" / "transforms.json").write_text(json.dumps(meta))
    views = load_posed_views(tmp_path / "ns")
    assert views.kind == "transforms.json" and views.init is None
    for k in range(3):
        np.testing.assert_allclose(views.cameras[k].viewmat.numpy(), cams[k].viewmat.numpy(), atol=1e-9)
        np.testing.assert_allclose(views.cameras[k].K.numpy(), cams[k].K.numpy(), atol=1e-9)
        np.testing.assert_array_equal(views.images[k], images[k])
    # instant-ngp / Blender style: camera_angle_x, no size, file names without extension
    blender = tmp_path / "blender"
    _save_images(blender / "train", ["r_0.png"], images[:1])
    angle = 2 * np.arctan(40 / (2 * cams[0].K[0, 0].item()))
    (blender / "transforms.json").write_text(json.dumps({"camera_angle_x": angle, "frames": [
        {"file_path": "./train/r_0", "transform_matrix": frames[0]["transform_matrix"]}]}))
    one = load_posed_views(blender)
    np.testing.assert_allclose(one.cameras[0].K.numpy(), cams[0].K.numpy(), atol=1e-9)


@pytest.mark.parametrize("setup,message", [
    (lambda d: ((d / "cameras.bin").write_bytes(struct.pack("<Q", 10**12)), (d / "images.bin").write_bytes(b"")),
     "truncated"),
    (lambda d: ((d / "cameras.txt").write_text("1 OPENCV_FISHEYE 10 10 1 1 5 5 0 0 0 0\n"),
                (d / "images.txt").write_text("")), "only pinhole"),
    (lambda d: ((d / "cameras.txt").write_text("1 PINHOLE 10 10 1 1 5 5\n"),
                (d / "images.txt").write_text("1 1 0 0 0 0 0 0 9 a.png\n\n")), "camera 9"),
    (lambda d: (d / "transforms.json").write_text("{\"frames\": [{\"file_path\": \"a\"}]}"), "transform_matrix"),
    (lambda d: (d / "transforms.json").write_text("{not json"), "not valid JSON"),
])
def test_bad_posed_folders_one_clear_error(tmp_path, setup, message, capsys):
    folder = tmp_path / "bad"
    folder.mkdir()
    setup(folder)
    with pytest.raises((ColmapError, ValueError), match=message):
        load_posed_views(folder)
    from studio.cli import main

    out = tmp_path / "fit.ply"
    assert main(["render", "fit", "--views", str(folder), "--steps", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and not out.exists()


def test_cli_fit_from_colmap_starts_at_points3d(tmp_path, truth, capsys):
    scene, cams, images = truth
    names = ["a.png", "b.png", "c.png"]
    points = scene.means.numpy()[::3].astype(np.float64)
    _save_images(tmp_path / "proj" / "images", names, images)
    _write_colmap_bin(tmp_path / "proj" / "sparse" / "0", cams, names, points, np.full((len(points), 3), 200, np.uint8))
    from studio.cli import main

    out = tmp_path / "fit.ply"
    assert main(["render", "fit", "--views", str(tmp_path / "proj"), "--steps", "3", "--no-densify", "--json",
                 "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["count"] == len(points) and result["mode"] == "views"


def test_panel_takes_a_colmap_folder_as_fit_target(make_panel, tmp_path, truth):
    from engines.filekinds import POSED_VIEWS, sniff
    from panels.render import RenderPanel
    from tests.gui_helpers import open_and_wait, wait_loaded

    scene, cams, images = truth
    names = ["a.png", "b.png", "c.png"]
    _save_images(tmp_path / "proj" / "images", names, images)
    _write_colmap_bin(tmp_path / "proj" / "sparse" / "0", cams, names, scene.means.numpy()[:30].astype(np.float64),
                      np.full((30, 3), 128, np.uint8))
    assert sniff(tmp_path / "proj") == POSED_VIEWS
    panel = make_panel(RenderPanel)
    wait_loaded(panel)
    assert panel.can_open(tmp_path / "proj")
    open_and_wait(panel, tmp_path / "proj")
    assert "3 posed views (colmap, 30 points" in panel.fit_status.text()
    assert len(panel.fit_init) == 30 and len(panel.fit_cameras) == 3
