"""Quantization matrices (JPEG Annex K, IJG quality scaling, flat, resized to N), zig-zag scan
and IJG quality estimation from a luma table (codec.md §7)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "JPEG_CHROMA",
    "JPEG_LUMA",
    "PRESETS",
    "estimate_ijg_quality",
    "ijg_scale",
    "quant_matrix",
    "resize_matrix",
    "zigzag_order",
]

JPEG_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int64,
)
JPEG_CHROMA = np.full((8, 8), 99, dtype=np.int64)
JPEG_CHROMA[:4, :4] = [[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]]

#: preset name -> description (see :func:`quant_matrix`)
PRESETS = {
    "jpeg": "JPEG Annex K tables scaled by IJG quality",
    "flat": "the same step everywhere (step = IJG-scaled 16)",
}


def ijg_scale(base: np.ndarray, quality: float) -> np.ndarray:
    """IJG scaling: ``s = 5000/q`` (q < 50) else ``200 - 2q``; ``Q = clip((base s + 50) // 100, 1, 255)``."""
    q = float(np.clip(quality, 1, 100))
    s = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
    scaled = np.floor((np.asarray(base, dtype=np.float64) * s + 50.0) / 100.0)
    return np.clip(scaled, 1, 255).astype(np.int64)


def resize_matrix(m8: np.ndarray, n: int) -> np.ndarray:
    """Map an 8x8 table to ``(n, n)`` by frequency: entry (u, v) takes ``m8[8u//n, 8v//n]``.

    With an orthonormal transform the same step gives the same MSE at every N, so only the
    frequency axis is rescaled.
    """
    m8 = np.asarray(m8)
    if m8.shape[0] == n:
        return m8.copy()
    idx = np.minimum((np.arange(n) * m8.shape[0]) // n, m8.shape[0] - 1)
    return m8[np.ix_(idx, idx)].copy()


def quant_matrix(n: int = 8, quality: float = 75, preset: str = "jpeg", chroma: bool = False) -> np.ndarray:
    """The ``(n, n)`` int quantization matrix for ``preset`` (``jpeg`` or ``flat``) at IJG ``quality``."""
    if preset == "jpeg":
        base = JPEG_CHROMA if chroma else JPEG_LUMA
    elif preset == "flat":
        base = np.full((8, 8), 16)
    else:
        raise ValueError(f"unknown quantization preset {preset!r}; choose jpeg or flat")
    return resize_matrix(ijg_scale(base, quality), n)


@lru_cache(maxsize=16)
def zigzag_order(n: int) -> np.ndarray:
    """Flat indices (row-major) of an ``(n, n)`` block in JPEG zig-zag order, shape ``(n*n,)``."""
    idx = []
    for s in range(2 * n - 1):
        diag = [(i, s - i) for i in range(n) if 0 <= s - i < n]
        if s % 2 == 0:
            diag = diag[::-1]
        idx.extend(i * n + j for i, j in diag)
    out = np.array(idx, dtype=np.int64)
    out.setflags(write=False)
    return out


def estimate_ijg_quality(luma_table: np.ndarray | list) -> float:
    """Estimated IJG quality from a 64-entry luma table (natural order): ``s = mean(100 Q / base)``,
    ``q = (200 - s)/2`` if ``s <= 100`` else ``5000/s``."""
    q = np.asarray(luma_table, dtype=np.float64).reshape(8, 8)
    s = float(np.mean(100.0 * q / JPEG_LUMA))
    if s <= 0:
        return 100.0
    return (200.0 - s) / 2.0 if s <= 100 else 5000.0 / s
