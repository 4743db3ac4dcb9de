"""Fuzz targets for the model files a user picks or drops: learned-codec models (``.pt``), ControlNet
folders and single files, VAE folders and files, textual-inversion embeddings (``.pt`` /
``.safetensors``), full LoRA weights (every tensor read, not only the header) and the Volume
panel's TorchScript feature extractor.

The diffusers files fit a tiny random SD pipeline (``engines.generation.tiny``) that each worker
builds once, as the Generate panel's loaded model would be.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.fuzz.mutations import (
    BAD_JSON_VALUES,
    mutate_bytes,
    pick,
    replace_with_special,
    write_json_mutation,
)

_PIPE = {}


def tiny_pipe():
    """The worker's tiny random SD pipeline (built once, seeded: every worker has the same)."""
    if "pipe" not in _PIPE:
        import torch

        from engines.generation.tiny import build_tiny_sd_pipeline

        torch.set_num_threads(1)
        _PIPE["pipe"] = build_tiny_sd_pipeline(Path(tempfile.mkdtemp(prefix="fuzz-tiny-sd-")) / "tiny-sd")
    return _PIPE["pipe"]


def mutate_safetensors(rng, path: Path) -> str:
    """A tensor renamed / reshaped / retyped / moved in the header, or the bytes corrupted."""
    from tests.fuzz.targets import _mutate_safetensors_header

    if rng.random() < 0.6:
        return _mutate_safetensors_header(rng, path)
    return mutate_bytes(rng, path, header_bias=2048)


def _mutate_weights_folder(rng, folder: Path, weights: Path) -> str:
    """The config.json, the weights' header or bytes of a diffusers component folder."""
    mode = rng.random()
    if mode < 0.45:
        return write_json_mutation(rng, folder / "config.json")
    if mode < 0.55:
        return replace_with_special(rng, pick(rng, [folder / "config.json", weights]))
    return mutate_safetensors(rng, weights)


# -- learned codec model (codec panel: "Learned-codec model" file, CLI --model) ----------------------------
def _build_codec_model(folder: Path) -> Path:
    import torch

    from engines.codec.learned import save_model
    from engines.codec.learned_model import build_model

    torch.manual_seed(0)
    path = folder / "mine.pt"
    save_model(build_model("hyperprior", 8, 8), path, {"lambda": 0.013, "steps": 3})
    return path


def _mutate_codec_model(rng, folder: Path, path: Path) -> str:
    import torch

    mode = rng.random()
    if mode < 0.5:  # a readable file with a bad config or state (what a wrong or hostile file holds)
        blob = torch.load(path, map_location="cpu", weights_only=True)
        choice = int(rng.integers(5))
        if choice == 0:
            key = pick(rng, ["kind", "N", "M", "lambda"])
            blob["config"][key] = pick(rng, [*BAD_JSON_VALUES, "dct", "factorized", 7, 257, 4096, 10**12, -8])
            what = f"config {key} = {blob['config'][key]!r:.40}"
        elif choice == 1:
            name = pick(rng, sorted(blob["state"]))
            blob["state"][name + "_renamed"] = blob["state"].pop(name)
            what = f"state {name} renamed"
        elif choice == 2:
            name = pick(rng, sorted(blob["state"]))
            blob["state"][name] = pick(rng, [torch.zeros(3), torch.zeros(0), torch.full((2, 2), float("nan")),
                                             torch.zeros(1, dtype=torch.int64)])
            what = f"state {name} replaced (shape {tuple(blob['state'][name].shape)})"
        elif choice == 3:
            key = pick(rng, ["config", "state"])
            blob[key] = pick(rng, [None, [], "x", 5, {"a": 1}])
            what = f"{key} = {blob[key]!r}"
        else:
            blob = pick(rng, [[], {"config": {}}, {"state": {}}, torch.zeros(3), "x"])
            what = f"top level = {str(blob)[:30]}"
        torch.save(blob, path)
        return what
    if mode < 0.55:
        return replace_with_special(rng, path)
    return mutate_bytes(rng, path, header_bias=512)


