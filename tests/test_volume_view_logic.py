"""The 3D view's logic that needs no OpenGL: band planning, renderer detection, the 16-bit texture."""

import numpy as np

from panels.opengl_info import is_software_renderer
from panels.volume.progressive_gl import BAND_GROWTH, MIN_BAND_ROWS, next_band
from panels.volume.view3d import scalar_texture


def test_band_rows_follow_the_measured_cost_per_row():
    assert next_band(300, 0.5, 40.0) == 80  # 40 ms at 0.5 ms a row
    assert next_band(50, 0.5, 40.0) == 50  # never more than what is left
    assert next_band(300, 100.0, 40.0) == MIN_BAND_ROWS  # a very slow row: the thinnest band
    assert next_band(300, 0.0, 40.0) == 300  # free rows (empty sky): the rest at once ...
    assert next_band(300, 0.0, 40.0, last_rows=20) == int(20 * BAND_GROWTH)  # ... unless the last band was thin


def test_software_renderers_are_recognised():
    assert is_software_renderer("llvmpipe (LLVM 15.0.6, 256 bits)")
    assert is_software_renderer("Google SwiftShader")
    assert is_software_renderer("Mesa softpipe")
    assert not is_software_renderer("NVIDIA GeForce RTX 3080/PCIe/SSE2")
    assert not is_software_renderer("Apple M2")
    assert not is_software_renderer("")


def test_the_16_bit_texture_spans_the_value_range_to_within_half_a_level():
    values = np.array([-2000.0, -1000.0, -999.99, 0.0, 1000.0, 3000.0, np.float32(1e-3)], np.float32)
    texture = scalar_texture(values, (-1000.0, 1000.0))
    assert texture.dtype == np.uint16
    assert texture.tolist()[:3] == [0, 0, 0] and texture[4] == 65535 and texture[5] == 65535  # clipped ends
    assert texture[3] in (32767, 32768)
    exact = (values[[2, 6]] + 1000.0) / 2000.0 * 65535.0
    assert np.all(np.abs(texture[[2, 6]] - exact) <= 0.5)
