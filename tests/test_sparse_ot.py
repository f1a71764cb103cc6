"""Sparsity-constrained OT: the sparse-simplex projection (brute force, ties, VJP), the dual and
semi-dual objectives (limits k = 1 and k >= m), and optimality of the plan at a solved optimum."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize

import refimpl
from refimpl import InputError
from refimpl.transport import (
    sparse_simplex_projection,
    sparsity_constrained_ot_dual,
    sparsity_constrained_ot_plan,
    sparsity_constrained_ot_semi_dual,
)

BACKENDS = ["numpy", "numba", "cupy[host]"]


def run(backend, *args, **kwargs):
    if backend == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend().get("sparse_simplex_projection")(*args, **kwargs)
    return refimpl.backend(backend).get("sparse_simplex_projection")(*args, **kwargs)


def simplex_projection_by_active_set(v):
    """Projection onto the simplex by Michelot's active-set iteration (no sort): shift the kept
    entries to sum to 1, drop those that go negative, repeat."""
    kept = np.ones(v.size, dtype=bool)
    while True:
        theta = (v[kept].sum() - 1) / kept.sum()
        negative = kept & (v - theta <= 0)
        if not negative.any():
            return np.where(kept, v - theta, 0.0)
        kept &= ~negative


def sparse_projection_by_brute_force(x, k):
    """The closest point over every support of at most k entries."""
    best, best_distance = None, np.inf
    for size in range(1, min(k, x.size) + 1):
        for support in itertools.combinations(range(x.size), size):
            y = np.zeros_like(x)
            y[list(support)] = simplex_projection_by_active_set(x[list(support)])
            distance = np.sum((y - x) ** 2)
            if distance < best_distance - 1e-12:
                best, best_distance = y, distance
    return best


def marginals(rng, m, n):
    a, b = rng.random(m) + 0.1, rng.random(n) + 0.1
    return a / a.sum(), b / b.sum()


# -- the projection -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_projection_equals_brute_force_over_all_supports(backend):
    rng = np.random.default_rng(0)
    for _ in range(30):
        m = int(rng.integers(1, 7))
        k = int(rng.integers(1, m + 2))
        x = rng.standard_normal(m) * float(rng.choice([0.2, 1.0, 4.0]))
        np.testing.assert_allclose(
            run(backend, x, max_nz=k), sparse_projection_by_brute_force(x, k), atol=1e-9
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_projection_lands_on_the_constraint_set_and_is_idempotent(backend):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 40)) * 3
    for k in (1, 3, 12, 40, 100):  # Numba: insertion for small k, a stable sort for large k
        y = run(backend, x, max_nz=k)
        assert np.all(y >= 0)
        np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-13)
        assert np.all(np.count_nonzero(y, axis=-1) <= k)
        np.testing.assert_allclose(run(backend, y, max_nz=k), y, atol=1e-15)
        np.testing.assert_allclose(y, sparse_simplex_projection(x, max_nz=k), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_projection_keeps_the_lowest_index_at_a_tie(backend):
    x = np.array([0.5, 0.3, 0.3, 0.1])
    np.testing.assert_allclose(run(backend, x, max_nz=2), [0.6, 0.4, 0.0, 0.0], rtol=1e-15)
    # a long row of equal values: both Numba paths (insertion, stable sort) keep the first k
    row = np.ones(64)
    for k in (2, 20):
        y = run(backend, row, max_nz=k)
        np.testing.assert_allclose(y[:k], 1.0 / k, rtol=1e-15)
        assert np.all(y[k:] == 0)


def test_projection_with_k_at_least_m_is_the_simplex_projection():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 6)) * 2
    expected = np.array([simplex_projection_by_active_set(row) for row in x])
    np.testing.assert_allclose(sparse_simplex_projection(x, max_nz=6), expected, atol=1e-12)
    np.testing.assert_allclose(sparse_simplex_projection(x, max_nz=99), expected, atol=1e-12)
    # k = 1: the vertex at the argmax
    np.testing.assert_array_equal(sparse_simplex_projection(x, max_nz=1), np.eye(6)[x.argmax(axis=1)])


def test_projection_with_a_support_smaller_than_k():
    y = sparse_simplex_projection(np.array([2.0, 0.0, -1.0, 0.5]), max_nz=3)  # θ = 1
    np.testing.assert_array_equal(y, [1.0, 0.0, 0.0, 0.0])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_projection_vjp_centres_the_cotangent_on_the_support(backend):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 7))
    g = rng.standard_normal((4, 7))
    y, pullback = refimpl.vjp("sparse_simplex_projection", x, max_nz=3, backend=backend)
    (g_x,) = pullback(g)
    support = y > 0
    expected = np.where(support, g - (g * support).sum(-1, keepdims=True) / support.sum(-1, keepdims=True), 0)
    np.testing.assert_allclose(g_x, expected, rtol=1e-13, atol=1e-15)
    # finite differences (the rows are tie-free and no entry sits at θ)
    step = 1e-7
    for index in [(0, 0), (1, 3), (2, 6), (3, 2)]:
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        numeric = np.sum(
            g * (sparse_simplex_projection(plus, max_nz=3) - sparse_simplex_projection(minus, max_nz=3))
        )
        np.testing.assert_allclose(g_x[index], numeric / (2 * step), rtol=1e-6, atol=1e-9)


# -- the dual and the semi-dual ---------------------------------------------------------------------------
def test_dual_with_k_at_least_m_is_the_squared_l2_dual_and_inputs_are_not_written():
    rng = np.random.default_rng(4)
    m, n, gamma = 5, 4, 0.7
    alpha, beta = rng.standard_normal(m), rng.standard_normal(n)
    a, b = marginals(rng, m, n)
    C = rng.random((m, n))
    copies = [v.copy() for v in (alpha, beta, a, b, C)]
    X = alpha[:, None] + beta - C
    expected = alpha @ a + beta @ b - np.sum(np.maximum(X, 0) ** 2) / (2 * gamma)  # SquaredL2.delta_Omega
    for k in (m, m + 3):
        value = sparsity_constrained_ot_dual(alpha, beta, a, b, C, gamma=gamma, max_nz=k)
        np.testing.assert_allclose(value, expected, rtol=1e-14)
    for original, copy in zip((alpha, beta, a, b, C), copies):
        np.testing.assert_array_equal(original, copy)


def test_dual_keeps_the_k_largest_per_column_and_its_gradient_is_the_plan():
    alpha, beta = np.array([1.0, 0.5, 0.2]), np.array([0.0, 0.3])
    C = np.array([[0.0, 0.1], [0.2, 0.0], [0.1, 0.4]])
    a, b = np.full(3, 1 / 3), np.array([0.5, 0.5])
    # X = [[1.0, 1.2], [0.3, 0.8], [0.1, 0.1]]: k = 2 keeps rows 0, 1 in both columns
    value, pullback = refimpl.vjp(sparsity_constrained_ot_dual, alpha, beta, a, b, C, gamma=2.0, max_nz=2)
    conjugates = (1.0 + 0.09 + 1.44 + 0.64) / 4
    np.testing.assert_allclose(value, alpha @ a + beta @ b - conjugates, rtol=1e-14)
    T = np.array([[0.5, 0.6], [0.15, 0.4], [0.0, 0.0]])
    g_alpha, g_beta, g_C = pullback(np.array(3.0))
    np.testing.assert_allclose(g_alpha, 3 * (a - T.sum(1)), rtol=1e-14)
    np.testing.assert_allclose(g_beta, 3 * (b - T.sum(0)), rtol=1e-14)
    np.testing.assert_allclose(g_C, 3 * T, rtol=1e-14)
    plan = sparsity_constrained_ot_plan(alpha, C, beta=beta, gamma=2.0, max_nz=2)
    np.testing.assert_allclose(plan, T, rtol=1e-14)


def test_semi_dual_with_k_one_is_the_unregularized_semi_dual_plus_a_constant():
    rng = np.random.default_rng(5)
    m, n, gamma = 6, 4, 0.3
    a, b = marginals(rng, m, n)
    C = rng.random((m, n))
    for _ in range(5):
        alpha = rng.standard_normal(m)
        unregularized = alpha @ a - b @ (alpha[:, None] - C).max(axis=0)  # c-transform semi-dual
        value = sparsity_constrained_ot_semi_dual(alpha, a, b, C, gamma=gamma, max_nz=1)
        np.testing.assert_allclose(value, unregularized + gamma / 2 * np.sum(b**2), rtol=1e-13)


def test_semi_dual_with_k_at_least_m_is_the_squared_l2_semi_dual():
    rng = np.random.default_rng(6)
    m, n, gamma = 5, 3, 0.8
    a, b = marginals(rng, m, n)
    C, alpha = rng.random((m, n)), rng.standard_normal(m)
    X = alpha[:, None] - C
    G = np.stack([simplex_projection_by_active_set(X[:, j] / (b[j] * gamma)) for j in range(n)], axis=1)
    expected = alpha @ a - b @ (np.sum(X * G, 0) - 0.5 * gamma * b * np.sum(G * G, 0))  # SquaredL2.max_Omega
    value = sparsity_constrained_ot_semi_dual(alpha, a, b, C, gamma=gamma, max_nz=m)
    np.testing.assert_allclose(value, expected, rtol=1e-10)


def test_the_objectives_are_concave_along_lines():
    rng = np.random.default_rng(7)
    m, n = 5, 4
    a, b = marginals(rng, m, n)
    C = rng.random((m, n))
    for _ in range(10):
        p0, p1 = rng.standard_normal(m + n), rng.standard_normal(m + n)
        middle = (p0 + p1) / 2
        dual = [
            sparsity_constrained_ot_dual(p[:m], p[m:], a, b, C, gamma=0.5, max_nz=2) for p in (p0, p1, middle)
        ]
        assert dual[2] >= (dual[0] + dual[1]) / 2 - 1e-12
        semi = [
            sparsity_constrained_ot_semi_dual(p[:m], a, b, C, gamma=0.5, max_nz=2) for p in (p0, p1, middle)
        ]
        assert semi[2] >= (semi[0] + semi[1]) / 2 - 1e-12


# -- optimality: solve with L-BFGS (here, in the test), then check the plan ---------------------------------
def primal(T, C, gamma):
    return np.sum(T * C) + gamma / 2 * np.sum(T * T)


def instance(seed):
    rng = np.random.default_rng(seed)
    a, b = marginals(rng, 6, 5)
    return a, b, rng.random((6, 5))


LBFGS = {"gtol": 1e-12, "ftol": 1e-15, "maxiter": 5000}


def solve_dual(a, b, C, gamma, k):
    m = a.size

    def negative(params):  # the raw reference forward and backward: no validation in the loop
        value, residuals = sparsity_constrained_ot_dual.forward(
            params[:m], params[m:], a, b, C, gamma=gamma, max_nz=k
        )
        g_alpha, g_beta, _ = sparsity_constrained_ot_dual.backward(residuals, np.array(1.0))
        return -float(value), -np.concatenate([g_alpha, g_beta])

    result = minimize(negative, np.zeros(m + b.size), jac=True, method="L-BFGS-B", options=LBFGS)
    T = sparsity_constrained_ot_plan(result.x[:m], C, beta=result.x[m:], gamma=gamma, max_nz=k)
    return T, -result.fun


def solve_semi_dual(a, b, C, gamma, k):
    def negative(alpha):
        value, pullback = refimpl.vjp(
            sparsity_constrained_ot_semi_dual, alpha, a, b, C, gamma=gamma, max_nz=k
        )
        return -float(value), -pullback(np.array(1.0))[0]

    result = minimize(negative, np.zeros(a.size), jac=True, method="L-BFGS-B", options=LBFGS)
    return sparsity_constrained_ot_plan(result.x, C, b=b, gamma=gamma, max_nz=k), -result.fun


# (seed, γ, k): k = 3 is below the column support of the unconstrained plan (4 and 5): the
# constraint is active; these instances have a differentiable optimum (in general the maximizer
# of a sparsity-constrained dual can sit at a tie of the top-k, where the recovered plan is only
# near-feasible). k = 5: the constraint is inactive, squared-L2 OT.
@pytest.mark.parametrize("seed, gamma, k", [(13, 0.5, 3), (13, 0.5, 5)])
def test_dual_and_semi_dual_optima_give_the_same_feasible_k_sparse_plan_without_gap(seed, gamma, k):
    a, b, C = instance(seed)
    dense, dense_value = solve_dual(a, b, C, gamma, 6)
    values = []
    for solve in (solve_dual, solve_semi_dual):
        T, value = solve(a, b, C, gamma, k)
        values.append(value)
        np.testing.assert_allclose(T.sum(axis=1), a, atol=1e-6)  # marginals: the gradient vanishes
        np.testing.assert_allclose(T.sum(axis=0), b, atol=1e-6)
        assert np.all(T >= 0) and np.all(np.count_nonzero(T, axis=0) <= k)
        assert abs(primal(T, C, gamma) - value) < 1e-6  # no duality gap: T is a primal optimum
        if np.count_nonzero(dense, axis=0).max() > k:  # active: the sparse optimum costs more
            assert value > dense_value + 1e-6  # (the solvers agree to ~1e-8)
        else:
            np.testing.assert_allclose(T, dense, atol=1e-5)
    np.testing.assert_allclose(
        solve_dual(a, b, C, gamma, k)[1], solve_semi_dual(a, b, C, gamma, k)[1], atol=1e-7
    )


def test_plan_needs_exactly_one_of_beta_and_b():
    alpha, C = np.zeros(3), np.ones((3, 2))
    with pytest.raises(InputError, match="exactly one"):
        sparsity_constrained_ot_plan(alpha, C, gamma=1.0, max_nz=1)
    with pytest.raises(InputError, match="both"):
        sparsity_constrained_ot_plan(alpha, C, beta=np.zeros(2), b=np.full(2, 0.5), gamma=1.0, max_nz=1)
    with pytest.raises(InputError, match=r"'b'.*positive"):
        sparsity_constrained_ot_semi_dual(
            alpha, np.full(3, 1 / 3), np.array([1.0, 0.0]), C, gamma=1.0, max_nz=1
        )


def test_dual_matches_pots_computation_below_m_and_pot_raises_from_m_on():
    from refimpl_conformance.deviations import transcription

    official = transcription("pot-sparsity-dual-max-nz-at-least-m").fn  # POT's dual_obj_grad, as it runs
    rng = np.random.default_rng(10)
    m, n = 5, 4
    alpha, beta = rng.standard_normal(m), rng.standard_normal(n)
    a, b = marginals(rng, m, n)
    C = rng.random((m, n))
    for k in range(1, m):
        expected = official(alpha, beta, a, b, C, gamma=0.3, max_nz=k, dtype="float64")["value"]
        value = sparsity_constrained_ot_dual(alpha, beta, a, b, C, gamma=0.3, max_nz=k)
        np.testing.assert_allclose(value, expected, rtol=1e-14)
    with pytest.raises(ValueError):
        official(alpha, beta, a, b, C, gamma=0.3, max_nz=m, dtype="float64")
    assert np.isfinite(sparsity_constrained_ot_dual(alpha, beta, a, b, C, gamma=0.3, max_nz=m))
