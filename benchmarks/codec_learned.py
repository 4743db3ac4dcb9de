"""Learned codecs vs JPEG / WebP / AVIF / the block codec on photos they did not train on, with BD-rate.

    .venv/bin/python benchmarks/codec_learned.py [--models dct-default,hp-default] [--qualities 10,25,40,55,70,85,95]

Held-out images: the scikit-image samples astronaut and coffee (the shipped model trained on the
other bundled photos, see engines.codec.learned.TRAINING_SAMPLES). Every codec runs at every
quality in the same run; rates are real file sizes (the learned codec's .sslc bitstream
included). Prints the mean RD points, then BD-rate / BD-PSNR against JPEG 4:2:0 with optimized
Huffman tables, on the mean curve and per image (cubic and PCHIP).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.codec.learned import HELD_OUT_SAMPLES  # noqa: E402
from engines.codec.rd import bd_per_image, bd_table, curves_from_rows, rd_sweep_job  # noqa: E402
from engines.codec.realcodecs import available_codecs  # noqa: E402
from engines.jobs import run_job  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default="dct-default,hp-default", help="comma-separated learned models (names or .pt files)")
    ap.add_argument("--qualities", default="10,25,40,55,70,85,95")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from engines.codec.images import sample_image

    images = [(name, sample_image(name)) for name in HELD_OUT_SAMPLES]
    specs = [{"codec": "jpeg", "label": "jpeg 4:2:0 optimized", "options": {"subsampling": "4:2:0", "optimize": True}}]
    specs += [{"codec": c, "label": c, "options": {}} for c in ("webp", "avif") if c in available_codecs()]
    specs.append({"codec": "block", "label": "block dct-8 4:2:0", "options": {}})
    specs += [{"codec": "learned", "label": f"learned:{Path(m).stem}", "options": {"model": m}} for m in args.models.split(",")]
    qualities = [float(q) for q in args.qualities.split(",")]
    rows = run_job(rd_sweep_job(images, specs, qualities, with_ms_ssim=False))
    curves = curves_from_rows(rows, "psnr_rgb")
    print(f"held-out images: {', '.join(HELD_OUT_SAMPLES)}; mean over images at each quality (RGB PSNR)")
    for label, c in curves.items():
        pts = "  ".join(f"{b:.3f}/{p:.2f}" for b, p in zip(c["bpp"], c["psnr"]))
        print(f"  {label:26s} bpp/dB: {pts}")
    anchor = specs[0]["label"]

    def fmt(v, unit):
        return f"{v:+8.2f}{unit}" if v is not None else f"{'n/a':>9s}"

    print(f"\nBD against {anchor} (negative BD-rate = fewer bits for the same PSNR):")
    print(f"  {'codec':34s} {'BD-rate cubic':>14s} {'BD-rate PCHIP':>14s} {'BD-PSNR cubic':>14s}")
    for row in bd_table(curves, anchor):
        print(f"  {'mean curve: ' + row['codec']:34s} {fmt(row['bd_rate_cubic'], ' %'):>14s} {fmt(row['bd_rate_pchip'], ' %'):>14s} {fmt(row['bd_psnr_cubic'], ' dB'):>14s}")
    for row in bd_per_image(rows, "psnr_rgb", anchor):
        name = f"{row['image']}: {row['codec']}"
        print(f"  {name[:34]:34s} {fmt(row['bd_rate_cubic'], ' %'):>14s} {fmt(row['bd_rate_pchip'], ' %'):>14s} {fmt(row['bd_psnr_cubic'], ' dB'):>14s}")


if __name__ == "__main__":
    main()
