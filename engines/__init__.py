"""Pure computation for Spectra Studio: torch / numpy only, never Qt.

One sub-package per panel (``generation``, ``render``, ``volume``, ``codec``) plus the
shared job protocol (:mod:`engines.jobs`) and the device helper (:mod:`engines.device`).
"""
