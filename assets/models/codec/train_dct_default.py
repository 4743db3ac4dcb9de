"""Training script of the shipped learned-codec model ``dct-default.pt`` (kind ``dct``: a codec
that starts as JPEG — YCbCr, 8x8 DCT, per-coefficient steps, GDN — and learns, with a mean-scale
hyperprior and a refinement CNN; see engines/codec/learned_dct.py).

One model for every rate: each 128x128 crop draws a step multiplier m log-uniformly in [0.25, 8]
and L = mean(lambda / m^2 * 255^2 * MSE + bpp), lambda = 0.1. N = 32 hyperprior channels, batch 8,
Adam (colour and DCT bases at lr/100, log steps at 10 lr), one CPU thread, on the bundled
scikit-image photos of engines.codec.learned.TRAINING_SAMPLES (astronaut and coffee are held out
for benchmarks/codec_learned.py). The shipped file was made in three stages on a busy 2-core machine
(~75 min in all); stage 1 was stopped after its step-1200 checkpoint for time, stages 2 and 3
lower the learning rate:

    .venv/bin/python assets/models/codec/train_dct_default.py --steps 2600 --snapshot-every 400 --out /tmp/dct2.pt
    # (stopped after /tmp/dct2.step1200.pt was written)
    .venv/bin/python assets/models/codec/train_dct_default.py --init /tmp/dct2.step1200.pt --lr 2e-4 \
        --decay-last 0 --seed 1 --steps 200 --out /tmp/dct3.pt
    .venv/bin/python assets/models/codec/train_dct_default.py --init /tmp/dct3.pt --lr 1e-4 \
        --decay-last 0 --seed 2 --steps 400 --out assets/models/codec/dct-default.pt

Stage 1 is the same as ``python main.py codec train --kind dct --N 32 --lambda 0.1 --steps 1200
--patch 128 --batch 8 --lr 1e-3 --out ...``; stages 2 and 3 add ``--init`` and ``--lr``. Longer
training (the full 2600 steps with ``--decay-last 0.15``) is expected to do better.
``--snapshot-every K`` also writes OUT.stepK.pt checkpoints.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from engines.codec.learned import default_training_images, save_model, train_job  # noqa: E402
from engines.jobs import Log, Preview, run_job  # noqa: E402

TRAINED_ON = "scikit-image samples: chelsea, rocket, hubble_deep_field, immunohistochemistry, retina, stereo_motorcycle"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--out", default=str(Path(__file__).with_name("dct-default.pt")))
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lam", type=float, default=0.1)
    ap.add_argument("--N", type=int, default=32)
    ap.add_argument("--snapshot-every", type=int, default=0)
    ap.add_argument("--init", default=None, help="continue from this model file")
    ap.add_argument("--decay-last", type=float, default=0.15)
    args = ap.parse_args()
    base = dict(lam=args.lam, patch=128, batch=8, lr=args.lr, seed=args.seed, decay_last=args.decay_last, init=args.init)

    def show(event):
        if isinstance(event, Log):
            print(event.message, flush=True)
        elif isinstance(event, Preview) and "model" in event.data:
            step = event.data["step"]
            cfg = {**base, "steps": step, "of_steps": args.steps, "trained_on": TRAINED_ON}
            print("checkpoint", save_model(event.data["model"], f"{args.out[:-3]}.step{step}.pt", cfg), flush=True)

    job = train_job(default_training_images(), kind="dct", N=args.N, M=192, steps=args.steps, threads=1,
                    snapshot_every=args.snapshot_every, **base)
    model, config = run_job(job, show)
    config["trained_on"] = TRAINED_ON
    print("saved", save_model(model, args.out, config))


if __name__ == "__main__":
    main()
