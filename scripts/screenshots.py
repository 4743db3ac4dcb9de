"""Save a screenshot of the studio with each panel active, for the README (run under Xvfb).

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_API", "pyside6")


def main() -> None:
    """Open the main window, show each panel, wait for its start-up jobs, grab it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--settle", type=float, default=4.0, help="seconds to let each panel settle")
    parser.add_argument("--theme", default="dark")
    parser.add_argument("panels", nargs="*", help="panels to capture (default: all)")
    args = parser.parse_args()
    from qtpy.QtWidgets import QApplication

    from studio.main_window import MainWindow
    from studio.settings import StudioSettings
    from studio.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        settings = StudioSettings(os.path.join(tmp, "settings.ini"))
        settings.theme = args.theme
        apply_theme(app, args.theme)
        window = MainWindow(settings)
        window.resize(1600, 1000)
        window.show()
        for name in args.panels or window.panel_names():
            window.show_panel(name)
            panel = window.panel(name)
            if name == "generate" and hasattr(panel, "generate"):
                window.jobs.wait_all(timeout=60)  # the model scan lists the models
                for _ in range(3):  # a few results so the history strip shows something
                    panel.generate()
            end = time.monotonic() + args.settle
            while time.monotonic() < end:
                app.processEvents()
                time.sleep(0.02)
            window.jobs.wait_all(timeout=120)
            for _ in range(20):
                app.processEvents()
                time.sleep(0.02)
            path = out / f"{name}.png"
            window.grab().save(str(path))
            print(path)
        window.jobs.cancel_all()
        window.jobs.wait_all(10)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown of GL objects (see main.py)


if __name__ == "__main__":
    main()
