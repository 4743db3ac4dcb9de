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
    (["--class", "3", "--steps", "0"], "steps must be a whole number from 1 to 100,000"),
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


def test_option_defaults_are_the_engine_defaults(tmp_path):
    """``generate 3d`` with no options describes DistillSettings() field for field (the job's class)."""
    from dataclasses import fields

    from engines.distill3d import job
    from studio.cli import build_parser
    from studio.cli.generate import _distill_settings

    assert job.DistillSettings is __import__("engines.distill3d", fromlist=["x"]).DistillSettings
    args = build_parser().parse_args(["generate", "3d", "--out", str(tmp_path / "x.ply")])
    got, engine = _distill_settings(args), job.DistillSettings()
    differ = [f.name for f in fields(engine) if getattr(got, f.name) != getattr(engine, f.name)]
    assert differ == []
    assert not list(tmp_path.iterdir())


def test_3d_help_does_not_import_torch():
    """Building ``generate 3d --help`` (and importing the settings) imports no torch, diffusers or Qt."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = (f"import sys, contextlib, io; sys.path.insert(0, {str(root)!r}); from studio.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try: main(['generate', '3d', '--help'])\n"
            "    except SystemExit as exc: assert exc.code == 0\n"
            "import engines.distill3d.settings\n"
            "assert '--method' in out.getvalue() and 'sds | sjc' in out.getvalue()\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'numpy', 'PySide6') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


@pytest.mark.parametrize("args, text", [
    (["--guidance", "nan"], "guidance must be a finite number"),
    (["--azimuth", "0,inf"], "azimuth must be a finite number"),
    (["--primitive", "cubes"], "primitive must be"),
    (["--background", "blue"], "background must be fixed, random or learned"),
    (["--sh-degree", "3"], "--sh-degree must be 0 or 1"),
])
def test_bad_settings_are_refused_before_any_work(tmp_path, capsys, args, text):
    out = tmp_path / "obj.ply"
    code, _, err = cli(capsys, "--class", "3", *args, "--out", str(out))
    assert code == 2 and err.startswith("error: ") and text in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_a_failing_turntable_render_leaves_no_ply(tmp_path, capsys, monkeypatch):
    import engines.distill3d.turntable as turntable

    def broken(*args, **kwargs):
        raise ValueError("the turntable render failed")

    monkeypatch.setattr(turntable, "turntable_frames", broken)
    code, _, err = cli(capsys, "--class", "1", "--steps", "1", "--count", "20", "--out", str(tmp_path / "o.ply"),
                       "--turntable", str(tmp_path / "o.gif"))
    assert code == 2 and "turntable render failed" in err
    assert not list(tmp_path.iterdir())
