"""``generate 3d`` on the command line: outputs with provenance, and one-line errors without files."""

import json

import pytest

from studio.cli import main


def cli(capsys, *args):
    code = main(["generate", "3d", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_3d_writes_ply_turntable_and_sidecars(tmp_path, capsys):
    from plyfile import PlyData

    ply, gif = tmp_path / "obj.ply", tmp_path / "obj.gif"
    code, out, err = cli(capsys, "--class", "7", "--steps", "3", "--count", "60", "--seed", "4", "--out", str(ply),
                         "--turntable", str(gif), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["out"] == str(ply) and result["method"] == "sds" and result["count"] == 60
    assert PlyData.read(str(ply))["vertex"].count == 60
    record = json.loads((tmp_path / "obj.ply.json").read_text())
    assert record["parameters"]["class_label"] == 7 and record["parameters"]["steps"] == 3
    assert (tmp_path / "obj.gif.json").exists()
    code, _, err = cli(capsys, "--class", "7", "--steps", "3", "--out", str(ply))
    assert code == 2 and "exists" in err


@pytest.mark.parametrize("args, text", [
    (["--class", "7", "--method", "dreamy"], "unknown method"),
    (["--class", "10"], "out of range"),
    (["--prompt", "a cat"], "not text-conditioned"),
    (["--class", "3", "--steps", "0"], "at least 1"),
    (["--class", "3", "--image", "missing.png"], "not found"),
    (["--class", "3", "--image", "NOTIMAGE"], "not a readable image"),
    (["--class", "3", "--turntable", "x.mp4"], ".webp or .gif"),
])
def test_bad_input_is_one_line_exit_2_and_no_file(tmp_path, capsys, args, text):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image")
    args = [str(bad) if a == "NOTIMAGE" else (str(tmp_path / a) if a.endswith((".png", ".mp4")) else a) for a in args]
    out = tmp_path / "obj.ply"
    code, _, err = cli(capsys, *args, "--steps" if "--steps" not in args else "--seed", "2", "--out", str(out))
    assert code == 2
    assert err.startswith("error: ") and text in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["bad.png"]
