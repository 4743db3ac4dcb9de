"""The signed difference ``B − A`` of two images, the one place it is computed (the compare view's
difference image, its zoomed pixel values and its hover read-out all call it), and the compare view's
difference picture (``|B − A|·gain`` or ``128 + (B − A)·gain``) as a function and as a banded job."""

from __future__ import annotations

import numpy as np

__all__ = ["difference_band", "difference_dtype", "difference_image", "difference_job", "signed_difference"]


def difference_dtype(dtype_a, dtype_b=None) -> np.dtype:
    """The dtype that holds ``B − A`` of samples of these dtypes without wrap-around: a signed
    integer twice as wide for integers (uint8 → int16, uint16 → int32, 32-bit → int64; 64-bit stays
    int64), the common float type for floats."""
    common = np.result_type(np.dtype(dtype_a), np.dtype(dtype_b if dtype_b is not None else dtype_a))
    if common.kind == "b":
        return np.dtype(np.int16)
    if common.kind in "ui":
        return np.dtype(f"int{min(2 * common.itemsize, 8) * 8}")
    if common.kind == "f":
        return common
    raise TypeError(f"no signed difference of {common} samples")


def signed_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``B − A`` sample by sample, in :func:`difference_dtype` (uint8 pairs give int16: 0 − 255 is
    −255, not 1). ``a`` and ``b`` have the same shape (whole images, crops or single pixels)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")
    return np.subtract(b, a, dtype=difference_dtype(a.dtype, b.dtype))


def difference_image(a: np.ndarray, b: np.ndarray, signed: bool, gain: int, rows: int = 256) -> np.ndarray:
    """The compare view's difference picture of two same-shape uint8 images: ``|B − A|·gain`` or
    ``128 + (B − A)·gain``, clipped to uint8 (B − A from :func:`signed_difference`). Worked in bands
    of ``rows`` rows, so the signed temporaries stay small whatever the image size."""
    from engines.jobs import run_job

    return run_job(difference_job(a, b, signed, gain, rows))


def difference_band(a: np.ndarray, b: np.ndarray, signed: bool, gain: int) -> np.ndarray:
    """One band of :func:`difference_image`: same-shape uint8 rows in, the uint8 difference picture out."""
    gain = int(np.clip(int(gain), 0, 255))  # from 255 on every non-zero difference saturates
    d = signed_difference(a, b)
    if not signed:
        np.abs(d, out=d)
    limit = 255 // max(gain, 1) + 1  # beyond it the result saturates anyway; |d·gain| ≤ 255 + gain fits d's dtype
    np.clip(d, -limit, limit, out=d)
    d *= gain
    if signed:
        d += 128
    return np.clip(d, 0, 255).astype(np.uint8)


def difference_job(a: np.ndarray, b: np.ndarray, signed: bool, gain: int, rows: int = 256):
    """Job (worker thread): :func:`difference_image` band by band, with progress and a cancel
    point between bands; returns the uint8 image."""
    from engines.jobs import Progress

    h, rows = a.shape[0], max(int(rows), 1)
    out = np.empty(a.shape, np.uint8)
    for y in range(0, h, rows):
        yield Progress(y, h, "difference image")
        out[y : y + rows] = difference_band(a[y : y + rows], b[y : y + rows], signed, gain)
    return out
