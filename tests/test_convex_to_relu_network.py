"""Convex solution → ReLU network: the network reproduces the convex model's predictions on feasible
points of the exact program, its weight decay equals the convex penalty, hand values, zero neurons."""

import numpy as np

from refimpl.solvers import convex_to_relu_network


def _network(first, second, X):  # noqa: N803
    return np.maximum(X @ first.T, 0) @ second


def test_the_network_reproduces_the_convex_model_on_feasible_points():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 4))  # noqa: N806
    gates_v, gates_w = rng.standard_normal((2, 5, 4))
    # v_i = c·h_i lies in the cone of the pattern D_i = 1[X h_i ≥ 0]; so does w_i for its own pattern
    V = gates_v * rng.uniform(0.1, 2, size=(5, 1))  # noqa: N806
    W = gates_w * rng.uniform(0.1, 2, size=(5, 1))  # noqa: N806
    masks_v, masks_w = (X @ gates_v.T >= 0), (X @ gates_w.T >= 0)
    convex_prediction = ((X @ V.T) * masks_v).sum(axis=1) - ((X @ W.T) * masks_w).sum(axis=1)
    first, second = convex_to_relu_network(V, W)
    np.testing.assert_allclose(_network(first, second, X), convex_prediction, rtol=1e-12, atol=1e-12)


def test_weight_decay_of_the_network_equals_the_convex_penalty():
    rng = np.random.default_rng(1)
    V, W = rng.standard_normal((2, 4, 3))  # noqa: N806
    W[1] = 0.0
    first, second = convex_to_relu_network(V, W)
    decay = 0.5 * (np.sum(first**2) + np.sum(second**2))
    penalty = np.linalg.norm(V, axis=1).sum() + np.linalg.norm(W, axis=1).sum()
    np.testing.assert_allclose(decay, penalty, rtol=1e-13)
    # and the two layers carry the norm evenly, neuron by neuron
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), np.abs(second), rtol=1e-13)


def test_convex_to_relu_network_hand_values():
    first, second = convex_to_relu_network(np.array([[3.0, 4.0]]), np.array([[0.0, 1.0]]))
    np.testing.assert_allclose(first, [[3 / np.sqrt(5), 4 / np.sqrt(5)], [0.0, 1.0]], rtol=1e-15)
    np.testing.assert_allclose(second, [np.sqrt(5), -1.0], rtol=1e-15)


def test_zero_neurons_give_zero_units():
    first, second = convex_to_relu_network(np.zeros((2, 3)), np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))
    np.testing.assert_array_equal(first[:3], 0.0)
    np.testing.assert_array_equal(second[:3], 0.0)
    np.testing.assert_allclose(second[3], -1.0)