def _load_codec_model(path: Path):
    from engines.codec.learned import load_model

    _model, config = load_model(str(path))
    return config["kind"], config["N"], config["M"]


def _codec_model_errors():
    from engines.codec.learned import LearnedCodecError

    return (LearnedCodecError,)


# -- ControlNet (Generate > ControlNet: a diffusers folder or one .safetensors file) ---------------------
def _controlnet(pipe):
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(1)
    return ControlNetModel.from_unet(pipe.unet, conditioning_embedding_out_channels=(4, 8))


def _build_controlnet_folder(folder: Path) -> Path:
    path = folder / "cn"
    _controlnet(tiny_pipe()).save_pretrained(path, safe_serialization=True)
    return path


def _mutate_controlnet_folder(rng, folder: Path, path: Path) -> str:
    return _mutate_weights_folder(rng, path, path / "diffusion_pytorch_model.safetensors")


def _build_controlnet_file(folder: Path) -> Path:
    from safetensors.torch import save_file

    path = folder / "cn.safetensors"
    save_file({k: v.contiguous() for k, v in _controlnet(tiny_pipe()).state_dict().items()}, str(path))
    return path


def _mutate_weights_file(rng, folder: Path, path: Path) -> str:
    """A single ``.safetensors`` weights file (ControlNet, VAE): replaced by a special file, or its header / bytes corrupted."""
    if rng.random() < 0.05:
        return replace_with_special(rng, path)
    return mutate_safetensors(rng, path)


def _load_controlnet(path: Path):
    from engines.generation.controlnet import load_controlnet

    controlnet, digest = load_controlnet(path, tiny_pipe().unet)
    return type(controlnet).__name__, digest


# -- VAE (Generate > Adapters > VAE: a folder or one .safetensors file) -----------------------------------
def _build_vae_folder(folder: Path) -> Path:
    path = folder / "vae"
    tiny_pipe().vae.save_pretrained(path, safe_serialization=True)
    return path


def _mutate_vae_folder(rng, folder: Path, path: Path) -> str:
    return _mutate_weights_folder(rng, path, path / "diffusion_pytorch_model.safetensors")


def _build_vae_file(folder: Path) -> Path:
    from safetensors.torch import save_file

    path = folder / "vae.safetensors"
    save_file({k: v.contiguous() for k, v in tiny_pipe().vae.state_dict().items()}, str(path))
    return path


def _load_vae(path: Path):
    from engines.generation.vae_swap import load_vae

    return type(load_vae(path, tiny_pipe().vae)).__name__


# -- textual-inversion embeddings (Generate > Adapters > Add embeddings: .pt, .bin, .safetensors) ------------
def _build_embedding_pt(folder: Path) -> Path:
    import torch

    path = folder / "old.pt"
    vectors = torch.randn(2, tiny_pipe().text_encoder.config.hidden_size, generator=torch.Generator().manual_seed(0))
    torch.save({"string_to_param": {"*": vectors}, "name": "old", "step": 100}, path)
    return path


