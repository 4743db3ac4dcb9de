"""Textual-inversion embeddings (diffusers learned_embeds, A1111 .safetensors and .pt): the
token's text-encoder input embedding is the stored vector, the prompt changes the result, and
the cached pipeline is back to its own vocabulary after the run."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

pytest.importorskip("transformers")

from engines.generation.api import GenerationParams, generate_job
from engines.generation.embeddings import loaded_embeddings
from engines.generation.model_checks import ModelError
from engines.generation.models import clear_cache
from engines.jobs import run_job


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from engines.generation.tiny import build_tiny_sd_pipeline

    root = tmp_path_factory.mktemp("ti")
    pipe = build_tiny_sd_pipeline(root / "tiny-sd")
    g = torch.Generator().manual_seed(1)
    vectors = {"toy": torch.randn(8, generator=g) * 3, "style": torch.randn(2, 8, generator=g) * 3,
               "old": torch.randn(1, 8, generator=g) * 3}
    save_file({"<toy>": vectors["toy"]}, str(root / "learned_embeds.safetensors"))  # diffusers layout
    save_file({"emb_params": vectors["style"]}, str(root / "style.safetensors"))  # A1111 safetensors
    torch.save({"string_to_param": {"*": vectors["old"]}, "name": "old", "step": 100}, str(root / "old.pt"))
    yield root, pipe, vectors
    clear_cache()


def test_tokens_get_the_stored_vectors_and_are_removed_after(tiny):
    root, pipe, vectors = tiny
    size = len(pipe.tokenizer)
    files = [root / "learned_embeds.safetensors", root / "style.safetensors", root / "old.pt"]
    with loaded_embeddings(pipe, files) as tokens:
        assert list(tokens.values()) == ["<toy>", "style", "old"]
        table = pipe.text_encoder.get_input_embeddings().weight
        ids = pipe.tokenizer.convert_tokens_to_ids
        assert torch.equal(table[ids("<toy>")], vectors["toy"])
        assert torch.equal(table[ids("style")], vectors["style"][0])
        assert torch.equal(table[ids("style_1")], vectors["style"][1])  # multi-vector: style -> style style_1
        assert torch.equal(table[ids("old")], vectors["old"][0])
        assert pipe.maybe_convert_prompt("a style cat", pipe.tokenizer) == "a style style_1 cat"
    assert len(pipe.tokenizer) == size and pipe.text_encoder.get_input_embeddings().weight.shape[0] == size


def test_generation_uses_the_embedding(tiny):
    root, _pipe, _vectors = tiny

    def gen(prompt, embeddings=""):
        return run_job(generate_job(GenerationParams(model=str(root / "tiny-sd"), prompt=prompt, steps=2, seed=5,
                                                     sampler="ddim", embeddings=embeddings)))

    plain = gen("a <toy> cat").images
    with_embedding = gen("a <toy> cat", str(root / "learned_embeds.safetensors"))
    assert with_embedding.params["embeddings"].endswith("learned_embeds.safetensors")
    assert np.abs(with_embedding.images.astype(int) - plain).max() > 0
    assert np.array_equal(gen("a <toy> cat").images, plain)  # the cached pipeline is unchanged afterwards


def test_bad_embedding_fails_clearly(tiny, tmp_path):
    root, pipe, _vectors = tiny
    wrong = tmp_path / "wrong.safetensors"
    save_file({"emb_params": torch.zeros(1, 5)}, str(wrong))  # 5-dim: not this text encoder's width
    size = len(pipe.tokenizer)
    with pytest.raises(ModelError, match="cannot be used with this model"):
        with loaded_embeddings(pipe, [root / "style.safetensors", wrong]):
            pass
    assert len(pipe.tokenizer) == size
    with pytest.raises(ModelError, match="not found"):
        with loaded_embeddings(pipe, [tmp_path / "missing.pt"]):
            pass


def test_sdxl_embedding_loads_clip_l_and_clip_g_into_both_encoders(tmp_path):
    from engines.generation.tiny import build_tiny_sdxl_pipeline

    pipe = build_tiny_sdxl_pipeline(tmp_path / "tiny-sdxl")
    width_l = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    width_g = pipe.text_encoder_2.get_input_embeddings().weight.shape[1]
    assert width_l != width_g  # like CLIP-L 768 / OpenCLIP-G 1280: a swap would fail
    g = torch.Generator().manual_seed(7)
    clip_l, clip_g = torch.randn(2, width_l, generator=g), torch.randn(2, width_g, generator=g)
    save_file({"clip_l": clip_l, "clip_g": clip_g}, str(tmp_path / "xlstyle.safetensors"))
    torch.save({"clip_l": clip_l[:1], "clip_g": clip_g[:1]}, str(tmp_path / "xlone.pt"))
    sizes = len(pipe.tokenizer), len(pipe.tokenizer_2)
    with loaded_embeddings(pipe, [tmp_path / "xlstyle.safetensors", tmp_path / "xlone.pt"]) as tokens:
        assert list(tokens.values()) == ["xlstyle", "xlone"]
        for tokenizer, encoder, vectors, one in ((pipe.tokenizer, pipe.text_encoder, clip_l, clip_l[0]),
                                                 (pipe.tokenizer_2, pipe.text_encoder_2, clip_g, clip_g[0])):
            table = encoder.get_input_embeddings().weight
            ids = tokenizer.convert_tokens_to_ids
            assert torch.equal(table[ids("xlstyle")], vectors[0])
            assert torch.equal(table[ids("xlstyle_1")], vectors[1])
            assert torch.equal(table[ids("xlone")], one)
            assert pipe.maybe_convert_prompt("a xlstyle cat", tokenizer) == "a xlstyle xlstyle_1 cat"
        with torch.no_grad():  # the prompt encodings of both encoders now depend on the stored vectors
            embeds = pipe.encode_prompt("a xlstyle cat", device="cpu", do_classifier_free_guidance=False)[0]
        assert embeds.shape[-1] == width_l + width_g
    assert (len(pipe.tokenizer), len(pipe.tokenizer_2)) == sizes
    assert pipe.text_encoder.get_input_embeddings().weight.shape[0] == sizes[0]
    assert pipe.text_encoder_2.get_input_embeddings().weight.shape[0] == sizes[1]


def test_sdxl_embedding_on_a_one_encoder_model_fails_clearly(tiny, tmp_path):
    _root, pipe, _vectors = tiny
    save_file({"clip_l": torch.zeros(1, 8), "clip_g": torch.zeros(1, 12)}, str(tmp_path / "xl.safetensors"))
    size = len(pipe.tokenizer)
    with pytest.raises(ModelError, match="SDXL embedding"), loaded_embeddings(pipe, [tmp_path / "xl.safetensors"]):
        pass
    assert len(pipe.tokenizer) == size


def test_sdxl_generation_uses_the_dual_embedding_and_leaves_the_cached_pipe_clean(tmp_path):
    from engines.generation.models import load_model, resolve_model
    from engines.generation.tiny import build_tiny_sdxl_pipeline

    pipe = build_tiny_sdxl_pipeline(tmp_path / "tiny-sdxl")
    g = torch.Generator().manual_seed(2)
    save_file({"clip_l": torch.randn(1, 8, generator=g) * 3, "clip_g": torch.randn(1, 12, generator=g) * 3},
              str(tmp_path / "xltoy.safetensors"))
    sizes = len(pipe.tokenizer), len(pipe.tokenizer_2)

    def gen(embeddings=""):
        return run_job(generate_job(GenerationParams(model=str(tmp_path / "tiny-sdxl"), prompt="a xltoy cat", steps=2,
                                                     seed=3, sampler="euler", embeddings=embeddings))).images

    plain = gen()
    assert np.abs(gen(str(tmp_path / "xltoy.safetensors")).astype(int) - plain).max() > 0
    cached = load_model(resolve_model(str(tmp_path / "tiny-sdxl"), ()), "cpu").pipe
    assert (len(cached.tokenizer), len(cached.tokenizer_2)) == sizes
    assert np.array_equal(gen(), plain)
    clear_cache()
