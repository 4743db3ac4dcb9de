"""Real codecs through Pillow (JPEG, WebP, AVIF, JPEG 2000), JPEG XL through ``imagecodecs``
when installed, our block codec under the same interface, and a JPEG inspector.

:func:`run_codec` takes an ``(H, W, 3)`` uint8 image, a codec name and a quality (1..100) and
returns the compressed bytes, the decoded image and timings. :data:`CODECS` lists them.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engines.codec.quant import ijg_quality_match

__all__ = ["CODECS", "CODEC_OPTIONS", "CodecResult", "available_codecs", "codec_extension", "inspect_jpeg", "jp2_ratio", "run_codec", "validate_options"]


@dataclass
class CodecResult:
    """Compressed ``data``, the ``decoded`` ``(H, W, 3)`` uint8 image, seconds and settings."""

    codec: str
    quality: float
    data: bytes
    decoded: np.ndarray
    encode_seconds: float
    decode_seconds: float
    options: dict = field(default_factory=dict)
    extra: object = None

    @property
    def bpp(self) -> float:
        """Bits per pixel of ``data``."""
        return 8.0 * len(self.data) / (self.decoded.shape[0] * self.decoded.shape[1])


def _pil_roundtrip(image: np.ndarray, fmt: str, **save) -> tuple[bytes, np.ndarray, float, float]:
    from PIL import Image

    pil = Image.fromarray(np.ascontiguousarray(image), "RGB")
    t0 = time.perf_counter()
    buf = io.BytesIO()
    pil.save(buf, format=fmt, **save)
    data = buf.getvalue()
    t1 = time.perf_counter()
    with Image.open(io.BytesIO(data)) as im:
        decoded = np.asarray(im.convert("RGB"))
    t2 = time.perf_counter()
    return data, decoded, t1 - t0, t2 - t1


_SUB = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def _jpeg(image, quality, subsampling="4:2:0", optimize=False, progressive=False, **_):
    return _pil_roundtrip(
        image, "JPEG", quality=int(round(quality)), subsampling=_SUB[subsampling], optimize=bool(optimize), progressive=bool(progressive)
    )


def _webp(image, quality, method=4, **_):
    return _pil_roundtrip(image, "WEBP", quality=int(round(quality)), lossless=False, method=int(method))


def _avif(image, quality, subsampling="4:2:0", speed=8, **_):
    return _pil_roundtrip(image, "AVIF", quality=int(round(quality)), subsampling=subsampling, speed=int(speed))


def jp2_ratio(quality: float) -> float:
    """Compression ratio used for JPEG 2000 at ``quality``: ``2^((100 - q) / 12)``
    (q 100 -> 1:1, 50 -> ~18:1, 10 -> ~181:1)."""
    return float(2.0 ** ((100.0 - float(quality)) / 12.0))


def _jp2(image, quality, **_):
    return _pil_roundtrip(image, "JPEG2000", quality_mode="rates", quality_layers=[jp2_ratio(quality)], irreversible=True)


def _jxl(image, quality, effort=3, **_):
    import imagecodecs

    t0 = time.perf_counter()
    data = bytes(imagecodecs.jpegxl_encode(np.ascontiguousarray(image), level=int(round(quality)), effort=int(effort)))
    t1 = time.perf_counter()
    decoded = np.asarray(imagecodecs.jpegxl_decode(data))[..., :3]
    return data, decoded, t1 - t0, time.perf_counter() - t1


def _block(image, quality, transform="dct", N=8, alphabet=1, subsampling="4:2:0", preset="jpeg", **_):
    from engines.codec.blockcodec import BlockCodecParams, decode, encode

    params = BlockCodecParams(transform=transform, N=int(N), alphabet=int(alphabet), quality=float(quality), subsampling=subsampling, preset=preset)
    t0 = time.perf_counter()
    enc = encode(image, params)
    t1 = time.perf_counter()
    dec = decode(enc.bitstream)
    t2 = time.perf_counter()
    return enc.bitstream, dec.image, t1 - t0, t2 - t1


def vq_codebook_size(quality: float) -> int:
    """Codebook size of the VQ token codec at ``quality``: ``round(2^(3 + 7 q / 100))`` (8 … 1024)."""
    return int(round(2.0 ** (3.0 + 7.0 * float(quality) / 100.0)))


def _vq(image, quality, patch=4, iters=6, **_):
    from engines.codec.tokens import vq_decode_image, vq_encode_image

    t0 = time.perf_counter()
    data, _rec = vq_encode_image(image, k=vq_codebook_size(quality), patch=int(patch), iters=int(iters))
    t1 = time.perf_counter()
    decoded = vq_decode_image(data)
    return data, decoded, t1 - t0, time.perf_counter() - t1


def _learned(image, quality, model="dct-default", **_):
    from engines.codec.learned import compress, decompress

    t0 = time.perf_counter()
    res = compress(image, model, quality)
    t1 = time.perf_counter()
    decoded = decompress(res["data"])
    return res["data"], decoded, t1 - t0, time.perf_counter() - t1


def _has_imagecodecs_jxl() -> bool:
    try:
        import imagecodecs

        return bool(getattr(imagecodecs, "JPEGXL", None) and imagecodecs.JPEGXL.available)
    except Exception:  # noqa: BLE001 - an optional library may fail to import in many ways
        return False


def _pil_has(feature: str) -> bool:
    try:
        from PIL import features

        return bool(features.check(feature))
    except Exception:  # noqa: BLE001 - an optional library may fail to import in many ways
        return False


#: name -> (function, file extension, availability check, description)
CODECS: dict[str, tuple[Callable, str, Callable[[], bool], str]] = {
    "jpeg": (_jpeg, ".jpg", lambda: _pil_has("jpg"), "JPEG (Pillow / libjpeg-turbo)"),
    "webp": (_webp, ".webp", lambda: _pil_has("webp"), "WebP lossy (Pillow / libwebp)"),
    "avif": (_avif, ".avif", lambda: _pil_has("avif"), "AVIF (Pillow / libavif + aom)"),
    "jpeg2000": (_jp2, ".jp2", lambda: _pil_has("jpg_2000"), "JPEG 2000 9/7 (Pillow / OpenJPEG), rate = 2^((100-q)/12):1"),
    "jpegxl": (_jxl, ".jxl", _has_imagecodecs_jxl, "JPEG XL (imagecodecs / libjxl), optional"),
    "block": (_block, ".ssbc", lambda: True, "Spectra block codec (any transform, range coder)"),
    "vq": (_vq, ".ssvq", lambda: True, "VQ tokens: k-means codebook of 4x4 RGB patches, range-coded indices"),
    "learned": (_learned, ".sslc", lambda: True, "Learned codec (default dct-default: JPEG-initialised DCT + GDN + hyperprior; or the Ballé hp-default), constriction; option model=NAME or a .pt file"),
}


_TRANSFORM_NAMES = ("dct", "wht", "sdct", "rdct", "bas2008", "jam-rdct", "minangle")

#: codec -> option -> allowed values (a tuple) or a type (bool) or ``(int, lo, hi)``
CODEC_OPTIONS: dict[str, dict] = {
    "jpeg": {"subsampling": tuple(_SUB), "optimize": bool, "progressive": bool},
    "webp": {"method": (int, 0, 6)},
    "avif": {"subsampling": ("4:4:4", "4:2:2", "4:2:0"), "speed": (int, 0, 10)},
    "jpeg2000": {},
    "jpegxl": {"effort": (int, 1, 9)},
    "block": {
        "transform": _TRANSFORM_NAMES,
        "N": (4, 8, 16, 32, 64),
        "alphabet": (1, 2, 3),
        "subsampling": ("4:4:4", "4:2:0"),
        "preset": ("jpeg", "flat"),
    },
    "vq": {"patch": (int, 2, 16), "iters": (int, 1, 50)},
    "learned": {"model": str},
}


def validate_options(codec: str, options: dict) -> dict:
    """Check ``options`` of ``codec`` against :data:`CODEC_OPTIONS`: an unknown option or a value
    out of range raises ValueError naming the allowed ones. Returns the options unchanged."""
    allowed = CODEC_OPTIONS.get(codec)
    if allowed is None:
        raise ValueError(f"unknown codec {codec!r}; choose from {', '.join(CODECS)}")
    for key, value in options.items():
        if key not in allowed:
            names = ", ".join(allowed) or "none"
            raise ValueError(f"unknown option {key!r} for codec {codec} (options: {names})")
        rule = allowed[key]
        if rule is bool:
            ok = isinstance(value, (bool, np.bool_))
            want = "true or false"
        elif rule is str:
            ok = isinstance(value, str) and bool(value)
            want = "a name"
        elif isinstance(rule, tuple) and rule and rule[0] is int:
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and rule[1] <= value <= rule[2]
            want = f"an integer {rule[1]}..{rule[2]}"
        else:
            ok = value in rule
            want = "one of " + ", ".join(str(v) for v in rule)
        if not ok:
            raise ValueError(f"bad value {value!r} for {codec} option {key!r} (want {want})")
    return options


def available_codecs() -> list[str]:
    """Codec names usable on this machine."""
    return [name for name, (_, _, ok, _) in CODECS.items() if ok()]


def codec_extension(name: str) -> str:
    """File extension of codec ``name``'s output."""
    return CODECS[name][1]


