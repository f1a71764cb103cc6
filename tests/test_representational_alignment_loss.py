"""Guidance's alignment loss: α(1 − CKA), official flattening and token_sim, layer pairing, stop-gradient."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import linear_cka, representational_alignment_loss
from refimpl.regularizers.cka import guide_layer_mapping, official_layer_pairs


@pytest.fixture
def activations():
    rng = np.random.default_rng(7)
    target = rng.standard_normal((8, 3, 4))
    guide = np.tanh(target[:, :, :2] * 2) + 0.3 * rng.standard_normal((8, 3, 2))
    return target, guide


def _official_cka(X, Y):
    """rep_sim/rep_sims.py CKA.linear_CKA in NumPy (H K H with an explicit H)."""
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n

    def linear_hsic(A, B):
        return np.sum((H @ (A @ A.T) @ H) * (H @ (B @ B.T) @ H))

    return linear_hsic(X, Y) / np.sqrt(linear_hsic(X, X) * linear_hsic(Y, Y))


def test_alignment_loss_hand_computed_value():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])[:, None, :]
    Y = np.array([[1.0], [-1.0], [0.0]])[:, None, :]
    np.testing.assert_allclose(
        representational_alignment_loss(X, Y, alpha=2.0), 2 * (1 - 3 / math.sqrt(10)), rtol=1e-14
    )


def test_alignment_loss_matches_official_layermap_sim(activations):
    target, guide = activations
    B = target.shape[0]
    flat = 1 - _official_cka(target.reshape(B, -1), guide.reshape(B, -1))  # view(B, −1)
    tokens = sum(1 - _official_cka(target[:, t], guide[:, t]) for t in range(3))  # tokenwise_sim
    np.testing.assert_allclose(
        representational_alignment_loss(target, guide, alpha=0.5), 0.5 * flat, rtol=1e-12
    )
    np.testing.assert_allclose(
        representational_alignment_loss(target, guide, token_sim=True), tokens, rtol=1e-12
    )
    assert abs(flat - tokens) > 1e-3  # the two options are different quantities here


def test_alignment_loss_default_alpha_is_the_official_one(activations):
    target, guide = activations
    np.testing.assert_allclose(
        representational_alignment_loss(target, guide),
        1 - float(linear_cka(target.reshape(8, -1), guide.reshape(8, -1))),
        rtol=1e-14,
    )


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("token_sim", [False, True])
def test_alignment_loss_gradient_is_minus_alpha_times_the_cka_gradient(activations, backend, token_sim):
    target, guide = activations
    _, pullback = refimpl.vjp(
        "representational_alignment_loss", target, guide, alpha=1.5, token_sim=token_sim, backend=backend
    )
    (g_target,) = pullback(np.array(2.0))
    if token_sim:
        slices = [refimpl.vjp(linear_cka, target[:, t], guide[:, t])[1](np.array(1.0))[0] for t in range(3)]
        expected = -3.0 * np.stack(slices, axis=1)
    else:
        _, cka_pullback = refimpl.vjp(linear_cka, target.reshape(8, -1), guide.reshape(8, -1))
        expected = -3.0 * cka_pullback(np.array(1.0))[0].reshape(target.shape)
    np.testing.assert_allclose(g_target, expected, rtol=1e-10, atol=1e-15)


def test_alignment_loss_of_an_aligned_guide_is_zero_with_zero_gradient(activations):
    target, _ = activations
    rng = np.random.default_rng(8)
    Q, _ = np.linalg.qr(rng.standard_normal((12, 12)))
    guide = (4.0 * target.reshape(8, 12) @ Q - 2.0).reshape(8, 3, 4)
    value, pullback = refimpl.vjp(representational_alignment_loss, target, guide)
    np.testing.assert_allclose(value, 0.0, atol=1e-14)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], 0.0, atol=1e-13)


def test_guide_layer_mapping_is_the_official_layer_supervision():
    # step = (n_t − 1)/(n_g − 1); min(round(i·step), n_t − 1), Python's round (halves to even)
    assert guide_layer_mapping(4, 7) == [0, 2, 4, 6]
    assert guide_layer_mapping(1, 5) == [0]
    assert guide_layer_mapping(5, 3) == [0, 0, 1, 2, 2]  # 0.5 → 0, 1.5 → 2
    assert guide_layer_mapping(3, 4) == [0, 2, 3]  # 1.5 → 2
    # more guide than target layers: the dict keyed by target layer keeps the last guide layer
    assert official_layer_pairs(5, 3) == [(1, 0), (2, 1), (4, 2)]
    assert official_layer_pairs(3, 7) == [(0, 0), (1, 3), (2, 6)]


def test_alignment_loss_refuses_token_sim_with_different_lengths(activations):
    target, guide = activations
    with pytest.raises(refimpl.InputError, match="as many token positions"):
        representational_alignment_loss(target, guide[:, :2], token_sim=True)
    # without token_sim the lengths are free: the activations are flattened
    assert np.isfinite(representational_alignment_loss(target, guide[:, :2]))
