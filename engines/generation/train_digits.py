"""Train the shipped class-conditional rectified-flow digits model (no Qt).

Model: diffusers ``UNet2DModel`` (1 channel, 32x32, channels (16, 32, 64), attention at
8x8, ``num_class_embeds=11``: digits 0-9 plus a null label 10 for classifier-free guidance,
10 % label dropout). Flow convention of diffusers' FlowMatch schedulers:
``x_sigma = sigma * noise + (1 - sigma) * x``, target velocity ``v = noise - x``, model
timestep ``1000 * sigma``. Data: scikit-learn ``load_digits`` upsampled to 32x32, scaled
to [-1, 1]. The model is saved as a diffusers folder (``model_index.json``, ``unet/``,
``scheduler/``) plus ``spectra_model.json`` describing the conditioning.

Run: ``python -m engines.generation.train_digits --out assets/models/digits-flow`` or
``python main.py generate train-digits``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from engines.generation.digits_data import digits_32
from engines.jobs import Log, Progress, Stopwatch, wait_in_thread

__all__ = ["DIGITS_META", "build_digits_unet", "save_digits_model", "train_digits_job"]

NUM_CLASSES = 10
NULL_CLASS = 10

DIGITS_META = {
    "format": "spectra-class-flow",
    "description": "Class-conditional rectified-flow UNet on scikit-learn load_digits (32x32, grey)",
    "prediction_type": "flow",
    "num_classes": NUM_CLASSES,
    "null_class": NULL_CLASS,
    "class_names": [str(i) for i in range(NUM_CLASSES)],
    "channels": 1,
    "sample_size": 32,
    "value_range": [-1.0, 1.0],
    "default_steps": 10,
    "default_cfg": 3.0,
    "default_sampler": "flow_euler",
}


def build_digits_unet(channels: tuple = (16, 32, 64)):
    """A fresh ``UNet2DModel`` for 1x32x32 images with 11 class embeddings (10 digits + null)."""
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=32,
        in_channels=1,
        out_channels=1,
        layers_per_block=1,
        block_out_channels=tuple(channels),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
        num_class_embeds=NUM_CLASSES + 1,
    )


def save_digits_model(unet, out_dir: str | os.PathLike, extra_meta: dict | None = None) -> Path:
    """Write ``unet`` and a FlowMatch scheduler as a diffusers folder at ``out_dir``.

    The folder is built next to the target and swapped in only when complete.
    """
    import diffusers
    from diffusers import FlowMatchEulerDiscreteScheduler

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    unet.save_pretrained(tmp / "unet", safe_serialization=True)
    FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0).save_pretrained(tmp / "scheduler")
    index = {
        "_class_name": "DDPMPipeline",
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        "unet": ["diffusers", "UNet2DModel"],
    }
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
    meta = dict(DIGITS_META)
    meta.update(extra_meta or {})
    (tmp / "spectra_model.json").write_text(json.dumps(meta, indent=2))
    old = out.with_name(out.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    if old.exists():
        shutil.rmtree(old)
    return out


def _sample_sigmas(n: int, generator: torch.Generator) -> torch.Tensor:
    """Half uniform, half logit-normal noise levels in (0, 1) (SD3-style emphasis on the middle)."""
    uniform = torch.rand(n, generator=generator)
    logit = torch.sigmoid(torch.randn(n, generator=generator))
    pick = torch.rand(n, generator=generator) < 0.5
    return torch.where(pick, uniform, logit).clamp(1e-4, 1.0)


def _train_step(unet, optimizer, x_t, sigma, labels, target):
    """One optimiser step of the flow objective; returns the loss."""
    pred = unet(x_t, sigma * 1000.0, class_labels=labels).sample
    loss = F.mse_loss(pred, target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
    optimizer.step()
    return loss


def train_digits_job(
    out_dir: str | os.PathLike,
    steps: int = 1300,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    label_dropout: float = 0.1,
    ema_decay: float = 0.999,
    save_every: int = 200,
    max_minutes: float | None = None,
    channels: tuple = (16, 32, 64),
    init_from: str | os.PathLike | None = None,
):
    """Job: train the digits flow model and save it (EMA weights) to ``out_dir``.

    Yields Progress/Log; returns ``{"out": path, "steps": done, "loss": last_ema_loss,
    "seconds": s}``. Saves a checkpoint every ``save_every`` steps; stops early (and saves)
    after ``max_minutes`` minutes. ``init_from``: a saved digits model folder to continue from.
    Raises ValueError (one sentence) for settings out of range, before any work.
    """
    if steps < 1 or not 1 <= batch_size <= 4096:
        raise ValueError(f"steps must be at least 1 and the batch size from 1 to 4096 (got {steps}, {batch_size})")
    if not 0 < lr < 1:  # NaN fails too
        raise ValueError(f"the learning rate must be a number between 0 and 1 (got {lr})")
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(f"max minutes must be a positive number (got {max_minutes})")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    images, labels = digits_32()
    data = torch.from_numpy(images)[:, None] * 2.0 - 1.0
    targets = torch.from_numpy(labels)
    unet = build_digits_unet(channels)
    if init_from:
        from diffusers import UNet2DModel

        unet.load_state_dict(UNet2DModel.from_pretrained(init_from, subfolder="unet", low_cpu_mem_usage=False).state_dict())
    unet.train()
    ema = build_digits_unet(channels)
    ema.load_state_dict(unet.state_dict())
    ema.requires_grad_(False)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    warmup = min(100, steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    base_steps = 0
    if init_from and (Path(init_from) / "spectra_model.json").exists():
        base_steps = int(json.loads((Path(init_from) / "spectra_model.json").read_text()).get("trained_steps", 0))
    clock = Stopwatch()
    loss_avg = None
    n = data.shape[0]
    done = 0
    yield Log(f"training digits flow model: {sum(p.numel() for p in unet.parameters())/1e6:.2f} M params, {steps} steps")
    for step in range(steps):
        idx = torch.randint(0, n, (batch_size,), generator=gen)
        x = data[idx]
        y = targets[idx].clone()
        drop = torch.rand(batch_size, generator=gen) < label_dropout
        y[drop] = NULL_CLASS
        sigma = _sample_sigmas(batch_size, gen)
        noise = torch.randn(x.shape, generator=gen)
        s = sigma[:, None, None, None]
        x_t = s * noise + (1 - s) * x
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        # one step of a 64-image batch cannot be interrupted: a helper thread runs it, so a cancel stops at once
        loss = yield from wait_in_thread(_train_step, unet, optimizer, x_t, sigma, y, noise - x,
                                         event=Progress(done, steps, f"step {done + 1}/{steps}"))
        decay = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.mul_(decay).add_(p.detach(), alpha=1 - decay)
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        done = step + 1
        frac = done / steps
        remaining = clock.remaining(frac)
        yield Progress(done, steps, f"step {done}/{steps} loss {loss_avg:.4f}" + (f", {remaining/60:.1f} min left" if remaining else ""))
        if save_every and done % save_every == 0 and done < steps:
            save_digits_model(ema, out_dir, {"trained_steps": base_steps + done, "train_loss": round(loss_avg, 5)})
            yield Log(f"checkpoint at step {done}, loss {loss_avg:.4f}, {clock.elapsed()/60:.1f} min")
        if max_minutes is not None and clock.elapsed() > max_minutes * 60:
            yield Log(f"time budget reached at step {done}", "warning")
            break
    save_digits_model(ema, out_dir, {"trained_steps": base_steps + done, "train_loss": round(float(loss_avg), 5), "seed": seed, "batch_size": batch_size, "lr": lr})
    return {"out": str(out_dir), "steps": done, "loss": float(loss_avg), "seconds": round(clock.elapsed(), 1)}


def main(argv=None) -> None:
    """Command-line entry point (``python -m engines.generation.train_digits``)."""
    import argparse

    from engines.jobs import run_job

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[2] / "assets" / "models" / "digits-flow"))
    parser.add_argument("--steps", type=int, default=1300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--init-from", default=None, help="continue from a saved model folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()

    def show(event):
        if isinstance(event, Log) or isinstance(event, Progress) and int(event.done) % 25 == 0:
            print(f"[{time.time()-start:7.1f}s] {event.message}", flush=True)

    result = run_job(train_digits_job(args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                                      seed=args.seed, max_minutes=args.max_minutes, init_from=args.init_from), show)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
