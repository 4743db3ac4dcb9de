"""Spectra Studio entry point.

``python main.py`` opens the GUI; ``python main.py <panel> <verb> ...`` runs an engine headless
(``python main.py --help`` lists the panels).
"""

import sys


def main() -> int:
    """Dispatch to the GUI (no arguments) or the headless CLI."""
    if len(sys.argv) <= 1:
        from studio.app import run_gui

        return run_gui()
    from studio.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
