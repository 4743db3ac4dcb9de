"""Job generators used by the Codec panel (each yields Progress and returns its result)."""

from __future__ import annotations

import importlib

import numpy as np

from engines.jobs import Progress, wait_in_thread

__all__ = ["compare_job", "encode_job", "fom_job"]


def encode_job(image: np.ndarray, params):
    """Encode with the block codec, decode the bitstream back and check it is bit-exact.
    Returns the :class:`~engines.codec.blockcodec.EncodeResult` (``stats["bit_exact"]`` set)."""
    from engines.codec.metrics import psnr_channels

    # the codec's first import and one encode/decode call cannot be interrupted: they run on a helper
    # thread so a cancel stops the job at once (an abandoned call finishes in the background)
    start = Progress(0, 3, "encoding")
    blockcodec = yield from wait_in_thread(importlib.import_module, "engines.codec.blockcodec", announce=start)
    result = yield from wait_in_thread(blockcodec.encode, image, params, event=start)
    decoded = yield from wait_in_thread(blockcodec.decode, result.bitstream, announce=Progress(1, 3, "decoding"))
    result.stats["bit_exact"] = bool(np.array_equal(decoded.image, result.reconstruction))
    yield Progress(2, 3, "metrics")
    result.stats["psnr"] = psnr_channels(image, result.reconstruction)
    yield Progress(3, 3, "done")
    return result


def fom_job(n: int, alphabets=(1, 2, 3), rho: float = 0.95):
    """Figures of merit of every transform at ``n`` plus basis images; returns the rows."""
    from engines.codec.fom import fom_table

    rows = yield from wait_in_thread(fom_table, n, tuple(alphabets), rho,  # one call: helper thread
                                     announce=Progress(0, 1, f"figures of merit, N = {n}"))
    yield Progress(1, 1, "done")
    return rows


def _metrics(a: np.ndarray, b: np.ndarray) -> tuple:
    """``(PSNR per channel, SSIM or None below 11 px)`` of ``b`` against ``a``."""
    from engines.codec.metrics import psnr_channels, ssim

    return psnr_channels(a, b), ssim(a, b) if min(a.shape[:2]) >= 11 else None


def compare_job(image: np.ndarray, codec: str, quality: float, options: dict | None = None):
    """Encode ``image`` with a real codec (or the block codec); returns a dict with ``decoded``,
    ``bytes``, ``bpp``, ``psnr`` (per channel), ``ssim`` and the codec settings."""
    from engines.codec.realcodecs import run_codec

    # one codec call and the SSIM of a large image cannot be interrupted: helper thread (a cancel stops at once)
    res = yield from wait_in_thread(run_codec, image, codec, quality, announce=Progress(0, 2, f"{codec} q{quality:g}"),
                                    **(options or {}))
    psnr, similarity = yield from wait_in_thread(_metrics, image, res.decoded, announce=Progress(1, 2, "metrics"))
    out = {
        "codec": codec,
        "quality": quality,
        "decoded": res.decoded,
        "bytes": len(res.data),
        "bpp": res.bpp,
        "psnr": psnr,
        "ssim": similarity,
        "data": res.data,
    }
    yield Progress(2, 2, "done")
    return out
