"""Image quality metrics: PSNR (RGB and per Y/Cb/Cr channel), SSIM, MS-SSIM, bpp.

Images are ``(H, W, 3)`` uint8 (or float 0..255). SSIM/MS-SSIM use ``pytorch_msssim``
(Gaussian window 11, sigma 1.5) on RGB with ``data_range=255``.
"""

from __future__ import annotations

import math

import numpy as np

from engines.codec.color import rgb_to_ycbcr

__all__ = ["MS_SSIM_MIN_SIZE", "all_metrics", "bpp", "ms_ssim", "psnr", "psnr_channels", "ssim"]

#: MS-SSIM with 5 scales and an 11-tap window needs min(H, W) > 160
MS_SSIM_MIN_SIZE = 161


def _mse_to_psnr(mse: float, peak: float = 255.0) -> float:
    return float("inf") if mse <= 0 else 10.0 * math.log10(peak * peak / mse)


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} vs {b.shape}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB over all samples (MSE averaged over pixels and channels)."""
    a, b = _check_pair(a, b)
    return _mse_to_psnr(float(np.mean((a - b) ** 2)), peak)


def psnr_channels(a: np.ndarray, b: np.ndarray) -> dict:
    """PSNR (dB) of RGB together, of R, G, B, and of Y, Cb, Cr (JFIF full range); plus
    ``yuv`` = (6 Y + Cb + Cr) / 8."""
    a, b = _check_pair(a, b)
    out = {"rgb": psnr(a, b)}
    for i, name in enumerate("rgb"):
        out[name.upper()] = psnr(a[..., i], b[..., i])
    ya, yb = rgb_to_ycbcr(a), rgb_to_ycbcr(b)
    for i, name in enumerate(("Y", "Cb", "Cr")):
        out[name] = psnr(ya[..., i], yb[..., i])
    finite = [out[k] for k in ("Y", "Cb", "Cr")]
    out["yuv"] = (6 * finite[0] + finite[1] + finite[2]) / 8.0
    return out


def _torch_pair(a: np.ndarray, b: np.ndarray):
    import torch

    ta = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)[None])).float()
    tb = torch.from_numpy(np.ascontiguousarray(b.transpose(2, 0, 1)[None])).float()
    return ta, tb


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over RGB (window 11, sigma 1.5, K = 0.01/0.03); needs min side >= 11."""
    a, b = _check_pair(a, b)
    if min(a.shape[:2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels (got {a.shape[1]}x{a.shape[0]})")
    from pytorch_msssim import ssim as _ssim

    ta, tb = _torch_pair(a, b)
    return float(_ssim(ta, tb, data_range=255.0, size_average=True))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM over RGB (5 scales). Raises ValueError with a clear message when
    ``min(H, W) < 161`` (the 11-tap window at the coarsest of 5 scales does not fit)."""
    a, b = _check_pair(a, b)
    if min(a.shape[:2]) < MS_SSIM_MIN_SIZE:
        raise ValueError(
            f"MS-SSIM needs images of at least {MS_SSIM_MIN_SIZE}x{MS_SSIM_MIN_SIZE} pixels "
            f"(got {a.shape[1]}x{a.shape[0]}); use SSIM for small crops"
        )
    from pytorch_msssim import ms_ssim as _ms

    ta, tb = _torch_pair(a, b)
    return float(_ms(ta, tb, data_range=255.0, size_average=True))


def bpp(num_bytes: int, shape: tuple) -> float:
    """Bits per pixel of ``num_bytes`` for an image of ``shape`` (H, W, ...)."""
    return 8.0 * num_bytes / (shape[0] * shape[1])


def all_metrics(reference: np.ndarray, decoded: np.ndarray, num_bytes: int | None = None) -> dict:
    """PSNR per channel, SSIM, MS-SSIM (None + ``ms_ssim_note`` if too small) and bpp."""
    out = {"psnr": psnr_channels(reference, decoded)}
    try:
        out["ssim"] = ssim(reference, decoded)
    except ValueError as exc:
        out["ssim"] = None
        out["ssim_note"] = str(exc)
    try:
        out["ms_ssim"] = ms_ssim(reference, decoded)
    except ValueError as exc:
        out["ms_ssim"] = None
        out["ms_ssim_note"] = str(exc)
    if num_bytes is not None:
        out["bytes"] = int(num_bytes)
        out["bpp"] = bpp(num_bytes, np.shape(reference))
    return out
