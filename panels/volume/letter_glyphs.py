"""The 3D view's orientation letters (R, A, S), their glyphs rendered off the GUI thread.

vispy's Text renders every glyph it meets as a signed-distance field on the CPU: freetype at
256 pt, a distance transform and a resampling in numpy, 15-40 ms a glyph, and it measures
'ÅÉÑŐjgpqy' and a space before the first string. :func:`prepare` does that work on a worker (the
studio's start-up warm-up); :class:`LetterFonts` then only copies the finished patches into the
canvas's own atlas. A glyph that was not prepared is rendered as vispy does.
"""

from __future__ import annotations

import threading

import numpy as np

#: the glyphs vispy's Text renders for the R/A/S letters (the ascender probes and a space first)
LETTER_GLYPHS = "ÅÉÑŐjgpqy RAS"

#: vispy's TextureFont renders at 256 pt with a 32 px distance spread and stores at 64 pt
_SIZE, _SPREAD, _RATIO = 256, 32, 4

_prepared: dict[tuple[str, bool, bool, str], tuple[dict, np.ndarray]] = {}
_freetype = threading.Lock()  # freetype faces are shared: one thread renders glyphs at a time


def prepare(chars: str = LETTER_GLYPHS, face: str = "OpenSans", bold: bool = True, italic: bool = False) -> None:
    """Render ``chars``' distance-field patches (any thread; the studio's warm-up calls it)."""
    from vispy.util.fonts import _load_glyph
    from vispy.visuals.text.text import SDFRendererCPU

    font = {"face": face, "bold": bold, "italic": italic, "size": _SIZE}
    renderer = SDFRendererCPU()
    glyphs: dict = {}
    for char in chars:
        if (face, bold, italic, char) in _prepared:
            continue
        with _freetype:
            _load_glyph(font, char, glyphs)
        bitmap = glyphs[char]["bitmap"]
        data = np.zeros((bitmap.shape[0] + 2 * _SPREAD, bitmap.shape[1] + 2 * _SPREAD), np.uint8)
        data[_SPREAD:-_SPREAD, _SPREAD:-_SPREAD] = bitmap
        width, height = data.shape[1] // _RATIO, data.shape[0] // _RATIO
        patch = np.zeros((height, width, 3), np.uint8)
        renderer.render_to_texture(data, patch, (0, 0), (width, height))
        _prepared[(face, bold, italic, char)] = (glyphs[char], patch)


def _prepared_font_class():
    """:class:`vispy.visuals.text.text.TextureFont` that takes prepared glyphs (vispy imported lazily)."""
    from vispy.visuals.text.text import TextureFont

    class PreparedFont(TextureFont):
        """A TextureFont whose glyphs come from :func:`prepare` when they are there."""

        def __init__(self, font, renderer):
            super().__init__(font, renderer)
            from vispy.gloo import Texture2D

            # vispy's Text assigns the font's spatial-filter kernel to its u_kernel sampler at every
            # draw: an array is uploaded again each frame (16×1024 RGBA floats; on software OpenGL the
            # upload also waits for the frames in flight), a texture is only bound
            if isinstance(self._kernel, np.ndarray):
                self._kernel = Texture2D(self._kernel)

        def _load_char(self, char):
            font = self._font
            entry = _prepared.get((font["face"], bool(font["bold"]), bool(font["italic"]), char))
            if entry is None or (self._spread, self.ratio, font["size"]) != (_SPREAD, _RATIO, _SIZE):
                with _freetype:
                    return super()._load_char(char)
            glyph, patch = entry
            height, width = patch.shape[:2]
            region = self._atlas.get_free_region(width + 2, height + 2)
            if region is None:
                raise RuntimeError("Cannot store glyph")
            x, y = region[0] + 1, region[1] + 1
            self._atlas[y:y + height, x:x + width] = patch
            rows, cols = self._atlas.shape[:2]
            self._glyphs[char] = dict(glyph, size=(width, height),
                                      texcoords=(x / cols, y / rows, (x + width) / cols, (y + height) / rows))
            return None

    return PreparedFont


def letter_fonts():
    """A vispy FontManager for one canvas's letters (one atlas, shared by its Text visuals; an atlas
    belongs to one GL context) that uses the prepared glyphs."""
    from vispy.visuals.text.text import FontManager

    prepared_font = _prepared_font_class()

    class LetterFonts(FontManager):
        def get_font(self, face, bold=False, italic=False):
            key = f"{face}-{bold}-{italic}"
            if key not in self._fonts:
                self._fonts[key] = prepared_font({"face": face, "bold": bold, "italic": italic}, self._renderer)
            return self._fonts[key]

    return LetterFonts(method="cpu")
