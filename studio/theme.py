"""Light and dark themes (Fusion style with a palette)."""

from __future__ import annotations

from qtpy.QtGui import QColor, QPalette
from qtpy.QtWidgets import QApplication


def apply_theme(app: QApplication, theme: str) -> None:
    """Apply ``"light"`` or ``"dark"`` to the whole application."""
    app.setStyle("Fusion")
    if theme != "dark":
        app.setPalette(app.style().standardPalette())
        return
    palette = QPalette()
    role = QPalette.ColorRole
    colours = {
        role.Window: "#2b2d31",
        role.WindowText: "#e6e6e6",
        role.Base: "#1f2023",
        role.AlternateBase: "#2b2d31",
        role.ToolTipBase: "#3a3d42",
        role.ToolTipText: "#e6e6e6",
        role.Text: "#e6e6e6",
        role.Button: "#35373c",
        role.ButtonText: "#e6e6e6",
        role.BrightText: "#ff5555",
        role.Link: "#5aa0ff",
        role.Highlight: "#3d7be0",
        role.HighlightedText: "#ffffff",
        role.PlaceholderText: "#8a8d93",
    }
    for key, value in colours.items():
        palette.setColor(key, QColor(value))
    for key in (role.Text, role.ButtonText, role.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, key, QColor("#7a7d83"))
    app.setPalette(palette)
