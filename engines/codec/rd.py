"""Rate-distortion sweeps (a cancellable job) and Bjøntegaard deltas (codec.md §9).

``bd_rate``/``bd_psnr`` follow VCEG-M33: work in ``log10(rate)``, fit each curve (cubic
least-squares polynomial, or PCHIP as in the JCT-VC/JVET spreadsheets), integrate over the
overlapping interval and turn the mean log-rate difference into a percentage.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

import numpy as np

from engines.jobs import Log, Preview, Progress

__all__ = [
    "DEFAULT_QUALITIES",
    "BD_METRICS",
    "bd_per_image",
    "bd_psnr",
    "bd_rate",
    "bd_table",
    "metric_value",
    "curves_from_rows",
    "measure_point",
    "parse_codec_spec",
    "rd_sweep_job",
    "rows_to_csv",
]

DEFAULT_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
_FIELDS = [
    "image", "codec", "label", "quality", "bytes", "bpp", "psnr_rgb", "psnr_y", "psnr_cb", "psnr_cr",
    "ssim", "ms_ssim", "encode_s", "decode_s",
]


def _integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float, method: str) -> float:
    order = np.argsort(x)
    x, y = np.asarray(x, float)[order], np.asarray(y, float)[order]
    if method == "cubic":
        p = np.polyint(np.polyfit(x, y, 3))
        return float(np.polyval(p, hi) - np.polyval(p, lo))
    if method == "pchip":
        from scipy.interpolate import PchipInterpolator

        if np.any(np.diff(x) <= 0):
            raise ValueError("PCHIP needs distinct distortion values on each curve")
        return float(PchipInterpolator(x, y).integrate(lo, hi))
    raise ValueError(f"method must be cubic or pchip (got {method})")


def _check(rate, dist, name):
    r = np.asarray(rate, float)
    d = np.asarray(dist, float)
    if r.shape != d.shape or r.ndim != 1 or r.size < 4:
        raise ValueError(f"{name}: need at least 4 (rate, distortion) points")
    if np.any(np.isinf(d)):
        raise ValueError(f"{name}: PSNR is infinite (lossless) at some quality; BD needs finite values")
    if np.any(r <= 0) or not np.all(np.isfinite(r)) or not np.all(np.isfinite(d)):
        raise ValueError(f"{name}: rates must be positive and all values finite")
    for values, what in ((d, "PSNR"), (r, "rate")):
        distinct = np.unique(np.round(values, 9)).size
        if distinct < 4:
            raise ValueError(f"{name}: need at least 4 distinct {what} values (got {distinct}); the quality ladder saturates")
    return r, d


def bd_rate(rate_anchor, psnr_anchor, rate_test, psnr_test, method: str = "cubic") -> float:
    """Bjøntegaard delta rate (percent; negative = the test needs fewer bits for equal PSNR)."""
    ra, da = _check(rate_anchor, psnr_anchor, "anchor")
    rt, dt = _check(rate_test, psnr_test, "test")
    lo, hi = max(da.min(), dt.min()), min(da.max(), dt.max())
    if hi <= lo:
        raise ValueError("the two curves do not overlap in PSNR")
    ia = _integral(da, np.log10(ra), lo, hi, method)
    it = _integral(dt, np.log10(rt), lo, hi, method)
    return float((10 ** ((it - ia) / (hi - lo)) - 1.0) * 100.0)


def bd_psnr(rate_anchor, psnr_anchor, rate_test, psnr_test, method: str = "cubic") -> float:
    """Bjøntegaard delta PSNR (dB; positive = the test is better at equal rate)."""
    ra, da = _check(rate_anchor, psnr_anchor, "anchor")
    rt, dt = _check(rate_test, psnr_test, "test")
    la, lt = np.log10(ra), np.log10(rt)
    lo, hi = max(la.min(), lt.min()), min(la.max(), lt.max())
    if hi <= lo:
        raise ValueError("the two curves do not overlap in rate")
    ia = _integral(la, da, lo, hi, method)
    it = _integral(lt, dt, lo, hi, method)
    return float((it - ia) / (hi - lo))


def parse_codec_spec(spec: str) -> dict:
    """``"jpeg"``, ``"jpeg:subsampling=4:4:4"``, ``"block:transform=rdct,N=8"`` -> dict with
    ``codec``, ``label`` and ``options``."""
    name, _, rest = spec.partition(":")
    options: dict = {}
    if rest:
        for part in rest.split(","):
            key, eq, value = part.partition("=")
            if not eq:
                raise ValueError(f"bad codec option {part!r} in {spec!r} (use key=value)")
            value = value.strip()
            if value.lower() in ("true", "false"):
                options[key.strip()] = value.lower() == "true"
            else:
                try:
                    options[key.strip()] = int(value)
                except ValueError:
                    options[key.strip()] = value
    from engines.codec.realcodecs import validate_options

    codec = name.strip().lower()
    try:
        validate_options(codec, options)
    except ValueError as exc:
        raise ValueError(f"{spec}: {exc}") from exc
    return {"codec": codec, "label": spec, "options": options}


def measure_point(image_name: str, image: np.ndarray, spec: dict, quality: float,
                  with_ms_ssim: bool = True) -> tuple[dict, bytes]:
    """Encode ``image`` with codec ``spec`` at ``quality``; returns (sweep row, bitstream)."""
    from engines.codec.metrics import MS_SSIM_MIN_SIZE, ms_ssim, psnr_channels, ssim
    from engines.codec.realcodecs import run_codec

    res = run_codec(image, spec["codec"], quality, **spec.get("options", {}))
    ps = psnr_channels(image, res.decoded)
    row = {
        "image": image_name,
        "codec": spec["codec"],
        "label": spec.get("label", spec["codec"]),
        "quality": quality,
        "bytes": len(res.data),
        "bpp": res.bpp,
        "psnr_rgb": ps["rgb"],
        "psnr_y": ps["Y"],
        "psnr_cb": ps["Cb"],
        "psnr_cr": ps["Cr"],
        "ssim": ssim(image, res.decoded) if min(image.shape[:2]) >= 11 else None,
        "ms_ssim": ms_ssim(image, res.decoded) if (with_ms_ssim and min(image.shape[:2]) >= MS_SSIM_MIN_SIZE) else None,
        "encode_s": res.encode_seconds,
        "decode_s": res.decode_seconds,
    }
    return row, res.data


def rd_sweep_job(
    images: Sequence[tuple[str, np.ndarray]],
    codecs: Sequence[str | dict],
    qualities: Iterable[float] = DEFAULT_QUALITIES,
    with_ms_ssim: bool = True,
):
    """Job: encode every image with every codec at every quality; yields Progress/Log/Preview,
    returns the list of row dicts (see ``_FIELDS``). Cancel by closing the generator."""
    from engines.codec.metrics import MS_SSIM_MIN_SIZE

    specs = [parse_codec_spec(c) if isinstance(c, str) else dict(c) for c in codecs]
    qualities = [float(q) for q in qualities]
    total = len(images) * len(specs) * len(qualities)
    if total == 0:
        raise ValueError("nothing to sweep: give at least one image, codec and quality")
    rows = []
    done = 0
    yield Progress(0, total, "starting")
    for image_name, image in images:
        small = min(image.shape[:2]) < MS_SSIM_MIN_SIZE
        if small and with_ms_ssim:
            yield Log(f"{image_name}: smaller than {MS_SSIM_MIN_SIZE} px, MS-SSIM skipped", "warning")
        for spec in specs:
            for q in qualities:
                row, _data = measure_point(image_name, image, spec, q, with_ms_ssim)
                rows.append(row)
                done += 1
                yield Progress(done, total, f"{spec['label']} q{q:g} on {image_name}")
                yield Preview(None, data={"row": row}, label=spec.get("label", spec["codec"]))
    return rows


#: distortion axes for curves and BD: row key -> label. SSIM and MS-SSIM are used in dB,
#: ``-10 log10(1 - value)`` (the CompressAI convention), so BD-"PSNR" on them is a dB delta too.
BD_METRICS = {
    "psnr_rgb": "PSNR RGB (dB)",
    "psnr_y": "PSNR Y (dB)",
    "ssim": "SSIM (dB, −10·log10(1−SSIM))",
    "ms_ssim": "MS-SSIM (dB, −10·log10(1−MS-SSIM))",
}


def metric_value(row: dict, metric: str) -> float | None:
    """The distortion of ``row`` on ``metric``'s axis (SSIM/MS-SSIM in dB), None if missing."""
    if metric not in BD_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(BD_METRICS)}")
    v = row.get(metric)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if metric in ("ssim", "ms_ssim"):
        return float(-10.0 * np.log10(max(1.0 - float(v), 1e-10)))
    return float(v)


