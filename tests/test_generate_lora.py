"""LoRA files (kohya / A1111 and diffusers / PEFT layouts) change a tiny SD pipeline exactly as
a manual weight merge does, stack with weights, and leave the cached model unchanged after."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

pytest.importorskip("transformers")

from engines.generation.api import GenerationParams, generate_job
from engines.generation.lora import applied_loras, parse_lora_list
from engines.generation.model_checks import ModelError
from engines.generation.models import clear_cache
from engines.jobs import run_job

UNET_Q = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
UNET_CONV = "down_blocks.0.resnets.0.conv1"
TE_Q = "text_model.encoder.layers.0.self_attn.q_proj"  # as LoRA files name it


def te_q(pipe):
    """The CLIP q projection (transformers 5 has no text_model level)."""
    model = pipe.text_encoder
    return model.get_submodule(TE_Q if hasattr(model, "text_model") else TE_Q.removeprefix("text_model."))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from engines.generation.tiny import build_tiny_sd_pipeline

    root = tmp_path_factory.mktemp("lora")
    pipe = build_tiny_sd_pipeline(root / "tiny-sd")
    g = torch.Generator().manual_seed(0)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.5

    q = pipe.unet.get_submodule(UNET_Q).weight
    conv = pipe.unet.get_submodule(UNET_CONV).weight
    te = te_q(pipe).weight
    kohya = {  # rank 2, alpha 1 -> scale 0.5
        f"lora_unet_{UNET_Q.replace('.', '_')}.lora_down.weight": r(2, q.shape[1]),
        f"lora_unet_{UNET_Q.replace('.', '_')}.lora_up.weight": r(q.shape[0], 2),
        f"lora_unet_{UNET_Q.replace('.', '_')}.alpha": torch.tensor(1.0),
        f"lora_unet_{UNET_CONV.replace('.', '_')}.lora_down.weight": r(2, conv.shape[1], 3, 3),
        f"lora_unet_{UNET_CONV.replace('.', '_')}.lora_up.weight": r(conv.shape[0], 2, 1, 1),
        f"lora_te_{TE_Q.replace('.', '_')}.lora_down.weight": r(2, te.shape[1]),
        f"lora_te_{TE_Q.replace('.', '_')}.lora_up.weight": r(te.shape[0], 2),
    }
    peft = {f"unet.{UNET_Q}.lora_A.weight": r(1, q.shape[1]), f"unet.{UNET_Q}.lora_B.weight": r(q.shape[0], 1)}
    save_file(kohya, str(root / "kohya.safetensors"))
    save_file(peft, str(root / "peft.safetensors"))
    yield root, pipe, kohya, peft
    clear_cache()


def test_parse_lora_list():
    assert parse_lora_list("a.safetensors=0.8; b.safetensors") == [("a.safetensors", 0.8), ("b.safetensors", 1.0)]
    with pytest.raises(ValueError):
        parse_lora_list("a=99")


def test_lora_merge_matches_manual_and_is_undone(tiny):
    root, pipe, kohya, peft = tiny
    components = {"unet": pipe.unet, "text_encoder": pipe.text_encoder}
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    te_before = te_q(pipe).weight.clone()
    k = UNET_Q.replace(".", "_")
    manual_q = before[f"{UNET_Q}.weight"] + 0.7 * 0.5 * (kohya[f"lora_unet_{k}.lora_up.weight"]
                                                         @ kohya[f"lora_unet_{k}.lora_down.weight"]) \
        + 1.0 * (peft[f"unet.{UNET_Q}.lora_B.weight"] @ peft[f"unet.{UNET_Q}.lora_A.weight"])
    c = UNET_CONV.replace(".", "_")
    conv_delta = torch.einsum("or,rihw->oihw", kohya[f"lora_unet_{c}.lora_up.weight"][:, :, 0, 0],
                              kohya[f"lora_unet_{c}.lora_down.weight"])
    t = TE_Q.replace(".", "_")
    with applied_loras(components, [(root / "kohya.safetensors", 0.7), (root / "peft.safetensors", 1.0)]) as n:
        assert n == 3
        got = pipe.unet.state_dict()
        assert torch.allclose(got[f"{UNET_Q}.weight"], manual_q, atol=1e-6)
        assert torch.allclose(got[f"{UNET_CONV}.weight"], before[f"{UNET_CONV}.weight"] + 0.7 * conv_delta, atol=1e-6)
        assert torch.allclose(te_q(pipe).weight, te_before + 0.7 * (
            kohya[f"lora_te_{t}.lora_up.weight"] @ kohya[f"lora_te_{t}.lora_down.weight"]), atol=1e-6)
        untouched = [key for key in before if key not in (f"{UNET_Q}.weight", f"{UNET_CONV}.weight")]
        assert all(torch.equal(got[key], before[key]) for key in untouched)
    after = pipe.unet.state_dict()
    assert all(torch.equal(after[key], before[key]) for key in before)  # restored bit for bit
    assert torch.equal(te_q(pipe).weight, te_before)


def test_generation_with_lora_equals_a_manually_merged_model(tiny, tmp_path):
    root, pipe, kohya, _peft = tiny
    from engines.generation.tiny import build_tiny_sd_pipeline

    merged = build_tiny_sd_pipeline(tmp_path / "merged")  # same seed -> same weights as the fixture's
    with applied_loras({"unet": merged.unet, "text_encoder": merged.text_encoder},
                       [(root / "kohya.safetensors", 0.7)]):
        merged.save_pretrained(tmp_path / "merged", safe_serialization=True)

    def gen(model, loras=""):
        return run_job(generate_job(GenerationParams(model=str(model), prompt="a red cat", steps=3, seed=4,
                                                     sampler="ddim", loras=loras))).images

    plain = gen(root / "tiny-sd")
    with_lora = gen(root / "tiny-sd", f"{root / 'kohya.safetensors'}=0.7")
    assert np.abs(with_lora.astype(int) - gen(tmp_path / "merged")).max() <= 1
    assert np.abs(with_lora.astype(int) - plain).max() > 5  # the LoRA changes the picture
    assert np.array_equal(gen(root / "tiny-sd"), plain)  # the cached model is unchanged afterwards


def test_lora_for_another_model_fails_clearly(tiny, tmp_path):
    root, pipe, _kohya, _peft = tiny
    bad = tmp_path / "other.safetensors"
    save_file({"lora_unet_mid_block_nothing_here.lora_down.weight": torch.zeros(2, 4),
               "lora_unet_mid_block_nothing_here.lora_up.weight": torch.zeros(4, 2)}, str(bad))
    with pytest.raises(ModelError, match="none of its layers match"):
        with applied_loras({"unet": pipe.unet}, [(bad, 1.0)]):
            pass


def test_cli_lora_flag_is_recorded_and_bad_files_fail_in_one_line(tiny, tmp_path, capsys):
    from studio.cli import main
    from studio.export import read_provenance

    root, _pipe, _kohya, _peft = tiny
    lora = f"{root / 'kohya.safetensors'}=0.7"
    code = main(["generate", "image", "--model", str(root / "tiny-sd"), "--prompt", "a cat", "--steps", "2",
                 "--seed", "3", "--lora", lora, "--out", str(tmp_path / "out")])
    assert code == 0
    [written] = (tmp_path / "out").glob("*-3.png")
    record = read_provenance(written)
    assert record["parameters"]["loras"] == lora
    capsys.readouterr()
    code = main(["generate", "image", "--model", str(root / "tiny-sd"), "--steps", "2", "--lora",
                 str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and "LoRA not found" in err and "\n" not in err
    assert not (tmp_path / "bad").exists()


def _manual_merge(pipe, root, kohya, peft):
    """Deep copies of the UNet and text encoder with kohya (0.7) and PEFT (1.0) merged by hand."""
    import copy

    unet, te = copy.deepcopy(pipe.unet), copy.deepcopy(pipe.text_encoder)
    k, c, t = UNET_Q.replace(".", "_"), UNET_CONV.replace(".", "_"), TE_Q.replace(".", "_")
    with torch.no_grad():
        unet.get_submodule(UNET_Q).weight += 0.7 * 0.5 * (kohya[f"lora_unet_{k}.lora_up.weight"]
                                                          @ kohya[f"lora_unet_{k}.lora_down.weight"]) \
            + peft[f"unet.{UNET_Q}.lora_B.weight"] @ peft[f"unet.{UNET_Q}.lora_A.weight"]
        unet.get_submodule(UNET_CONV).weight += 0.7 * torch.einsum(
            "or,rihw->oihw", kohya[f"lora_unet_{c}.lora_up.weight"][:, :, 0, 0], kohya[f"lora_unet_{c}.lora_down.weight"])
        te_module = te.get_submodule(TE_Q if hasattr(te, "text_model") else TE_Q.removeprefix("text_model."))
        te_module.weight += 0.7 * (kohya[f"lora_te_{t}.lora_up.weight"] @ kohya[f"lora_te_{t}.lora_down.weight"])
    return unet, te


def test_unfused_equals_fused_equals_manual_merge_and_leaves_weights_alone(tiny):
    root, pipe, kohya, peft = tiny
    components = {"unet": pipe.unet, "text_encoder": pipe.text_encoder}
    loras = [(root / "kohya.safetensors", 0.7), (root / "peft.safetensors", 1.0)]
    g = torch.Generator().manual_seed(3)
    latents, t = torch.randn(2, 4, 16, 16, generator=g), torch.tensor([500, 20])
    ids = torch.tensor([[0, 5, 9, 1, 1], [0, 7, 3, 12, 1]])
    before = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in components.items()}

    def run(unet, te):
        with torch.no_grad():
            text = te(ids)[0]
            return text, unet(latents, t, encoder_hidden_states=text).sample

    manual_text, manual = run(*_manual_merge(pipe, root, kohya, peft))
    with applied_loras(components, loras, mode="fused") as n_fused:
        fused_text, fused = run(pipe.unet, pipe.text_encoder)
    with applied_loras(components, loras, mode="unfused") as n_unfused:
        for name, module in components.items():  # the weights themselves are never touched
            assert all(torch.equal(v, before[name][k]) for k, v in module.state_dict().items())
        unfused_text, unfused = run(pipe.unet, pipe.text_encoder)
    plain_text, plain = run(pipe.unet, pipe.text_encoder)
    assert n_fused == n_unfused == 3
    assert (manual - plain).abs().max() > 1e-2 and (manual_text - plain_text).abs().max() > 1e-2  # LoRA matters
    for got, want in ((fused, manual), (unfused, manual), (unfused, fused), (unfused_text, manual_text),
                      (fused_text, manual_text)):
        assert (got - want).abs().max().item() <= 1e-5
    for name, module in components.items():  # restored exactly, hooks gone
        assert all(torch.equal(v, before[name][k]) for k, v in module.state_dict().items())
        assert not any(m._forward_hooks for m in module.modules())
    assert torch.equal(run(pipe.unet, pipe.text_encoder)[1], plain)


def test_unfused_generation_matches_fused_and_cli_flag_is_recorded(tiny, tmp_path):
    from studio.cli import main
    from studio.export import read_provenance

    root, _pipe, _kohya, _peft = tiny
    lora = f"{root / 'kohya.safetensors'}=0.7"

    def gen(mode):
        return run_job(generate_job(GenerationParams(model=str(root / "tiny-sd"), prompt="a red cat", steps=3, seed=4,
                                                     sampler="ddim", loras=lora, lora_mode=mode)))

    fused, unfused = gen("fused"), gen("unfused")
    assert unfused.params["lora_mode"] == "unfused"
    assert np.abs(unfused.images.astype(int) - fused.images).max() <= 1
    with pytest.raises(ValueError, match="LoRA mode"):
        gen("sideways")
    code = main(["generate", "image", "--model", str(root / "tiny-sd"), "--prompt", "a cat", "--steps", "2",
                 "--seed", "3", "--lora", lora, "--lora-mode", "unfused", "--out", str(tmp_path / "out")])
    assert code == 0
    [written] = (tmp_path / "out").glob("*-3.png")
    assert read_provenance(written)["parameters"]["lora_mode"] == "unfused"


def test_trigger_words_come_from_the_header_only(tmp_path):
    import json

    from engines.generation.lora import lora_trigger_words

    path = tmp_path / "style.safetensors"
    tags = {"10_mystyle": {"mystyle": 40, "1girl": 12, "outdoors": 3},
            "5_extra": {"outdoors": 20, "mystyle": 5, "night sky": 1}}
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 4)}, str(path),
              metadata={"ss_tag_frequency": json.dumps(tags), "modelspec.trigger_phrase": "MyStyle, ink drawing",
                        "ss_network_dim": "2"})
    # mystyle (45) duplicates the trigger phrase; then outdoors 23, 1girl 12, night sky 1
    assert lora_trigger_words(path) == ["MyStyle", "ink drawing", "outdoors", "1girl", "night sky"]
    assert lora_trigger_words(path, limit=2) == ["MyStyle", "ink drawing"]
    plain = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(1)}, str(plain))
    assert lora_trigger_words(plain) == []
    # only the header is read: the tensor bytes may be missing entirely (a truncated download)
    raw = path.read_bytes()
    header_end = 8 + int.from_bytes(raw[:8], "little")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[:header_end])
    assert lora_trigger_words(cut)[:2] == ["MyStyle", "ink drawing"]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="header claims"):
        lora_trigger_words(bad)
    bad.write_bytes(b"\x05\x00")
    with pytest.raises(ValueError, match="too short"):
        lora_trigger_words(bad)
