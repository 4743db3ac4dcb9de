"""``python main.py codec …`` verbs (run in-process through studio.cli.main)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.cli import main
from studio.export import read_provenance

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def image_file(tmp_path):
    from engines.codec.images import sample_image

    path = tmp_path / "crop.png"
    Image.fromarray(sample_image("astronaut")[60:156, 180:276]).save(path)
    return path


def _json(capsys, argv):
    code = main(argv + ["--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_fom_json_and_table(capsys):
    data = _json(capsys, ["codec", "fom", "--N", "8"])
    rows = {r["transform"]: r for r in data["transforms"]}
    assert rows["dct"]["coding_gain_db"] == pytest.approx(8.8259, abs=1e-4)
    assert rows["rdct"]["efficiency_pct"] == pytest.approx(87.4297, abs=1e-4)
    assert rows["minangle-m1"]["error_energy"] == pytest.approx(rows["rdct"]["error_energy"])
    assert main(["codec", "fom", "--N", "64", "--alphabets", "3", "--show-matrix", "minangle-m3"]) == 0
    out = capsys.readouterr().out
    assert "minangle-m3" in out and "T (minangle-m3)" in out
    assert main(["codec", "fom", "--alphabets", "x"]) == 2


def test_encode_decode_block(capsys, tmp_path, image_file):
    out = tmp_path / "a.ssbc"
    recon = tmp_path / "r.png"
    data = _json(capsys, ["codec", "encode", str(image_file), "--out", str(out), "--transform", "minangle", "--N", "16", "--alphabet", "2", "--quality", "60", "--recon", str(recon)])
    assert out.exists() and data["bpp"] == pytest.approx(8 * out.stat().st_size / 96**2)
    stats = tmp_path / "blocks.csv"
    info = _json(capsys, ["codec", "encode", str(image_file), "--out", str(tmp_path / "b.ssbc"), "--block-stats", str(stats)])
    lines = stats.read_text().strip().splitlines()
    assert lines[0] == "plane,x,y,w,h,bits,nonzero"
    assert len(lines) == 1 + 12 * 12 + 2 * 6 * 6  # 96x96, N = 8, 4:2:0
    total = sum(float(line.split(",")[5]) for line in lines[1:])
    assert total == pytest.approx(8 * info["payload_bytes"], rel=0.01)  # header bits are not in any block
    assert data["ms_ssim"] is None and "MS-SSIM needs" in data["ms_ssim_note"]
    prov = read_provenance(out)
    assert prov["parameters"]["transform"] == "minangle" and prov["parameters"]["N"] == 16
    dec = tmp_path / "d.png"
    _json(capsys, ["codec", "decode", str(out), "--out", str(dec)])
    np.testing.assert_array_equal(np.asarray(Image.open(dec)), np.asarray(Image.open(recon)))
    # no overwrite without --force; nothing half written
    assert main(["codec", "encode", str(image_file), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_encode_jpeg_and_inspect(capsys, tmp_path, image_file):
    out = tmp_path / "a.jpg"
    _json(capsys, ["codec", "encode", str(image_file), "--out", str(out), "--codec", "jpeg", "--quality", "75", "--subsampling", "4:4:4", "--progressive"])
    info = _json(capsys, ["codec", "inspect", str(out)])
    assert info["estimated_quality"] == 75 and info["ijg_tables"] is True
    assert info["subsampling"] == "4:4:4" and info["progressive"] is True
    assert main(["codec", "inspect", str(out)]) == 0
    assert "quantization table 0" in capsys.readouterr().out


def test_bad_inputs(capsys, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    assert main(["codec", "encode", str(bad), "--out", str(tmp_path / "x.ssbc")]) == 2
    assert "not a readable image" in capsys.readouterr().err
    assert not (tmp_path / "x.ssbc").exists()
    assert main(["codec", "inspect", str(tmp_path / "missing.jpg")]) == 2
    garbage = tmp_path / "g.ssbc"
    garbage.write_bytes(b"SSBC" + bytes(40))
    assert main(["codec", "decode", str(garbage), "--out", str(tmp_path / "g.png")]) == 2
    assert not (tmp_path / "g.png").exists()
    assert main(["codec", "rd", str(bad), "--out", str(tmp_path / "rd.csv")]) == 2


def test_rd_csv_plot_and_bd(capsys, tmp_path, image_file):
    out = tmp_path / "rd.csv"
    plot = tmp_path / "rd.png"
    data = _json(
        capsys,
        ["codec", "rd", str(image_file), "--codecs", "jpeg", "block", "--qualities", "20,40,60,80", "--out", str(out), "--plot", str(plot), "--no-ms-ssim"],
    )
    lines = out.read_text().strip().splitlines()
    assert len(lines) == 1 + 8
    assert data["bd"][0]["codec"] == "jpeg" and data["bd"][0]["bd_rate_cubic"] == pytest.approx(0, abs=1e-9)
    assert Path(str(out) + ".json").exists()
    assert Image.open(plot).size == (900, 600)
    assert read_provenance(plot)["engine"] == "codec.rd"
    js = tmp_path / "rd.json"
    _json(capsys, ["codec", "rd", str(image_file), "--codecs", "jpeg", "--qualities", "30,50,70,90", "--out", str(js), "--no-ms-ssim"])
    assert set(json.loads(js.read_text())) == {"rows", "curves", "bd", "bd_per_image"}


def test_help_is_light():
    code = (
        "import sys, argparse, studio.cli.codec as c; p = argparse.ArgumentParser(); c.register(p.add_subparsers()); "
        "print(','.join(m for m in ('torch', 'engines.codec.blockcodec', 'PIL', 'scipy') if m in sys.modules))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ""
