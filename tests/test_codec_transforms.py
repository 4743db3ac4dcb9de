"""Transforms, minimal-angle search, fast algorithms and figures of merit (codec.md §2)."""

import itertools
import math

import numpy as np
import pytest
from scipy.fft import dct as scipy_dct

from engines.codec.fom import (
    coding_gain,
    figures_of_merit,
    fom_table,
    orthogonality_deviation,
    total_error_energy,
    unified_coding_gain,
)
from engines.codec.minangle import angle, minimal_angle_matrix, minimal_angle_row, minimal_angle_search
from engines.codec.transforms import (
    BAS2008,
    RDCT8,
    SDCT8,
    available_transforms,
    dct_matrix,
    get_transform,
    wht_sequency,
)

SIZES = (4, 8, 16, 32, 64)


@pytest.mark.parametrize("n", SIZES)
def test_dct_orthonormal_and_matches_scipy(n):
    C = dct_matrix(n)
    np.testing.assert_allclose(C @ C.T, np.eye(n), atol=1e-12)
    x = np.random.default_rng(n).normal(size=(5, n))
    np.testing.assert_allclose(x @ C.T, scipy_dct(x, type=2, norm="ortho", axis=-1), atol=1e-10)


# reference values of codec.md §2.2: (error energy, MSE, Cg* rows, Cg* cols, eta, delta)
REFERENCE = {
    ("dct", 4): (0, 0, 7.5701, 7.5701, 97.6967, 0),
    ("dct", 8): (0, 0, 8.8259, 8.8259, 93.9912, 0),
    ("dct", 16): (0, 0, 9.4555, 9.4555, 88.4518, 0),
    ("dct", 32): (0, 0, 9.7736, 9.7736, 81.6962, 0),
    ("dct", 64): (0, 0, 9.9366, 9.9366, 75.5541, 0),
    ("sdct", 8): (3.3158, 0.0207, 6.0261, 6.2819, 82.6190, 0.2000),
    ("bas2008", 8): (5.9294, 0.0238, 8.1194, 8.1194, 86.8626, 0),
    ("rdct", 8): (1.7945, 0.0098, 8.1827, 8.1827, 87.4297, 0),
    ("wht", 8): (5.0494, 0.0251, 7.9461, 7.9461, 85.3138, 0),
}


@pytest.mark.parametrize("key", list(REFERENCE))
def test_figures_of_merit_match_reference(key):
    name, n = key
    f = figures_of_merit(get_transform(name, n))
    ee, mse, cg, cgc, eta, dev = REFERENCE[key]
    assert f["error_energy"] == pytest.approx(ee, abs=1e-4)
    assert f["mse"] == pytest.approx(mse, abs=1e-4)
    assert f["coding_gain_db"] == pytest.approx(cg, abs=1e-4)
    assert f["coding_gain_cols_db"] == pytest.approx(cgc, abs=1e-4)
    assert f["efficiency_pct"] == pytest.approx(eta, abs=1e-4)
    assert f["orthogonality_deviation"] == pytest.approx(dev, abs=1e-4)


def test_error_energy_by_parseval_integral():
    """pi ||C - C_hat||^2 equals sum_k int_0^pi |H_k(w) - H_hat_k(w)|^2 dw (numerical quadrature)."""
    C_hat = get_transform("rdct", 8).matrix
    D = dct_matrix(8) - C_hat
    w = np.linspace(0, np.pi, 20001)
    resp = D @ np.exp(-1j * np.outer(np.arange(8), w))  # (8, len(w))
    integral = np.trapezoid(np.sum(np.abs(resp) ** 2, axis=0), w)
    assert integral == pytest.approx(total_error_energy(C_hat), rel=1e-6)
    assert integral == pytest.approx(1.7945, abs=1e-4)


def test_unified_gain_equals_classic_gain_for_orthogonal():
    for name in ("dct", "rdct", "wht", "bas2008"):
        C = get_transform(name, 8).matrix
        assert unified_coding_gain(C) == pytest.approx(coding_gain(C), abs=1e-9)


