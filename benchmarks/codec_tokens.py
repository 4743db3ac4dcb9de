"""Token quantizers compared at equal bits per token, same tokenizer, same training run length.

    .venv/bin/python benchmarks/codec_tokens.py [--bits 10] [--steps 400]

A tiny conv autoencoder (one token per 4x4 pixels) is trained on 64x64 crops of the bundled
training photos with each quantizer (VQ straight-through, VQ rotation trick, FSQ, BSQ, IBQ), then
evaluated on the held-out photos (astronaut, coffee): reconstruction PSNR, codebook utilisation,
perplexity, dead codes, and the tokens' real size through the range coder (bits per token).
VQ, VQ + rotation and IBQ restart unused codes every 20 steps (up to 80 % of the run).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.codec.learned import HELD_OUT_SAMPLES, default_training_images  # noqa: E402
from engines.codec.token_lab import QUANTIZERS, train_tokenizer_job  # noqa: E402
from engines.jobs import run_job  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bits", type=int, default=10)
    ap.add_argument("--steps", type=int, default=400)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    from engines.codec.images import sample_image

    train = default_training_images()
    held = [sample_image(n) for n in HELD_OUT_SAMPLES]
    print(f"{args.bits} bits per token (codebook 2^{args.bits}), {args.steps} steps, batch 8 of 64x64; held-out: {', '.join(HELD_OUT_SAMPLES)}")
    print(f"{'quantizer':12s} {'PSNR dB':>8s} {'SSIM':>6s} {'util.':>7s} {'perplexity':>11s} {'dead':>6s} {'H bits':>7s} {'coded bits/tok':>15s} {'train s':>8s}")
    for q in QUANTIZERS:
        t0 = time.perf_counter()
        _, out = run_job(train_tokenizer_job(train, q, args.bits, steps=args.steps, eval_images=held, eval_every=args.steps))
        s = out["final"]
        print(f"{q:12s} {s['psnr']:8.2f} {s['ssim']:6.3f} {s['utilisation']:7.3f} {s['perplexity']:11.1f} {s['dead_codes']:6d} {s['entropy_bits']:7.2f} "
              f"{s['coded_bits_per_token']:15.2f} {time.perf_counter() - t0:8.1f}")


if __name__ == "__main__":
    main()
