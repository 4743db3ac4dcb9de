"""``python main.py render ...`` verbs: image, fit, info; provenance and error handling."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engines.render.camera import fibonacci_cameras
from engines.render.io import load_ply, save_ply
from engines.render.synthetic import render_views, save_views, sphere_scene
from studio.cli import main
from studio.export import read_provenance

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def scene_file(tmp_path):
    path = tmp_path / "scene.ply"
    save_ply(path, sphere_scene(300, footprint=0.1, sh_degree=1))
    return path


def test_image_verb_writes_png_with_provenance(tmp_path, scene_file, capsys):
    out = tmp_path / "img.png"
    code = main(["render", "image", str(scene_file), "--orbit", "30,20", "--size", "64,48", "--aa", "analytic",
                 "--background", "1,1,1", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["gaussians"] == 300 and result["visible"] > 100
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (48, 64, 3)
    assert (pixels[0, 0] == 255).all()  # corner shows the white background
    centre = pixels[18:30, 26:38].astype(float)
    assert centre.std() > 3 and centre.mean() < 250  # the sphere is drawn in the middle
    prov = read_provenance(out)
    assert prov["panel"] == "render" and prov["parameters"]["aa"] == "analytic"
    assert str(scene_file) in prov["inputs"]
    # no overwrite without --force
    assert main(["render", "image", str(scene_file), "--out", str(out)]) == 2


def test_info_verb(scene_file, capsys):
    assert main(["render", "info", str(scene_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["gaussians"] == 300 and info["sh_degree"] == 1
    assert info["bounds_max"][0] == pytest.approx(1.0, abs=0.01)
    assert info["file_size_bytes"] == scene_file.stat().st_size


def test_fit_photo_writes_ply_and_sidecar(tmp_path, capsys):
    target = tmp_path / "t.png"
    yy, xx = np.mgrid[0:24, 0:24]
    img = np.stack([xx * 10, yy * 10, 255 - xx * 10], -1).astype(np.uint8)
    Image.fromarray(img).save(target)
    out = tmp_path / "fit.ply"
    code = main(["render", "fit", str(target), "--count", "100", "--steps", "40", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["psnr_db"] > 20 and result["mode"] == "photo"
    scene = load_ply(out)
    assert len(scene) == result["count"]
    prov = read_provenance(out)
    assert prov["parameters"]["steps"] == 40 and prov["final_psnr"] == pytest.approx(result["psnr_db"], abs=0.01)


def test_fit_views_spheres(tmp_path, capsys):
    truth = sphere_scene(80, footprint=0.2)
    cams = fibonacci_cameras(3, 3.5, width=24, height=24)
    folder = save_views(tmp_path / "views", render_views(truth, cams), cams)
    out = tmp_path / "spheres.ply"
    code = main(["render", "fit", "--views", str(folder), "--primitive", "spheres", "--count", "60",
                 "--steps", "20", "--no-densify", "--out", str(out), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "views"
    assert len(load_ply(out)) == 60


def test_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 5\nproperty float x\nend_header\n\x00")
    mesh_like = tmp_path / "img.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(mesh_like)
    cases = [
        ["render", "info", str(bad)],
        ["render", "info", str(tmp_path / "missing.ply")],
        ["render", "image", str(bad), "--out", str(tmp_path / "o.png")],
        ["render", "image", str(bad), "--size", "ten", "--out", str(tmp_path / "o.png")],
        ["render", "fit", "--out", str(tmp_path / "o.ply")],
        ["render", "fit", str(bad), "--out", str(tmp_path / "o.ply")],
        ["render", "fit", str(mesh_like), "--out", str(tmp_path / "o.txt")],
        ["render", "fit", "--views", str(tmp_path), "--out", str(tmp_path / "o.ply")],
    ]
    for argv in cases:
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        err = capsys.readouterr().err
        assert code != 0, argv
        assert "Traceback" not in err, argv
        assert err.strip().splitlines()[-1].startswith("error:") or "error:" in err, (argv, err)
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), *cases[0]], capture_output=True, text=True,
                          check=False, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and proc.stderr.strip().count("\n") == 0
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o.ply").exists()
