"""GBNN pseudo-residuals: negative gradients of the official losses, the optimal constant F_0,
saturation, refusals."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

import refimpl
from refimpl.solvers import boosting_pseudo_residuals


def _loss(y, F, loss):  # noqa: N803
    if loss == "squared":
        return 0.5 * np.sum((y - F) ** 2)
    if loss == "log_exponential":
        return np.sum(np.logaddexp(0.0, -2 * y * F))
    return -np.sum(y * log_softmax(F, axis=1))


@pytest.mark.parametrize("loss", ["squared", "log_exponential", "multi_class"])
def test_residuals_are_the_negative_gradient_by_central_differences(loss):
    rng = np.random.default_rng(0)
    n, K = 5, 3
    y = {
        "squared": rng.standard_normal((n, K)),
        "log_exponential": np.array(
            [[1.0, -1.0, 1.0], [-1.0, 1.0, 1.0], [1.0, 1.0, -1.0], [-1.0, 1.0, 1.0], [1.0, -1.0, -1.0]]
        ),
        "multi_class": np.eye(K)[[0, 2, 1, 1, 0]],
    }[loss]
    F = rng.standard_normal((n, K))
    r, _ = boosting_pseudo_residuals(y, F, loss=loss)
    h = 1e-6
    numeric = np.zeros_like(F)
    for index in np.ndindex(F.shape):
        step = np.zeros_like(F)
        step[index] = h
        numeric[index] = -(_loss(y, F + step, loss) - _loss(y, F - step, loss)) / (2 * h)
    np.testing.assert_allclose(r, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("loss", ["squared", "log_exponential"])
def test_initial_value_is_the_best_constant(loss):
    rng = np.random.default_rng(1)
    y = rng.standard_normal((9, 1)) if loss == "squared" else np.array([[1.0]] * 6 + [[-1.0]] * 3)
    _, initial = boosting_pseudo_residuals(y, np.zeros_like(y), loss=loss)
    best = minimize_scalar(lambda c: _loss(y, np.full_like(y, c), loss), tol=1e-12).x
    np.testing.assert_allclose(initial, [best], rtol=1e-6)
    # and the residuals at F_0 sum to zero (first-order condition)
    r, _ = boosting_pseudo_residuals(y, np.full_like(y, initial[0]), loss=loss)
    assert abs(r.sum()) < 1e-12


def test_official_log_exponential_formula():
    # transcribed from GBNN `log_exponential_loss.derive`: 2y / (1 + exp(2 y F))
    rng = np.random.default_rng(2)
    y, F = np.array([[1.0], [-1.0], [1.0], [1.0], [-1.0], [1.0], [1.0]]), rng.standard_normal((7, 1)) * 3
    official = 2 * y / (1 + np.exp(2 * y * F))
    r, initial = boosting_pseudo_residuals(y, F, loss="log_exponential")
    np.testing.assert_allclose(r, official, rtol=1e-14)
    ybar = y.mean()
    np.testing.assert_allclose(initial, [0.5 * np.log((1 + ybar) / (1 - ybar))], rtol=1e-14)


def test_saturated_margins_give_exact_limits_without_overflow():
    y = np.array([[1.0], [-1.0], [1.0], [-1.0]])
    F = np.array([[400.0], [400.0], [-400.0], [-400.0]])
    with np.errstate(all="raise"):
        r, _ = boosting_pseudo_residuals(y, F, loss="log_exponential")
    np.testing.assert_allclose(r, [[0.0], [-2.0], [2.0], [0.0]], atol=1e-300)


def test_multi_class_residuals_sum_to_zero_per_row_and_start_at_zero():
    rng = np.random.default_rng(3)
    y = np.eye(4)[rng.integers(0, 4, size=6)]
    F = rng.standard_normal((6, 4)) * 1e3
    r, initial = boosting_pseudo_residuals(y, F, loss="multi_class")
    np.testing.assert_allclose(r.sum(axis=1), 0.0, atol=1e-12)
    assert np.all(np.isfinite(r))
    np.testing.assert_array_equal(initial, np.zeros(4))


def test_squared_hand_value():
    r, initial = boosting_pseudo_residuals(np.array([[1.0], [3.0]]), np.array([[0.5], [0.5]]))
    np.testing.assert_array_equal(r, [[0.5], [2.5]])
    np.testing.assert_array_equal(initial, [2.0])


def test_one_class_is_refused_since_the_initial_value_is_infinite():
    with pytest.raises(refimpl.InputError, match="one class only in column 1"):
        boosting_pseudo_residuals(
            np.array([[1.0, 1.0], [-1.0, 1.0]]), np.zeros((2, 2)), loss="log_exponential"
        )


@pytest.mark.parametrize(
    ("y", "loss", "match"),
    [
        (np.array([[1.0], [0.0]]), "log_exponential", "−1, \\+1"),
        (np.array([[1.0, 1.0], [0.0, 1.0]]), "multi_class", "one-hot"),
        (np.array([[1.0], [1.0]]), "multi_class", "K >= 2"),
    ],
)
def test_bad_labels_are_refused(y, loss, match):
    with pytest.raises(refimpl.InputError, match=match):
        boosting_pseudo_residuals(y, np.zeros_like(y), loss=loss)
