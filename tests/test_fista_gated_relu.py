"""FISTA on the gated-ReLU program: the group-Lasso closed form, a direct SciPy solve of the same
program (support enumeration and BFGS), the optimality conditions, the zero solution, the convergence record,
and the relaxation bound against feasible points of the exact convex program."""

import numpy as np
import pytest
from scipy.optimize import minimize

from refimpl.solvers import fista_gated_relu, gated_relu_objective


def _masks(X, gates):  # noqa: N803
    return (X @ gates.T >= 0).astype(float)


def _direct_solution(X, y, gates, beta):  # noqa: N803
    """The minimum by support enumeration: for each set S of nonzero groups the objective is smooth
    near its minimizer over S, found by BFGS; the program is convex, so the best over all S is the
    global minimum (a minimizer with a zero group in S is also the minimizer of a smaller S)."""
    from itertools import combinations

    masks = _masks(X, gates)
    P, d = gates.shape  # noqa: N806
    A = (masks[:, :, None] * X[:, None, :]).reshape(len(y), -1)  # noqa: N806
    best_u, best_value = np.zeros((P, d)), 0.5 * np.sum(y**2)
    for size in range(1, P + 1):
        for support in combinations(range(P), size):
            columns = np.concatenate([np.arange(i * d, (i + 1) * d) for i in support])

            def objective(z, columns=columns):
                groups = z.reshape(-1, d)
                return (
                    0.5 * np.sum((A[:, columns] @ z - y) ** 2) + beta * np.sqrt((groups**2).sum(axis=1)).sum()
                )

            start = np.linalg.lstsq(A[:, columns], y, rcond=None)[0] + 1e-3
            result = minimize(objective, start, method="BFGS", options={"gtol": 1e-12, "maxiter": 10000})
            if result.fun < best_value:
                best_value = result.fun
                best_u = np.zeros(P * d)
                best_u[columns] = result.x
                best_u = best_u.reshape(P, d)
    return best_u, best_value


def test_fista_reproduces_the_block_shrinkage_of_the_group_lasso():
    U, objectives, norms, iterations, converged = fista_gated_relu(  # noqa: N806
        np.eye(2),
        np.array([3.0, 4.0]),
        np.array([[1.0, 1.0]]),
        np.zeros((1, 2)),
        beta=1.0,
        max_iter=100,
        tol=1e-12,
    )
    np.testing.assert_allclose(U, [[2.4, 3.2]], rtol=1e-12)
    assert bool(converged)
    np.testing.assert_allclose(objectives[-1], 0.5 * 1.0 + 4.0, rtol=1e-12)  # ½‖(0.6, 0.8)‖² + ‖U‖


@pytest.mark.parametrize("seed", range(3))
def test_fista_matches_a_direct_solve_of_the_same_program(seed):
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((8, 2)), rng.standard_normal(8)  # noqa: N806
    gates = rng.standard_normal((3, 2))
    beta = 0.5
    U, objectives, _, _, converged = fista_gated_relu(  # noqa: N806
        X, y, gates, np.zeros((3, 2)), beta=beta, max_iter=20000, tol=1e-10
    )
    assert bool(converged)
    direct_u, direct_value = _direct_solution(X, y, gates, beta)
    np.testing.assert_allclose(objectives[-1], direct_value, rtol=1e-8)
    np.testing.assert_allclose(U, direct_u, atol=1e-5)
    # the optimality conditions, group by group: ∇_i f + β u_i/‖u_i‖ = 0, or ‖∇_i f‖ ≤ β at u_i = 0
    masks = _masks(X, gates)
    gradient = (masks * ((X @ U.T * masks).sum(axis=1) - y)[:, None]).T @ X
    for i in range(3):
        norm = np.linalg.norm(U[i])
        if norm > 1e-9:
            np.testing.assert_allclose(gradient[i] + beta * U[i] / norm, 0, atol=1e-8)
        else:
            assert np.linalg.norm(gradient[i]) <= beta + 1e-8


def test_a_large_beta_gives_the_zero_solution():
    rng = np.random.default_rng(4)
    X, y, gates = rng.standard_normal((7, 3)), rng.standard_normal(7), rng.standard_normal((4, 3))  # noqa: N806
    beta_max = np.linalg.norm((_masks(X, gates) * y[:, None]).T @ X, axis=1).max()
    U, *_ = fista_gated_relu(X, y, gates, np.ones((4, 3)), beta=1.01 * beta_max, max_iter=2000, tol=1e-12)  # noqa: N806
    np.testing.assert_array_equal(U, 0.0)


def test_the_convergence_record_is_consistent():
    rng = np.random.default_rng(5)
    X, y, gates = rng.standard_normal((6, 2)), rng.standard_normal(6), rng.standard_normal((2, 2))  # noqa: N806
    U0 = rng.standard_normal((2, 2))  # noqa: N806
    U, objectives, norms, iterations, converged = fista_gated_relu(
        X, y, gates, U0, beta=0.3, max_iter=5, tol=0.0
    )  # noqa: N806
    assert int(iterations) == 5 and not bool(converged)
    assert objectives.shape == (6,) and norms.shape == (5,)
    np.testing.assert_allclose(objectives[0], gated_relu_objective(X, y, gates, U0, beta=0.3), rtol=1e-14)
    np.testing.assert_allclose(objectives[-1], gated_relu_objective(X, y, gates, U, beta=0.3), rtol=1e-14)
    U_same, objectives_0, _, iterations_0, _ = fista_gated_relu(
        X, y, gates, U0, beta=0.3, max_iter=0, tol=0.0
    )  # noqa: N806
    np.testing.assert_array_equal(U_same, U0)
    assert int(iterations_0) == 0 and objectives_0.shape == (1,)


def test_the_relaxed_optimum_is_below_the_exact_objective_at_feasible_points():
    # any feasible (v_i, w_i) of the exact program gives u_i = v_i − w_i with the same predictions
    # and ‖u_i‖ ≤ ‖v_i‖ + ‖w_i‖: the gated-ReLU optimum is a lower bound of the exact optimum
    rng = np.random.default_rng(6)
    X, y = rng.standard_normal((10, 2)), rng.standard_normal(10)  # noqa: N806
    gates = rng.standard_normal((3, 2))
    beta = 0.4
    _, objectives, _, _, _ = fista_gated_relu(
        X, y, gates, np.zeros((3, 2)), beta=beta, max_iter=20000, tol=1e-10
    )
    masks = _masks(X, gates)
    for _ in range(200):
        # (v_i, w_i) = (c_i h_i, 0) with c_i ≥ 0 is feasible: X v_i has the sign of X h_i, so
        # (2D_i − I) X v_i ≥ 0, and w_i = 0 satisfies every cone
        V = gates * rng.uniform(0, 2, size=(3, 1))  # noqa: N806
        exact = (
            0.5 * np.sum((((X @ V.T) * masks).sum(axis=1) - y) ** 2) + beta * np.linalg.norm(V, axis=1).sum()
        )
        assert objectives[-1] <= exact + 1e-12