def curves_from_rows(rows: list[dict], metric: str = "psnr_rgb", image: str | None = None) -> dict:
    """Per codec label: ``{"bpp": [...], "psnr": [...], "quality": [...]}`` averaged over images
    (or only ``image``) at each quality (mean bpp and mean distortion on ``metric``'s axis, see
    :data:`BD_METRICS`; the key stays ``psnr``), sorted by bpp. Qualities without a value on
    ``metric`` (MS-SSIM on small images) are left out."""
    curves: dict[str, dict] = {}
    for label in dict.fromkeys(r["label"] for r in rows):
        sel = [r for r in rows if r["label"] == label and (image is None or r["image"] == image)]
        qs, bpp, dist = [], [], []
        for q in sorted(set(r["quality"] for r in sel)):
            at = [r for r in sel if r["quality"] == q]
            values = [metric_value(r, metric) for r in at]
            if any(v is None for v in values):
                continue
            qs.append(q)
            bpp.append(float(np.mean([r["bpp"] for r in at])))
            dist.append(float(np.mean(values)))
        order = np.argsort(bpp)
        curves[label] = {
            "quality": [qs[i] for i in order],
            "bpp": [bpp[i] for i in order],
            "psnr": [dist[i] for i in order],
            "metric": metric,
        }
    return curves


