"""Block transforms as swappable objects: exact DCT-II, WHT, classic 8-point approximations,
JAM-scaled RDCT and the minimal-angle approximations (Radünz et al., arXiv 2410.15244).

Every transform is a :class:`Transform`: an ``N x N`` float matrix ``matrix`` (rows = basis
vectors, ``C_hat = S @ T`` for integer approximations), ``forward``/``inverse`` on blocks of
shape ``(..., N, N)`` (separable 2-D: ``C X C^T`` and ``C^-1 Y C^-T``), and an operation count.

Use :func:`get_transform` (``name``, ``N``, ``alphabet``) — the registry :data:`TRANSFORMS`
maps names to factories. No Qt, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from engines.codec.fastalg import Plan, build_plan

__all__ = [
    "BAS2008",
    "RDCT8",
    "SDCT8",
    "TRANSFORMS",
    "TRANSFORM_INFO",
    "Transform",
    "available_transforms",
    "dct_matrix",
    "from_integer",
    "get_transform",
    "jam_scale",
    "wht_sequency",
]


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix ``C[k, j] = a_k cos(pi k (2j+1) / 2n)``; shape ``(n, n)``."""
    k = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    c = np.cos(np.pi * k * (2 * j + 1) / (2 * n))
    c[0] *= 1.0 / math.sqrt(n)
    c[1:] *= math.sqrt(2.0 / n)
    return c


@dataclass(eq=False)
class Transform:
    """One N-point transform.

    ``matrix``: ``(N, N)`` float64, rows are the analysis basis vectors (``C_hat``).
    ``T``: the integer (or dyadic) low-complexity matrix, or None for the exact DCT.
    ``scale``: ``(N,)`` the diagonal of ``S`` (``C_hat = diag(scale) @ T``), None for exact.
    ``ops``: dict with ``additions``, ``shifts``, ``multiplications`` (1-D, one N-vector) and
    ``method`` (how they were counted).
    """

    name: str
    N: int
    matrix: np.ndarray
    T: np.ndarray | None = None
    scale: np.ndarray | None = None
    ops: dict = field(default_factory=dict)
    label: str = ""
    plan: Plan | None = None
    _inv: np.ndarray | None = None

    @property
    def inverse_matrix(self) -> np.ndarray:
        """``C_hat^-1`` (the transpose when ``C_hat`` is orthogonal)."""
        if self._inv is None:
            if self.is_orthogonal:
                self._inv = self.matrix.T.copy()
            else:
                self._inv = np.linalg.inv(self.matrix)
        return self._inv

    @property
    def is_orthogonal(self) -> bool:
        """Whether ``C_hat C_hat^T = I`` (to 1e-10)."""
        m = self.matrix
        return bool(np.allclose(m @ m.T, np.eye(self.N), atol=1e-10))

    def forward(self, blocks: np.ndarray, fast: bool = False) -> np.ndarray:
        """2-D forward transform of ``(..., N, N)`` blocks: ``C_hat X C_hat^T`` (float64).

        ``fast=True`` applies the integer matrix with the additions/shifts-only plan (when the
        transform has one; compiled to straight-line code with numba, numpy fallback) and the
        diagonal scaling; the result is the same. float32 input stays float32. For N >= 16 plans
        with more than N/4 operations per sample (the larger minimal-angle alphabets), BLAS
        matrix products in the input's precision are faster and are used instead
        (:attr:`fast_uses_matmul`); ``fast="plan"`` forces the plan.
        ``fast="numpy"`` runs the same plan with one numpy operation per addition (no compile).
        """
        if fast is True and self.fast_uses_matmul:
            x = np.asarray(blocks)
            if x.dtype not in (np.float32, np.float64):
                x = x.astype(np.float64)
            m = self.matrix.astype(x.dtype)
            return np.matmul(np.matmul(m, x), m.T)
        if fast and self.plan is not None:
            from engines.codec.fastalg import compiled_kernel

            x = np.asarray(blocks)
            if x.dtype not in (np.float32, np.float64):
                x = x.astype(np.float64)
            kernel = compiled_kernel(self.plan) if fast != "numpy" else None
            if kernel is not None and x.ndim >= 2:
                flat = np.ascontiguousarray(x.reshape((-1, self.N, self.N)))
                out = np.empty_like(flat)
                kernel(flat, out, self.scale.astype(flat.dtype))
                return out.reshape(x.shape)
            y = self.plan.apply(x, axis=-1)
            y = self.plan.apply(y, axis=-2)
            s = self.scale
            return y * s[:, None] * s[None, :]
        x = np.asarray(blocks, dtype=np.float64)
        if fast and self.name == "dct":
            from scipy.fft import dctn

            return dctn(x, type=2, axes=(-2, -1), norm="ortho")
        m = self.matrix
        return np.matmul(np.matmul(m, x), m.T)

    @property
    def fast_uses_matmul(self) -> bool:
        """Whether ``forward(fast=True)`` takes matrix products rather than the addition plan:
        N >= 16 and more than N/4 additions + shifts per sample (one 1-D pass)."""
        if self.plan is None or self.N < 16:
            return False
        ops = self.ops.get("additions", 0) + self.ops.get("shifts", 0)
        return ops / self.N > self.N / 4

    def inverse(self, coeffs: np.ndarray) -> np.ndarray:
        """2-D inverse of ``(..., N, N)`` coefficient blocks: ``C_hat^-1 Y C_hat^-T``."""
        y = np.asarray(coeffs, dtype=np.float64)
        inv = self.inverse_matrix
        return np.matmul(np.matmul(inv, y), inv.T)

    def basis_images(self) -> np.ndarray:
        """``(N, N, N, N)``: ``[u, v]`` is the 2-D synthesis basis image for coefficient (u, v)."""
        inv = self.inverse_matrix  # columns are synthesis vectors
        return np.einsum("iu,jv->uvij", inv, inv)


