"""Textual-inversion embeddings added to a pipeline's tokenizer and text encoder for one run (no Qt).

Files: A1111 ``.pt`` / ``.safetensors`` (``string_to_param`` / ``emb_params``; the token is the
file name, as A1111 prompts use it), diffusers ``learned_embeds`` (``{token: vector}``) and A1111
SDXL embeddings (``clip_l`` and ``clip_g`` tensors, loaded into ``text_encoder`` and
``text_encoder_2`` under the same token).
Loading goes through diffusers' ``load_textual_inversion`` (multi-vector embeddings become
``token token_1 ...`` in the prompt); the tokens are removed again when the run ends.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from engines.generation.model_checks import ModelError

__all__ = ["A1111_KEYS", "EMBEDDING_KEYS", "SDXL_KEYS", "check_embedding_file", "embedding_token",
           "loaded_embeddings", "parse_embedding_list", "sdxl_embedding_vectors"]

MAX_EMBEDDING_BYTES = 64 << 20
# the key names of the embedding formats (every module that recognises an embedding file reads them here)
A1111_KEYS = ("string_to_param", "emb_params")  # A1111 .pt ({token: vectors} under the first), .safetensors
SDXL_KEYS = ("clip_l", "clip_g")  # A1111 SDXL: the vectors for text_encoder and text_encoder_2
EMBEDDING_KEYS = frozenset(A1111_KEYS + SDXL_KEYS)


def parse_embedding_list(text: str) -> list[str]:
    """``"a.pt;b.safetensors"`` -> the file paths."""
    return [part.strip() for part in (text or "").split(";") if part.strip()]


def embedding_token(path: str | os.PathLike) -> str | None:
    """The token a file defines itself (diffusers ``{token: vector}`` layout), else None (A1111: the file name)."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        keys = list(handle.keys())  # noqa: SIM118 - safe_open is not a dict
    if len(keys) == 1 and keys[0] not in EMBEDDING_KEYS:
        return keys[0]
    return None


def check_embedding_file(path: str | os.PathLike) -> None:
    """ModelError unless the ``.pt`` / ``.bin`` file at ``path`` reads (tensors only) as an A1111,
    SDXL or diffusers embedding; ``.safetensors`` files are classified from their header instead."""
    import torch

    path = Path(path)
    if not path.is_file() or path.stat().st_size > MAX_EMBEDDING_BYTES:
        raise ModelError(f"{path.name} is not an embedding file (missing, not a file or too large)")
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch raises many types (pickle, zip, EOF) for damaged or foreign files
        raise ModelError(f"{path.name} is not a readable embedding (damaged, or it holds more than tensors)") from None
    tensors = isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())
    if not isinstance(state, dict) or not (set(A1111_KEYS) & set(state)
                                           or set(SDXL_KEYS) <= set(state) or (tensors and len(state) == 1)):
        raise ModelError(f"{path.name} is not a textual-inversion embedding (no {', '.join(A1111_KEYS)}, "
                         f"{'/'.join(SDXL_KEYS)} or single token vector)")


def sdxl_embedding_vectors(path: str | os.PathLike) -> dict | None:
    """``{"clip_l": (n, d_l), "clip_g": (n, d_g)}`` tensors of an A1111 SDXL embedding, else None."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            keys = set(handle.keys())  # noqa: SIM118 - safe_open is not a dict
            if not set(SDXL_KEYS) <= keys:
                return None
            state = {key: handle.get_tensor(key) for key in SDXL_KEYS}
    else:
        import torch

        state = torch.load(str(path), map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or not set(SDXL_KEYS) <= set(state):
            return None
    return {key: state[key].reshape(-1, state[key].shape[-1]) for key in SDXL_KEYS}


def _load_one(pipe, path: Path) -> str:
    """Load one embedding file into ``pipe`` (both text encoders for SDXL files); returns its token."""
    token = embedding_token(path) or path.stem
    pair = sdxl_embedding_vectors(path)
    if pair is None:
        pipe.load_textual_inversion(str(path), token=token)
        return token
    if getattr(pipe, "text_encoder_2", None) is None or getattr(pipe, "tokenizer_2", None) is None:
        raise ModelError(f"embedding {path.name} is an SDXL embedding ({' + '.join(SDXL_KEYS)}); "
                         f"this model has one text encoder")
    first, second = (pair[key] for key in SDXL_KEYS)
    pipe.load_textual_inversion(_one_or_many(first), token=token, text_encoder=pipe.text_encoder,
                                tokenizer=pipe.tokenizer)
    pipe.load_textual_inversion(_one_or_many(second), token=token, text_encoder=pipe.text_encoder_2,
                                tokenizer=pipe.tokenizer_2)
    return token


def _one_or_many(vectors):
    """diffusers reads one vector as ``(d,)`` and several as ``(n, d)``."""
    return vectors[0] if vectors.shape[0] == 1 else vectors


@contextlib.contextmanager
def loaded_embeddings(pipe, paths: list):
    """Add the embeddings in ``paths`` to ``pipe`` inside the block; yields ``{file: token}``."""
    if not paths:
        yield {}
        return
    if not hasattr(pipe, "load_textual_inversion"):
        raise ModelError(f"{type(pipe).__name__} does not take textual-inversion embeddings")
    tokens = {}
    sizes = [len(tok) if tok is not None else None for tok in (pipe.tokenizer, getattr(pipe, "tokenizer_2", None))]
    try:
        for raw in paths:
            path = Path(raw)
            if not path.is_file():
                raise ModelError(f"embedding not found: {path}")
            if path.stat().st_size > MAX_EMBEDDING_BYTES:
                raise ModelError(f"embedding {path.name} is too large")
            try:
                token = _load_one(pipe, path)
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - diffusers / torch raise many types for bad files
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
                raise ModelError(f"embedding {path.name} cannot be used with this model ({text[:120]})") from None
            tokens[str(path)] = token
        yield tokens
    finally:
        if len(pipe.tokenizer) != sizes[0]:  # also after a failure half-way through a file
            pipe.unload_textual_inversion()
        if sizes[1] is not None and len(pipe.tokenizer_2) != sizes[1]:
            pipe.unload_textual_inversion(tokenizer=pipe.tokenizer_2, text_encoder=pipe.text_encoder_2)
