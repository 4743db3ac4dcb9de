"""Fast algorithms for integer (and dyadic) transform matrices, with honest operation counts.

:func:`build_plan` factors a matrix recursively with the even–odd butterfly that DCT-like
matrices admit (every row symmetric or antisymmetric about its centre): ``m`` additions turn an
``m``-vector into half-length sums and differences, symmetric rows act on the sums and
antisymmetric rows on the differences. Each half is factored again when that is cheaper;
otherwise it is a direct product whose cost is counted entry by entry: ±1 is free, ±2^k is one
shift, an integer with two non-zero binary digits is a shift and an addition, anything else one
multiplication; a row with ``z`` non-zeros needs ``z - 1`` additions. Before a product is
done directly, pairs of input columns ``(i, j)`` on which every row acts as ``a (x_i + x_j)`` or
``a (x_i - x_j)`` are merged by a (partial) butterfly — one addition per sum or difference that
is used — when that lowers the cost (greedy, best pair first). This finds e.g. the 24-addition
fast SDCT (Haweel 2001) whose odd part ``[[1,1,1,1],[1,-1,-1,-1],[1,-1,1,1],[1,-1,1,-1]]``
costs 8 additions instead of 12. No other common-subexpression sharing is assumed, so the
counts are upper bounds of what a hand-tuned circuit needs.

:meth:`Plan.apply` runs exactly these operations with numpy (one array operation per counted
addition or shift), so a benchmark measures the algorithm that was counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Plan", "build_plan", "count_direct", "entry_cost"]

_TOL = 1e-12


def entry_cost(value: float) -> tuple[int, int, int]:
    """(additions, shifts, multiplications) to multiply by ``value`` (magnitude only)."""
    v = abs(float(value))
    if v < _TOL or abs(v - 1.0) < _TOL:
        return 0, 0, 0
    k = math.log2(v)
    if abs(k - round(k)) < 1e-12:
        return 0, 1, 0
    if abs(v - round(v)) < _TOL:
        bits = bin(int(round(v))).count("1")
        if bits == 2:
            return 1, 1 + (int(round(v)) & 1 == 0), 0
    return 0, 0, 1


def count_direct(M: np.ndarray) -> dict:
    """Operation count of ``M @ x`` done row by row (no sharing)."""
    adds = shifts = mults = 0
    for row in np.atleast_2d(M):
        nz = row[np.abs(row) > _TOL]
        if nz.size == 0:
            continue
        adds += nz.size - 1
        for v in nz:
            a, s, m = entry_cost(v)
            adds += a
            shifts += s
            mults += m
    return {"additions": adds, "shifts": shifts, "multiplications": mults}


def _weight(ops: dict) -> float:
    return ops["additions"] + 0.5 * ops["shifts"] + 8.0 * ops["multiplications"]


def _add(*counts: dict) -> dict:
    return {k: sum(c[k] for c in counts) for k in ("additions", "shifts", "multiplications")}


@dataclass
class _Node:
    kind: str  # "direct" | "butterfly" | "pair"
    rows: int
    cols: int
    ops: dict
    M: np.ndarray | None = None
    sym: np.ndarray | None = None  # row indices using sums
    anti: np.ndarray | None = None  # row indices using differences
    child_sym: _Node | None = None
    child_anti: _Node | None = None
    pair: tuple[int, int, bool, bool] | None = None  # (i, j, sum used, difference used)
    child: _Node | None = None  # the rest of a "pair" node

    def apply(self, x: np.ndarray) -> np.ndarray:
        """``x`` has the transform axis first: shape ``(cols, ...)``; returns ``(rows, ...)``."""
        out = np.empty((self.rows,) + x.shape[1:], dtype=x.dtype)
        if self.kind == "direct":
            for r in range(self.rows):
                acc = None
                for c in range(self.cols):
                    v = self.M[r, c]
                    if abs(v) < _TOL:
                        continue
                    term = x[c] if abs(abs(v) - 1.0) < _TOL else x[c] * abs(v)
                    if acc is None:
                        acc = term.copy() if v > 0 else -term
                    elif v > 0:
                        acc += term
                    else:
                        acc -= term
                out[r] = 0 if acc is None else acc
            return out
        if self.kind == "pair":
            i, j, use_sum, use_diff = self.pair
            y = x.copy() if (use_sum or use_diff) else x
            if use_sum and use_diff:
                y[i] = x[i] + x[j]
                y[j] = x[i] - x[j]
            elif use_sum:
                y[i] = x[i] + x[j]
            elif use_diff:
                y[j] = x[i] - x[j]
            return self.child.apply(y)
        h = self.cols // 2
        rev = x[self.cols - 1 : h - 1 : -1]
        if self.sym.size:
            out[self.sym] = self.child_sym.apply(x[:h] + rev)
        if self.anti.size:
            out[self.anti] = self.child_anti.apply(x[:h] - rev)
        return out


def _entry_weights(M: np.ndarray) -> np.ndarray:
    """Weighted cost of multiplying by each entry of ``M`` (0 for 0 and ±1)."""
    values, inverse = np.unique(np.abs(M), return_inverse=True)
    keys = ("additions", "shifts", "multiplications")
    weights = np.array([_weight(dict(zip(keys, entry_cost(v)))) for v in values])
    return weights[inverse].reshape(M.shape)


def _best_pair(M: np.ndarray) -> tuple[float, int, int, bool, bool] | None:
    """The column pair ``(i, j)`` whose merge into a sum (column i) and a difference (column j)
    saves most: every row must act on it as ``a (x_i + x_j)``, ``a (x_i - x_j)`` or not at all;
    a row that uses both saves one addition and one multiplication by ``a``, each used sum or
    difference costs one addition. Returns ``(saving, i, j, sum used, difference used)``."""
    nz = np.abs(M) > _TOL
    W = _entry_weights(M)
    a = M[:, :, None]
    b = M[:, None, :]
    both = nz[:, :, None] & nz[:, None, :]
    one = nz[:, :, None] ^ nz[:, None, :]
    is_sum = both & (np.abs(a - b) < _TOL)
    is_diff = both & (np.abs(a + b) < _TOL)
    ok = ~np.any(one | (both & ~is_sum & ~is_diff), axis=0)
    used_sum = is_sum.any(axis=0)
    used_diff = is_diff.any(axis=0)
    gain = np.sum(np.where(both, 1.0 + W[:, :, None], 0.0), axis=0) - used_sum - used_diff
    upper = np.triu(np.ones_like(ok), k=1)
    gain = np.where(ok & upper & both.any(axis=0), gain, -np.inf)
    i, j = np.unravel_index(int(np.argmax(gain)), gain.shape)
    if not gain[i, j] > 0:
        return None
    return float(gain[i, j]), int(i), int(j), bool(used_sum[i, j]), bool(used_diff[i, j])


def _build_direct(M: np.ndarray) -> _Node:
    """The direct product of ``M``, or a chain of column-pair butterflies ending in one."""
    rows, cols = M.shape
    direct = _Node("direct", rows, cols, count_direct(M), M=M.copy())
    best = _best_pair(M) if cols >= 2 else None
    if best is None:
        return direct
    _, i, j, use_sum, use_diff = best
    a, b = M[:, i], M[:, j]
    both = (np.abs(a) > _TOL) & (np.abs(b) > _TOL)
    M2 = M.copy()
    M2[:, i] = np.where(both & (np.abs(a - b) < _TOL), a, 0.0)
    M2[:, j] = np.where(both & (np.abs(a + b) < _TOL), a, 0.0)
    child = _build_direct(M2)
    ops = _add(child.ops, {"additions": int(use_sum) + int(use_diff), "shifts": 0, "multiplications": 0})
    if _weight(ops) >= _weight(direct.ops):
        return direct
    return _Node("pair", rows, cols, ops, pair=(i, j, use_sum, use_diff), child=child)


def _build(M: np.ndarray) -> _Node:
    rows, cols = M.shape
    if cols < 2 or cols % 2:
        return _build_direct(M)
    h = cols // 2
    left, right = M[:, :h], M[:, h:][:, ::-1]
    is_sym = np.all(np.abs(left - right) < 1e-9, axis=1)
    is_anti = np.all(np.abs(left + right) < 1e-9, axis=1)
    if not np.all(is_sym | is_anti):
        return _build_direct(M)
    sym = np.flatnonzero(is_sym)
    anti = np.flatnonzero(~is_sym)
    child_sym = _build(left[sym]) if sym.size else None
    child_anti = _build(left[anti]) if anti.size else None
    stage = {"additions": h * (int(sym.size > 0) + int(anti.size > 0)), "shifts": 0, "multiplications": 0}
    parts = [stage] + [c.ops for c in (child_sym, child_anti) if c is not None]
    ops = _add(*parts)
    if _weight(ops) >= _weight(count_direct(M)):
        return _build_direct(M)
    return _Node("butterfly", rows, cols, ops, sym=sym, anti=anti, child_sym=child_sym, child_anti=child_anti)


def _kinds(node: _Node | None) -> set[str]:
    """Node kinds used in the tree under ``node``."""
    if node is None:
        return set()
    return {node.kind} | _kinds(node.child_sym) | _kinds(node.child_anti) | _kinds(node.child)


class Plan:
    """A fast algorithm for ``M @ x`` (``M`` square, ``(N, N)``) with its operation count."""

    def __init__(self, M: np.ndarray) -> None:
        self.M = np.asarray(M, dtype=np.float64)
        self.root = _build(self.M)
        direct = count_direct(self.M)
        self.ops = dict(self.root.ops)
        kinds = _kinds(self.root)
        name = "even-odd butterfly" if "butterfly" in kinds else ""
        if "pair" in kinds:
            name = f"{name} + shared sums" if name else "shared sums/differences"
        self.ops["method"] = (
            f"{name} factorization (additions/shifts only)"
            if name and self.ops["multiplications"] == 0
            else (f"{name} factorization" if name else "matrix product")
        )
        self.ops["matrix_product"] = direct

    def apply(self, x: np.ndarray, axis: int = -1) -> np.ndarray:
        """``M`` applied along ``axis`` of ``x`` (any shape; length N on that axis)."""
        moved = np.moveaxis(np.asarray(x), axis, 0)
        y = self.root.apply(np.ascontiguousarray(moved))
        return np.moveaxis(y, 0, axis)


def build_plan(M: np.ndarray) -> Plan:
    """Factor ``M`` (see module docstring) and return a :class:`Plan`."""
    return Plan(M)


# -- compiled kernels ------------------------------------------------------------------------
def _emit(node: _Node, inputs: list[str], lines: list[str], counter: list[int]) -> list[str]:
    """Straight-line code for ``node`` applied to scalar variables ``inputs``; returns the
    expressions (variable names) of its outputs, one per row."""

    def fresh() -> str:
        counter[0] += 1
        return f"t{counter[0]}"

    if node.kind == "direct":
        outs = []
        for r in range(node.rows):
            terms = []
            for c in range(node.cols):
                v = float(node.M[r, c])
                if abs(v) < _TOL:
                    continue
                mag = abs(v)
                term = inputs[c] if abs(mag - 1.0) < _TOL else f"({inputs[c]} * {mag!r})"
                terms.append(("-" if v < 0 else "+", term))
            if not terms:
                outs.append("0.0")
                continue
            expr = ("-" if terms[0][0] == "-" else "") + terms[0][1]
            for sign, term in terms[1:]:
                expr += f" {sign} {term}"
            name = fresh()
            lines.append(f"{name} = {expr}")
            outs.append(name)
        return outs
    if node.kind == "pair":
        i, j, use_sum, use_diff = node.pair
        new = list(inputs)
        if use_sum:
            new[i] = fresh()
            lines.append(f"{new[i]} = {inputs[i]} + {inputs[j]}")
        if use_diff:
            new[j] = fresh()
            lines.append(f"{new[j]} = {inputs[i]} - {inputs[j]}")
        return _emit(node.child, new, lines, counter)
    h = node.cols // 2
    sums, diffs = [], []
    for i in range(h):
        a, b = inputs[i], inputs[node.cols - 1 - i]
        if node.sym.size:
            s = fresh()
            lines.append(f"{s} = {a} + {b}")
            sums.append(s)
        if node.anti.size:
            d = fresh()
            lines.append(f"{d} = {a} - {b}")
            diffs.append(d)
    outs = [""] * node.rows
    if node.sym.size:
        for row, expr in zip(node.sym, _emit(node.child_sym, sums, lines, counter)):
            outs[int(row)] = expr
    if node.anti.size:
        for row, expr in zip(node.anti, _emit(node.child_anti, diffs, lines, counter)):
            outs[int(row)] = expr
    return outs


def kernel_source(plan: Plan, name: str = "kernel") -> str:
    """Python source of a 2-D block kernel ``kernel(B, out, s)`` for ``plan``: for every block
    ``B[b]`` (``(N, N)``), ``out[b] = diag(s) M B[b] M^T diag(s)`` by the plan's additions.

    Each 1-D pass runs over a block held transposed in a small scratch array, so the straight-line
    code is applied to N vectors at once along contiguous memory (the compiler can use SIMD).
    """
    n = plan.M.shape[0]
    counter = [0]
    row_lines: list[str] = []
    row_out = _emit(plan.root, [f"x{i}" for i in range(n)], row_lines, counter)
    col_lines: list[str] = []
    col_out = _emit(plan.root, [f"x{i}" for i in range(n)], col_lines, counter)
    src = [
        f"def {name}(B, out, s):",
        "    nb = B.shape[0]",
        f"    bt = np.empty(({n}, {n}), dtype=B.dtype)",
        f"    rt = np.empty(({n}, {n}), dtype=B.dtype)",
        f"    rr = np.empty(({n}, {n}), dtype=B.dtype)",
        "    for b in range(nb):",
        f"        for i in range({n}):",
        f"            for j in range({n}):",
        "                bt[j, i] = B[b, i, j]",
        "        # rows of B[b]: bt[i, r] = B[b, r, i], one vector lane per row r",
        f"        for r in range({n}):",
    ]
    src += [f"            x{i} = bt[{i}, r]" for i in range(n)]
    src += [f"            {line}" for line in row_lines]
    src += [f"            rt[{k}, r] = {expr}" for k, expr in enumerate(row_out)]
    src += [
        f"        for i in range({n}):",
        f"            for j in range({n}):",
        "                rr[j, i] = rt[i, j]",
        "        # columns of the row-transformed block rr, one vector lane per column",
        f"        for c in range({n}):",
    ]
    src += [f"            x{i} = rr[{i}, c]" for i in range(n)]
    src += [f"            {line}" for line in col_lines]
    src.append("            sc = s[c]")
    src += [f"            out[b, {k}, c] = ({expr}) * s[{k}] * sc" for k, expr in enumerate(col_out)]
    return "\n".join(src) + "\n"


_KERNELS: dict = {}


def compiled_kernel(plan: Plan):
    """The numba-compiled kernel of ``plan`` (cached by matrix), or None without numba."""
    key = plan.M.tobytes()
    if key in _KERNELS:
        return _KERNELS[key]
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a project dependency
        _KERNELS[key] = None
        return None
    namespace: dict = {"np": np}
    exec(compile(kernel_source(plan), "<fastalg-kernel>", "exec"), namespace)  # noqa: S102 - our own generated code
    kernel = numba.njit(cache=False, fastmath=False, nogil=True)(namespace["kernel"])
    _KERNELS[key] = kernel
    return kernel
