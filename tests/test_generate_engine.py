"""Generation engine on the shipped digits model: samplers, seeds, img2img, inpainting, ILVR,
previews, cancel, provenance and model loading errors."""

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engines.generation.api import GenerationParams, generate_job, params_from_provenance, provenance_for
from engines.generation.digits_data import digits_32
from engines.generation.models import (
    SHIPPED_MODELS_DIR,
    ModelError,
    inspect_model,
    load_model,
    resolve_model,
    scan_models,
)
from engines.generation.samplers import UnknownSampler, make_scheduler, samplers_for
from engines.jobs import CancelToken, JobCancelled, Preview, Progress, run_job

MODEL = "digits-flow"


def gen(events=None, init=None, mask=None, reference=None, **kw):
    params = GenerationParams(model=MODEL, **{"steps": 4, "seed": 11, "class_label": 3, **kw})
    return run_job(generate_job(params, init=init, mask=mask, reference=reference),
                   events.append if events is not None else None)


@pytest.fixture(scope="module")
def digit_images():
    images, labels = digits_32()
    return images, labels


def test_sampler_menu_suits_model_kind():
    flow = samplers_for("flow", own_loop=True)
    assert {"flow_euler", "unipc", "dpmpp_2m_karras", "ddim", "euler", "euler_a", "heun"} <= set(flow)
    assert "lcm" not in flow
    pipe_flow = samplers_for("flow", own_loop=False)
    assert "ddim" not in pipe_flow and "flow_euler" in pipe_flow
    eps = samplers_for("epsilon", own_loop=False)
    assert "flow_euler" not in eps and "dpmpp_2m_karras" in eps
    assert "lcm" in samplers_for("epsilon", own_loop=False, distilled=True)
    with pytest.raises(UnknownSampler):
        make_scheduler("flow_euler", "epsilon")
    with pytest.raises(UnknownSampler):
        make_scheduler("no-such-sampler", "flow")
    karras = make_scheduler("dpmpp_2m_karras", "epsilon", {"num_train_timesteps": 1000})
    assert karras.config.use_karras_sigmas


def test_shipped_model_is_found():
    info = resolve_model(MODEL)
    assert info.kind == "own" and info.shipped and info.conditioning == "class"
    assert info.class_names == [str(i) for i in range(10)] and info.null_class == 10
    assert info.prediction_type == "flow" and info.size == (32, 32)
    weights = SHIPPED_MODELS_DIR / MODEL / "unet" / "diffusion_pytorch_model.safetensors"
    assert weights.stat().st_size < 5_000_000


def test_same_seed_same_image_and_batch_seeds():
    a = gen(batch=2, seed=5)
    b = gen(batch=2, seed=5)
    assert np.array_equal(a.images, b.images)
    assert a.seeds == [5, 6]
    single = gen(batch=1, seed=6)
    assert np.array_equal(single.images[0], a.images[1])
    other = gen(batch=1, seed=7)
    assert np.abs(other.images[0].astype(int) - a.images[0]).mean() > 5


def test_previews_and_progress_each_step():
    events = []
    result = gen(events, steps=5, batch=2)
    previews = [e for e in events if isinstance(e, Preview)]
    progress = [e for e in events if isinstance(e, Progress) and e.total == 5]
    assert len(previews) == 5 and [p.data["step"] for p in previews] == [1, 2, 3, 4, 5]
    assert previews[0].image.dtype == np.uint8 and previews[0].image.shape[2] == 3
    # one ETA per job: the studio computes it from the fraction; the engine's message carries none
    assert progress[-1].done == 5 and progress[-1].message == "step 5/5"
    # the last preview (predicted x0 at the final step) is close to the result
    last = previews[-1].image[:32, :32].astype(float)
    assert np.abs(last - result.images[0]).mean() < 40


def test_cancel_by_closing_and_by_token():
    job = generate_job(GenerationParams(model=MODEL, steps=8, seed=1, class_label=1))
    seen = 0
    for event in job:
        if isinstance(event, Preview):
            seen += 1
            if seen == 2:
                break
    job.close()
    with pytest.raises(StopIteration):
        next(job)
    token = CancelToken()

    def on_event(event):
        if isinstance(event, Preview):
            token.cancel()

    with pytest.raises(JobCancelled):
        run_job(generate_job(GenerationParams(model=MODEL, steps=8, seed=1, class_label=1), cancel=token), on_event)


