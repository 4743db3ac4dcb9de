"""The 3D view's logic that needs no OpenGL: band planning, renderer detection, the 16-bit texture."""

import numpy as np
import pytest

from panels.opengl_info import is_software_renderer
from panels.volume.progressive_gl import BAND_GROWTH, MIN_BAND_ROWS, ProgressiveFrames, next_band
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


class _Canvas:
    """What ProgressiveFrames reads of a canvas when its drawing is simulated."""

    physical_size = (400, 200)
    native = None


def _simulated_frames(full_ms: float, fixed_share: float, budget_ms: float = 25.0) -> tuple:
    """ProgressiveFrames whose draws cost what a ray caster costs: a coarse frame pays
    ``fixed_share`` of a full frame whatever its factor; a band pays its share of the rows."""
    frames = ProgressiveFrames(_Canvas(), budget_ms=budget_ms)
    frames.software = True
    spent = []

    def timed(_draw, factor, scissor, divisor=1):
        if scissor is not None:
            ms = full_ms * scissor[3] / 200
        else:
            ms = full_ms * (fixed_share + (1 - fixed_share) / factor) / divisor**2
        spent.append(ms)
        return factor, ms

    frames._timed = timed
    return frames, spent


def test_a_coarse_frame_fits_the_budget_although_coarse_frames_are_not_factor_times_cheaper(qapp):
    """On llvmpipe a 4x coarser frame costs 40 % of a full one, not 25 %: the factor is chosen from
    what coarse frames measured, so after the first refinement every new frame fits the budget
    (here without the half-size coarse frames of software OpenGL)."""
    frames, spent = _simulated_frames(full_ms=100.0, fixed_share=0.2)
    frames.software = False
    target = (0, (400, 200))
    frames._draw_frame(None, target)  # the first frame is a full one (its cost unknown): 100 ms, learnt
    assert frames.last_factor == 1 and frames.exact and frames.full_ms == 100.0
    for _ in range(4):  # a change, its coarse frame and its bands, four times
        frames.changed()
        frames._draw_frame(None, target)
        assert spent[-1] <= 25.0 + 1e-9, (frames.last_factor, spent[-1])
        while frames._rows_left > 0:
            frames._draw_band(None)
            assert spent[-1] <= 2 * 25.0  # bands follow the measured cost per row
        assert frames.exact
    assert frames.full_ms == 100.0 and frames.last_factor == 16
    assert frames.frame_ms(16) == 25.0  # measured
    assert frames.frame_ms(4) == 100.0 * (0.2 + 0.8 / 4)  # estimated


def test_half_size_coarse_frames_on_software_gl_allow_a_finer_factor(qapp):
    """On software OpenGL a coarse frame has a quarter of the pixels: the estimate divides by that,
    so a finer sampling factor fits the budget, and what is measured keeps every frame within it."""
    frames, spent = _simulated_frames(full_ms=100.0, fixed_share=0.2)
    target = (0, (400, 200))
    for _ in range(3):
        frames.changed()
        frames._draw_frame(None, target)
        assert spent[-1] <= 25.0 + 1e-9 and frames.last_divisor == 2
        while frames._rows_left > 0:
            frames._draw_band(None)
    # estimated 100 * (0.2 + 0.8 / 3) / 4 = 11.7 ms, within half the budget; 2 would be 15
    assert frames.full_ms == 100.0 and frames.last_factor == 3
    assert frames.frame_ms(3) == pytest.approx(35.0 / 3) and frames.frame_layout() == (2, 200)


def test_a_fast_renderer_draws_full_frames_and_a_middling_one_the_smallest_fitting_factor(qapp):
    frames, spent = _simulated_frames(full_ms=5.0, fixed_share=0.2)
    frames.software = False
    frames._draw_frame(None, (0, (400, 200)))
    assert frames.last_factor == 1 and frames.exact and frames.factor_for_frame() == 1
    frames, spent = _simulated_frames(full_ms=60.0, fixed_share=0.1)
    frames.software = False
    frames.full_ms = 60.0  # learnt from bands; no coarse frame measured yet: the estimate decides
    assert frames.factor_for_frame() == 16  # no estimate is within half the budget: 60 * (0.2 + 0.8 / 16) = 15
    frames.coarse_ms[3] = 20.0  # measured cheaper than estimated
    assert frames.factor_for_frame() == 3
    frames.coarse_ms = {factor: 1000.0 for factor in range(2, 17)}  # nothing fits: the coarsest
    assert frames.factor_for_frame() == 16
    frames.scale_cost(0.5)  # e.g. a step twice as long
    assert frames.full_ms == 30.0 and frames.coarse_ms[16] == 500.0
    frames.forget_cost()
    assert frames.full_ms is None and frames.coarse_ms == {}
    assert frames.factor_for_frame() == 1  # unknown cost on a GPU: a full frame first ...
    frames.software = True
    assert frames.factor_for_frame() == 16  # ... on software OpenGL the cheapest preview first
    frames.full_ms = 60.0
    assert frames.factor_for_frame() == 2  # 60 * (0.2 + 0.8 / 2) / 4 = 9 ms: half-size coarse frames
