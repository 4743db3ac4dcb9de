"""Figures of merit of a transform under a first-order Markov (AR(1)) model (codec.md §2.1).

All take ``C_hat`` (``(N, N)``, rows = basis vectors); the exact DCT-II of the same size is
the reference for the error measures. ``rho`` defaults to 0.95.
"""

from __future__ import annotations

import math

import numpy as np

from engines.codec.transforms import Transform, available_transforms, dct_matrix, get_transform

__all__ = [
    "ar1_covariance",
    "coding_gain",
    "figures_of_merit",
    "fom_table",
    "mse",
    "orthogonality_deviation",
    "total_error_energy",
    "transform_efficiency",
    "unified_coding_gain",
]


def ar1_covariance(n: int, rho: float = 0.95) -> np.ndarray:
    """``R[i, j] = rho^|i - j|``, shape ``(n, n)``."""
    idx = np.arange(n)
    return rho ** np.abs(idx[:, None] - idx[None, :])


def total_error_energy(C_hat: np.ndarray) -> float:
    """``pi * ||C - C_hat||_F^2`` against the exact DCT-II."""
    C = dct_matrix(C_hat.shape[0])
    return float(math.pi * np.sum((C - C_hat) ** 2))


def mse(C_hat: np.ndarray, rho: float = 0.95) -> float:
    """``(1/N) tr[(C - C_hat) R (C - C_hat)^T]``."""
    n = C_hat.shape[0]
    D = dct_matrix(n) - C_hat
    return float(np.trace(D @ ar1_covariance(n, rho) @ D.T) / n)


def coding_gain(C_hat: np.ndarray, rho: float = 0.95) -> float:
    """Classic coding gain (dB) for an orthogonal transform: arithmetic/geometric mean of variances."""
    n = C_hat.shape[0]
    var = np.diag(C_hat @ ar1_covariance(n, rho) @ C_hat.T)
    return float(10 * math.log10(var.mean() / math.exp(np.mean(np.log(var)))))


def unified_coding_gain(C_hat: np.ndarray, rho: float = 0.95, convention: str = "rows") -> float:
    """Katto–Yasuda unified coding gain (dB): ``10 log10 prod_k (A_k B_k)^(-1/N)``.

    ``A_k = sum((h_k^T h_k) o R)``, ``h_k`` row k of ``C_hat``; ``B_k = ||g_k||^2`` with ``g_k``
    row k (``convention="rows"``, reproduces published tables) or column k of ``C_hat^-1``.
    """
    n = C_hat.shape[0]
    R = ar1_covariance(n, rho)
    inv = np.linalg.inv(C_hat)
    G = inv if convention == "rows" else inv.T
    total = 0.0
    for k in range(n):
        h = C_hat[k]
        A = float(np.sum(np.outer(h, h) * R))
        B = float(np.sum(G[k] ** 2))
        total += math.log10(A * B)
    return float(-10.0 * total / n)


def transform_efficiency(C_hat: np.ndarray, rho: float = 0.95) -> float:
    """``100 * sum|r_kk| / sum|r_ij|`` with ``r = C_hat R C_hat^T`` (percent)."""
    r = C_hat @ ar1_covariance(C_hat.shape[0], rho) @ C_hat.T
    return float(100.0 * np.sum(np.abs(np.diag(r))) / np.sum(np.abs(r)))


def orthogonality_deviation(T: np.ndarray) -> float:
    """``1 - ||diag(T T^T)||_F^2 / ||T T^T||_F^2`` (0 for orthogonal rows)."""
    P = T @ T.T
    return float(1.0 - np.sum(np.diag(P) ** 2) / np.sum(P**2))


def figures_of_merit(transform: Transform, rho: float = 0.95) -> dict:
    """Every figure of merit of ``transform`` plus its operation count (1-D, one N-vector)."""
    C_hat = transform.matrix
    T = transform.T if transform.T is not None else C_hat
    ops = transform.ops
    return {
        "transform": transform.name,
        "label": transform.label,
        "N": transform.N,
        "error_energy": total_error_energy(C_hat),
        "mse": mse(C_hat, rho),
        "coding_gain_db": unified_coding_gain(C_hat, rho, "rows"),
        "coding_gain_cols_db": unified_coding_gain(C_hat, rho, "columns"),
        "efficiency_pct": transform_efficiency(C_hat, rho),
        "orthogonality_deviation": orthogonality_deviation(T),
        "orthogonal": transform.is_orthogonal,
        "additions": ops.get("additions"),
        "shifts": ops.get("shifts"),
        "multiplications": ops.get("multiplications"),
        "ops_method": ops.get("method", ""),
    }


def fom_table(n: int = 8, alphabets: tuple[int, ...] = (1, 2, 3), rho: float = 0.95) -> list[dict]:
    """Figures of merit of every transform defined at ``n`` (min-angle once per alphabet)."""
    rows = []
    for name in available_transforms(n):
        for m in alphabets if name == "minangle" else (1,):
            row = figures_of_merit(get_transform(name, n, m), rho)
            if name == "minangle":
                row["transform"] = f"minangle-m{m}"
            rows.append(row)
    return rows
