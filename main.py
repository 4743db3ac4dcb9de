"""Spectra Studio entry point.

``python main.py`` opens the GUI; ``python main.py <panel> <verb> ...`` runs an engine headless
(``python main.py --help`` lists the panels).
"""

import sys


def main() -> int:
    """Dispatch to the GUI (no arguments) or the headless CLI."""
    if len(sys.argv) <= 1:
        import os

        from studio.app import run_gui

        status = run_gui()
        # Settings are saved and the window deleted by now. Skip the interpreter's own teardown:
        # it may destroy vispy's GL objects after their context is gone and crash on exit.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    from studio.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
