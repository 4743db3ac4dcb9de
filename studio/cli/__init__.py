"""``python main.py <panel> <verb> ...``: every engine, headless.

Each panel registers its verbs in ``studio/cli/<panel>.py`` (function ``register``). Those
modules must import heavy libraries (torch, diffusers ...) inside the handlers only, so that
``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Optional

from studio import __version__
from studio.cli.common import CliError, print_result

#: panel name -> (module, one-line help)
PANEL_COMMANDS = {
    "generate": ("studio.cli.generate", "image generation with diffusion and flow models"),
    "render": ("studio.cli.render", "3D Gaussian / sphere rendering and fitting"),
    "volume": ("studio.cli.volume", "volume reading, transfer functions, ray casting, classification"),
    "codec": ("studio.cli.codec", "block transforms, codecs, metrics and rate-distortion"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with a usage error on one line, as every other error of the CLI: ``error: ...``
    naming the ``--help`` to read (exit status 2); its sub-parsers are of this class too."""

    def error(self, message: str):
        """Print ``error: <message> (see '<prog> --help')`` on stderr and exit with status 2."""
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser: one sub-command per panel, verbs below each."""
    parser = _Parser(
        prog="main.py",
        description="Spectra Studio. Without arguments the GUI opens; with a panel and a verb an engine runs headless.",
    )
    parser.add_argument("--version", action="version", version=f"Spectra Studio {__version__}")
    panels = parser.add_subparsers(dest="panel", metavar="<panel>")
    for name, (module_name, help_text) in PANEL_COMMANDS.items():
        panel_parser = panels.add_parser(name, help=help_text, description=help_text)
        verbs = panel_parser.add_subparsers(dest="verb", metavar="<verb>")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            panel_parser.set_defaults(missing=f"the {name} commands are not installed")
            continue
        module.register(verbs)
    return parser


def _configure_device(args: argparse.Namespace) -> None:
    from engines import device

    if getattr(args, "device", None):
        try:
            device.set_device_override(args.device)
        except ValueError as exc:
            raise CliError(str(exc)) from exc
    if getattr(args, "threads", None) is not None:
        if not 1 <= args.threads <= device.MAX_THREADS:
            raise CliError(f"--threads must be from 1 to {device.MAX_THREADS}")
        device.set_threads(args.threads)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one headless command; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "missing", None):
        print(f"error: {args.missing}", file=sys.stderr)
        return 2
    handler = getattr(args, "handler", None)
    if handler is None:
        target = parser
        if args.panel:
            target = parser._subparsers._group_actions[0].choices[args.panel]
        target.print_help(sys.stderr)
        print(f"error: choose a {'verb' if args.panel else 'panel'}", file=sys.stderr)
        return 2
    try:
        _configure_device(args)
        result = handler(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every other failure: one line, unless --traceback
        if getattr(args, "traceback", False):
            raise
        from studio.errors import describe_error

        print(f"error: {describe_error(exc)}", file=sys.stderr)
        # bad input (unreadable, corrupt or oversized files, bad values) is the user's to fix: exit 2
        # like a usage error; anything else is a failure of ours
        return 2 if isinstance(exc, (ValueError, OSError)) else 1
    try:
        print_result(result or {}, getattr(args, "json", False))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`: not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
