"""The headless CLI: help for every panel and verb, JSON output, one-line errors, lazy imports."""

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from studio import cli
from studio.cli.common import CliError, add_force, add_verb

ROOT = Path(__file__).resolve().parents[1]


def run_main(*args, timeout=300):
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def test_help_lists_a_subcommand_per_panel():
    out = run_main("--help")
    assert out.returncode == 0, out.stderr
    for panel in ("generate", "render", "volume", "codec"):
        assert panel in out.stdout


def subcommands(parser):
    """name -> sub-parser of an argparse parser's sub-commands."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_panel_and_verb_has_help():
    parser = cli.build_parser()
    verbs = {panel: sorted(subcommands(p)) for panel, p in subcommands(parser).items()}
    assert verbs["generate"] == ["3d", "edit", "image", "models", "train-digits"]
    assert verbs["render"] == ["convert", "fit", "image", "info"]
    assert verbs["volume"] == ["classify", "info", "phantom", "render", "tf"]
    assert verbs["codec"] == ["decode", "encode", "fom", "inspect", "rd", "tokens", "train"]
    for panel, names in verbs.items():
        for argv in ([panel, "--help"], *([panel, verb, "--help"] for verb in names)):
            with pytest.raises(SystemExit) as stop:
                parser.parse_args(argv)
            assert stop.value.code == 0, argv


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; sys.path.insert(0, %r); import studio.cli as c; c.build_parser();"
        "print(sorted(m for m in ('torch', 'diffusers', 'vispy', 'PySide6') if m in sys.modules))" % str(ROOT)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_panel_without_verb_prints_help_and_fails(fake_cli, capsys):
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "usage" in err and "add" in err and err.strip().endswith("error: choose a verb")


def test_no_panel_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "error: choose a panel" in capsys.readouterr().err


def test_unknown_panel_is_a_usage_error():
    out = run_main("nonsense")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr


@pytest.fixture
def fake_cli(monkeypatch):
    """Register a 'demo' panel with verbs that succeed, fail with CliError and fail otherwise."""
    module = types.ModuleType("tests_demo_cli")

    def ok(args):
        return {"sum": args.a + args.b, "device": args.device}

    def bad(args):
        raise CliError("the input has NaN values")

    def broken(args):
        raise ValueError("shape (3, 4) is not an image\nsecond line that must not be printed")

    def missing(args):
        open(args.path)

    def internal(args):
        return 1 // 0

    def register(sub):
        verb = add_verb(sub, "add", ok, "add two numbers")
        verb.add_argument("a", type=int)
        verb.add_argument("b", type=int)
        add_force(verb)
        add_verb(sub, "bad", bad, "always a user error")
        add_verb(sub, "broken", broken, "always fails")
        add_verb(sub, "internal", internal, "a bug of ours")
        add_verb(sub, "open", missing, "open a file").add_argument("path")

    module.register = register
    monkeypatch.setitem(sys.modules, "tests_demo_cli", module)
    monkeypatch.setitem(cli.PANEL_COMMANDS, "demo", ("tests_demo_cli", "demo panel"))
    return module


def test_json_output(fake_cli, capsys):
    assert cli.main(["demo", "add", "2", "3", "--json", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {"sum": 5, "device": "cpu"}


def test_plain_output(fake_cli, capsys):
    assert cli.main(["demo", "add", "2", "40"]) == 0
    assert "sum: 42" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, code, text",
    [
        (["demo", "bad"], 2, "error: the input has NaN values"),
        (["demo", "broken"], 2, "error: shape (3, 4) is not an image"),
        (["demo", "open", "/no/such/file.png"], 2, "error: file not found: /no/such/file.png"),
        (["demo", "internal"], 1, "error: internal error"),
        (["demo", "add", "1", "2", "--device", "tpu"], 2, "error: unknown device 'tpu'"),
        (["demo", "add", "1", "2", "--threads", "0"], 2, "error: --threads must be from 1 to 1024"),
    ],
)
def test_errors_are_one_line_and_non_zero(fake_cli, capsys, argv, code, text):
    assert cli.main(argv) == code
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [err.strip()]  # exactly one line
    assert err.startswith(text)


def test_device_that_is_missing_is_refused(fake_cli, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli.main(["demo", "add", "1", "2", "--device", "cuda"]) == 2
    assert "not available" in capsys.readouterr().err


@pytest.mark.parametrize("argv, text", [
    (["codec", "encode", "x.png", "--out", "o.ssbc", "--codec", "zzz"], "argument --codec: invalid choice: 'zzz'"),
    (["render", "image", "x.ply"], "the following arguments are required: --out"),
    (["volume", "render", "phantom:16", "--size", "ten", "--out", "o.png"], "argument --size: invalid int value"),
])
def test_usage_errors_are_one_line_naming_the_help(capsys, argv, text):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {text}")
    assert err.rstrip().endswith(f"(see 'main.py {argv[0]} {argv[1]} --help')")