def from_integer(name: str, T: np.ndarray, label: str = "") -> Transform:
    """Build ``C_hat = S T`` with ``S = sqrt(diag(T T^T)^-1)`` and the fast plan of ``T``."""
    T = np.asarray(T, dtype=np.float64)
    n = T.shape[0]
    norms = np.sum(T * T, axis=1)
    if np.any(norms <= 0):
        raise ValueError(f"{name}: a row of T is zero")
    scale = 1.0 / np.sqrt(norms)
    plan = build_plan(T)
    ops = dict(plan.ops)
    ops["scaling"] = f"{n} multiplications by S (merged into quantization in a codec)"
    return Transform(name=name, N=n, matrix=scale[:, None] * T, T=T, scale=scale, ops=ops, label=label, plan=plan)


# -- the classic 8-point matrices (codec.md §2.2) -----------------------------------------
SDCT8 = np.sign(np.round(dct_matrix(8), 12))
SDCT8[SDCT8 == 0] = 1
RDCT8 = np.round(2 * dct_matrix(8))
_h = 0.5
BAS2008 = np.array(
    [
        [1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 0, 0, 0, 0, -1, -1],
        [1, _h, -_h, -1, -1, -_h, _h, 1],
        [0, 0, -1, 0, 0, 1, 0, 0],
        [1, -1, -1, 1, 1, -1, -1, 1],
        [1, -1, 0, 0, 0, 0, 1, -1],
        [_h, -1, 1, -_h, -_h, 1, -1, _h],
        [0, 0, 0, -1, 1, 0, 0, 0],
    ],
    dtype=np.float64,
)


def wht_sequency(n: int) -> np.ndarray:
    """Walsh–Hadamard matrix of size ``n`` (power of two) in sequency order (entries ±1)."""
    if n & (n - 1):
        raise ValueError("WHT needs a power-of-two N")
    h = np.array([[1.0]])
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    changes = np.sum(np.abs(np.diff(h, axis=1)) > 0, axis=1)
    return h[np.argsort(changes, kind="stable")]


def jam_scale(T: np.ndarray) -> np.ndarray:
    """Jridi–Alfalou–Meher scaling: a ``2N``-point integer matrix from an ``N``-point one.

    ``T_2N = P · diag(T_N, T_N) · [[I, J], [I, -J]]`` (J = reversal; P puts the first block's
    outputs on the even rows 0, 2, … and the second block's on the odd rows 1, 3, …). The
    first block is the exact even part of the DCT recursion (row ``2k`` of ``C_2N`` is row
    ``k`` of ``C_N`` applied to ``x_top + J x_bottom``); the second block replaces the
    DCT-IV-like odd part by ``T_N`` applied to ``x_top - J x_bottom``, so every odd row is
    antisymmetric and positively correlated with the DCT row it approximates. The ``1/sqrt 2``
    of the published form is absorbed by the row normalisation ``S``. If ``T_N T_N^T`` is
    diagonal, ``T_2N T_2N^T = 2 P diag(T_N T_N^T, T_N T_N^T) P^T`` is diagonal too.
    Cost: ``2 A(N) + 2N`` additions for ``A(N)`` those of ``T_N``.
    """
    T = np.asarray(T, dtype=np.float64)
    n = T.shape[0]
    out = np.zeros((2 * n, 2 * n))
    out[0::2] = np.hstack([T, T[:, ::-1]])
    out[1::2] = np.hstack([T, -T[:, ::-1]])
    return out