def test_img2img_strength_limits(digit_images):
    images, _ = digit_images
    init = images[0]  # a real 32x32 digit in [0, 1]
    init_rgb = np.repeat(init[:, :, None], 3, axis=2)
    zero = gen(init=init_rgb, strength=0.0, steps=6)
    expected = np.clip(np.rint(init * 255), 0, 255)
    assert np.abs(zero.images[0, :, :, 0].astype(int) - expected).max() <= 1
    full = gen(init=init_rgb, strength=1.0, steps=6, seed=21)
    plain = gen(strength=1.0, steps=6, seed=21)
    assert np.array_equal(full.images, plain.images)
    low = gen(init=init_rgb, strength=0.3, steps=10, seed=21)
    high = gen(init=init_rgb, strength=0.9, steps=10, seed=21)
    d_low = np.abs(low.images[0, :, :, 0] / 255.0 - init).mean()
    d_high = np.abs(high.images[0, :, :, 0] / 255.0 - init).mean()
    assert d_low < d_high


@pytest.mark.parametrize("sampler", ["flow_euler", "ddim", "euler", "heun", "unipc"])
def test_inpainting_keeps_known_region(digit_images, sampler):
    images, _ = digit_images
    init = np.repeat(images[5][:, :, None], 3, axis=2)
    mask = np.zeros((32, 32))
    mask[:, 16:] = 1.0
    result = gen(init=init, mask=mask, strength=1.0, steps=4, sampler=sampler, class_label=8, seed=2)
    out = result.images[0, :, :, 0].astype(int)
    expected = np.clip(np.rint(images[5] * 255), 0, 255)
    assert np.abs(out[:, :16] - expected[:, :16]).max() <= 1
    assert np.abs(out[:, 16:] - expected[:, 16:]).mean() > 5
    assert result.mode == "inpaint"


def test_ilvr_keeps_reference_lowpass(digit_images):
    images, labels = digit_images
    reference = images[np.where(labels == 0)[0][0]]
    ref_rgb = np.repeat(reference[:, :, None], 3, axis=2)
    n = 4

    def low(x):
        return F.avg_pool2d(torch.from_numpy(np.asarray(x, dtype=np.float32))[None, None], n)[0, 0].numpy()

    target = low(reference)
    errs_ilvr, errs_free = [], []
    for seed in (1, 2):
        guided = gen(reference=ref_rgb, ilvr_n=n, class_label=None, cfg=1.0, steps=8, seed=seed)
        free = gen(class_label=None, cfg=1.0, steps=8, seed=seed)
        errs_ilvr.append(np.abs(low(guided.images[0, :, :, 0] / 255.0) - target).mean())
        errs_free.append(np.abs(low(free.images[0, :, :, 0] / 255.0) - target).mean())
    assert max(errs_ilvr) < 0.05
    assert max(errs_ilvr) < 0.3 * min(errs_free)


def test_every_offered_sampler_runs_and_ddim_matches_flow_ode():
    info = resolve_model(MODEL)
    for sampler in info.samplers:
        r = gen(sampler=sampler, steps=3, batch=1)
        assert r.images.shape == (1, 32, 32, 3) and r.params["sampler"] == sampler
    # DDIM on the mapped DDPM schedule and flow Euler integrate the same probability-flow ODE
    # (no guidance: CFG makes the trajectories of an ODE solver far more step-size sensitive)
    a = gen(sampler="flow_euler", steps=40, batch=2, seed=4, cfg=1.0).images.astype(float)
    b = gen(sampler="ddim", steps=40, batch=2, seed=4, cfg=1.0).images.astype(float)
    c = gen(sampler="flow_euler", steps=40, batch=2, seed=40, cfg=1.0).images.astype(float)
    assert np.abs(a - b).mean() < 0.3 * np.abs(a - c).mean()


