"""The band planning and renderer detection of the progressive 3D view (no OpenGL needed)."""

from panels.volume.progressive_gl import MIN_BAND_ROWS, is_software_renderer, next_band


def test_band_rows_follow_the_measured_cost_per_row():
    assert next_band(300, 0.5, 40.0) == 80  # 40 ms at 0.5 ms a row
    assert next_band(50, 0.5, 40.0) == 50  # never more than what is left
    assert next_band(300, 100.0, 40.0) == MIN_BAND_ROWS  # a very slow row: the thinnest band
    assert next_band(300, 0.0, 40.0) == 300  # free rows (empty sky): the rest at once ...
    assert next_band(300, 0.0, 40.0, last_rows=20) == 40  # ... unless the last band was thin: twice it


def test_software_renderers_are_recognised():
    assert is_software_renderer("llvmpipe (LLVM 15.0.6, 256 bits)")
    assert is_software_renderer("Google SwiftShader")
    assert is_software_renderer("Mesa softpipe")
    assert not is_software_renderer("NVIDIA GeForce RTX 3080/PCIe/SSE2")
    assert not is_software_renderer("Apple M2")
    assert not is_software_renderer("")
