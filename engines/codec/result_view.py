"""What the Codec panel shows of an encoded image, prepared in one call that a job runs off the GUI
thread: the displayed picture of a channel, the bits heat map of that channel's blocks with its
peak, and the costliest luma block with its details.

Works for the block codec's :class:`~engines.codec.blockcodec.EncodeResult` and for an opened
JPEG's :class:`~engines.codec.jpeg_internals.JpegInternals` alike (both have ``planes`` with
per-block ``bits``, ``params.N`` and a ``bits_map()``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.codec.analysis import block_details, channel_view

__all__ = ["CHANNEL_PLANES", "ResultView", "costliest_block", "overlay_bits", "plane_scale", "result_view"]

#: the plane whose blocks a channel's heat map and clicks use (RGB: luma blocks, all planes' bits)
CHANNEL_PLANES = {"RGB": 0, "Y": 0, "Cb": 1, "Cr": 2}


@dataclass
class ResultView:
    """One encoded image as the panel shows it for ``channel``.

    ``image``: the picture (``channel_view`` of the decoded or the original image, uint8);
    ``bits``: ``(nby, nbx)`` bits per block of that channel (RGB: luma blocks with the chroma bits
    of the same area added), None when the source has no blocks of that channel (a grayscale JPEG's
    Cb); ``heat``: ``bits`` as float32 (what the heat-map item draws); ``block``: image pixels per
    block ``(height, width)``; ``peak``: the largest ``bits`` (0 without blocks); ``costliest``:
    ``(0, by, bx)`` of the luma block with the most bits (the first one on ties) and ``details`` its
    :func:`~engines.codec.analysis.block_details` (None without luma blocks)."""

    channel: str
    image: np.ndarray
    bits: np.ndarray | None
    heat: np.ndarray | None
    block: tuple[int, int]
    peak: float
    costliest: tuple[int, int, int] | None
    details: dict | None


def plane_scale(source, plane: int) -> tuple[int, int]:
    """Image pixels per pixel of ``plane`` ``(sy, sx)`` of an encode result or a JPEG's blocks."""
    if hasattr(source, "plane_scale"):
        return source.plane_scale(plane)
    return (2, 2) if (plane and source.params.subsampling == "4:2:0") else (1, 1)


def overlay_bits(source, channel: str) -> tuple[np.ndarray, tuple[int, int]] | None:
    """``(bits per block, (block height, block width) in image pixels)`` drawn as the heat map of
    ``channel`` (``RGB``, ``Y``, ``Cb``, ``Cr``); None when ``source`` has no such plane."""
    n = source.params.N
    plane = CHANNEL_PLANES[channel]
    if plane >= len(source.planes):  # grayscale JPEG: no chroma blocks
        return None
    if channel == "RGB":
        return source.bits_map(), (n, n)
    sy, sx = plane_scale(source, plane)  # a subsampled chroma block covers more image pixels
    return source.planes[plane].bits, (n * sy, n * sx)


def costliest_block(source) -> tuple[int, int, int] | None:
    """``(0, by, bx)``: the luma block with the most bits (the first in row order on ties)."""
    bits = source.planes[0].bits
    if not bits.size:
        return None
    by, bx = np.unravel_index(int(np.argmax(bits)), bits.shape)
    return 0, int(by), int(bx)


def result_view(source, picture: np.ndarray, channel: str) -> ResultView:
    """Everything the panel shows for ``channel`` of ``picture`` (``(H, W, 3)`` uint8: the decoded
    or the original image) and of the blocks of ``source`` (an encode result or a JPEG's blocks;
    None: no blocks yet). At 16 Mpx a luma or chroma picture costs ~0.4 s, the RGB bits map a few
    ms: call it from a job."""
    image = channel_view(picture, channel)
    if source is None:
        return ResultView(channel, image, None, None, (8, 8), 0.0, None, None)
    overlay = overlay_bits(source, channel)
    bits, block = overlay if overlay is not None else (None, (source.params.N, source.params.N))
    heat = None if bits is None else bits.astype(np.float32)
    peak = float(bits.max()) if bits is not None and bits.size else 0.0
    costliest = costliest_block(source)
    details = None if costliest is None else block_details(source, *costliest)
    return ResultView(channel, image, bits, heat, block, peak, costliest, details)