def bd_per_image(rows: list[dict], metric: str = "psnr_rgb", anchor: str | None = None) -> list[dict]:
    """:func:`bd_table` of every image's own curves (each row gets an ``image`` key), image by image."""
    out = []
    for image in dict.fromkeys(r["image"] for r in rows):
        for row in bd_table(curves_from_rows(rows, metric, image), anchor):
            out.append({"image": image, **row})
    return out


def bd_table(curves: dict, anchor: str | None = None) -> list[dict]:
    """BD-rate and BD-PSNR (cubic and PCHIP) of every curve against ``anchor`` (default: the first).
    Failures (too few points, no overlap) become ``None`` with a ``note``."""
    if not curves:
        return []
    anchor = anchor or next(iter(curves))
    if anchor not in curves:
        raise ValueError(f"anchor {anchor!r} is not among the curves ({', '.join(curves)})")
    a = curves[anchor]
    out = []
    for label, c in curves.items():
        row = {"codec": label, "anchor": anchor}
        for method in ("cubic", "pchip"):
            try:
                row[f"bd_rate_{method}"] = bd_rate(a["bpp"], a["psnr"], c["bpp"], c["psnr"], method)
                row[f"bd_psnr_{method}"] = bd_psnr(a["bpp"], a["psnr"], c["bpp"], c["psnr"], method)
            except (ValueError, np.linalg.LinAlgError) as exc:
                row[f"bd_rate_{method}"] = None
                row[f"bd_psnr_{method}"] = None
                row["note"] = str(exc)
        out.append(row)
    return out


def rows_to_csv(rows: list[dict]) -> str:
    """CSV text of sweep rows (one line per image x codec x quality)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in _FIELDS})
    return buf.getvalue()


