"""ControlNet: the studio's UNet hook against diffusers' StableDiffusionControlNetPipeline, same run.

On a tiny random SD pipeline (engines/generation/tiny.py) and a random ControlNet made from its UNet,
for several samplers: max |ours - diffusers| over the float images, and the wall time per image of
each (median of ``--repeats``), with their ratio, plus the time with the ControlNet off (scale 0)
to show the ControlNet's own cost. One torch thread.

``--load-width W``: also time loading a single-file ControlNet of an SD 1.5-shaped UNet with channels
(W, 2W, 4W, 4W) (W = 320 is the real size, 361 M parameters; default 160): the usual way (build with
random weights, then ``load_state_dict``) against :func:`load_controlnet` (built on the meta device,
the file's tensors assigned), median of ``--repeats``.

Run: ``python benchmarks/generate_controlnet.py [--steps 20 --repeats 3 --size 64 --load-width 160]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (multiple of 8)")
    parser.add_argument("--samplers", default="ddim,euler_a,dpmpp_2m,heun")
    parser.add_argument("--load-width", type=int, default=160, help="0 = skip the loading benchmark")
    args = parser.parse_args()
    torch.set_num_threads(1)
    _sampling(args)
    if args.load_width:
        _loading(args.load_width, args.repeats)


def _loading(width: int, repeats: int) -> None:
    """Single-file ControlNet load: random init + load_state_dict against meta build + assign."""
    from diffusers import ControlNetModel, UNet2DConditionModel
    from safetensors.torch import load_file, save_file

    from engines.generation import controlnet as cn_module

    unet = UNet2DConditionModel(block_out_channels=(width, 2 * width, 4 * width, 4 * width), cross_attention_dim=768,
                                attention_head_dim=8)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cn.safetensors"
        cn = ControlNetModel.from_unet(unet)
        params = sum(p.numel() for p in cn.parameters())
        save_file({k: v.contiguous() for k, v in cn.state_dict().items()}, str(path))
        del cn

        def usual():
            model = ControlNetModel.from_unet(unet, load_weights_from_unet=False)
            model.load_state_dict(load_file(str(path)), strict=True)
            return model

        def ours():
            cn_module._cache.clear()
            return cn_module.load_controlnet(path, unet)[0]

        times: dict = {"usual": [], "ours": []}
        for _ in range(repeats):
            for name, fn in (("usual", usual), ("ours", ours)):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    t_usual, t_ours = statistics.median(times["usual"]), statistics.median(times["ours"])
    print(f"load single-file ControlNet, {params / 1e6:.0f} M parameters: usual {t_usual:.2f} s, ours {t_ours:.2f} s "
          f"(incl. sha256 of the file), ratio {t_usual / t_ours:.2f}")


def _sampling(args) -> None:
    """Sampling with the ControlNet hook against diffusers' ControlNet pipeline, per sampler."""
    from diffusers import ControlNetModel, StableDiffusionControlNetPipeline
    from PIL import Image

    from engines.generation.control_preprocess import canny
    from engines.generation.controlnet import attached_controlnet
    from engines.generation.pipelines import run_pipeline_job
    from engines.generation.samplers import make_scheduler
    from engines.generation.tiny import build_tiny_sd_pipeline
    from engines.jobs import run_job

    with tempfile.TemporaryDirectory() as tmp:
        pipe = build_tiny_sd_pipeline(Path(tmp) / "tiny-sd")
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(1)
    cn = ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(4, 8))
    with torch.no_grad():
        for module in [*cn.controlnet_down_blocks, cn.controlnet_mid_block, cn.controlnet_cond_embedding.conv_out]:
            module.weight.normal_(0, 0.3)
            module.bias.normal_(0, 0.1)
    yy, xx = np.mgrid[: args.size, : args.size]
    picture = (((xx // 8 + yy // 8) % 2) * 200 + 30).astype(np.uint8)
    control = canny(np.dstack([picture] * 3), 100, 200)
    base = dict(pipe.scheduler.config)
    print(f"tiny SD {args.size}x{args.size}, {args.steps} steps, CFG 5, scale 0.8, start 0.1, end 0.9, 1 thread")
    print(f"{'sampler':10s} {'max |diff|':>11s} {'diffusers s':>12s} {'ours s':>8s} {'ratio':>6s} {'no CN s':>8s}")
    for sampler in args.samplers.split(","):
        ref_pipe = StableDiffusionControlNetPipeline(
            vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet, controlnet=cn,
            scheduler=make_scheduler(sampler, "epsilon", base), safety_checker=None, feature_extractor=None,
            requires_safety_checker=False)
        ref_pipe.set_progress_bar_config(disable=True)

        def theirs(ref_pipe=ref_pipe):
            with torch.inference_mode():
                return ref_pipe("a red cat", image=Image.fromarray(control), num_inference_steps=args.steps,
                                guidance_scale=5.0, height=args.size, width=args.size,
                                generator=[torch.Generator().manual_seed(3)], controlnet_conditioning_scale=0.8,
                                control_guidance_start=0.1, control_guidance_end=0.9, output_type="np").images

        def ours(scale=0.8, sampler=sampler):
            with attached_controlnet(pipe.unet, cn, control, scale, 0.1, 0.9, scheduler_of=lambda: pipe.scheduler):
                return run_job(run_pipeline_job(pipe, "epsilon", sampler, args.steps, [3], prompt="a red cat",
                                                cfg=5.0, size=(args.size, args.size)))

        times: dict = {"theirs": [], "ours": [], "off": []}
        for _ in range(args.repeats):
            for name, fn in (("theirs", theirs), ("ours", ours), ("off", lambda: ours(0.0))):
                start = time.perf_counter()
                out = fn()
                times[name].append(time.perf_counter() - start)
                if name == "theirs":
                    reference = out
                elif name == "ours":
                    mine = out
        diff = float(np.abs(mine - reference).max())
        t_ref, t_ours, t_off = (statistics.median(times[k]) for k in ("theirs", "ours", "off"))
        print(f"{sampler:10s} {diff:11.2e} {t_ref:12.3f} {t_ours:8.3f} {t_ref / t_ours:6.2f} {t_off:8.3f}")


if __name__ == "__main__":
    main()
