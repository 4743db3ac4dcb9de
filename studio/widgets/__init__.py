"""Widgets of the studio shell (job table, log, notifications, settings dialog)."""