def run_codec(image: np.ndarray, codec: str, quality: float, **options) -> CodecResult:
    """Encode ``image`` (``(H, W, 3)`` uint8) with ``codec`` at ``quality`` (1..100) and decode it."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; choose from {', '.join(CODECS)}")
    validate_options(codec, options)
    fn, _, ok, _ = CODECS[codec]
    if not ok():
        hint = " (pip install imagecodecs)" if codec == "jpegxl" else ""
        raise ValueError(f"codec {codec} is not available on this machine{hint}")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
    q = float(quality)
    if not (1 <= q <= 100):
        raise ValueError(f"quality must be between 1 and 100 (got {quality})")
    data, decoded, te, td = fn(image, q, **options)
    return CodecResult(codec, q, data, np.ascontiguousarray(decoded[..., :3]), te, td, dict(options))


# -- JPEG inspector ----------------------------------------------------------------------
def inspect_jpeg(source) -> dict:
    """Inspect a JPEG (path or bytes) from its marker segments: every quantization table
    (natural order, 8x8), chroma subsampling, IJG quality (exact table match first, else the
    closest quality and a note that the tables are not IJG), progressive flag, restart
    interval, EOI, scans, Huffman table summary, markers. Raises ValueError (``JpegError``) if it
    is not a readable JPEG."""
    from engines.codec.jpeg_internals import sampling_name
    from engines.codec.jpeg_parse import parse_jpeg

    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        with open(source, "rb") as handle:
            data = handle.read(2)
            if data != b"\xff\xd8":
                raise ValueError("not a JPEG file (no SOI marker)")
            data += handle.read()
    st = parse_jpeg(data)
    tables = {int(k): np.asarray(v, dtype=int).tolist() for k, v in sorted(st.qtables.items())}
    comps = st.components
    luma = st.qtables[comps[0].tq]
    chroma = st.qtables[comps[1].tq] if len(comps) == 3 else None
    match = ijg_quality_match(luma, chroma)
    mode = {1: "L", 3: "RGB", 4: "CMYK"}[len(comps)]
    return {
        "width": st.width,
        "height": st.height,
        "mode": mode,
        "bytes": len(data),
        "bpp": 8.0 * len(data) / (st.width * st.height),
        "process": st.process,
        "precision": st.precision,
        "subsampling": sampling_name(st),
        "components": [[c.cid, c.h, c.v, c.tq] for c in comps],
        "quantization": tables,
        "quantization_precision": {int(k): v for k, v in st.qtable_precision.items()},
        "estimated_quality": match["quality"] if match["exact"] else match["estimate"],
        "ijg_tables": match["exact"],
        "quality_note": match["note"],
        "progressive": st.progressive,
        "scans": len(st.scans),
        "restart_interval": st.restart_interval,
        "eoi": st.has_eoi,
        "huffman_tables": [{"class": h.cls, "id": h.tid, "code_length_counts": h.counts, "symbols": len(h.symbols)} for h in st.huffman],
        "markers": [s["marker"] for s in st.segments],
    }
