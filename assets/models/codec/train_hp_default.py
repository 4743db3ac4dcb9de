"""Training script of the shipped learned-codec model ``hp-default.pt`` (run from the repo root).
The shipped file was made in two stages (one CPU thread each, ~20 minutes on a busy 2-core machine):

    .venv/bin/python assets/models/codec/train_hp_default.py --steps 1500 --out /tmp/hp-1500.pt
    .venv/bin/python assets/models/codec/train_hp_default.py --init /tmp/hp-1500.pt --steps 1500 \
        --lr 5e-4 --seed 1 --lam 0.05 --out assets/models/codec/hp-default.pt

Scale hyperprior, N = 32, M = 48, L = lambda 255^2 MSE + bpp (lambda 0.013, then 0.05), 128x128
crops, batch 4, Adam (1e-3, then 5e-4), on the bundled scikit-image photos listed in
engines.codec.learned.TRAINING_SAMPLES (astronaut and coffee are held out for the benchmark).
Stage 1 is the same as ``python main.py codec train --kind hyperprior --N 32 --M 48 --lambda 0.013
--steps 1500 --patch 128 --batch 4 --lr 1e-3 --out ...``; stage 2 adds ``--init``.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from engines.codec.learned import default_training_images, save_model, train_job  # noqa: E402
from engines.jobs import Log, run_job  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--out", default=str(Path(__file__).with_name("hp-default.pt")))
    ap.add_argument("--init", default=None, help="continue from this model file")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lam", type=float, default=0.013)
    args = ap.parse_args()

    def show(event):
        if isinstance(event, Log):
            print(event.message, flush=True)

    job = train_job(default_training_images(), kind="hyperprior", N=32, M=48, lam=args.lam, steps=args.steps,
                    patch=128, batch=4, lr=args.lr, seed=args.seed, threads=1, init=args.init)
    model, config = run_job(job, show)
    config["trained_on"] = "scikit-image samples: chelsea, rocket, hubble_deep_field, immunohistochemistry, retina, stereo_motorcycle"
    print("saved", save_model(model, args.out, config))


if __name__ == "__main__":
    main()