def _mutate_embedding_pt(rng, folder: Path, path: Path) -> str:
    import torch

    if rng.random() < 0.45:
        width = tiny_pipe().text_encoder.config.hidden_size
        choice = int(rng.integers(4))
        if choice == 0:
            vectors = pick(rng, [torch.zeros(0, width), torch.zeros(3, width + 1), torch.zeros(width),
                                 torch.full((1, width), float("nan")), torch.zeros(2, 2, width), torch.zeros(1, width, dtype=torch.int64)])
            blob = {"string_to_param": {"*": vectors}}
            what = f"vectors of shape {tuple(vectors.shape)} {vectors.dtype}"
        elif choice == 1:
            blob = {"string_to_param": pick(rng, [{}, {"*": None}, {"*": "x"}, [], {"*": [1.0] * width}])}
            what = f"string_to_param = {str(blob['string_to_param'])[:30]}"
        elif choice == 2:
            blob = pick(rng, [{}, [], None, "x", {"clip_l": torch.zeros(1, width)},
                              {"clip_l": torch.zeros(1, width), "clip_g": torch.zeros(1, 12)},
                              {"a": torch.zeros(1, width), "b": torch.zeros(1, width)}])
            what = f"top level = {str(blob)[:40]}"
        else:
            blob = {"emb_params": pick(rng, [torch.zeros(1, width), torch.zeros(1, 3), None])}
            what = "emb_params layout"
        torch.save(blob, path)
        return what
    if rng.random() < 0.1:
        return replace_with_special(rng, path)
    return mutate_bytes(rng, path, header_bias=512)


