"""LR+GD step: the logistic gradient step and its large-step (perceptron) limit."""

import numpy as np
import pytest

import refimpl
from refimpl.optim import logistic_gd_step


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


def test_step_matches_the_direct_formula():
    data, labels, x = _problem()
    m = labels * (data @ x)
    grad = -np.mean((1 / (1 + np.exp(m)) * labels)[:, None] * data, axis=0)
    np.testing.assert_allclose(
        logistic_gd_step(data, labels, x, lr=0.7), x - 0.7 * grad, rtol=1e-14, atol=1e-15
    )


def test_gradient_matches_finite_differences_of_the_mean_logistic_loss():
    data, labels, x = _problem(1)

    def f(z):
        return np.mean(np.logaddexp(0, -labels * (data @ z)))

    grad = (x - logistic_gd_step(data, labels, x, lr=1.0)) / 1.0
    h = 1e-6
    fd = np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(x.size)])
    np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-9)


def test_large_step_tends_to_the_batch_perceptron_direction():
    data, labels, _ = _problem(2)
    x = 1e3 * np.random.default_rng(3).standard_normal(4)  # |margins| large: weights ≈ 0 or 1
    m = labels * (data @ x)
    assert np.abs(m).min() > 30
    gamma = 1e8
    step = (logistic_gd_step(data, labels, x, lr=gamma) - x) / gamma
    perceptron = (labels[m < 0][:, None] * data[m < 0]).sum(0) / data.shape[0]
    np.testing.assert_allclose(step, perceptron, rtol=1e-9, atol=1e-12)


def test_zero_margins_get_weight_one_half():
    data = np.array([[1.0, 2.0], [-3.0, 0.5]])
    labels = np.array([1, -1])
    new = logistic_gd_step(data, labels, np.zeros(2), lr=4.0)
    np.testing.assert_allclose(new, 4.0 * 0.5 * (data[0] - data[1]) / 2, rtol=1e-15)


def test_separable_data_reach_positive_margins_with_a_huge_step():
    data, _, _ = _problem(4, n=30, d=3)
    labels = np.where(data @ np.array([1.0, -1.0, 2.0]) > 0, 1, -1)
    x = np.zeros(3)
    for _ in range(2000):
        if (labels * (data @ x) > 0).all():
            break
        x = logistic_gd_step(data, labels, x, lr=1e4)
    assert (labels * (data @ x) > 0).all()


def test_label_zero_is_refused():
    with pytest.raises(refimpl.InputError, match="labels"):
        logistic_gd_step(np.ones((2, 2)), np.array([1, 0]), np.zeros(2), lr=1.0)


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
def test_fast_backends_agree(backend):
    data, labels, x = _problem(5, n=300, d=7)
    ref = logistic_gd_step(data, labels, x, lr=3.0)
    got = _backend(backend).get("logistic_gd_step")(data, labels, x, lr=3.0)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)
