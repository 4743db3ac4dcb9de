"""What the OpenGL driver is: the 3D views draw differently on a CPU (software) rasterizer."""

from __future__ import annotations

#: words in GL_RENDERER strings of CPU rasterizers (Mesa llvmpipe / softpipe / swrast, SwiftShader,
#: Windows' GDI and Basic Render drivers)
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software", "swiftshader", "gdi generic",
                      "microsoft basic render")


def renderer_name() -> str:
    """GL_RENDERER of the current OpenGL context ("" without one: treated as hardware)."""
    try:
        from vispy.gloo import gl

        return str(gl.glGetParameter(gl.GL_RENDERER))
    except Exception:  # noqa: BLE001 - no context or no PyOpenGL
        return ""


def is_software_renderer(name: str | None) -> bool:
    """True for GL_RENDERER strings of CPU rasterizers (Mesa llvmpipe/softpipe, SwiftShader, GDI)."""
    name = (name or "").lower()
    return any(word in name for word in SOFTWARE_RENDERERS)