def _build_embedding_safetensors(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    path = folder / "style.safetensors"
    vectors = torch.randn(2, tiny_pipe().text_encoder.config.hidden_size, generator=torch.Generator().manual_seed(1))
    save_file({"emb_params": vectors}, str(path))
    return path


def _mutate_embedding_safetensors(rng, folder: Path, path: Path) -> str:
    if rng.random() < 0.3:  # another layout or a bad tensor, still a valid file
        import torch
        from safetensors.torch import save_file

        width = tiny_pipe().text_encoder.config.hidden_size
        key = pick(rng, ["emb_params", "<tok>", "clip_l", "clip_g", ""])
        tensor = pick(rng, [torch.zeros(0, width), torch.zeros(1, 5), torch.zeros(width), torch.zeros(2, 2, width),
                            torch.full((1, width), float("inf")), torch.zeros(1, width, dtype=torch.uint8)])
        save_file({key: tensor, **({"extra": torch.zeros(1)} if rng.random() < 0.3 else {})}, str(path))
        return f"{key!r} = {tuple(tensor.shape)} {tensor.dtype}"
    return mutate_safetensors(rng, path)


def _load_embedding(path: Path):
    from engines.generation.embeddings import loaded_embeddings

    with loaded_embeddings(tiny_pipe(), [str(path)]) as tokens:
        return dict(tokens)


# -- LoRA weights (Generate > Adapters > Add LoRA: every tensor checked against the model) --------------------
_UNET_Q = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
_TE_Q = "text_model.encoder.layers.0.self_attn.q_proj"


def _build_lora_weights(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    pipe = tiny_pipe()
    g = torch.Generator().manual_seed(0)
    q = pipe.unet.get_submodule(_UNET_Q).weight
    model = pipe.text_encoder  # transformers 5 has no text_model level
    te = model.get_submodule(_TE_Q if hasattr(model, "text_model") else _TE_Q.removeprefix("text_model.")).weight
    unet, text = _UNET_Q.replace(".", "_"), _TE_Q.replace(".", "_")
    path = folder / "kohya.safetensors"
    save_file({f"lora_unet_{unet}.lora_down.weight": torch.randn(2, q.shape[1], generator=g),
               f"lora_unet_{unet}.lora_up.weight": torch.randn(q.shape[0], 2, generator=g),
               f"lora_unet_{unet}.alpha": torch.tensor(1.0),
               f"lora_te_{text}.lora_down.weight": torch.randn(2, te.shape[1], generator=g),
               f"lora_te_{text}.lora_up.weight": torch.randn(te.shape[0], 2, generator=g)}, str(path))
    return path


def _mutate_lora_weights(rng, folder: Path, path: Path) -> str:
    if rng.random() < 0.3:  # a well-formed file whose tensors do not fit (rank, shape, dtype, alpha)
        import torch
        from safetensors.torch import load_file, save_file

        state = load_file(str(path))
        key = pick(rng, sorted(state))
        state[key] = pick(rng, [torch.zeros(0), torch.zeros(3, 3), torch.zeros(2, 8, 3, 3), torch.tensor(0.0),
                                torch.full(tuple(state[key].shape), float("nan")), torch.zeros(1, 1, dtype=torch.int8)])
        save_file(state, str(path))
        return f"{key} = {tuple(state[key].shape)} {state[key].dtype}"
    return mutate_safetensors(rng, path)


def _load_lora_weights(path: Path):
    from engines.generation.lora import lora_factors

    pipe = tiny_pipe()
    factors = lora_factors(path, {"unet": pipe.unet, "text_encoder": pipe.text_encoder})
    return len(factors)


# -- TorchScript feature extractor (Volume > paint > Feature model) -----------------------------------------------
def _build_feature_model(folder: Path) -> Path:
    import torch

    torch.manual_seed(0)
    path = folder / "features.pt"
    torch.jit.save(torch.jit.script(torch.nn.Conv3d(1, 2, 3, padding=1)), str(path))
    return path


def _mutate_feature_model(rng, folder: Path, path: Path) -> str:
    if rng.random() < 0.1:
        return replace_with_special(rng, path)
    if rng.random() < 0.3:  # a valid TorchScript file with the wrong output
        import torch

        module = pick(rng, [torch.nn.Conv3d(1, 2, 3, stride=2), torch.nn.Conv2d(1, 2, 3), torch.nn.Identity(),
                            torch.nn.Conv3d(1, 300, 1), torch.nn.Flatten()])
        torch.jit.save(torch.jit.script(module), str(path))
        return f"module {type(module).__name__}"
    return mutate_bytes(rng, path, header_bias=256)


def _load_feature_model(path: Path):
    import numpy as np

    from engines.volume.classify import _learned_features

    return _learned_features(path, np.linspace(0, 1, 4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)).shape


def _value_errors():
    return (ValueError,)


def _check_dropped_embedding(path: Path):
    from engines.generation.embeddings import check_embedding_file

    check_embedding_file(path)
    return "embedding"


def _sniff_torch_file(path: Path):
    """What routing sees in a (corrupted) torch file: sniffing never raises, whatever the bytes."""
    from engines.filekinds import sniff

    return sniff(path)


def _no_errors():
    return ()


def model_targets(target_class) -> list:
    """The targets of this module (``target_class`` is :class:`tests.fuzz.targets.Target`; the
    loaders' ModelError type comes from there)."""
    from tests.fuzz.targets import _model_errors

    return [
        target_class("codec-model", _build_codec_model, _mutate_codec_model, _load_codec_model, _codec_model_errors,
                     "codec"),
        target_class("controlnet-folder", _build_controlnet_folder, _mutate_controlnet_folder, _load_controlnet,
                     _model_errors, "adapters"),
        target_class("controlnet-file", _build_controlnet_file, _mutate_weights_file, _load_controlnet,
                     _model_errors, "adapters"),
        target_class("vae-folder", _build_vae_folder, _mutate_vae_folder, _load_vae, _model_errors, "adapters"),
        target_class("vae-file", _build_vae_file, _mutate_weights_file, _load_vae, _model_errors, "adapters"),
        target_class("embedding-pt", _build_embedding_pt, _mutate_embedding_pt, _load_embedding, _model_errors,
                     "adapters"),
        target_class("embedding-safetensors", _build_embedding_safetensors, _mutate_embedding_safetensors,
                     _load_embedding, _model_errors, "adapters"),
        target_class("lora-weights", _build_lora_weights, _mutate_lora_weights, _load_lora_weights, _model_errors,
                     "adapters"),
        target_class("feature-model", _build_feature_model, _mutate_feature_model, _load_feature_model, _value_errors,
                     "codec"),
        target_class("embedding-drop", _build_embedding_pt, _mutate_embedding_pt, _check_dropped_embedding,
                     _model_errors, "adapters"),
        target_class("sniff-torch-file", _build_codec_model, _mutate_codec_model, _sniff_torch_file, _no_errors, "codec"),
    ]