def test_png_provenance_round_trip(tmp_path, digit_images):
    from studio.export import read_provenance, save_png

    images, _ = digit_images
    init_path = tmp_path / "init.png"
    from PIL import Image

    Image.fromarray((images[3] * 255).astype(np.uint8)).save(init_path)
    init = np.asarray(Image.open(init_path).convert("RGB"))
    result = gen(init=init, strength=0.7, batch=2, seed=30, sampler="unipc", steps=5, cfg=2.5)
    path = tmp_path / "out.png"
    save_png(path, result.images[1], provenance_for(result, 1, {"init": str(init_path)}))
    record = read_provenance(path)
    assert record["parameters"]["seed"] == 31 and record["parameters"]["sampler"] == "unipc"
    assert str(init_path) in record["inputs"] and len(record["inputs"][str(init_path)]) == 64
    from engines.generation.api import array_sha256

    assert record["generation"]["input_pixel_sha256"] == {"init": array_sha256(init)}
    params = params_from_provenance(record)
    assert params.cfg == 2.5 and params.strength == 0.7 and params.batch == 1
    again = run_job(generate_job(params, init=init))
    assert np.array_equal(again.images[0], result.images[1])
    with pytest.raises(ValueError):
        params_from_provenance({"panel": "codec", "parameters": {}})


def test_params_validation():
    with pytest.raises(ValueError, match="class"):
        gen(class_label=12)
    with pytest.raises(ValueError, match="sampler"):
        gen(sampler="lcm")
    with pytest.raises(ValueError, match="steps"):
        gen(steps=5000)
    with pytest.raises(ValueError, match="strength"):
        gen(strength=1.5, init=np.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match="mask"):
        gen(mask=np.ones((32, 32)))
    with pytest.raises(ValueError, match="NaN"):
        gen(init=np.full((32, 32, 3), np.nan), strength=0.5)
    with pytest.raises(ValueError):
        GenerationParams.from_dict({"steps": "many"})
    p = GenerationParams(prompt="x", class_label=4, steps=7)
    assert GenerationParams.from_dict(json.loads(json.dumps(p.to_dict()))) == p


def test_model_errors_are_clear(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        resolve_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="model_index.json"):
        inspect_model(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        inspect_model(broken)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "model_index.json").write_text(json.dumps(
        {"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
         "vae": ["diffusers", "AutoencoderKL"]}))
    with pytest.raises(ModelError, match="missing"):
        inspect_model(partial)
    bad_file = tmp_path / "bad.safetensors"
    bad_file.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError, match="safetensors"):
        inspect_model(bad_file)
    with pytest.raises(ModelError, match="unsupported"):
        (tmp_path / "x.ckpt").write_bytes(b"1")
        inspect_model(tmp_path / "x.ckpt")
    # a copy of the shipped model without weights: found by the scan, fails to load clearly
    copy = tmp_path / "models" / "no-weights"
    shutil.copytree(SHIPPED_MODELS_DIR / MODEL, copy)
    (copy / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    shutil.copytree(broken, tmp_path / "models" / "broken")
    models, problems = scan_models([tmp_path / "models"])
    names = [m.name for m in models]
    assert MODEL in names and "no-weights" in names
    assert any("unreadable" in p for p in problems)
    with pytest.raises(ModelError, match="no-weights: unet/ has no diffusion_pytorch_model.safetensors"):
        run_job(generate_job(GenerationParams(model=str(copy), steps=2, seed=0)))


def _model_copy(tmp_path, name="m"):
    copy = tmp_path / name
    shutil.copytree(SHIPPED_MODELS_DIR / MODEL, copy)
    return copy


def _edit_json(path, change):
    data = json.loads(path.read_text())
    path.write_text(json.dumps(change(data)))


@pytest.mark.parametrize("file,change,message", [
    ("model_index.json", lambda d: [d], "must hold a JSON object"),
    ("model_index.json", lambda d: {**d, "unet": []}, "'unet' must be a \\[library, class\\] pair"),
    ("spectra_model.json", lambda d: {**d, "num_classes": "x"}, "num_classes must be a whole number"),
    ("spectra_model.json", lambda d: {**d, "num_classes": 1e9}, "num_classes must be between 0 and 100000"),
    ("spectra_model.json", lambda d: {**d, "class_names": ["a"]}, "1 class_names for num_classes = 10"),
    ("unet/config.json", lambda d: {**d, "block_out_channels": [16, 32, 10**6]}, "block_out_channels must be between"),
    ("unet/config.json", lambda d: {**d, "sample_size": float("nan")}, "sample_size must be a whole number"),
])
def test_malformed_model_configs_are_refused_before_building(tmp_path, file, change, message):
    copy = _model_copy(tmp_path)
    _edit_json(copy / file, change)
    with pytest.raises(ModelError, match=message):
        inspect_model(copy)


def test_oversized_unet_is_refused_on_the_meta_device(tmp_path):
    from engines.limits import set_max_decoded_bytes

    copy = _model_copy(tmp_path)
    _edit_json(copy / "unet" / "config.json", lambda d: {**d, "block_out_channels": [2048, 4096, 8192]})
    info = inspect_model(copy)
    set_max_decoded_bytes(2**30)
    try:
        with pytest.raises(ModelError, match="more than the limit"):
            load_model(info)
    finally:
        set_max_decoded_bytes(None)


def test_checkpoint_with_renamed_tensor_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    copy = _model_copy(tmp_path)
    weights = copy / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state["conv_in.weight_renamed"] = state.pop("conv_in.weight")
    save_file(state, weights)
    with pytest.raises(ModelError, match="do not match the model: 1 missing \\(conv_in.weight\\); 1 unexpected"):
        load_model(inspect_model(copy))


def test_single_file_checkpoint_with_skeleton(tmp_path):
    from diffusers import UNet2DModel
    from safetensors.torch import save_file

    unet = UNet2DModel.from_pretrained(SHIPPED_MODELS_DIR / MODEL, subfolder="unet", low_cpu_mem_usage=False)
    path = tmp_path / "my-digits.safetensors"
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, str(path))
    info = inspect_model(path)
    assert info.kind == "own-single" and info.skeleton.endswith("digits-flow")
    single = run_job(generate_job(GenerationParams(model=str(path), steps=3, seed=8, class_label=2)))
    folder = gen(steps=3, seed=8, class_label=2)
    assert np.array_equal(single.images, folder.images)
    # a checkpoint whose tensors match no skeleton is refused with a clear message
    save_file({"conv_in.weight": torch.zeros(3, 3, 3, 3)}, str(tmp_path / "odd.safetensors"))
    with pytest.raises(ModelError, match="unrecognised"):
        inspect_model(tmp_path / "odd.safetensors")


