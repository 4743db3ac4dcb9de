"""What the OpenGL driver is: the 3D views draw differently on a CPU (software) rasterizer."""

from __future__ import annotations

#: words in GL_RENDERER strings of CPU rasterizers (Mesa llvmpipe / softpipe / swrast, SwiftShader,
#: Windows' GDI and Basic Render drivers)
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software", "swiftshader", "gdi generic",
                      "microsoft basic render")


def is_software_renderer(name: str | None) -> bool:
    """True for GL_RENDERER strings of CPU rasterizers (Mesa llvmpipe/softpipe, SwiftShader, GDI)."""
    name = (name or "").lower()
    return any(word in name for word in SOFTWARE_RENDERERS)
