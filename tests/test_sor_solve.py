"""SOR: the paper's componentwise sweep, Gauss–Seidel at ω = 1, the direct solution, the optimal ω."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import sor_solve


def spd(rng, n):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (q * rng.uniform(1.0, 10.0, size=n)) @ q.T


def componentwise_sweeps(a, b, x, omega, sweeps):
    """The paper's update, one unknown at a time (newest values of the others)."""
    x = x.copy()
    for _ in range(sweeps):
        for i in range(len(b)):
            sigma = a[i, :i] @ x[:i] + a[i, i + 1 :] @ x[i + 1 :]
            x[i] = (1 - omega) * x[i] + omega / a[i, i] * (b[i] - sigma)
    return x


def official_sor_cost(a, b, omega, tol):
    """The official solvers/sor.m, transcribed: x0 = 0, M = D/ω + tril(A, −1), iterations to tol."""
    m = np.diag(np.diag(a)) / omega + np.tril(a, -1)
    x = np.zeros_like(b)
    r = b - a @ x
    norm0 = np.linalg.norm(r)
    for k in range(1, 10_001):
        x = x + np.linalg.solve(m, r)
        r = b - a @ x
        if np.linalg.norm(r) / norm0 < tol:
            return k, x
    return 10_000, x


@pytest.mark.parametrize("omega", [0.7, 1.0, 1.4, 1.9])
def test_sor_solve_matches_componentwise_sweeps(omega):
    rng = np.random.default_rng(1)
    a, b, x0 = spd(rng, 7), rng.standard_normal(7), rng.standard_normal(7)
    x, norms, iterations, converged = sor_solve(a, b, x0, omega=omega, max_iter=3)
    np.testing.assert_allclose(x, componentwise_sweeps(a, b, x0, omega, 3), rtol=1e-12, atol=1e-12)
    assert int(iterations) == 3 and not bool(converged)
    np.testing.assert_allclose(norms[-1], np.linalg.norm(b - a @ x), rtol=1e-12)


def test_sor_solve_at_omega_one_is_gauss_seidel():
    a = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, -1.0], [0.0, -1.0, 2.0]])
    b = np.array([1.0, 2.0, 3.0])
    x, *_ = sor_solve(a, b, np.zeros(3), omega=1.0, max_iter=1)
    # Gauss–Seidel by hand: x1 = 1/4, x2 = (2 − 1/4)/3 = 7/12, x3 = (3 + 7/12)/2 = 43/24
    np.testing.assert_allclose(x, [0.25, 7 / 12, 43 / 24], rtol=1e-15)


def test_sor_solve_matches_direct_solution():
    rng = np.random.default_rng(2)
    for n in (1, 3, 8):
        a, b = spd(rng, n), rng.standard_normal(n)
        x, norms, iterations, converged = sor_solve(a, b, np.zeros(n), omega=1.3, tol=1e-12)
        assert bool(converged)
        assert norms[-1] < 1e-12 * norms[0] <= norms[-2]
        np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-9, atol=1e-10)
        assert len(norms) == int(iterations) + 1


def test_sor_solve_iteration_count_matches_official_cost():
    a = 2.1 * np.eye(12) - np.eye(12, k=1) - np.eye(12, k=-1)
    b = np.linspace(-1, 1, 12)
    for omega in (1.0, 1.5, 1.8):
        cost, x_official = official_sor_cost(a, b, omega, 1e-8)
        x, _, iterations, converged = sor_solve(a, b, np.zeros(12), omega=omega)
        assert int(iterations) == cost and bool(converged)
        np.testing.assert_allclose(x, x_official, rtol=1e-10)


def test_sor_solve_fastest_near_optimal_omega_for_poisson():
    n = 20
    a = 2 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    rho_jacobi = np.cos(np.pi / (n + 1))
    omega_star = 2 / (1 + np.sqrt(1 - rho_jacobi**2))
    omegas = np.linspace(1.0, 1.98, 99)
    costs = [int(sor_solve(a, np.ones(n), np.zeros(n), omega=w)[2]) for w in omegas]
    assert abs(omegas[int(np.argmin(costs))] - omega_star) < 0.03
    assert min(costs) * 5 < costs[0]  # over-relaxation beats Gauss–Seidel by far


def test_sor_solve_records_and_limits():
    a, b = np.array([[2.0, -1.0], [-1.0, 2.0]]), np.array([1.0, 0.0])
    x, norms, iterations, converged = sor_solve(a, b, np.zeros(2), omega=1.0, max_iter=0)
    assert int(iterations) == 0 and not bool(converged) and np.all(x == 0) and norms.tolist() == [1.0]
    x, norms, iterations, converged = sor_solve(a, np.array([0.0, 3.0]), np.array([1.0, 2.0]), omega=1.3)
    assert int(iterations) == 0 and bool(converged) and norms.tolist() == [0.0]  # x0 solves it exactly


def test_sor_solve_refuses_zero_diagonal_and_bad_omega():
    with pytest.raises(refimpl.InputError, match="nonzero diagonal"):
        sor_solve(np.array([[1.0, 1.0], [1.0, 0.0]]), np.ones(2), np.zeros(2), omega=1.0)
    with pytest.raises(refimpl.InputError, match="omega"):
        sor_solve(np.eye(2), np.ones(2), np.zeros(2), omega=2.0)
