"""``python main.py volume ...``: info, render, classify, phantom; clear errors, no partial files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from studio.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]


def test_help_is_fast_and_light():
    code = ("import sys; sys.argv=['main.py','volume','--help']\n"
            "from studio.cli import build_parser\nbuild_parser()\n"
            "bad=[m for m in ('torch','vispy','engines.volume.raycast','nibabel') if m in sys.modules]\n"
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0 and out.stdout.strip() == ""


def test_info_on_nifti_and_phantom(tmp_path, capsys):
    import nibabel as nib

    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), np.diag([0.5, 0.6, 3.0, 1.0])), str(tmp_path / "a.nii.gz"))
    assert cli_main(["volume", "info", str(tmp_path / "a.nii.gz"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape_zyx"] == [4, 5, 6] and info["spacing_zyx_mm"] == [3.0, 0.6, 0.5]
    assert cli_main(["volume", "info", "phantom:32", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["modality"] == "CT" and info["units"] == "HU"


def test_render_writes_png_with_provenance(tmp_path, capsys):
    from PIL import Image

    from studio.export import read_provenance

    out = tmp_path / "r.png"
    args = ["volume", "render", "phantom:32", "--tf", "preset:CT-Bone", "--mode", "dvr", "--view", "30,20",
            "--size", "48", "--out", str(out), "--threads", "1"]
    assert cli_main(args) == 0
    image = np.asarray(Image.open(out))
    assert image.shape == (48, 48, 3) and image.max() > 50
    prov = read_provenance(out)
    assert prov["parameters"]["mode"] == "dvr" and prov["parameters"]["tf"]["name"] == "CT-Bone"
    # existing file without --force: error, file unchanged
    before = out.read_bytes()
    assert cli_main(args) != 0
    assert out.read_bytes() == before
    assert cli_main(args + ["--force", "--mode", "mip"]) == 0
    capsys.readouterr()


def test_render_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x1f\x8b garbage")
    assert cli_main(["volume", "render", str(bad), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "bad.nii.gz" in err and "\n" not in err
    assert not (tmp_path / "x.png").exists()
    assert cli_main(["volume", "render", "phantom:32", "--view", "abc", "--out", str(tmp_path / "x.png")]) == 2
    assert cli_main(["volume", "render", "phantom:32", "--tf", "preset:Nope", "--out", str(tmp_path / "x.png")]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob(".*partial*"))


def test_classify_and_phantom_verbs(tmp_path, capsys):
    import nibabel as nib

    assert cli_main(["volume", "phantom", "--size", "32", "--out", str(tmp_path / "p.nii.gz"),
                     "--labels", str(tmp_path / "l.nii.gz")]) == 0
    capsys.readouterr()
    labels = np.asarray(nib.load(str(tmp_path / "l.nii.gz")).dataobj).transpose(2, 1, 0)
    strokes = {"classes": [{"name": "air"}, {"name": "tissue"}, {"name": "bone", "color": [1, 1, 1]}], "strokes": []}
    for cls, label in ((0, 0), (1, 1), (2, 3)):
        vox = np.argwhere(labels == label)[::37][:20]
        strokes["strokes"].append({"class": cls, "voxels": vox.tolist()})
    (tmp_path / "s.json").write_text(json.dumps(strokes))
    out = tmp_path / "labels.nii.gz"
    assert cli_main(["volume", "classify", str(tmp_path / "p.nii.gz"), "--strokes", str(tmp_path / "s.json"),
                     "--method", "forest", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    predicted = np.asarray(nib.load(str(out)).dataobj).transpose(2, 1, 0)
    assert predicted.shape == (32, 32, 32)
    assert set(np.unique(predicted)) <= {0, 1, 2, 3}
    assert result["voxels_per_class"]["bone"] > 0
    assert (out.parent / (out.name + ".json")).exists()  # provenance sidecar
    # bad output suffix and bad strokes file
    assert cli_main(["volume", "classify", "phantom:32", "--strokes", str(tmp_path / "s.json"), "--out", str(tmp_path / "x.png")]) == 2
    (tmp_path / "bad.json").write_text("[1, 2")
    assert cli_main(["volume", "classify", "phantom:32", "--strokes", str(tmp_path / "bad.json"), "--out", str(tmp_path / "y.nii.gz")]) == 2
    assert not (tmp_path / "y.nii.gz").exists()
