"""The GD construction (Proposition 1 of von Oswald et al.): linear self-attention with the
constructed weights is one gradient-descent step on the in-context regression, to float64
precision; stacked layers are several steps."""

import numpy as np
import pytest

from refimpl.layers import linear_self_attention, lsa_gd_construction


def _data(seed, N=9, d_x=3, d_y=2):  # noqa: N803
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, d_x)), rng.standard_normal((N, d_y)), rng.standard_normal(d_x)


def _gd_step(W, x, y, eta):  # noqa: N803
    """ΔW = −η ∇L(W), L(W) = 1/(2N) Σ_i ‖W x_i − y_i‖², written from the loss."""
    gradient = (x @ W.T - y).T @ x / len(x)
    return -eta * gradient


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lsa_gd_construction_equals_one_gd_step_for_general_start(seed):
    x, y, x_q = _data(seed)
    rng = np.random.default_rng(10 + seed)
    W_0 = rng.standard_normal((y.shape[1], x.shape[1]))
    eta = 0.37
    N = len(x)  # noqa: N806
    weights = lsa_gd_construction(W_0, eta=eta, num_context=N)
    query = np.concatenate([x_q, -W_0 @ x_q])  # (x_q, −W_0 x_q)
    E = np.concatenate([np.concatenate([x, y], axis=1), query[None]])[None]
    out = linear_self_attention(E, *weights, num_context=N)[0]
    delta_W = _gd_step(W_0, x, y, eta)
    d_x = x.shape[1]
    np.testing.assert_array_equal(out[:, :d_x], E[0, :, :d_x])  # x-parts unchanged (zero rows of P G)
    # every context token's y-part changes by −ΔW x_i
    np.testing.assert_allclose(out[:N, d_x:], y - x @ delta_W.T, rtol=0, atol=1e-14)
    # the query's y-slot is minus the prediction after one GD step
    np.testing.assert_allclose(out[N, d_x:], -(W_0 + delta_W) @ x_q, rtol=0, atol=1e-14)


def test_lsa_gd_construction_stacked_layers_are_gd_steps_from_zero():
    x, y, x_q = _data(3, N=12, d_x=4, d_y=1)
    eta, steps, N = 0.5, 5, 12  # noqa: N806
    weights = lsa_gd_construction(np.zeros((1, 4)), eta=eta, num_context=N)
    E = np.concatenate([np.concatenate([x, y], axis=1), np.append(x_q, 0.0)[None]])[None]
    W = np.zeros((1, 4))  # noqa: N806
    for _ in range(steps):
        E = linear_self_attention(E, *weights, num_context=N)
        W = W + _gd_step(W, x, y, eta)  # noqa: N806
        # the tokens now hold the residuals y_i − W_t x_i, the query −W_t x_q
        np.testing.assert_allclose(E[0, :N, 4], y[:, 0] - x @ W[0], rtol=0, atol=1e-13)
        np.testing.assert_allclose(E[0, N, 4], -(W @ x_q)[0], rtol=0, atol=1e-13)
    assert abs(E[0, N, 4]) > 1e-3  # the prediction moved: the test is not vacuous


def test_lsa_gd_construction_weights_published_block_form():
    W_0 = np.array([[1.0, -2.0, 0.5]])
    W_Q, W_K, W_V, P = lsa_gd_construction(W_0, eta=0.2, num_context=4)  # noqa: N806
    np.testing.assert_array_equal(W_Q, np.diag([1.0, 1.0, 1.0, 0.0]))
    np.testing.assert_array_equal(W_K, W_Q)
    np.testing.assert_array_equal(W_V, [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1.0, -2.0, 0.5, -1.0]])
    np.testing.assert_allclose(P, np.eye(4) * 0.05, rtol=1e-15)
    assert lsa_gd_construction(W_0.astype(np.float32), eta=0.2, num_context=4)[3].dtype == np.float32
