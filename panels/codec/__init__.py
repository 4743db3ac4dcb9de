"""The Codec panel (see :mod:`panels.codec.panel`)."""

from panels.codec.panel import CodecPanel

__all__ = ["CodecPanel"]
