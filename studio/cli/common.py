"""Helpers shared by every panel's command-line verbs (no Qt).

A panel module ``studio/cli/<panel>.py`` defines ``register(subparsers)`` and adds its verbs
with :func:`add_verb`. A verb handler takes the parsed ``argparse.Namespace`` and returns a
JSON-able ``dict``; :func:`studio.cli.main` prints it (as JSON with ``--json``) and turns
:class:`CliError` and other expected failures into a one-line message and a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

from engines.jobs import JobEvent, Log, Progress, run_job

Handler = Callable[[argparse.Namespace], dict]


class CliError(Exception):
    """A user error on the command line: printed as one line, exit status 2."""


def _common_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("common options")
    group.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    group.add_argument("--device", default=None, help="compute device: auto, cpu, cuda, mps (default: auto)")
    group.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: one per core)")
    group.add_argument("--traceback", action="store_true", help="show the full traceback on errors")
    return parent


COMMON = _common_parent()


def add_verb(
    subparsers: argparse._SubParsersAction,
    name: str,
    handler: Handler,
    help: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """Add a verb with the common options (``--json``, ``--device``, ``--threads``)."""
    parser = subparsers.add_parser(
        name,
        help=help,
        description=description or help,
        parents=[COMMON],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def add_force(parser: argparse.ArgumentParser) -> None:
    """Add ``--force`` (overwrite existing output files) to a verb that writes files."""
    parser.add_argument("--force", action="store_true", help="overwrite existing output files")


def parse_pair(text: str, kind: type = float, name: str = "value") -> tuple:
    """Parse ``"A,B"`` into a pair of ``kind``; raises :class:`CliError` on bad input."""
    try:
        a, b = (kind(part) for part in text.split(","))
    except ValueError as exc:
        raise CliError(f"{name} must look like A,B (got {text!r})") from exc
    return a, b


def run_with_progress(job: Iterator[JobEvent], quiet: bool = False) -> Any:
    """Drive an engine job on this thread, showing progress and log lines on stderr."""
    interactive = sys.stderr.isatty() and not quiet

    def show(event: JobEvent) -> None:
        if isinstance(event, Progress) and interactive:
            bar = int(event.fraction * 30)
            sys.stderr.write(f"\r[{'#' * bar}{'.' * (30 - bar)}] {event.fraction * 100:5.1f}% {event.message[:40]:40s}")
            sys.stderr.flush()
        elif isinstance(event, Log) and event.level != "info" and not quiet:
            sys.stderr.write(f"\n{event.level}: {event.message}\n")

    try:
        return run_job(job, show)
    finally:
        if interactive:
            sys.stderr.write("\n")


def print_result(result: dict, as_json: bool) -> None:
    """Print a verb's result: JSON with ``--json``, otherwise ``key: value`` lines."""
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    for key, value in result.items():
        if isinstance(value, (dict, list)):
            value = json.dumps(value, default=str)
        print(f"{key}: {value}")