def test_classic_matrices_scaling_and_orthogonality():
    # codec.md: diag(T T^T) of RDCT (8,6,4,6,8,6,4,6), BAS-2008 (8,4,5,2,8,4,5,2), SDCT all 8
    np.testing.assert_allclose(np.diag(RDCT8 @ RDCT8.T), [8, 6, 4, 6, 8, 6, 4, 6])
    np.testing.assert_allclose(np.diag(BAS2008 @ BAS2008.T), [8, 4, 5, 2, 8, 4, 5, 2])
    np.testing.assert_allclose(np.diag(SDCT8 @ SDCT8.T), [8] * 8)
    assert get_transform("rdct", 8).is_orthogonal
    assert get_transform("bas2008", 8).is_orthogonal
    assert not get_transform("sdct", 8).is_orthogonal
    assert orthogonality_deviation(SDCT8) == pytest.approx(0.2, abs=1e-12)


def test_wht_sequency_order():
    H = wht_sequency(16)
    changes = np.sum(np.abs(np.diff(H, axis=1)) > 0, axis=1)
    assert list(changes) == list(range(16))
    np.testing.assert_allclose(H @ H.T, 16 * np.eye(16))


def test_minangle_m1_n8_is_rdct_up_to_row_signs():
    T = minimal_angle_matrix(8, 1)
    signs = np.sign(np.sum(T * RDCT8, axis=1))
    np.testing.assert_array_equal(T * signs[:, None], RDCT8)


@pytest.mark.parametrize("m", [1, 2])
def test_minangle_rows_beat_full_brute_force_at_n8(m):
    """No vector in {-m..m}^8 (full rows, no symmetry assumed) has a smaller angle."""
    C = dct_matrix(8)
    T = minimal_angle_matrix(8, m)
    cand = np.array(list(itertools.product(range(-m, m + 1), repeat=8)), dtype=float)
    cand = cand[np.any(cand != 0, axis=1)]
    norms = np.linalg.norm(cand, axis=1)
    for k in range(8):
        best = np.max(cand @ C[k] / norms)
        ours = math.cos(angle(C[k], T[k]))
        assert ours == pytest.approx(best, abs=1e-12)


def test_minangle_half_row_brute_force_n16_m2():
    C = dct_matrix(16)
    T = minimal_angle_matrix(16, 2)
    cand = np.array(list(itertools.product(range(-2, 3), repeat=8)), dtype=float)
    cand = cand[np.any(cand != 0, axis=1)]
    norms = np.linalg.norm(cand, axis=1)
    for k in range(1, 16, 2):
        best = np.max(cand @ C[k, :8] / norms) / np.linalg.norm(C[k, :8])
        assert math.cos(angle(C[k, :8], T[k, :8])) == pytest.approx(best, abs=1e-12)


def test_minimal_angle_row_general_vector():
    c = np.array([0.9, -0.1, 0.45, 0.05])
    t, count = minimal_angle_row(c, 2)
    assert count > 0
    assert list(t) == [2.0, 0.0, 1.0, 0.0]


def test_minangle_search_n64_runs_and_improves_with_alphabet():
    gains = []
    for m in (1, 2, 3):
        r = minimal_angle_search(64, m)
        T = r["T"]
        assert T.shape == (64, 64)
        assert set(np.unique(np.abs(T))) <= set(range(m + 1))
        gains.append(figures_of_merit(get_transform("minangle", 64, m))["error_energy"])
    assert gains[0] > gains[1] > gains[2]


@pytest.mark.parametrize("n", SIZES)
def test_fast_forward_equals_matrix_and_inverse_roundtrip(n):
    x = np.random.default_rng(0).normal(size=(3, n, n))
    for name in available_transforms(n):
        for m in (1, 3) if name == "minangle" else (1,):
            tr = get_transform(name, n, m)
            slow = tr.forward(x)
            np.testing.assert_allclose(tr.forward(x, fast="numpy"), slow, atol=1e-9)
            if n <= 8:  # the numba-compiled straight-line kernel (compiling larger N is slow)
                np.testing.assert_allclose(tr.forward(x, fast=True), slow, atol=1e-9)
            np.testing.assert_allclose(tr.inverse(slow), x, atol=1e-9)


def test_compiled_kernel_float32_n16():
    x = np.random.default_rng(3).normal(size=(4, 16, 16)).astype(np.float32)
    tr = get_transform("minangle", 16, 2)
    for fast in ("plan", True):  # the addition plan, and the matrix products fast=True picks here
        y = tr.forward(x, fast=fast)
        assert y.dtype == np.float32
        np.testing.assert_allclose(y, tr.forward(x.astype(np.float64)), atol=1e-4)


