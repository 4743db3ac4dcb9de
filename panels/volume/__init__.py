"""The Volume panel package (exports :class:`VolumePanel`)."""

from panels.volume.panel import VolumePanel

__all__ = ["VolumePanel"]
