"""Start the GUI: QApplication, theme, main window, files given on the command line."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def run_gui(paths: Sequence[str] | None = None) -> int:
    """Open the studio window (and ``paths`` in their panels); returns the exit status."""
    os.environ.setdefault("QT_API", "pyside6")
    from qtpy.QtGui import QIcon
    from qtpy.QtWidgets import QApplication

    from studio import APP_NAME, ORG_NAME
    from studio.main_window import ICON_DIR, MainWindow
    from studio.settings import StudioSettings
    from studio.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from studio.gc_guard import install as collect_on_gui_thread

    collect_on_gui_thread(app, freeze_long_lived=True)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setWindowIcon(QIcon(str(ICON_DIR / "studio.svg")))
    settings = StudioSettings(os.environ.get("SPECTRA_SETTINGS_FILE") or None)
    apply_theme(app, settings.theme)
    window = MainWindow(settings)
    window.show()
    if paths:
        window.open_paths(list(paths))
    # closeEvent saves settings and stops jobs. The window is not deleted: deleting vispy's GL
    # canvases after their context is gone crashes in C++, so main.py ends with os._exit.
    return app.exec()

