"""EWC: hand values, F = 1 is the L2 anchor, F = 0 frees a weight, the gradient λF⊙(θ − θ*),
F ≥ 0 checked, and the co-author's code form λ'·ΣF(θ − θ*)² (λ = 2λ')."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import empirical_fisher_diagonal, ewc_penalty, l2_anchor_regularizer

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _problem(seed, shape=(40, 700)):
    rng = np.random.default_rng(seed)
    theta_star = rng.standard_normal(shape)
    return theta_star + 0.3 * rng.standard_normal(shape), theta_star, rng.gamma(0.5, 2.0, size=shape)


def test_ewc_penalty_hand_computed_value():
    theta, theta_star = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 4.0])
    fisher = np.array([5.0, 0.25, 2.0])
    assert float(ewc_penalty(theta, theta_star, fisher, lam=2.0)) == 3.0  # 0·5 + 4·¼ + 1·2


def test_ewc_penalty_with_unit_fisher_is_the_l2_anchor():
    theta, theta_star, _ = _problem(0, (7, 9))
    np.testing.assert_allclose(
        ewc_penalty(theta, theta_star, np.ones((7, 9)), lam=0.3),
        l2_anchor_regularizer(theta, theta_star, lam=0.3),
        rtol=1e-15,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_ewc_penalty_value_and_gradient_match_the_formula(backend):
    theta, theta_star, fisher = _problem(1)  # 28 000 weights: two chunks of the Numba reduction
    lam = 50.0
    penalty, pullback = refimpl.vjp(
        "ewc_penalty", theta, theta_star, fisher, lam=lam, backend=_backend(backend)
    )
    (g_theta,) = pullback(np.array(0.4))
    np.testing.assert_allclose(penalty, 0.5 * lam * np.sum(fisher * (theta - theta_star) ** 2), rtol=1e-13)
    np.testing.assert_allclose(g_theta, 0.4 * lam * fisher * (theta - theta_star), rtol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ewc_penalty_weight_with_zero_fisher_is_free(backend):
    theta, theta_star, fisher = _problem(2, (4, 6))
    fisher[:, 1] = 0.0
    moved = theta.copy()
    moved[:, 1] += 100.0
    run = _backend(backend).get("ewc_penalty")
    np.testing.assert_allclose(
        run(moved, theta_star, fisher, lam=1.0), run(theta, theta_star, fisher, lam=1.0), rtol=1e-14
    )
    _, pullback = refimpl.vjp("ewc_penalty", theta, theta_star, fisher, lam=1.0, backend=_backend(backend))
    (g_theta,) = pullback(np.array(1.0))
    assert np.all(g_theta[:, 1] == 0.0) and np.all(g_theta[:, 0] != 0.0)


def test_ewc_penalty_matches_the_coauthors_code_with_lambda_doubled():
    # shaunak27/data-free-continual-learning, learners/kd.py, EWC_MC.update_model:
    # mu * (importance_ewc * MSELoss(reduction='none')(p, task_param)).sum(), transcribed
    theta, theta_star, fisher = _problem(3, (6, 10))
    mu = 12.0
    code = mu * np.sum(fisher * (theta - theta_star) ** 2)
    np.testing.assert_allclose(ewc_penalty(theta, theta_star, fisher, lam=2 * mu), code, rtol=1e-14)


def test_ewc_penalty_with_the_empirical_fisher_of_per_sample_gradients():
    rng = np.random.default_rng(4)
    grads = rng.standard_normal((16, 5))
    theta, theta_star = rng.standard_normal(5), rng.standard_normal(5)
    fisher = empirical_fisher_diagonal(grads)
    # (λ/2)Σ_i F_iΔ_i² = (λ/2)(1/N)Σ_n Σ_i (g_ni Δ_i)²
    expected = 0.5 * 3.0 * np.mean(np.sum((grads * (theta - theta_star)) ** 2, axis=1))
    np.testing.assert_allclose(ewc_penalty(theta, theta_star, fisher, lam=3.0), expected, rtol=1e-14)


def test_ewc_penalty_refuses_negative_fisher_and_needs_lambda():
    theta = np.zeros((2, 3))
    fisher = np.ones((2, 3))
    fisher[1, 2] = -0.5
    with pytest.raises(refimpl.InputError, match=r"F ≥ 0.*index \(1, 2\)"):
        ewc_penalty(theta, theta, fisher, lam=1.0)
    with pytest.raises(refimpl.InputError, match="'lam'"):
        ewc_penalty(theta, theta, np.ones((2, 3)))
