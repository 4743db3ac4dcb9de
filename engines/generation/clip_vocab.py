"""The CLIP BPE tokenizer (SD 1.x/2.x, SDXL) built offline from the shipped merges file (no Qt).

``assets/generation/clip-bpe/bpe_simple_vocab_16e6.txt.gz`` (from the MIT-licensed
``open_clip_torch`` wheel) holds the 48,894 BPE merges; the vocabulary is derived from them
exactly as OpenAI's CLIP does: 256 byte symbols, the same with ``</w>``, one token per merge,
then ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407).
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

__all__ = ["BPE_PATH", "clip_tokenizer", "clip_vocab_and_merges"]

BPE_PATH = Path(__file__).resolve().parents[2] / "assets" / "generation" / "clip-bpe" / "bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict:
    """CLIP's reversible byte -> printable unicode map (256 entries)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


@functools.lru_cache(maxsize=1)
def clip_vocab_and_merges(path: str = str(BPE_PATH)) -> tuple[dict, list]:
    """``(vocab {token: id}, merges [(a, b), ...])`` of the 49,408-token CLIP tokenizer."""
    with gzip.open(path) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    symbols = list(_bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab)}, merges


def clip_tokenizer(max_length: int = 77, pad_token: str = "<|endoftext|>"):
    """A ``transformers.CLIPTokenizer`` with the full CLIP vocabulary (needs ``transformers``)."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    return CLIPTokenizer(vocab=dict(vocab), merges=list(merges), model_max_length=max_length, pad_token=pad_token)
