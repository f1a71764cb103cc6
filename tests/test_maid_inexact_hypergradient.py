"""MAID inexact hypergradient: the exact hypergradient of a quadratic lower level (closed form),
the a-priori inexactness bound ‖ẑ − ∇f‖ ≤ ‖C‖(L_g ε/μ² + δ/μ), the official bound ω by hand,
refinement by τ, the Lipschitz estimates, the CG against a direct solve, refusals."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import maid_inexact_hypergradient
from refimpl.solvers.maid import conjugate_gradient
from refimpl_conformance.cases.solvers.maid import Bilevel, random_bilevel


def _call(problem, theta, x, perturbations, **kwargs):
    kwargs.setdefault("mu", problem.mu)
    return maid_inexact_hypergradient(theta, x, perturbations, *problem.oracles(), **kwargs)


def test_maid_hypergradient_matches_closed_form_on_quadratic():
    rng = np.random.default_rng(0)
    problem = random_bilevel(rng, 5, 3)
    theta = rng.standard_normal(3)
    z, *_ = _call(problem, theta, np.zeros(5), np.zeros((2, 2, 5)), epsilon=1e-12, delta=1e-12)
    # x*(θ) = H⁻¹(Cθ + d), ∇f = (dx*/dθ)ᵀ∇g(x*) = CᵀH⁻¹(x* − x_true)
    x_star = np.linalg.solve(problem.h, problem.c @ theta + problem.d)
    exact = problem.c.T @ np.linalg.solve(problem.h, x_star - problem.x_true)
    np.testing.assert_allclose(z, exact, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize(("epsilon", "delta"), [(1e-1, 1e-1), (1e-2, 1e-3), (1e-4, 1e-2), (1.0, 1e-6)])
def test_maid_hypergradient_error_within_inexactness_bound(epsilon, delta):
    rng = np.random.default_rng(1)
    problem = random_bilevel(rng, 4, 2)
    theta = rng.standard_normal(2)
    direction = rng.standard_normal(4)

    def inexact_solver(theta, x, eps):  # x̃ = x* + H⁻¹e with ‖e‖ = 0.9ε: ‖∇ₓh(x̃)‖ = 0.9ε
        return problem.exact(theta) + np.linalg.solve(
            problem.h, 0.9 * eps * direction / np.linalg.norm(direction)
        )

    oracles = (inexact_solver, *problem.oracles()[1:])
    z, x_tilde, q, eps, dlt, omega, *_ = maid_inexact_hypergradient(
        theta, np.zeros(4), np.zeros((1, 2, 4)), *oracles, epsilon=epsilon, delta=delta, mu=problem.mu
    )
    error = np.linalg.norm(z - problem.hypergradient(theta))
    # ‖x̃ − x*‖ ≤ ε/μ; ∇g 1-Lipschitz; ‖H⁻¹‖ = 1/μ; CG residual ≤ δ
    bound = np.linalg.norm(problem.c, 2) * (eps / problem.mu**2 + dlt / problem.mu)
    assert 0 < error <= bound
    # official ω on a quadratic (L_B = L_A⁻¹ = 0): (B_x/μ)(ε + δ), B_x = max|C ẑ|
    b_x = np.max(np.abs(problem.c @ z))
    assert float(omega) == pytest.approx(b_x / problem.mu * (eps + dlt), rel=1e-12)
    assert np.linalg.norm(problem.grad_lower(x_tilde, theta)) <= eps


def test_maid_hypergradient_refines_until_bound_is_small():
    problem = Bilevel(np.eye(1), np.eye(1), np.zeros(1), np.array([3.0]))
    out = _call(problem, np.array([2.9]), np.array([0.0]), np.zeros((8, 2, 1)), epsilon=1.0, delta=1.0)
    z, epsilon, delta, omega, evaluations, accepted = out[0], out[3], out[4], out[5], out[8], out[9]
    # x̃ = 2.9 exactly, ∇g(x̃) = −0.1: while δ ≥ 0.1 CG stops at once with q = 0, ẑ = 0 (rejected);
    # δ = 1/16 (the 5th evaluation) gives ẑ = −0.1 = ∇f and ω = |ẑ|(ε + δ) = 0.0125
    assert int(evaluations) == 5 and bool(accepted)
    assert float(epsilon) == 1 / 16 and float(delta) == 1 / 16
    assert z[0] == pytest.approx(-0.1, rel=1e-12) and float(omega) == pytest.approx(0.0125, rel=1e-12)
    capped = _call(problem, np.array([2.9]), np.array([0.0]), np.zeros((1, 2, 1)), epsilon=1.0, delta=1.0)
    assert int(capped[8]) == 1 and not bool(capped[9])


def test_maid_hypergradient_lipschitz_estimates_and_running_max():
    rng = np.random.default_rng(2)
    problem = random_bilevel(rng, 3, 2, kappa=0.5)
    theta, xi = rng.standard_normal(2), rng.standard_normal((1, 2, 3))
    out = _call(problem, theta, problem.exact(theta), xi, epsilon=1e-8, delta=1e-8)
    z, x_tilde, q, eps, dlt, omega, l_b, l_a_inv = out[:8]
    assert float(l_b) == 0.0  # the cross derivative −C does not depend on x
    # official LA_inv_approx: ‖CG(∇²h(ξ₂), ∇g(x̃)) − q‖/‖∇g(x̃)‖, here with a direct solve
    grad_g = problem.grad_upper(x_tilde)
    q_xi = np.linalg.solve(problem.hessian(xi[0, 1]), grad_g)
    assert float(l_a_inv) == pytest.approx(np.linalg.norm(q_xi - q) / np.linalg.norm(grad_g), rel=1e-5)
    # ω by the official formula
    b_x, g_norm = np.max(np.abs(problem.c @ z)), np.linalg.norm(grad_g)
    c = b_x / problem.mu + float(l_a_inv) * g_norm * b_x
    assert float(omega) == pytest.approx(c * float(eps) + b_x / problem.mu * float(dlt), rel=1e-12)
    kept = _call(
        problem,
        theta,
        problem.exact(theta),
        xi,
        epsilon=1e-8,
        delta=1e-8,
        lipschitz_b=7.0,
        lipschitz_a_inv=9.0,
    )
    assert float(kept[6]) == 7.0 and float(kept[7]) == 9.0


def test_maid_conjugate_gradient_matches_direct_solve():
    rng = np.random.default_rng(3)
    problem = random_bilevel(rng, 6, 1)
    rhs = rng.standard_normal(6)
    q, iterations = conjugate_gradient(lambda v: problem.h @ v, rhs, 1e-12)
    np.testing.assert_allclose(q, np.linalg.solve(problem.h, rhs), rtol=1e-10)
    assert iterations <= 12
    q_loose, _ = conjugate_gradient(lambda v: problem.h @ v, rhs, 0.1)
    assert np.linalg.norm(problem.h @ q_loose - rhs) <= 0.1


def test_maid_hypergradient_refuses_indefinite_hessian():
    problem = Bilevel(np.eye(1), np.eye(1), np.zeros(1), np.array([3.0]))
    oracles = list(problem.oracles())
    oracles[2] = lambda x, theta, d: -d
    with pytest.raises(refimpl.InputError, match="positive definite"):
        maid_inexact_hypergradient(
            np.array([1.0]), np.zeros(1), np.zeros((1, 2, 1)), *oracles, epsilon=0.1, delta=0.1, mu=1.0
        )


def _official_cg(hvp, point, rhs, tol):
    """MAID.py MAID.CG transcribed: returns ``point`` itself when ‖rhs‖ ≤ tol, else CG from 0."""
    r = rhs.copy()
    if np.linalg.norm(r) <= tol:
        return point.copy()
    solution, p, rs_old = np.zeros_like(rhs), r.copy(), r @ r
    for _ in range(2000):
        a_p = hvp(p)
        alpha = rs_old / (p @ a_p)
        solution, r = solution + alpha * p, r - alpha * a_p
        rs_new = r @ r
        if np.sqrt(rs_new) < tol:
            break
        p, rs_old = r + rs_new / rs_old * p, rs_new
    return solution


def test_maid_hypergradient_official_cg_quirk_documented_example():
    # h = ½x² − θx, g = ½(x − 3)², θ = 2.9, ε = δ = 1, ξ = 0: official inexact_gradient + bound
    theta, xi, epsilon, delta, l_a = 2.9, np.zeros(1), 1.0, 1.0, 0.0
    while True:
        x_tilde = np.array([theta])
        grad_g = x_tilde - 3.0
        q = _official_cg(lambda d: d, x_tilde, grad_g, delta)
        p = q  # −jacobian = −(−q)
        b_x = np.max(np.abs(-p))
        l_a = max(
            l_a, np.linalg.norm(_official_cg(lambda d: d, xi, grad_g, delta) - q) / np.linalg.norm(grad_g)
        )
        omega = (b_x + l_a * np.linalg.norm(grad_g) * b_x) * epsilon + b_x * delta
        if omega / np.linalg.norm(p) <= 1 - 1e-4:
            break
        epsilon, delta = 0.5 * epsilon, 0.5 * delta
    assert p[0] == pytest.approx(2.9) and epsilon == 1 / 8 and l_a == pytest.approx(29.0)
    problem = Bilevel(np.eye(1), np.eye(1), np.zeros(1), np.array([3.0]))
    z, *_ = _call(problem, np.array([2.9]), np.zeros(1), np.zeros((8, 2, 1)), epsilon=1.0, delta=1.0)
    assert z[0] == pytest.approx(-0.1, rel=1e-12)  # the true ∇f(2.9) = −0.1