def test_ddim_equals_euler_on_the_same_schedule():
    # DDIM is Euler's method on the ODE in x / sqrt(a) and s = sqrt((1 - a) / a) (Karras et al. 2022), so
    # the VP (DDIM) and VE (Euler) routes of the flow->DDPM conversion must agree up to small differences
    # (diffusers' DDIM steps to t - 1000 // steps, which can be one training step off the next timestep).
    a = gen(sampler="ddim", steps=6, batch=2, seed=12).images.astype(int)
    b = gen(sampler="euler", steps=6, batch=2, seed=12).images.astype(int)
    c = gen(sampler="dpmpp_2m_karras", steps=6, batch=2, seed=12).images.astype(int)
    assert np.abs(a - b).max() <= 8
    assert np.abs(a - b).mean() < 0.1 * np.abs(a - c).mean()  # a different solver really is different


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_own_loop_runs_a_ddpm_folder(tmp_path, prediction):
    """A user's pixel-space DDPM folder (e.g. a saved DDPMPipeline) runs in the own loop."""
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(block_out_channels=(4, 8), layers_per_block=1, norm_num_groups=4, sample_size=8,
                       in_channels=3, out_channels=3, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(prediction_type=prediction)).save_pretrained(tmp_path / "ddpm")
    info = inspect_model(tmp_path / "ddpm")
    assert info.kind == "own" and info.conditioning == "none" and info.prediction_type == prediction
    assert info.size == (8, 8) and "flow_euler" not in info.samplers and "ddim" in info.samplers
    for sampler in info.samplers:
        events = []
        result = run_job(generate_job(GenerationParams(model=str(tmp_path / "ddpm"), sampler=sampler, steps=2,
                                                       seed=3)), events.append)
        assert result.images.shape == (1, 8, 8, 3)
        assert any(isinstance(e, Preview) for e in events)
    with pytest.raises(ValueError, match="not class-conditional"):
        run_job(generate_job(GenerationParams(model=str(tmp_path / "ddpm"), class_label=1, steps=2)))
