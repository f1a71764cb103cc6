"""MAID backtracking: hand values, the official decrease test with η², the success/failure
updates of β, ε, δ, exact decrease of f on accepted steps, and the MAID loop converging to the
closed-form minimizer of a quadratic bilevel problem."""

import numpy as np
import pytest

from refimpl.solvers import maid_backtracking_step, maid_inexact_hypergradient
from refimpl_conformance.cases.solvers.maid import Bilevel, random_bilevel

SCALAR = Bilevel(np.eye(1), np.eye(1), np.zeros(1), np.array([3.0]))
ORACLES = (SCALAR.lower_solver, SCALAR.upper, SCALAR.grad_upper)
BASE = {"upper_value": 2.0, "epsilon": 1e-3, "delta": 1e-3, "lipschitz_g": 1.0}


def test_maid_backtracking_hand_values_and_success_updates():
    theta, x, value, step, trials, accepted, beta, eps, delta = maid_backtracking_step(
        np.array([1.0]), np.array([1.0]), np.array([-2.0]), *ORACLES, **BASE, beta=0.1
    )
    assert theta[0] == pytest.approx(1.2) and float(value) == pytest.approx(1.62)
    assert int(trials) == 1 and bool(accepted) and float(step) == pytest.approx(0.1)
    assert float(beta) == pytest.approx(0.1 * 10 / 9) and float(eps) == pytest.approx(1.05e-3)
    assert float(delta) == pytest.approx(1.05e-3)


def test_maid_backtracking_shrinks_by_rho():
    # β = 2: θ = 5, g = 2 — the slack 0 + ‖∇g‖ε terms > 0 fails; β·0.9 = 1.8: θ = 4.6, g = 1.28
    theta, _, value, step, trials, accepted, beta, *_ = maid_backtracking_step(
        np.array([1.0]), np.array([1.0]), np.array([-2.0]), *ORACLES, **BASE, beta=2.0
    )
    assert int(trials) == 2 and bool(accepted)
    assert (
        theta[0] == pytest.approx(4.6)
        and float(value) == pytest.approx(1.28)
        and float(step) == pytest.approx(1.8)
    )
    assert float(beta) == pytest.approx(1.8 * 10 / 9)


def test_maid_backtracking_failure_keeps_point_and_tightens_accuracy():
    theta, x, value, step, trials, accepted, beta, eps, delta = maid_backtracking_step(
        np.array([1.0]), np.array([1.0]), np.array([2.0]), *ORACLES, **BASE, beta=0.1, max_trials=12
    )
    assert not bool(accepted) and int(trials) == 12 and float(step) == 0.0
    assert theta[0] == 1.0 and x[0] == 1.0 and float(value) == 2.0
    assert float(beta) == 0.1 and float(eps) == pytest.approx(5e-4) and float(delta) == pytest.approx(5e-4)


def test_maid_backtracking_decrease_test_uses_eta_squared():
    # a tiny step whose exact decrease lies between β η²‖ẑ‖² and β η‖ẑ‖²: accepted only with η²
    z = np.array([-2.0])
    beta = 1e-9
    kwargs = {
        "upper_value": 2.0,
        "epsilon": 1e-15,
        "delta": 1e-3,
        "lipschitz_g": 1.0,
        "beta": beta,
        "max_trials": 1,
    }
    decrease = 2.0 - SCALAR.upper(np.array([1.0 + 2 * beta]))  # ≈ 2·2β = 4e-9
    eta = 0.5
    assert beta * eta**2 * 4 < decrease < beta * eta * 4 * 10  # η² = 0.25: 1e-9 < 4e-9
    out = maid_backtracking_step(np.array([1.0]), np.array([1.0]), z, *ORACLES, **kwargs, eta=eta)
    assert bool(out[5])
    out = maid_backtracking_step(
        np.array([1.0]), np.array([1.0]), z, *ORACLES, **{**kwargs, "beta": 3.0}, eta=0.99
    )
    assert not bool(out[5])  # θ = 7: g = 8 > 2


def test_maid_loop_converges_to_closed_form_minimizer():
    rng = np.random.default_rng(4)
    problem = random_bilevel(rng, 4, 2)
    # f(θ) = ½‖H⁻¹(Cθ + d) − x_true‖²: least squares in θ
    h_inv = np.linalg.inv(problem.h)
    theta_star = np.linalg.lstsq(h_inv @ problem.c, problem.x_true - h_inv @ problem.d, rcond=None)[0]
    theta, x = np.zeros(2), np.zeros(4)
    epsilon, delta, beta = 0.1, 0.1, 0.1  # official initial values
    upper_value = problem.upper(problem.lower_solver(theta, x, epsilon))
    l_b = l_a = 0.0
    f_values = [problem.upper(problem.exact(theta))]
    xi = np.zeros((30, 2, 4))
    for _ in range(70):  # converged to ~1e-6 by then; later, ε shrinks past what the solver reaches
        z, x, _, epsilon, delta, _, l_b, l_a, _, _ = maid_inexact_hypergradient(
            theta,
            x,
            xi,
            *problem.oracles(),
            epsilon=float(epsilon),
            delta=float(delta),
            mu=problem.mu,
            lipschitz_b=float(l_b),
            lipschitz_a_inv=float(l_a),
        )
        new_theta, x, value, _, _, accepted, beta, epsilon, delta = maid_backtracking_step(
            theta,
            x,
            z,
            problem.lower_solver,
            problem.upper,
            problem.grad_upper,
            upper_value=upper_value,
            epsilon=float(epsilon),
            delta=float(delta),
            beta=float(beta),
            lipschitz_g=1.0,
        )
        if bool(accepted):
            f_values.append(problem.upper(problem.exact(new_theta)))
            assert f_values[-1] < f_values[-2]  # inexact acceptance, exact decrease
            upper_value = float(value)
        theta = new_theta
    np.testing.assert_allclose(theta, theta_star, rtol=1e-4, atol=1e-4)
