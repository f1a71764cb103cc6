"""L2 anchoring: hand values, the gradient λ(θ − θ*), one step of size 1/λ lands on the
anchor, quadratic scaling, and the co-author's code form λ'·Σ(θ − θ*)² (λ = 2λ')."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import l2_anchor_regularizer

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _weights(seed, shape=(40, 700)):
    rng = np.random.default_rng(seed)
    theta_star = rng.standard_normal(shape)
    return theta_star + 0.3 * rng.standard_normal(shape), theta_star


def test_l2_anchor_regularizer_hand_computed_value():
    theta, theta_star = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 4.0])
    assert float(l2_anchor_regularizer(theta, theta_star, lam=0.5)) == 0.25 * 5.0  # (λ/2)(0 + 4 + 1)
    assert float(l2_anchor_regularizer(np.array(3.0), np.array(-1.0), lam=3.0)) == 24.0  # 1.5·16


@pytest.mark.parametrize("backend", BACKENDS)
def test_l2_anchor_regularizer_value_and_gradient_match_the_formula(backend):
    theta, theta_star = _weights(0)  # 28 000 weights: two chunks of the Numba reduction
    lam, cotangent = 0.7, np.array(1.3)
    penalty, pullback = refimpl.vjp(
        "l2_anchor_regularizer", theta, theta_star, lam=lam, backend=_backend(backend)
    )
    (g_theta,) = pullback(cotangent)
    np.testing.assert_allclose(penalty, 0.5 * lam * np.sum((theta - theta_star) ** 2), rtol=1e-13)
    np.testing.assert_allclose(g_theta, 1.3 * lam * (theta - theta_star), rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_l2_anchor_regularizer_step_of_size_one_over_lambda_lands_on_the_anchor(backend):
    theta, theta_star = _weights(1, (9, 13))
    lam = 4.0
    _, pullback = refimpl.vjp("l2_anchor_regularizer", theta, theta_star, lam=lam, backend=_backend(backend))
    (g_theta,) = pullback(np.array(1.0))
    np.testing.assert_allclose(theta - g_theta / lam, theta_star, rtol=0, atol=1e-15)


def test_l2_anchor_regularizer_is_quadratic_in_the_distance_and_translation_invariant():
    theta, theta_star = _weights(2, (5, 6))
    base = float(l2_anchor_regularizer(theta, theta_star, lam=1.0))
    for t in (0.0, 0.5, 3.0):
        scaled = l2_anchor_regularizer(theta_star + t * (theta - theta_star), theta_star, lam=1.0)
        np.testing.assert_allclose(scaled, t * t * base, rtol=1e-13, atol=0)
    shift = np.random.default_rng(3).standard_normal((5, 6))
    np.testing.assert_allclose(
        l2_anchor_regularizer(theta + shift, theta_star + shift, lam=1.0), base, rtol=1e-12
    )


def test_l2_anchor_regularizer_matches_the_coauthors_code_with_lambda_doubled():
    # shaunak27/data-free-continual-learning, learners/kd.py, EWC_MC.update_model:
    # eps * MSELoss(reduction='none')(p, task_param).sum() = λ'·Σ(θ − θ*)², transcribed
    theta, theta_star = _weights(4, (6, 10))
    eps = 0.03
    code = eps * np.sum((theta - theta_star) ** 2)
    np.testing.assert_allclose(l2_anchor_regularizer(theta, theta_star, lam=2 * eps), code, rtol=1e-14)


def test_l2_anchor_regularizer_float32_sum_keeps_its_digits():
    theta, theta_star = _weights(5, (1000, 1000))
    single = l2_anchor_regularizer(theta.astype(np.float32), theta_star.astype(np.float32), lam=1.0)
    double = l2_anchor_regularizer(
        theta.astype(np.float32).astype(np.float64), theta_star.astype(np.float32).astype(np.float64), lam=1.0
    )
    assert single.dtype == np.float32
    np.testing.assert_allclose(single, double, rtol=2e-7)  # float64 accumulation, one final rounding


def test_l2_anchor_regularizer_requires_lambda_and_equal_shapes():
    theta = np.ones(3)
    with pytest.raises(refimpl.InputError, match="'lam'"):
        l2_anchor_regularizer(theta, theta)
    with pytest.raises(refimpl.InputError, match="lam"):
        l2_anchor_regularizer(theta, theta, lam=-1.0)
    with pytest.raises(refimpl.InputError):
        l2_anchor_regularizer(theta, np.ones(4), lam=1.0)
