"""The signed difference ``B − A`` of two images, the one place it is computed (the compare view's
difference image, its zoomed pixel values and its hover read-out all call it)."""

from __future__ import annotations

import numpy as np

__all__ = ["difference_dtype", "signed_difference"]


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
