"""Tests for `topk_moe_routing`: tie rule, capacity handling, gradients through the kept gates."""

from __future__ import annotations

import numpy as np
import pytest

import refimpl
from refimpl.layers import topk_moe_routing


def _route(z, outputs, **kwargs):
    return topk_moe_routing(z, outputs, **kwargs)


def _gates(z, **kwargs):
    """The combine weights K·q, read off with unit expert outputs E_e(x) = e_e."""
    num_tokens, num_experts = z.shape
    return _route(
        z, np.broadcast_to(np.eye(num_experts), (num_tokens, num_experts, num_experts)).copy(), **kwargs
    )


def test_topk_moe_routing_ties_go_to_the_lowest_index():
    z = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 2.0, 2.0], [5.0, 1.0, 3.0, 3.0]])
    gates = _gates(z, k=2)
    assert np.array_equal(gates > 0, [[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 1, 0]])
    np.testing.assert_allclose(gates[0], [0.25, 0.25, 0, 0], rtol=1e-15)


def test_topk_moe_routing_drops_overflow_in_token_order():
    # 5 tokens all prefer expert 0; E = 2, k = 1, cf = 1 → C = ⌊5/2⌋ = 2
    z = np.tile([[1.0, 0.0]], (5, 1))
    p0 = np.e / (1 + np.e)
    gates = _gates(z, k=1, capacity_factor=1.0)
    np.testing.assert_allclose(gates[:, 0], [p0, p0, 0, 0, 0], rtol=1e-15)
    quirk = _gates(z, k=1, capacity_factor=1.0, capacity_quirk=True)  # pos < C: one slot
    np.testing.assert_allclose(quirk[:, 0], [p0, 0, 0, 0, 0], rtol=1e-15)
    assert np.all(gates[:, 1] == 0)


def test_topk_moe_routing_counts_all_k_choices_together_and_keeps_the_other_expert():
    # k = 2 of E = 3; C = ⌊4·0.75·2/3⌋ = 2. Expert 0 is chosen by every token (2nd choice for
    # tokens 0, 1): tokens 2 and 3 lose it but keep their other expert.
    z = np.array([[0.0, 1.0, -5.0], [0.0, -5.0, 1.0], [1.0, 0.0, -5.0], [1.0, -5.0, 0.0]])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    gates = _gates(z, k=2, capacity_factor=0.75)
    expected = np.array([[p[0, 0], p[0, 1], 0], [p[1, 0], 0, p[1, 2]], [0, p[2, 1], 0], [0, 0, p[3, 2]]])
    np.testing.assert_allclose(gates, expected, rtol=1e-15)


def test_topk_moe_routing_matches_official_router_transcription():
    """WideNet Router.call (k > 1 branch) transcribed in NumPy: position = cumsum(mask)·mask,
    kept iff position < capacity, raw top-k gates combined."""
    rng = np.random.default_rng(3)
    num_tokens, num_experts, k, cf = 16, 4, 2, 1.2
    z = rng.standard_normal((num_tokens, num_experts))
    outputs = rng.standard_normal((num_tokens, num_experts, 5))
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    index = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    gate = np.take_along_axis(probs, index, axis=1)
    capacity = int(num_tokens * cf * k / num_experts)  # as the scripts compute it
    mask_sum = np.eye(num_experts)[index].sum(axis=1)
    position = (np.cumsum(mask_sum, axis=0) * mask_sum).astype(int)
    y = np.zeros((num_tokens, 5))
    for t in range(num_tokens):
        for j in range(k):
            e = index[t, j]
            if position[t, e] < capacity:  # one_hot(position, capacity) is zero beyond it
                y[t] += gate[t, j] * outputs[t, e]
    got = topk_moe_routing(z, outputs, k=k, capacity_factor=cf, capacity_quirk=True)
    np.testing.assert_allclose(got, y, rtol=1e-13, atol=1e-15)
    assert not np.allclose(topk_moe_routing(z, outputs, k=k, capacity_factor=cf), y)  # C vs C − 1 slots


@pytest.mark.parametrize("renormalize", [False, True])
def test_topk_moe_routing_backward_matches_finite_differences(renormalize):
    rng = np.random.default_rng(7)
    z = np.array([[2.0, 0.5, -1.0, 0.1], [0.0, 1.5, 0.7, -0.8], [1.1, -0.4, 2.2, 0.3], [0.6, 0.2, -0.3, 1.4]])
    outputs = rng.standard_normal((4, 4, 3))
    g_y = rng.standard_normal((4, 3))
    kwargs = {"k": 2, "capacity_factor": 0.75, "renormalize": renormalize}
    _, pullback = refimpl.vjp(topk_moe_routing, z, outputs, **kwargs)
    g_z, g_outputs = pullback(g_y)
    step = 1e-6
    for i in np.ndindex(z.shape):
        dz = np.zeros_like(z)
        dz[i] = step
        fd = ((_route(z + dz, outputs, **kwargs) - _route(z - dz, outputs, **kwargs)) * g_y).sum() / (
            2 * step
        )
        assert abs(fd - g_z[i]) < 1e-8
    # expert outputs: the gradient is K q ȳ; dropped or unselected experts get exactly 0
    gates = _gates(z, **kwargs)
    np.testing.assert_allclose(g_outputs, gates[:, :, None] * g_y[:, None, :], rtol=1e-14)


def test_topk_moe_routing_dropped_token_gets_no_gradient():
    z = np.tile([[1.0, 0.0]], (3, 1))
    outputs = np.ones((3, 2, 2))
    _, pullback = refimpl.vjp(topk_moe_routing, z, outputs, k=1, capacity_factor=0.5)  # C = ⌊0.75⌋ = 0
    g_z, g_outputs = pullback(np.ones((3, 2)))
    assert np.all(g_z == 0) and np.all(g_outputs == 0)
