"""ControlNet on a tiny random SD pipeline: residuals reach the UNet at the scheduled steps only,
scale 0 changes nothing, the result equals diffusers' StableDiffusionControlNetPipeline, folder
and single-file ControlNets load (a mismatched one fails clearly), provenance round-trips."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

pytest.importorskip("transformers")

from engines.generation.api import GenerationParams, generate_job
from engines.generation.controlnet import attached_controlnet, load_controlnet
from engines.generation.model_checks import ModelError
from engines.generation.models import clear_cache
from engines.jobs import run_job

SIZE = 32  # tiny SD: 32 px images, 16 px latents (2-block VAE), ControlNet conditioning downsampled by 2


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from diffusers import ControlNetModel

    from engines.generation.tiny import build_tiny_sd_pipeline

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("controlnet")
    pipe = build_tiny_sd_pipeline(root / "tiny-sd")
    torch.manual_seed(1)
    cn = ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(4, 8))
    with torch.no_grad():  # the zero convolutions start at zero: give them weights so residuals are non-zero
        for module in [*cn.controlnet_down_blocks, cn.controlnet_mid_block, cn.controlnet_cond_embedding.conv_out]:
            module.weight.normal_(0, 0.3)
            module.bias.normal_(0, 0.1)
    cn.save_pretrained(root / "cn-folder", safe_serialization=True)
    save_file({k: v.contiguous() for k, v in cn.state_dict().items()}, str(root / "cn.safetensors"))
    rng = np.random.default_rng(0)
    control = np.zeros((SIZE, SIZE, 3), np.uint8)
    control[8:24, 8:24] = 255
    control = np.clip(control.astype(int) + rng.integers(0, 40, control.shape), 0, 255).astype(np.uint8)
    from PIL import Image

    Image.fromarray(control).save(root / "control.png")
    yield root, pipe, cn, control
    clear_cache()


def _params(root, **kw):
    base = {"model": str(root / "tiny-sd"), "prompt": "a red cat", "steps": 5, "seed": 7, "sampler": "ddim",
            "cfg": 5.0, "width": SIZE, "height": SIZE, "controlnet": str(root / "cn-folder"),
            "control_image": str(root / "control.png")}
    base.update(kw)
    return GenerationParams(**base)


def test_scale_zero_is_bit_identical_to_no_controlnet(tiny):
    root, *_ = tiny
    plain = run_job(generate_job(_params(root, controlnet="", control_image=""))).images
    zero = run_job(generate_job(_params(root, control_scale=0.0))).images
    full = run_job(generate_job(_params(root, control_scale=1.0))).images
    assert np.array_equal(plain, zero)
    assert np.abs(full.astype(int) - plain).max() > 5  # the ControlNet does change the picture


def test_residuals_reach_the_unet_inside_start_end_only(tiny):
    root, *_ = tiny
    from engines.generation.models import load_model, resolve_model

    loaded = load_model(resolve_model(str(root / "tiny-sd")), "cpu")
    unet = loaded.pipe.unet
    seen = []

    def spy(_module, args, kwargs, _output):
        down, mid = kwargs.get("down_block_additional_residuals"), kwargs.get("mid_block_additional_residual")
        seen.append(None if down is None else ([tuple(d.shape) for d in down], tuple(mid.shape),
                                               min(float(d.abs().max()) for d in down), float(mid.abs().max())))

    handle = unet.register_forward_hook(spy, with_kwargs=True)  # sees the kwargs the ControlNet hook made
    try:
        run_job(generate_job(_params(root, steps=10, control_start=0.2, control_end=0.7)))
    finally:
        handle.remove()
    assert len(seen) == 10
    # diffusers' rule: step i acts when i/10 >= 0.2 and (i+1)/10 <= 0.7 -> steps 2..6
    assert [i for i, s in enumerate(seen) if s is not None] == [2, 3, 4, 5, 6]
    c0, c1 = unet.config.block_out_channels
    b, h = 2, SIZE // 2  # CFG: uncond and cond halves in one batch; 16 px latents
    expected_down = [(b, c0, h, h), (b, c0, h, h), (b, c0, h // 2, h // 2), (b, c1, h // 2, h // 2)]
    for shapes, mid_shape, down_max, mid_max in filter(None, seen):
        assert shapes == expected_down and mid_shape == (b, c1, h // 2, h // 2)
        assert down_max > 0 and mid_max > 0


@pytest.mark.parametrize("sampler", ["ddim", "euler_a"])
def test_matches_diffusers_controlnet_pipeline(tiny, sampler):
    from diffusers import StableDiffusionControlNetPipeline
    from PIL import Image

    from engines.generation.control_preprocess import canny
    from engines.generation.pipelines import run_pipeline_job
    from engines.generation.samplers import make_scheduler

    _root, pipe, cn, control = tiny
    edges = canny(control, 50, 100)
    steps, scale, start, end, seed = 6, 0.8, 0.1, 0.9, 3
    ref_pipe = StableDiffusionControlNetPipeline(
        vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet, controlnet=cn,
        scheduler=make_scheduler(sampler, "epsilon", dict(pipe.scheduler.config)), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    ref_pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        reference = ref_pipe("a red cat", image=Image.fromarray(edges), num_inference_steps=steps, guidance_scale=5.0,
                             height=SIZE, width=SIZE, generator=[torch.Generator().manual_seed(seed)],
                             controlnet_conditioning_scale=scale, control_guidance_start=start,
                             control_guidance_end=end, output_type="np").images
    with attached_controlnet(pipe.unet, cn, edges, scale, start, end, scheduler_of=lambda: pipe.scheduler) as sched:
        ours = run_job(run_pipeline_job(pipe, "epsilon", sampler, steps, [seed], prompt="a red cat", cfg=5.0,
                                        size=(SIZE, SIZE)))
    assert sched.active_steps == [1, 2, 3, 4]  # i/6 >= 0.1 and (i+1)/6 <= 0.9
    diff = float(np.abs(ours - reference).max())
    assert diff <= 1e-6, diff
    with attached_controlnet(pipe.unet, cn, edges, 0.0):
        plain = run_job(run_pipeline_job(pipe, "epsilon", sampler, steps, [seed], prompt="a red cat", cfg=5.0,
                                         size=(SIZE, SIZE)))
    assert float(np.abs(plain - reference).max()) > 1e-3


def test_img2img_uses_the_truncated_schedule(tiny):
    root, *_ = tiny
    init = np.full((SIZE, SIZE, 3), 120, np.uint8)
    from engines.generation.models import load_model, resolve_model

    unet = load_model(resolve_model(str(root / "tiny-sd")), "cpu").pipe.unet
    calls = []
    handle = unet.register_forward_hook(
        lambda _m, _a, kw, _o: calls.append(kw.get("mid_block_additional_residual") is not None), with_kwargs=True)
    try:
        result = run_job(generate_job(_params(root, steps=10, strength=0.5, control_start=0.0, control_end=0.6),
                                      init=init))
    finally:
        handle.remove()
    # 5 of 10 steps run; the fraction is over those 5 (as diffusers' img2img ControlNet pipeline): i+1 <= 3
    assert calls == [True, True, True, False, False]
    assert result.mode == "img2img+controlnet"


def test_single_file_loads_like_the_folder_and_mismatch_fails_clearly(tiny, tmp_path):
    root, pipe, cn, _control = tiny
    from_file, sha_file = load_controlnet(root / "cn.safetensors", pipe.unet)
    from_folder, sha_folder = load_controlnet(root / "cn-folder", pipe.unet)
    a, b, original = from_file.state_dict(), from_folder.state_dict(), cn.state_dict()
    assert a.keys() == b.keys() == original.keys()
    assert all(torch.equal(a[k], original[k]) and torch.equal(b[k], original[k]) for k in a)
    import hashlib

    assert sha_file == hashlib.sha256((root / "cn.safetensors").read_bytes()).hexdigest()
    folder_weights = root / "cn-folder" / "diffusion_pytorch_model.safetensors"
    assert sha_folder == hashlib.sha256(folder_weights.read_bytes()).hexdigest()
    # a ControlNet whose cross-attention width differs (another model family)
    from diffusers import ControlNetModel

    other = ControlNetModel(block_out_channels=(4, 8), layers_per_block=1, cross_attention_dim=16,
                            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), norm_num_groups=2,
                            attention_head_dim=2, conditioning_embedding_out_channels=(4, 8))
    other.save_pretrained(tmp_path / "other", safe_serialization=True)
    save_file(dict(other.state_dict()), str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelError, match="cross-attention width 16 vs the model's 8"):
        load_controlnet(tmp_path / "other", pipe.unet)
    with pytest.raises(ModelError, match="do not match the model.*wrong shape.*another base model"):
        load_controlnet(tmp_path / "other.safetensors", pipe.unet)
    (tmp_path / "other" / "config.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="config.json must hold a JSON object"):
        load_controlnet(tmp_path / "other", pipe.unet)
    (tmp_path / "other" / "config.json").write_text('{"_class_name": "UNet2DConditionModel"}')
    with pytest.raises(ModelError, match="does not describe a ControlNetModel"):
        load_controlnet(tmp_path / "other", pipe.unet)
    with pytest.raises(ModelError, match="not found"):
        load_controlnet(tmp_path / "nothing-here", pipe.unet)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="not a readable .safetensors"):
        load_controlnet(tmp_path / "junk.safetensors", pipe.unet)


def test_tiled_denoising_gives_each_tile_its_control_crop(tiny):
    from engines.generation.tiling import TiledDenoiser

    root, pipe, cn, _control = tiny
    g = torch.Generator().manual_seed(0)
    control = (torch.rand(64, 64, 3, generator=g) * 255).to(torch.uint8).numpy()  # control px = 2 x latent px
    sample = torch.randn(2, 4, 32, 32, generator=g)
    emb = torch.randn(2, 77, 8, generator=g)
    t = torch.tensor(500)
    calls = []
    spy = pipe.unet.register_forward_hook(lambda _m, a, kw, _o: calls.append(
        (a[0], kw.get("down_block_additional_residuals"), kw.get("mid_block_additional_residual"))), with_kwargs=True)

    class Sched:
        timesteps = torch.tensor([900, 500, 100])
        begin_index = None

    wrapper = TiledDenoiser(pipe.unet, 16, 8)
    try:
        with torch.inference_mode(), attached_controlnet(wrapper, cn, control, 0.7, scheduler_of=lambda: Sched):
            wrapper(sample, t, encoder_hidden_states=emb)
    finally:
        spy.remove()
    starts = [0, 8, 16]  # 32 latent px in tiles of 16 overlapping by 8
    assert len(calls) == 9
    cond = torch.from_numpy(control.astype(np.float32) / 255.0).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    with torch.inference_mode():
        for k, (tile_sample, down, mid) in enumerate(calls):
            y, x = starts[k // 3], starts[k % 3]
            assert torch.equal(tile_sample, sample[..., y:y + 16, x:x + 16])
            want_down, want_mid = cn(tile_sample, t, encoder_hidden_states=emb,
                                     controlnet_cond=cond[..., 2 * y:2 * y + 32, 2 * x:2 * x + 32],
                                     conditioning_scale=0.7, return_dict=False)
            assert all(torch.equal(a, b) for a, b in zip(down, want_down)) and torch.equal(mid, want_mid)
    # end to end: a tiled run with a ControlNet differs from the same tiled run without one
    base = {"width": 64, "height": 64, "tile_size": 16, "tile_overlap": 8, "steps": 3}
    with_cn = run_job(generate_job(_params(root, **base)))
    without = run_job(generate_job(_params(root, controlnet="", control_image="", **base)))
    assert with_cn.mode == "txt2img+controlnet" and np.abs(with_cn.images.astype(int) - without.images).max() > 5


@pytest.mark.parametrize("prefix", ["control_model.", ""])
def test_original_ldm_layout_single_file_loads_the_same_weights(tiny, tmp_path, prefix):
    from engines.generation.ldm_layout import controlnet_to_ldm

    _root, pipe, cn, _control = tiny
    ldm = controlnet_to_ldm(cn.state_dict(), cn.config, prefix)
    assert any(k.startswith(prefix + "zero_convs.") for k in ldm) and not any("controlnet_" in k for k in ldm)
    save_file({k: v.contiguous() for k, v in ldm.items()}, str(tmp_path / "ldm.safetensors"))
    loaded, _sha = load_controlnet(tmp_path / "ldm.safetensors", pipe.unet)
    got, original = loaded.state_dict(), cn.state_dict()
    assert got.keys() == original.keys() and all(torch.equal(got[k], original[k]) for k in got)


def test_refused_for_pixel_space_models_flux_and_bad_parameters(tiny, tmp_path):
    from engines.generation.tiny import build_tiny_flux_pipeline

    root, *_ = tiny
    build_tiny_flux_pipeline(tmp_path / "tiny-flux")
    with pytest.raises(ModelError, match="Stable-Diffusion-family UNet model .not Flux"):
        run_job(generate_job(_params(root, model=str(tmp_path / "tiny-flux"), sampler="", cfg=-1.0)))
    with pytest.raises(ValueError, match="Stable-Diffusion-family"):
        run_job(generate_job(GenerationParams(model="digits-flow", steps=2, controlnet=str(root / "cn-folder"),
                                              control_image=str(root / "control.png"))))
    for bad, match in (({"control_preprocessor": "sobel"}, "pre-processor"), ({"control_start": 0.8, "control_end": 0.5},
                       "start < end"), ({"control_scale": float("nan")}, "control scale"),
                       ({"control_image": ""}, "needs a control image"),
                       ({"control_preprocessor": "canny", "control_options": "invert=1"}, "does not suit canny")):
        with pytest.raises(ValueError, match=match):
            run_job(generate_job(_params(root, **bad)))


def test_provenance_round_trip_and_cli(tiny, tmp_path, capsys):
    import hashlib

    from engines.generation.api import params_from_provenance
    from engines.generation.input_images import INPUTS_PNG_CHUNK, decode_inputs, encode_inputs
    from studio.cli import main
    from studio.export import read_png_chunk, read_provenance, save_png

    root, _pipe, _cn, control = tiny
    code = main(["generate", "image", "--model", str(root / "tiny-sd"), "--prompt", "a cat", "--steps", "3",
                 "--seed", "5", "--sampler", "ddim", "--controlnet", str(root / "cn.safetensors"),
                 "--control-image", str(root / "control.png"), "--control-preprocessor", "canny",
                 "--control-options", "low=50;high=120",
                 "--control-scale", "0.8", "--control-start", "0.1", "--control-end", "0.9",
                 "--out", str(tmp_path / "out")])
    assert code == 0
    [written] = (tmp_path / "out").glob("*-5.png")
    record = read_provenance(written)
    params = params_from_provenance(record)
    assert (params.controlnet, params.control_image, params.control_preprocessor) == (
        str(root / "cn.safetensors"), str(root / "control.png"), "canny")
    assert (params.control_scale, params.control_start, params.control_end) == (0.8, 0.1, 0.9)
    assert params.control_options == "low=50;high=120"
    cn_record = record["generation"]["controlnet"]
    assert cn_record["preprocessor_options"] == {"low": 50.0, "high": 120.0}
    assert cn_record["weights_sha256"] == hashlib.sha256((root / "cn.safetensors").read_bytes()).hexdigest()
    assert record["inputs"][str(root / "control.png")] == hashlib.sha256((root / "control.png").read_bytes()).hexdigest()
    # the restored parameters reproduce the image exactly
    again = run_job(generate_job(params))
    from engines.imagefile import open_image

    assert np.array_equal(again.images[0], np.asarray(open_image(written).convert("RGB")))
    assert np.array_equal(again.extra["control_source"], control)  # what the panel embeds in its exports
    # the control image travels inside an exported PNG (as the panel stores inputs) and comes back exactly
    target = tmp_path / "panel.png"
    save_png(target, again.images[0], record, attachments={INPUTS_PNG_CHUNK: encode_inputs({"control": control})})
    restored = decode_inputs(read_png_chunk(target, INPUTS_PNG_CHUNK))
    assert np.array_equal(restored["control"], control)
    # bad input: one line, exit 2, no file
    capsys.readouterr()
    code = main(["generate", "image", "--model", str(root / "tiny-sd"), "--steps", "2", "--controlnet",
                 str(tmp_path / "missing"), "--control-image", str(root / "control.png"), "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "ControlNet not found" in err and "\n" not in err
    assert not (tmp_path / "bad").exists()
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    for flags, words in ((["--control-image", str(tmp_path / "broken.png")], "control image"),
                         (["--control-image", str(tmp_path / "nope.png")], "control image not found"),
                         (["--control-preprocessor", "canny"], "needs a control image")):
        code = main(["generate", "image", "--model", str(root / "tiny-sd"), "--steps", "2", "--controlnet",
                     str(root / "cn-folder"), *flags, "--out", str(tmp_path / "bad")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and err.startswith("error:") and words in err and "\n" not in err, err
        assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("mode", ["img2img", "inpaint"])
def test_img2img_and_inpaint_match_diffusers_controlnet_pipelines(tiny, mode):
    from diffusers import StableDiffusionControlNetImg2ImgPipeline, StableDiffusionControlNetInpaintPipeline
    from PIL import Image

    from engines.generation.pipelines import run_pipeline_job
    from engines.generation.samplers import make_scheduler

    _root, pipe, cn, control = tiny
    rng = np.random.default_rng(5)
    init = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), np.float32)
    mask[4:20, 10:28] = 1.0
    steps, strength, scale, start, end, seed = 8, 0.75, 0.9, 0.0, 0.7, 11
    cls = StableDiffusionControlNetImg2ImgPipeline if mode == "img2img" else StableDiffusionControlNetInpaintPipeline
    ref_pipe = cls(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet,
                   controlnet=cn, scheduler=make_scheduler("ddim", "epsilon", dict(pipe.scheduler.config)),
                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    ref_pipe.set_progress_bar_config(disable=True)
    extra = {"mask_image": Image.fromarray((mask * 255).astype(np.uint8))} if mode == "inpaint" else {}
    with torch.inference_mode():
        reference = ref_pipe("a red cat", image=Image.fromarray(init), control_image=Image.fromarray(control),
                             strength=strength, num_inference_steps=steps, guidance_scale=5.0, height=SIZE, width=SIZE,
                             generator=[torch.Generator().manual_seed(seed)], controlnet_conditioning_scale=scale,
                             control_guidance_start=start, control_guidance_end=end, output_type="np", **extra).images
    with attached_controlnet(pipe.unet, cn, control, scale, start, end, scheduler_of=lambda: pipe.scheduler) as sched:
        ours = run_job(run_pipeline_job(pipe, "epsilon", "ddim", steps, [seed], prompt="a red cat", cfg=5.0,
                                        size=(SIZE, SIZE), init=init / 255.0, strength=strength,
                                        mask=mask if mode == "inpaint" else None, paste_back=False))
    assert sched.active_steps == [0, 1, 2, 3]  # 6 steps run (8 x 0.75); (i + 1) / 6 <= 0.7
    diff = float(np.abs(ours - reference).max())
    assert diff <= 1e-6, diff


def test_a1111_and_comfy_controlnet_metadata():
    import json

    from engines.generation.interop import a1111_parameters, foreign_generation_params, parse_a1111

    params = GenerationParams(prompt="a cat", steps=20, seed=3, sampler="euler_a", cfg=7.0, width=512, height=512,
                              controlnet="/models/control_v11p_sd15_canny.safetensors", control_preprocessor="tile",
                              control_scale=0.65, control_start=0.1, control_end=0.8).to_dict()
    text = a1111_parameters(params)
    assert 'ControlNet 0: "Module: tile_resample, Model: control_v11p_sd15_canny, Weight: 0.65' in text
    back = parse_a1111(text)
    assert (back["control_preprocessor"], back["control_scale"], back["control_start"], back["control_end"]) == (
        "tile", 0.65, 0.1, 0.8)
    assert back["steps"] == 20 and back["seed"] == 3 and "controlnet" not in back  # a name, not a path
    # as A1111 itself writes a unit
    a1111 = ('a house\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: 9, Size: 512x768, '
             'ControlNet 0: "Module: depth_midas, Model: control_v11f1p_sd15_depth [cfd03158], Weight: 0.5, '
             'Resize Mode: Crop and Resize, Processor Res: 512, Guidance Start: 0.2, Guidance End: 0.9, '
             'Pixel Perfect: False, Control Mode: Balanced", Version: v1.10.1')
    got = parse_a1111(a1111)
    assert (got["control_preprocessor"], got["control_scale"], got["control_start"], got["control_end"]) == (
        "depth", 0.5, 0.2, 0.9)
    assert got["width"] == 512 and got["height"] == 768 and got["sampler"] == "dpmpp_2m"
    comfy = {"3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 4, "cfg": 2.0, "sampler_name": "euler",
                                                         "positive": ["6", 0], "negative": ["6", 0]}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "x"}},
             "9": {"class_type": "ControlNetApplyAdvanced",
                   "inputs": {"strength": 0.7, "start_percent": 0.0, "end_percent": 0.5}}}
    tool, fields = foreign_generation_params({"prompt": json.dumps(comfy)})
    assert tool == "ComfyUI" and (fields["control_scale"], fields["control_start"], fields["control_end"]) == (0.7, 0.0, 0.5)


def test_sdxl_controlnet_matches_diffusers(tmp_path):
    """SDXL ControlNets also take the pooled text and size embeddings (added_cond_kwargs)."""
    from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline
    from PIL import Image

    from engines.generation.pipelines import run_pipeline_job
    from engines.generation.samplers import make_scheduler
    from engines.generation.tiny import build_tiny_sdxl_pipeline

    pipe = build_tiny_sdxl_pipeline(tmp_path / "tiny-sdxl")
    pipe.set_progress_bar_config(disable=True)
    torch.manual_seed(1)
    cn = ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(4, 8))
    assert cn.config.addition_embed_type == "text_time"
    with torch.no_grad():
        for module in [*cn.controlnet_down_blocks, cn.controlnet_mid_block, cn.controlnet_cond_embedding.conv_out]:
            module.weight.normal_(0, 0.3)
            module.bias.normal_(0, 0.1)
    control = (np.random.default_rng(0).random((SIZE, SIZE, 3)) * 255).astype(np.uint8)
    ref_pipe = StableDiffusionXLControlNetPipeline(
        vae=pipe.vae, text_encoder=pipe.text_encoder, text_encoder_2=pipe.text_encoder_2, tokenizer=pipe.tokenizer,
        tokenizer_2=pipe.tokenizer_2, unet=pipe.unet, controlnet=cn,
        scheduler=make_scheduler("euler", "epsilon", dict(pipe.scheduler.config)))
    ref_pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        reference = ref_pipe("a red cat", image=Image.fromarray(control), num_inference_steps=5, guidance_scale=5.0,
                             height=SIZE, width=SIZE, generator=[torch.Generator().manual_seed(3)],
                             controlnet_conditioning_scale=0.8, control_guidance_end=0.8, output_type="np").images
    with attached_controlnet(pipe.unet, cn, control, 0.8, 0.0, 0.8, scheduler_of=lambda: pipe.scheduler) as sched:
        ours = run_job(run_pipeline_job(pipe, "epsilon", "euler", 5, [3], prompt="a red cat", cfg=5.0,
                                        size=(SIZE, SIZE)))
    assert sched.active_steps == [0, 1, 2, 3]
    assert float(np.abs(ours - reference).max()) <= 1e-6
