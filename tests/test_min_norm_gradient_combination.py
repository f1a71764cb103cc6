"""MGDA min-norm direction: closed form against exhaustive search, Frank–Wolfe against SciPy's QP."""

import numpy as np
import pytest
from scipy.optimize import minimize

from refimpl.optim import min_norm_gradient_combination


def test_two_tasks_closed_form_matches_exhaustive_search():
    rng = np.random.default_rng(0)
    grid = np.linspace(0.0, 1.0, 100_001)
    for _ in range(20):
        g = rng.standard_normal((2, 4)) + rng.standard_normal(4) * rng.choice([0.0, 3.0])
        alpha, d, iterations, gap = min_norm_gradient_combination(g)
        norms = np.linalg.norm(grid[:, None] * g[0] + (1 - grid[:, None]) * g[1], axis=1) ** 2
        assert abs(alpha[0] - grid[np.argmin(norms)]) <= 2e-5
        assert np.dot(d, d) <= norms.min() + 1e-12
        np.testing.assert_allclose(d, -(alpha @ g), rtol=1e-15)
        assert int(iterations) == 0


@pytest.mark.parametrize("m", [3, 4, 5])
def test_frank_wolfe_matches_a_direct_qp_solution(m):
    rng = np.random.default_rng(m)
    g = rng.standard_normal((m, 3)) + rng.standard_normal(3) * 2.0  # optimum on the boundary or inside
    gram = g @ g.T
    direct = minimize(
        lambda a: a @ gram @ a, np.full(m, 1.0 / m), jac=lambda a: 2 * gram @ a, method="SLSQP",
        bounds=[(0, 1)] * m, options={"ftol": 1e-15},
        constraints=[{"type": "eq", "fun": lambda a: a.sum() - 1}],
    )  # fmt: skip
    alpha, d, iterations, gap = min_norm_gradient_combination(g, max_iter=20_000, tol=1e-12)
    assert abs(alpha.sum() - 1) < 1e-12 and alpha.min() >= 0
    # Frank–Wolfe converges sublinearly: the objective within 1e-3 relative of the direct solution
    assert d @ d <= direct.fun * (1 + 1e-3) + 1e-9
    assert float(gap) < 1e-2 * (1 + direct.fun) and int(iterations) >= 1


def test_kkt_conditions_at_the_solution():
    # optimality on the simplex: (Kα)_i ≥ αᵀKα for all i, equality where α_i > 0
    rng = np.random.default_rng(9)
    g = rng.standard_normal((4, 6)) + 1.5
    alpha, d, _, gap = min_norm_gradient_combination(g, max_iter=50_000, tol=0.0)
    k_alpha = g @ g.T @ alpha
    value = alpha @ k_alpha
    # to Frank–Wolfe's accuracy (the duality gap bounds the violation)
    assert np.all(k_alpha >= value - float(gap) - 1e-12)
    assert float(gap) < 1e-3 * value
    assert np.all(np.abs(k_alpha[alpha > 0.05] - value) < 1e-2 * value)
    # d is a common descent direction: d·g_i ≤ −‖d‖² (up to the gap)
    assert np.all(g @ d <= -(d @ d) + float(gap) + 1e-12)


def test_direction_is_zero_at_pareto_stationary_points():
    g = np.array([[1.0, 2.0], [-1.0, -2.0], [0.5, 3.0]])
    alpha, d, _, _ = min_norm_gradient_combination(g, max_iter=100_000, tol=0.0)
    np.testing.assert_allclose(d, 0.0, atol=5e-3)  # Frank–Wolfe: ‖d‖² = O(1/k)
    alpha2, d2, _, _ = min_norm_gradient_combination(g[:2])  # closed form: exactly ½, ½
    np.testing.assert_array_equal(alpha2, [0.5, 0.5])
    np.testing.assert_array_equal(d2, 0.0)


def test_equal_pair_takes_one_half_and_clipped_pair_a_vertex():
    alpha, d, _, gap = min_norm_gradient_combination(np.array([[1.0, 2.0], [1.0, 2.0]]))
    np.testing.assert_array_equal(alpha, [0.5, 0.5])
    np.testing.assert_array_equal(d, [-1.0, -2.0])
    alpha, d, _, gap = min_norm_gradient_combination(np.array([[1.0, 0.0], [3.0, 0.0]]))
    np.testing.assert_array_equal(alpha, [1.0, 0.0])  # the official solver would give 0.999
    np.testing.assert_array_equal(d, [-1.0, 0.0])
    assert float(gap) == 0.0


def test_iteration_record_respects_max_iter_and_tolerance():
    rng = np.random.default_rng(3)
    g = rng.standard_normal((4, 3))
    _, _, iterations, _ = min_norm_gradient_combination(g, max_iter=7, tol=0.0)
    assert int(iterations) == 7
    _, _, early, _ = min_norm_gradient_combination(g, max_iter=10_000, tol=1e-3)
    assert 1 <= int(early) < 10_000
