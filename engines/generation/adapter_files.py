"""What an adapter file is and what it offers, from its header (no Qt).

The Generate panel drops ``.safetensors`` files of three kinds: LoRAs, textual-inversion
embeddings and single-file model checkpoints. :func:`adapter_info` tells them apart by their
tensor names and reads what the panel lists: a LoRA's trigger words, an embedding's token.
Pickled ``.pt`` / ``.bin`` embeddings have no header: they are read (weights only) to check them.
:func:`adapter_info_job` does it for several files on a worker thread.
"""

from __future__ import annotations

import os
from pathlib import Path

from engines.generation.embeddings import EMBEDDING_KEYS, SDXL_KEYS
from engines.jobs import Progress

__all__ = ["adapter_info", "adapter_info_job", "classify_adapter"]

_LORA_MARKS = (".lora_down.", ".lora_up.", ".lora_A.", ".lora_B.", ".lora.down.", ".lora.up.")
_CONTROLNET_MARKS = ("controlnet_cond_embedding.", "control_model.input_hint_block.", "zero_convs.")


def classify_adapter(header: dict) -> str:
    """``"lora"``, ``"embedding"``, ``"controlnet"`` or ``"checkpoint"`` for a safetensors header (tensor table)."""
    names = [k for k in header if k != "__metadata__"]
    if any(mark in name for name in names for mark in _LORA_MARKS):
        return "lora"
    if any(name.startswith(_CONTROLNET_MARKS) for name in names):
        return "controlnet"
    if names and (set(names) <= EMBEDDING_KEYS or len(names) == 1):
        return "embedding"
    return "checkpoint"


def adapter_info(path: str | os.PathLike) -> dict:
    """``{"path", "kind", "trigger_words", "token", "sdxl"}`` of an adapter file.

    ``.pt`` / ``.bin`` files are embeddings (A1111 uses their file name as the token), checked by
    :func:`~engines.generation.embeddings.check_embedding_file`; ``.safetensors`` files are
    classified from their header by :func:`classify_adapter`. ValueError when the file is missing,
    not readable or (``.pt`` / ``.bin``) not an embedding.
    """
    from engines.generation.lora import lora_trigger_words
    from engines.generation.safetensors_header import read_safetensors_header

    path = Path(path)
    info = {"path": str(path), "kind": "embedding", "trigger_words": [], "token": path.stem, "sdxl": False}
    if path.suffix.lower() != ".safetensors":
        if not path.is_file():
            raise ValueError(f"{path.name} was not found")
        if path.suffix.lower() in (".pt", ".bin"):  # pickled tensors: read (weights only) to check them
            from engines.generation.embeddings import check_embedding_file

            check_embedding_file(path)
        return info
    header = read_safetensors_header(path)
    info["kind"] = classify_adapter(header)
    names = [k for k in header if k != "__metadata__"]
    if info["kind"] == "lora":
        info["trigger_words"] = lora_trigger_words(path)
    elif info["kind"] == "embedding":
        info["sdxl"] = set(SDXL_KEYS) <= set(names)
        if len(names) == 1 and names[0] not in EMBEDDING_KEYS:
            info["token"] = names[0]  # diffusers learned_embeds: {token: vector}
    return info


def adapter_info_job(paths: list):
    """Job: :func:`adapter_info` of each path; returns the list (a failed file gets ``kind`` =
    ``"error"`` and its message in ``"error"``, so one bad file does not hide the others)."""
    out = []
    for i, path in enumerate(paths):
        yield Progress(i, len(paths), f"reading {Path(path).name}")
        try:
            out.append(adapter_info(path))
        except ValueError as exc:
            out.append({"path": str(path), "kind": "error", "error": str(exc), "trigger_words": [],
                        "token": Path(path).stem, "sdxl": False})
    return out
