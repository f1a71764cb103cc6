"""The loss-reweighting example: LinUpper beats uniform SGD on redundant regression data."""

import numpy as np
import pytest

import refimpl
from refimpl.examples import loss_reweighting as example


@pytest.fixture(scope="module")
def results():
    return example.main()


def test_both_runs_are_identical_during_the_uniform_warmup(results):
    assert results["linupper_test_loss_end_of_warmup"] == results["uniform_test_loss_end_of_warmup"]
    assert results["linupper_max_weight_in_warmup"] == pytest.approx(1 / example.BATCH, rel=1e-15)


def test_both_runs_learn(results):
    for strategy in ("uniform", "linupper"):
        assert results[f"{strategy}_test_loss_200"] < 0.1 * results["initial_test_loss"]


def test_linupper_converges_much_faster_than_uniform_after_the_warmup(results):
    for step in (50, 100, 200):
        assert results[f"linupper_test_loss_{step}"] < 0.1 * results[f"uniform_test_loss_{step}"]
    assert results["linupper_test_loss_200"] < 1e-3


def test_linupper_weights_are_not_uniform_after_the_warmup(results):
    assert results["uniform_max_weight_after_warmup"] == pytest.approx(1 / example.BATCH, rel=1e-15)
    assert results["linupper_max_weight_after_warmup"] > 3 / example.BATCH


def test_hand_chained_gradient_matches_finite_differences_of_the_weighted_loss():
    x_train, y_train, _, _ = example.make_problem(0)
    x, y = x_train[:16], y_train[:16]
    theta = np.random.default_rng(5).standard_normal(example.DIM)
    residual = x @ theta - y
    weights = example.sample_weights(0.5 * residual**2, 0.4, "linupper")  # held fixed: sg[w]
    _, pullback = refimpl.vjp("loss_weighted_objective", 0.5 * residual**2, weights)
    g_theta = x.T @ (pullback(np.array(1.0))[0] * residual)

    def objective(t):
        return float(weights @ (0.5 * (x @ t - y) ** 2))

    step = 1e-6
    numeric = [
        (objective(theta + step * e) - objective(theta - step * e)) / (2 * step) for e in np.eye(example.DIM)
    ]
    np.testing.assert_allclose(g_theta, numeric, rtol=1e-7, atol=1e-9)