def test_fast_path_choice_follows_the_operation_count():
    # plans with more than N/4 additions + shifts per sample go through BLAS from N = 16 on
    assert not get_transform("minangle", 8, 3).fast_uses_matmul
    assert not get_transform("wht", 32).fast_uses_matmul and not get_transform("jam-rdct", 16).fast_uses_matmul
    assert get_transform("minangle", 16, 2).fast_uses_matmul and get_transform("minangle", 32, 3).fast_uses_matmul
    assert not get_transform("dct", 32).fast_uses_matmul
    x = np.random.default_rng(4).normal(size=(2, 3, 32, 32))
    tr = get_transform("minangle", 32, 3)
    np.testing.assert_allclose(tr.forward(x, fast=True), tr.forward(x), atol=1e-9)


def test_operation_counts():
    assert get_transform("rdct", 8).ops["additions"] == 22
    # Haweel's SDCT: 8 (butterfly) + 8 (even 4-point WHT) + 8 (odd part with shared sums)
    sdct = get_transform("sdct", 8).ops
    assert (sdct["additions"], sdct["shifts"], sdct["multiplications"]) == (24, 0, 0)
    assert sdct["matrix_product"]["additions"] == 56
    bas = get_transform("bas2008", 8).ops
    assert (bas["additions"], bas["shifts"], bas["multiplications"]) == (18, 2, 0)
    for n in (8, 16, 32, 64):
        assert get_transform("wht", n).ops["additions"] == n * int(math.log2(n))
    # JAM: a 2N-point stage costs 2N additions on top of two N-point transforms
    expected = 22
    for n in (16, 32, 64):
        expected = 2 * expected + n
        assert get_transform("jam-rdct", n).ops["additions"] == expected
    assert [get_transform("jam-rdct", n).ops["additions"] for n in (16, 32, 64)] == [60, 152, 368]
    assert get_transform("dct", 8).ops["multiplications"] > 0


def test_fom_table_lists_every_transform():
    rows = fom_table(16)
    names = [r["transform"] for r in rows]
    assert names == ["dct", "wht", "jam-rdct", "minangle-m1", "minangle-m2", "minangle-m3"]
    # min-angle with a richer alphabet is closer to the DCT
    ee = {r["transform"]: r["error_energy"] for r in rows}
    assert ee["minangle-m3"] < ee["minangle-m2"] < ee["minangle-m1"] < ee["jam-rdct"]


def test_registry_errors():
    with pytest.raises(ValueError, match="unknown transform"):
        get_transform("nope", 8)
    with pytest.raises(ValueError, match="N = 8 only|not defined"):
        get_transform("rdct", 16)
    with pytest.raises(ValueError):
        get_transform("dct", 12)


@pytest.mark.parametrize("name,n", [("rdct", 8), ("bas2008", 8), ("wht", 8), ("sdct", 8), ("jam-rdct", 16), ("minangle", 16)])
def test_generated_kernel_has_exactly_the_counted_operations(name, n):
    """The straight-line code generated from the plan contains as many binary additions as
    counted (1-D, first loop of the 2-D kernel)."""
    import re

    from engines.codec.fastalg import kernel_source

    tr = get_transform(name, n, 2)
    src = kernel_source(tr.plan)
    first = src.split("for c in range")[0]
    body = [ln.split("=", 1)[1] for ln in first.splitlines() if re.match(r"\s+t\d+ =", ln)]
    adds = sum(len(re.findall(r" [+-] ", expr)) for expr in body)
    # an integer step like 3 = 2 + 1 is one multiplication in the code but a shift + an addition in the count
    integer_extra = sum(1 for expr in body for m in re.findall(r"\* ([0-9.]+)\)", expr) if float(m) not in (0.5, 2.0, 4.0, 0.25, 8.0))
    assert adds + integer_extra == tr.ops["additions"]


def test_sdct_fast_algorithm_is_the_24_addition_one():
    """The plan of SDCT runs exactly the counted additions and equals the matrix product on
    integer data bit for bit (no rounding: only additions of integers)."""
    tr = get_transform("sdct", 8)
    x = np.random.default_rng(7).integers(-255, 256, size=(200, 8)).astype(np.float64)
    np.testing.assert_array_equal(tr.plan.apply(x, axis=-1), x @ SDCT8.T)
    # the odd part [[1,1,1,1],[1,-1,-1,-1],[1,-1,1,1],[1,-1,1,-1]] shares x2+x3 and x0-x1
    from engines.codec.fastalg import build_plan

    odd = SDCT8[1::2, :4]
    assert build_plan(odd).ops["additions"] == 8


