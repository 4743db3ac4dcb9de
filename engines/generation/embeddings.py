"""Textual-inversion embeddings added to a pipeline's tokenizer and text encoder for one run (no Qt).

Files: A1111 ``.pt`` / ``.safetensors`` (``string_to_param`` / ``emb_params``; the token is the
file name, as A1111 prompts use it) and diffusers ``learned_embeds`` (``{token: vector}``).
Loading goes through diffusers' ``load_textual_inversion`` (multi-vector embeddings become
``token token_1 ...`` in the prompt); the tokens are removed again when the run ends.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from engines.generation.model_checks import ModelError

__all__ = ["embedding_token", "loaded_embeddings", "parse_embedding_list"]

MAX_EMBEDDING_BYTES = 64 << 20


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
    if len(keys) == 1 and keys[0] not in ("emb_params", "clip_l", "clip_g"):
        return keys[0]
    return None


@contextlib.contextmanager
def loaded_embeddings(pipe, paths: list):
    """Add the embeddings in ``paths`` to ``pipe`` inside the block; yields ``{file: token}``."""
    if not paths:
        yield {}
        return
    if not hasattr(pipe, "load_textual_inversion"):
        raise ModelError(f"{type(pipe).__name__} does not take textual-inversion embeddings")
    tokens = {}
    try:
        for raw in paths:
            path = Path(raw)
            if not path.is_file():
                raise ModelError(f"embedding not found: {path}")
            if path.stat().st_size > MAX_EMBEDDING_BYTES:
                raise ModelError(f"embedding {path.name} is too large")
            try:
                token = embedding_token(path) or path.stem
                pipe.load_textual_inversion(str(path), token=token)
            except ModelError:
                raise
            except Exception as exc:  # noqa: BLE001 - diffusers / torch raise many types for bad files
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
                raise ModelError(f"embedding {path.name} cannot be used with this model ({text[:120]})") from None
            tokens[str(path)] = token
        yield tokens
    finally:
        if tokens:
            pipe.unload_textual_inversion()
