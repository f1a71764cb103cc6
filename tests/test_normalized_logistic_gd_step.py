"""Normalized LR+GD: the step divided by f(x) or by ‖∇f(x)‖, robust where f underflows."""

import numpy as np
import pytest

import refimpl
from refimpl.optim import logistic_gd_step, normalized_logistic_gd_step


def _backend(name):
    if name == "cupy[host]":
        from refimpl_cupy import host_backend

        return host_backend()
    return refimpl.backend(name)


def _problem(seed=0, n=20, d=4):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n, d))
    labels = rng.choice([-1, 1], size=n)
    return data, labels, rng.standard_normal(d)


def _f_and_grad(data, labels, x):
    m = labels * (data @ x)
    f = np.mean(np.logaddexp(0, -m))
    grad = -np.mean((1 / (1 + np.exp(m)) * labels)[:, None] * data, axis=0)
    return f, grad


def test_loss_normalized_step_is_gamma_over_f_times_the_gradient():
    data, labels, x = _problem()
    f, grad = _f_and_grad(data, labels, x)
    got = normalized_logistic_gd_step(data, labels, x, lr=0.3, normalizer="loss")
    np.testing.assert_allclose(got, x - 0.3 / f * grad, rtol=1e-13, atol=1e-14)
    # the same as an LR+GD step with step size γ/f
    np.testing.assert_allclose(got, logistic_gd_step(data, labels, x, lr=0.3 / f), rtol=1e-13, atol=1e-14)


def test_grad_norm_step_has_length_gamma_along_minus_the_gradient():
    data, labels, x = _problem(1)
    _, grad = _f_and_grad(data, labels, x)
    got = normalized_logistic_gd_step(data, labels, x, lr=0.25, normalizer="grad_norm")
    np.testing.assert_allclose(got, x - 0.25 * grad / np.linalg.norm(grad), rtol=1e-13, atol=1e-14)
    assert np.linalg.norm(got - x) == pytest.approx(0.25, rel=1e-14)


def test_steps_stay_finite_and_bounded_when_the_loss_underflows():
    data, _, _ = _problem(2, n=10, d=3)
    w = np.array([1.0, -1.0, 0.5])
    labels = np.where(data @ w > 0, 1, -1)
    x = 1e5 * w  # margins ~1e4–1e5: exp(−m) = 0, f = ∇f = 0 in float64
    assert np.mean(np.logaddexp(0, -labels * (data @ x))) == 0.0
    step = normalized_logistic_gd_step(data, labels, x, lr=1.0, normalizer="loss") - x
    # Σω ≤ 1 and → 1: the step is a convex combination of y_i a_i, dominated by the smallest margin
    i = np.argmin(labels * (data @ x))
    np.testing.assert_allclose(step, labels[i] * data[i], rtol=1e-9)
    step = normalized_logistic_gd_step(data, labels, x, lr=2.0, normalizer="grad_norm") - x
    assert np.linalg.norm(step) == pytest.approx(2.0, rel=1e-12)


def test_loss_weights_sum_to_at_most_one():
    from refimpl.optim.logistic_gd import normalized_weights

    rng = np.random.default_rng(3)
    for scale in (0.1, 1.0, 10.0, 1e3):
        omega = normalized_weights(scale * rng.standard_normal(50), "loss")
        assert 0 < omega.sum() <= 1 + 1e-15


def test_stationary_point_does_not_move_with_grad_norm():
    data = np.array([[1.0, 2.0], [1.0, 2.0]])
    x = np.zeros(2)
    got = normalized_logistic_gd_step(data, np.array([1, -1]), x, lr=1.0, normalizer="grad_norm")
    np.testing.assert_array_equal(got, x)


def test_normalizer_is_required():
    data, labels, x = _problem()
    with pytest.raises((TypeError, refimpl.InputError)):
        normalized_logistic_gd_step(data, labels, x, lr=1.0)


@pytest.mark.parametrize("normalizer", ["loss", "grad_norm"])
@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
def test_fast_backends_agree(backend, normalizer):
    data, labels, x = _problem(5, n=300, d=7)
    for scale in (1.0, 1e4):
        ref = normalized_logistic_gd_step(data, labels, scale * x, lr=3.0, normalizer=normalizer)
        fast = _backend(backend).get("normalized_logistic_gd_step")
        got = fast(data, labels, scale * x, lr=3.0, normalizer=normalizer)
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * scale)