# -- registry -------------------------------------------------------------------------------
def _dct(n: int, alphabet: int) -> Transform:
    m = dct_matrix(n)
    plan = build_plan(m)
    ops = dict(plan.ops)
    ops["method"] = "even-odd butterfly + matrix products (floating point; counted, the engine runs scipy.fft)"
    if n == 8:
        ops["literature"] = "Loeffler 1989: 11 multiplications + 29 additions (not implemented here)"
    return Transform(name="dct", N=n, matrix=m, ops=ops, label="exact DCT-II", plan=None)


def _fixed8(name: str, T: np.ndarray, label: str) -> Callable[[int, int], Transform]:
    def make(n: int, alphabet: int) -> Transform:
        if n != 8:
            raise ValueError(f"{name} is defined for N = 8 only")
        return from_integer(name, T, label)

    return make


def _wht(n: int, alphabet: int) -> Transform:
    return from_integer("wht", wht_sequency(n), "Walsh–Hadamard (sequency)")


def _jam(n: int, alphabet: int) -> Transform:
    if n < 8 or n & (n - 1):
        raise ValueError("JAM-scaled RDCT needs N = 8, 16, 32 or 64")
    T = RDCT8
    while T.shape[0] < n:
        T = jam_scale(T)
    return from_integer("jam-rdct", T, f"JAM-scaled RDCT ({n}-point)")


def _minangle(n: int, alphabet: int) -> Transform:
    from engines.codec.minangle import minimal_angle_matrix

    T = minimal_angle_matrix(n, alphabet)
    return from_integer("minangle", T, f"minimal-angle, alphabet {{0..±{alphabet}}}")


#: name -> factory(N, alphabet) -> Transform
TRANSFORMS: dict[str, Callable[[int, int], Transform]] = {
    "dct": _dct,
    "wht": _wht,
    "sdct": _fixed8("sdct", SDCT8, "SDCT = sign(C8) (Haweel 2001)"),
    "rdct": _fixed8("rdct", RDCT8, "RDCT = round(2 C8) (Cintra–Bayer 2011)"),
    "bas2008": _fixed8("bas2008", BAS2008, "BAS-2008 (Bouguezel–Ahmad–Swamy)"),
    "jam-rdct": _jam,
    "minangle": _minangle,
}

#: name -> (valid N, short description)
TRANSFORM_INFO = {
    "dct": ((4, 8, 16, 32, 64), "exact orthonormal DCT-II"),
    "wht": ((4, 8, 16, 32, 64), "Walsh–Hadamard, sequency order"),
    "sdct": ((8,), "signed DCT (Haweel 2001), non-orthogonal"),
    "rdct": ((8,), "rounded DCT (Cintra–Bayer 2011)"),
    "bas2008": ((8,), "Bouguezel–Ahmad–Swamy 2008"),
    "jam-rdct": ((8, 16, 32, 64), "RDCT scaled by JAM"),
    "minangle": ((4, 8, 16, 32, 64), "minimal-angle approximation (Radünz et al.)"),
}

ALPHABETS = (1, 2, 3)


def available_transforms(n: int) -> list[str]:
    """Names of the transforms defined for block length ``n``."""
    return [name for name, (sizes, _) in TRANSFORM_INFO.items() if n in sizes]


@lru_cache(maxsize=64)
def get_transform(name: str, n: int = 8, alphabet: int = 1) -> Transform:
    """The transform ``name`` at block length ``n`` (``alphabet`` M means entries in {0, ±1..±M},
    used by ``minangle`` only). Raises ValueError for an unknown name or unsupported N."""
    key = name.lower()
    if key not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; choose from {', '.join(TRANSFORMS)}")
    if n not in (4, 8, 16, 32, 64):
        raise ValueError(f"block length must be 4, 8, 16, 32 or 64 (got {n})")
    if alphabet not in ALPHABETS:
        raise ValueError(f"alphabet must be 1, 2 or 3 (got {alphabet})")
    if n not in TRANSFORM_INFO[key][0]:
        raise ValueError(f"{key} is not defined for N = {n} (valid: {TRANSFORM_INFO[key][0]})")
    return TRANSFORMS[key](n, alphabet)
