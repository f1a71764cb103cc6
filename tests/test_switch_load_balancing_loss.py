"""Tests for `switch_load_balancing_loss`: official and transformers formulas, FD in P with f fixed."""

from __future__ import annotations

import numpy as np

import refimpl
from refimpl.layers import switch_load_balancing_loss


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_switch_load_balancing_loss_matches_widenet_load_balanced_loss():
    """WideNet load_balanced_loss transcribed: mean_e(mean_t p · mean_t mask/k)·E²·alpha."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((12, 4))
    for k in (1, 2):
        probs = _softmax(z)
        index = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        mask = np.eye(4)[index].sum(axis=1) / k
        official = np.mean(probs.mean(axis=0) * mask.mean(axis=0)) * 4**2 * 0.01
        got = switch_load_balancing_loss(z, k=k, weight=0.01)
        np.testing.assert_allclose(got, official, rtol=1e-14)


def test_switch_load_balancing_loss_matches_mixtral_formula():
    """transformers' Mixtral load_balancing_loss_func transcribed: E·Σ_j Σ_e f_{j,e}·P_e,
    equal to ours at top_k = 1 and k times ours (the 1/k weight) at top_k = k."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal((9, 5))
    for top_k in (1, 3):
        weights = _softmax(z)
        selected = np.argsort(-weights, axis=1, kind="stable")[:, :top_k]
        tokens_per_expert = np.eye(5)[selected].mean(axis=0)  # (top_k, E)
        mixtral = (tokens_per_expert * weights.mean(axis=0)[None]).sum() * 5
        np.testing.assert_allclose(switch_load_balancing_loss(z, k=top_k) * top_k, mixtral, rtol=1e-14)


def test_switch_load_balancing_loss_uniform_router_gives_lambda():
    assert switch_load_balancing_loss(np.zeros((6, 3)), weight=0.25) == 0.25  # f = [1, 0, 0], P = 1/3


def test_switch_load_balancing_loss_ties_count_the_lowest_index():
    # rows tie between experts 1 and 2: expert 1 takes the count, f = [0, 1, 0]
    z = np.array([[0.0, 1.0, 1.0], [-1.0, 2.0, 2.0]])
    p = _softmax(z)
    np.testing.assert_allclose(switch_load_balancing_loss(z), 3 * p[:, 1].mean(), rtol=1e-15)


def test_switch_load_balancing_loss_backward_matches_finite_differences_in_p():
    """f is held fixed (selections stay put under the step); the FD derivative is that of P."""
    rng = np.random.default_rng(4)
    z = np.argsort(rng.random((6, 4)), axis=1) * 0.7 + rng.uniform(-0.1, 0.1, (6, 4))
    _, pullback = refimpl.vjp(switch_load_balancing_loss, z, k=2, weight=0.3)
    (g_z,) = pullback(np.float64(1.7))
    step = 1e-6
    for i in np.ndindex(z.shape):
        dz = np.zeros_like(z)
        dz[i] = step
        up = switch_load_balancing_loss(z + dz, k=2, weight=0.3)
        down = switch_load_balancing_loss(z - dz, k=2, weight=0.3)
        assert abs(1.7 * (up - down) / (2 * step) - g_z[i]) < 1e-9
    np.testing.assert_allclose(g_z.sum(axis=1), 0, atol=1e-16)  # softmax shift invariance
