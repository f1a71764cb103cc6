"""Lasso task relevance: the catalog's tests (λ ≥ ‖Ŵᵀw_0‖_∞ gives 0, λ → 0 gives least squares, the
KKT residual), a direct solve of the same program as a bound-constrained QP (SciPy), the orthonormal
closed form, a monotone objective record, and zero heads."""

import numpy as np
import pytest
from scipy.optimize import minimize

from refimpl.solvers import lasso_task_relevance


def _direct_lasso(W, w0, lam):  # noqa: N803
    """ν = p − q with p, q ≥ 0: ½‖w_0 − Ŵ(p − q)‖² + λ·1ᵀ(p + q), smooth with bounds (L-BFGS-B)."""
    T = W.shape[1]  # noqa: N806

    def objective(z):
        residual = w0 - W @ (z[:T] - z[T:])
        gradient = -W.T @ residual
        return 0.5 * residual @ residual + lam * z.sum(), np.concatenate([gradient + lam, -gradient + lam])

    result = minimize(
        objective,
        np.zeros(2 * T),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0, None)] * (2 * T),
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000},
    )
    return result.x[:T] - result.x[T:]


@pytest.mark.parametrize("seed", range(4))
def test_lasso_matches_a_direct_qp_solution_and_its_kkt_conditions(seed):
    rng = np.random.default_rng(seed)
    W, w0 = rng.standard_normal((7, 5)), rng.standard_normal(7)  # noqa: N806
    lam = 0.3 * np.abs(W.T @ w0).max()
    nu, objectives, iterations, converged = lasso_task_relevance(W, w0, lam=lam, max_iter=5000, tol=1e-13)
    assert bool(converged)
    np.testing.assert_allclose(nu, _direct_lasso(W, w0, lam), atol=1e-6)
    correlation = W.T @ (w0 - W @ nu)  # KKT: = λ sign(ν_t) on the support, |·| ≤ λ off it
    support = nu != 0
    np.testing.assert_allclose(correlation[support], lam * np.sign(nu[support]), atol=1e-10)
    assert np.all(np.abs(correlation[~support]) <= lam + 1e-10)
    assert np.all(np.diff(objectives) <= 1e-12)  # coordinate descent never increases the objective


def test_lambda_above_the_correlation_bound_gives_zero():
    rng = np.random.default_rng(5)
    W, w0 = rng.standard_normal((6, 4)), rng.standard_normal(6)  # noqa: N806
    lam_max = np.abs(W.T @ w0).max()
    nu, _, iterations, converged = lasso_task_relevance(W, w0, lam=lam_max, max_iter=100, tol=0.0)
    np.testing.assert_array_equal(nu, 0.0)
    assert int(iterations) == 1 and bool(converged)
    nu_below, *_ = lasso_task_relevance(W, w0, lam=0.99 * lam_max, max_iter=100, tol=1e-12)
    assert np.count_nonzero(nu_below) == 1  # just below: exactly the most correlated head enters


def test_small_lambda_approaches_least_squares():
    rng = np.random.default_rng(6)
    W, w0 = rng.standard_normal((9, 4)), rng.standard_normal(9)  # noqa: N806
    least_squares = np.linalg.lstsq(W, w0, rcond=None)[0]
    previous = np.inf
    for lam in (1e-1, 1e-3, 1e-5):
        nu, *_ = lasso_task_relevance(W, w0, lam=lam, max_iter=100000, tol=1e-14)
        error = np.abs(nu - least_squares).max()
        assert error < previous
        previous = error
    assert previous < 1e-4


def test_orthonormal_heads_give_the_soft_threshold_of_the_correlations():
    rng = np.random.default_rng(7)
    Q = np.linalg.qr(rng.standard_normal((6, 3)))[0]  # noqa: N806
    w0 = rng.standard_normal(6)
    c = Q.T @ w0
    nu, *_ = lasso_task_relevance(Q, w0, lam=0.4, max_iter=10, tol=1e-14)
    np.testing.assert_allclose(nu, np.sign(c) * np.maximum(np.abs(c) - 0.4, 0), atol=1e-14)


def test_a_zero_head_stays_at_zero_and_max_iter_zero_returns_zero():
    rng = np.random.default_rng(8)
    W, w0 = rng.standard_normal((5, 3)), rng.standard_normal(5)  # noqa: N806
    W[:, 1] = 0.0
    nu, *_ = lasso_task_relevance(W, w0, lam=0.01, max_iter=1000, tol=1e-12)
    assert nu[1] == 0.0 and np.all(nu[[0, 2]] != 0)
    nu0, objectives, iterations, converged = lasso_task_relevance(W, w0, lam=0.01, max_iter=0, tol=1e-12)
    np.testing.assert_array_equal(nu0, 0.0)
    assert int(iterations) == 0 and not bool(converged)
    np.testing.assert_allclose(objectives, [0.5 * w0 @ w0])
