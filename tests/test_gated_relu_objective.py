"""Gated-ReLU objective: hand values, the gated model as a loop over neurons, equality with a ReLU
network's loss where the cone constraints hold, and the hand VJP against an explicit sum."""

import numpy as np

import refimpl
from refimpl.solvers import gated_relu_objective


def _loop_objective(X, y, gates, U, beta):  # noqa: N803
    """The paper's sum written neuron by neuron: ½‖Σ_i D_i X u_i − y‖² + β Σ_i ‖u_i‖."""
    prediction = np.zeros(len(y))
    for h, u in zip(gates, U, strict=True):
        D = np.diag((X @ h >= 0).astype(float))  # noqa: N806
        prediction += D @ X @ u
    return 0.5 * np.sum((prediction - y) ** 2) + beta * sum(np.linalg.norm(u) for u in U)


def test_gated_relu_objective_matches_the_hand_value():
    X, y = np.eye(2), np.array([1.0, 2.0])  # noqa: N806
    value = gated_relu_objective(X, y, np.array([[1.0, -1.0]]), np.array([[3.0, 4.0]]), beta=0.5)
    assert float(value) == 6.5  # r = (2, −2): ½·8 + 0.5·5


def test_gated_relu_objective_matches_the_neuron_by_neuron_sum():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((10, 4)), rng.standard_normal(10)  # noqa: N806
    gates, U = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))  # noqa: N806
    np.testing.assert_allclose(
        gated_relu_objective(X, y, gates, U, beta=0.7), _loop_objective(X, y, gates, U, 0.7), rtol=1e-13
    )


def test_gates_equal_to_the_neurons_give_a_relu_network_loss():
    # with h_i = u_i the constraint (2D_i − I) X u_i ≥ 0 holds, so D_i X u_i = relu(X u_i)
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((12, 3)), rng.standard_normal(12)  # noqa: N806
    U = rng.standard_normal((5, 3))  # noqa: N806
    network = np.maximum(X @ U.T, 0).sum(axis=1)
    expected = 0.5 * np.sum((network - y) ** 2) + 0.2 * np.linalg.norm(U, axis=1).sum()
    np.testing.assert_allclose(gated_relu_objective(X, y, U, U, beta=0.2), expected, rtol=1e-13)


def test_gated_relu_objective_vjp_is_the_stated_gradient():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((9, 3)), rng.standard_normal(9)  # noqa: N806
    gates, U = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))  # noqa: N806
    U[2] = 0.0  # the kink: subgradient 0 for the penalty
    beta, g = 0.4, 1.7
    _, vjp = refimpl.vjp(gated_relu_objective, X, y, gates, U, beta=beta)
    (g_u,) = vjp(np.asarray(g))
    masks = (X @ gates.T >= 0).astype(float)
    r = (X @ U.T * masks).sum(axis=1) - y
    for i in range(4):
        expected = X.T @ (masks[:, i] * r)
        if i != 2:
            expected = expected + beta * U[i] / np.linalg.norm(U[i])
        np.testing.assert_allclose(g_u[i], g * expected, rtol=1e-12, atol=1e-14)


def test_gated_relu_objective_keeps_float32():
    X = np.ones((3, 2), dtype=np.float32)  # noqa: N806
    value = gated_relu_objective(
        X, np.ones(3, np.float32), np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), beta=0.1
    )
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, 0.5 * 3 * 9 + 0.1 * 2 * np.sqrt(2), rtol=1e-6)