@pytest.mark.parametrize("n", [16, 32, 64])
def test_jam_rdct_structure_orthogonality_and_row_signs(n):
    tr = get_transform("jam-rdct", n)
    T, C = tr.T, dct_matrix(n)
    assert set(np.unique(T)) <= {-1.0, 0.0, 1.0}
    P = T @ T.T
    np.testing.assert_array_equal(P, np.diag(np.diag(P)))  # T T^T diagonal -> C_hat orthogonal
    assert tr.is_orthogonal
    # T_2N T_2N^T = 2 P diag(T_N T_N^T, T_N T_N^T) P^T: the row norms come from the half size
    half = get_transform("jam-rdct", n // 2).T if n > 16 else RDCT8
    d = np.diag(half @ half.T)
    np.testing.assert_array_equal(np.diag(P)[0::2], 2 * d)
    np.testing.assert_array_equal(np.diag(P)[1::2], 2 * d)
    # every basis vector points the same way as the DCT row it approximates (a sign error
    # would put a row at more than 90 degrees and inflate the error energy)
    cos = np.sum(C * tr.matrix, axis=1)
    assert np.all(cos > 0.45), cos
    # even rows follow the exact DCT recursion: C_2N[2k] = [C_N[k], C_N[k] J] / sqrt(2)
    Cn = dct_matrix(n // 2)
    np.testing.assert_allclose(C[0::2], np.hstack([Cn, Cn[:, ::-1]]) / math.sqrt(2), atol=1e-12)


def test_jam_scaling_of_the_exact_dct_keeps_even_rows_exact():
    """Scaling the exact 8-point DCT with JAM gives the exact even rows of the 16-point DCT and
    odd rows positively correlated with the DCT ones (the odd part is the approximation)."""
    from engines.codec.transforms import jam_scale

    J = jam_scale(dct_matrix(8))
    J = J / np.linalg.norm(J, axis=1, keepdims=True)
    C = dct_matrix(16)
    np.testing.assert_allclose(J[0::2], C[0::2], atol=1e-12)
    assert np.all(np.sum(J[1::2] * C[1::2], axis=1) > 0.6)
    np.testing.assert_allclose(J @ J.T, np.eye(16), atol=1e-12)


def test_jam_rdct_error_energy_is_below_its_row_sign_flipped_variant():
    """With the odd block fed ``J x_top - x_bottom`` (rows [T J, -T]) the rows for odd k/2
    flip sign; the correct construction must have the lower error energy."""
    tr = get_transform("jam-rdct", 16)
    flipped = tr.matrix.copy()
    flipped[3::4] *= -1
    assert total_error_energy(tr.matrix) < total_error_energy(flipped) - 10


def _perturbations(row: np.ndarray, m: int, pairs: bool) -> np.ndarray:
    """All vectors at L-infinity distance 1 from ``row`` in one entry (or two entries when
    ``pairs``), staying in {-m..m}."""
    n = row.size
    out = []
    for i in range(n):
        for di in (-1, 1):
            v = row.copy()
            v[i] += di
            if abs(v[i]) <= m:
                out.append(v)
    if pairs:
        for i, j in itertools.combinations(range(n), 2):
            for di in (-1, 1):
                for dj in (-1, 1):
                    v = row.copy()
                    v[i] += di
                    v[j] += dj
                    if abs(v[i]) <= m and abs(v[j]) <= m:
                        out.append(v)
    cand = np.array(out)
    return cand[np.any(cand != 0, axis=1)]


@pytest.mark.parametrize("n", [16, 32])
@pytest.mark.parametrize("m", [1, 2, 3])
def test_minangle_rows_are_locally_optimal(n, m):
    """No neighbouring integer row (one or two entries changed by ±1, full row, symmetry not
    assumed) is at a smaller angle to the DCT row than the search result."""
    C = dct_matrix(n)
    T = minimal_angle_matrix(n, m)
    for k in range(n):
        ours = float(C[k] @ T[k] / np.linalg.norm(T[k]))
        cand = _perturbations(T[k], m, pairs=n <= 16 or k % 4 == 1)
        best = np.max(cand @ C[k] / np.linalg.norm(cand, axis=1))
        assert best <= ours + 1e-12, (k, best, ours)
