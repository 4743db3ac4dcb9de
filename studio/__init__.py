"""Spectra Studio application shell: main window, job queue, settings, drop routing, export, CLI.

Modules here that the command line uses (``export``, ``cli``, ``routing``, ``provenance``) do
not import Qt; the GUI modules do.
"""

__version__ = "0.1.0"
APP_NAME = "Spectra Studio"
ORG_NAME = "SpectraStudio"
