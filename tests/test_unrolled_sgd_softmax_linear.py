"""Unrolled SGD of a softmax-linear student: the forward against a hand loop, the reverse-mode
VJP against finite differences of the whole unrolled map, composed with the trajectory loss."""

import numpy as np
import pytest

import refimpl
from refimpl.data_selection import trajectory_matching_loss, unrolled_sgd_softmax_linear


def _hand_loop(theta, x_syn, y_syn, lr, batch_indices):
    """Plain SGD on the mean soft-label cross-entropy −Σ_j Y_ij log softmax(x_i θ)_j, written
    sample by sample (DATM: student_params[-1] − syn_lr · grad)."""
    theta = theta.copy()
    for batch in batch_indices:
        grad = np.zeros_like(theta)
        for i in batch:
            logits = x_syn[i] @ theta
            p = np.exp(logits - logits.max())
            p /= p.sum()
            grad += np.outer(x_syn[i], y_syn[i].sum() * p - y_syn[i])
        theta = theta - lr * grad / len(batch)
    return theta


def _problem(seed, steps=4, batch=3, n=5, dim=3, classes=4):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((dim, classes)) * 0.5
    x = rng.standard_normal((n, dim))
    y = rng.standard_normal((n, classes))  # logit-like labels: any sum
    return theta, x, y, np.array(0.3), rng.integers(0, n, size=(steps, batch))


def test_unrolled_sgd_matches_a_hand_loop():
    theta, x, y, lr, batches = _problem(0)
    np.testing.assert_allclose(
        unrolled_sgd_softmax_linear(theta, x, y, lr, batches),
        _hand_loop(theta, x, y, 0.3, batches),
        rtol=1e-12,
    )


def test_unrolled_sgd_one_step_hand_value():
    got = unrolled_sgd_softmax_linear(
        np.zeros((1, 2)), np.array([[2.0]]), np.array([[1.0, 0.0]]), np.array(0.5), np.array([[0]])
    )
    np.testing.assert_allclose(got, [[0.5, -0.5]], rtol=1e-15)  # 0 − ½·2·(½ − 1, ½)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_unrolled_sgd_vjp_matches_finite_differences_of_the_unrolled_map(seed):
    theta, x, y, lr, batches = _problem(seed)
    rng = np.random.default_rng(100 + seed)
    cotangent = rng.standard_normal(theta.shape)
    _, pullback = refimpl.vjp("unrolled_sgd_softmax_linear", theta, x, y, lr, batches)
    g_x, g_y, g_lr = pullback(cotangent)

    def objective(x_, y_, lr_):
        return float(np.sum(cotangent * _hand_loop(theta, x_, y_, lr_, batches)))

    step = 1e-6
    for array, gradient, index in ((x, g_x, 0), (y, g_y, 1)):
        numeric = np.zeros_like(array)
        for position in np.ndindex(array.shape):
            plus, minus = array.copy(), array.copy()
            plus[position] += step
            minus[position] -= step
            args_plus = [x, y, 0.3]
            args_minus = [x, y, 0.3]
            args_plus[index], args_minus[index] = plus, minus
            numeric[position] = (objective(*args_plus) - objective(*args_minus)) / (2 * step)
        np.testing.assert_allclose(gradient, numeric, rtol=1e-6, atol=1e-8)
    numeric_lr = (objective(x, y, 0.3 + step) - objective(x, y, 0.3 - step)) / (2 * step)
    np.testing.assert_allclose(g_lr, numeric_lr, rtol=1e-6)


def test_unrolled_sgd_composed_with_the_trajectory_loss_matches_finite_differences():
    """The DATM outer gradient: d L(θ_N(X, Y, α)) by the two VJPs chained, against differences."""
    theta, x, y, lr, batches = _problem(4)
    target = theta + 0.2 * np.random.default_rng(5).standard_normal(theta.shape)
    student, pullback = refimpl.vjp("unrolled_sgd_softmax_linear", theta, x, y, lr, batches)
    _, loss_pullback = refimpl.vjp("trajectory_matching_loss", student, target, theta)
    (g_student,) = loss_pullback(np.array(1.0))
    _, _, g_lr = pullback(g_student)

    def loss(lr_):
        return float(trajectory_matching_loss(_hand_loop(theta, x, y, lr_, batches), target, theta))

    numeric = (loss(0.3 + 1e-6) - loss(0.3 - 1e-6)) / 2e-6
    np.testing.assert_allclose(g_lr, numeric, rtol=1e-6)


def test_unrolled_sgd_zero_lr_keeps_theta_and_only_lr_gets_a_gradient():
    theta, x, y, _, batches = _problem(6)
    out, pullback = refimpl.vjp("unrolled_sgd_softmax_linear", theta, x, y, np.array(0.0), batches)
    np.testing.assert_array_equal(out, theta)
    cotangent = np.random.default_rng(7).standard_normal(theta.shape)  # not ones: Σ_j G_dj = 0
    g_x, g_y, g_lr = pullback(cotangent)
    np.testing.assert_array_equal(g_x, 0.0)
    np.testing.assert_array_equal(g_y, 0.0)
    # ᾱ = −Σ_k ⟨G_k(θ_0), θ̄⟩: every step's gradient at θ_0 (one step with α = −1 is θ_0 + G_k)
    expected = -sum(
        np.sum(cotangent * (_hand_loop(theta, x, y, -1.0, batches[k : k + 1]) - theta))
        for k in range(len(batches))
    )
    np.testing.assert_allclose(g_lr, expected, rtol=1e-12)
