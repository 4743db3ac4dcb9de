"""Minimal-angle DCT approximations (Radünz, Portella, Oliveira, Bayer, Cintra; arXiv 2410.15244).

Each row ``t_k`` of the integer matrix ``T`` minimises the angle to row ``c_k`` of the exact
DCT-II over vectors with entries in ``{0, ±1, …, ±M}``. The search here is exact and fast:

* the angle is invariant under signed permutations, and by the rearrangement inequality the
  best vector for the sorted magnitudes ``|c|`` (descending) is non-increasing; a
  non-increasing vector over ``{0..M}`` of length ``L`` is fixed by ``M`` cut positions
  ``p_M <= … <= p_1`` (``v_i >= j`` iff ``i < p_j``), so ``<u, v> = sum_j U[p_j]`` (``U`` the
  prefix sums of ``u``) and ``||v||^2 = sum_j (2j - 1) p_j``: ``C(L + M, M)`` candidates,
  scored in one vectorised pass;
* the DCT's structure is kept: row ``k`` of the ``N``-point DCT is symmetric (k even) or
  antisymmetric (k odd) about the centre, so only half rows are searched (their magnitudes
  are distinct for odd k) and even rows are the ``N/2``-point solution mirrored,
  ``T_N[2k] = [T_{N/2}[k], T_{N/2}[k] J]``.

Ties (e.g. ``tan(pi/8) = sqrt(2) - 1`` makes [1,0] and [1,1] equally good for the 4-point
row 1) go to the smaller norm, then fewer non-zeros — the lower-complexity choice; with
``M = 1`` and ``N = 8`` this reproduces the RDCT exactly.
"""

from __future__ import annotations

import itertools
import math
import time
from functools import lru_cache

import numpy as np

__all__ = ["angle", "minimal_angle_matrix", "minimal_angle_row", "minimal_angle_search"]


def angle(c: np.ndarray, t: np.ndarray) -> float:
    """Angle (radians) between vectors ``c`` and ``t``."""
    c = np.asarray(c, float)
    t = np.asarray(t, float)
    cos = float(c @ t / (np.linalg.norm(c) * np.linalg.norm(t)))
    return math.acos(max(-1.0, min(1.0, cos)))


@lru_cache(maxsize=32)
def _cuts(length: int, m: int) -> np.ndarray:
    """All ``(p_M, …, p_1)`` with ``0 <= p_M <= … <= p_1 <= length``, ``p_1 >= 1``: ``(K, m)``."""
    combos = np.array(list(itertools.combinations_with_replacement(range(length + 1), m)), dtype=np.int64)
    return combos[combos[:, -1] >= 1]


def minimal_angle_row(c: np.ndarray, m: int) -> tuple[np.ndarray, int]:
    """The integer vector with entries in ``{0, ±1..±m}`` at minimal angle to ``c``.

    Returns ``(t, number_of_candidates)``; ``t`` has the shape of ``c``. Ties go to the
    smallest norm, then the fewest non-zeros.
    """
    c = np.asarray(c, dtype=np.float64)
    mag = np.abs(c)
    order = np.argsort(-mag, kind="stable")
    u = mag[order]
    prefix = np.concatenate([[0.0], np.cumsum(u)])
    cuts = _cuts(c.size, m)  # columns: p_m, …, p_1 (ascending values)
    weights = np.array([2 * j - 1 for j in range(m, 0, -1)], dtype=np.float64)
    dot = prefix[cuts].sum(axis=1)
    norm2 = cuts @ weights
    score = dot / np.sqrt(norm2)
    best = score.max()
    tied = np.flatnonzero(score >= best - 1e-12 * max(1.0, best))
    pick = tied[np.lexsort((cuts[tied, -1], norm2[tied]))[0]]
    p = cuts[pick]
    v = np.zeros(c.size)
    for level, pos in zip(range(m, 0, -1), p):
        v[:pos] = np.maximum(v[:pos], level)
    t = np.zeros(c.size)
    t[order] = v * np.where(c[order] < 0, -1.0, 1.0)
    return t, int(cuts.shape[0])


@lru_cache(maxsize=32)
def _matrix(n: int, m: int) -> tuple[np.ndarray, int]:
    if n == 1:
        return np.ones((1, 1)), 0
    if n % 2:
        raise ValueError("N must be a power of two")
    from engines.codec.transforms import dct_matrix

    half, count = _matrix(n // 2, m)
    h = n // 2
    T = np.zeros((n, n))
    T[0::2] = np.hstack([half, half[:, ::-1]])
    C = dct_matrix(n)
    for k in range(1, n, 2):
        t, cand = minimal_angle_row(C[k, :h], m)
        T[k] = np.concatenate([t, -t[::-1]])
        count += cand
    return T, count


def minimal_angle_matrix(n: int, m: int = 1) -> np.ndarray:
    """The ``(n, n)`` minimal-angle integer matrix ``T`` for alphabet ``{0, ±1..±m}``."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"N must be a power of two (got {n})")
    if m < 1:
        raise ValueError("alphabet bound M must be at least 1")
    return _matrix(n, m)[0].copy()


def minimal_angle_search(n: int, m: int = 1) -> dict:
    """Run the search (uncached) and report ``T``, per-row angles (degrees), candidates, seconds."""
    _matrix.cache_clear()
    _cuts.cache_clear()
    start = time.perf_counter()
    T, count = _matrix(n, m)
    seconds = time.perf_counter() - start
    from engines.codec.transforms import dct_matrix

    C = dct_matrix(n)
    angles = [math.degrees(angle(C[k], T[k])) for k in range(n)]
    return {"T": T.copy(), "angles_deg": angles, "candidates": count, "seconds": seconds, "N": n, "M": m}
