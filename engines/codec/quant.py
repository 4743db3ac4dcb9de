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
    "ijg_quality_match",
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


def ijg_scale(base: np.ndarray, quality: float, maximum: int = 255) -> np.ndarray:
    """IJG scaling: ``s = 5000/q`` (q < 50) else ``200 - 2q``; ``Q = clip((base s + 50) // 100, 1, maximum)``
    (``maximum`` 255 = libjpeg's ``force_baseline``, 32767 without it)."""
    q = float(np.clip(quality, 1, 100))
    s = 5000.0 / q if q < 50 else 200.0 - 2.0 * q
    scaled = np.floor((np.asarray(base, dtype=np.float64) * s + 50.0) / 100.0)
    return np.clip(scaled, 1, maximum).astype(np.int64)


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


def ijg_quality_match(luma_table, chroma_table=None) -> dict:
    """Which IJG quality made these tables (natural order, 8x8)?

    First the exact IJG tables (Annex K scaled by every integer quality 1..100, baseline clamp
    255 or 16-bit clamp 32767; the chroma table must match too when given): ``exact`` True and
    ``quality`` that integer. Otherwise the tables are not IJG-scaled Annex K tables: ``quality``
    is the integer quality whose luma table is closest in mean absolute log step ratio, with
    ``mean_ratio`` that ratio (1.0 = equal) and ``estimate`` the classic mean-scale estimate
    (:func:`estimate_ijg_quality`). ``note`` says which in words.
    """
    luma = np.asarray(luma_table, dtype=np.int64).reshape(8, 8)
    chroma = None if chroma_table is None else np.asarray(chroma_table, dtype=np.int64).reshape(8, 8)
    for maximum in (255, 32767):
        for q in range(1, 101):
            if np.array_equal(ijg_scale(JPEG_LUMA, q, maximum), luma) and (chroma is None or np.array_equal(ijg_scale(JPEG_CHROMA, q, maximum), chroma)):
                clamp = "" if maximum == 255 else " (16-bit tables)"
                return {"quality": q, "exact": True, "mean_ratio": 1.0, "estimate": float(q), "note": f"exact IJG tables, quality {q}{clamp}"}
    ratios = [float(np.mean(np.abs(np.log(luma / ijg_scale(JPEG_LUMA, q, 32767))))) for q in range(1, 101)]
    best = int(np.argmin(ratios)) + 1
    mean_ratio = float(np.exp(ratios[best - 1]))
    return {
        "quality": best,
        "exact": False,
        "mean_ratio": mean_ratio,
        "estimate": round(estimate_ijg_quality(luma), 2),
        "note": f"not IJG tables: closest IJG quality {best} (steps differ by a factor {mean_ratio:.2f} on average)",
    }
