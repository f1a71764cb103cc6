"""Set2Set: a direct per-set loop, permutation invariance, a hand value, PyTorch's LSTM, FD."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.layers import set2set_pooling


def _inputs(seed=0, n=9, d=3, sets=3):
    rng = np.random.default_rng(seed)
    memories = rng.standard_normal((n, d))
    set_index = rng.integers(0, sets, size=n)
    weights = (
        0.6 * rng.standard_normal((4 * d, 2 * d)),
        0.6 * rng.standard_normal((4 * d, d)),
        0.6 * rng.standard_normal(4 * d),
        0.6 * rng.standard_normal(4 * d),
    )
    return memories, set_index, weights


def _direct_loop(memories, set_index, w_ih, w_hh, b_ih, b_hh, num_sets, steps):
    """One set at a time, one element at a time: the paper's process block with PyTorch's LSTM."""
    d = memories.shape[1]
    out = np.zeros((num_sets, 2 * d))
    for s in range(num_sets):
        members = [memories[n] for n in range(len(set_index)) if set_index[n] == s]
        q_star, h, c = np.zeros(2 * d), np.zeros(d), np.zeros(d)
        for _ in range(steps):
            z = w_ih @ q_star + b_ih + w_hh @ h + b_hh
            i = 1 / (1 + np.exp(-z[:d]))
            f = 1 / (1 + np.exp(-z[d : 2 * d]))
            g = np.tanh(z[2 * d : 3 * d])
            o = 1 / (1 + np.exp(-z[3 * d :]))
            c = f * c + i * g
            h = o * np.tanh(c)
            scores = [float(m @ h) for m in members]
            r = np.zeros(d)
            if members:
                weights = [math.exp(e - max(scores)) for e in scores]
                for w, m in zip(weights, members):
                    r += w / sum(weights) * m
            q_star = np.concatenate([h, r])
        out[s] = q_star
    return out


def test_set2set_matches_a_direct_per_set_loop_including_an_empty_set():
    memories, set_index, weights = _inputs()
    set_index[set_index == 1] = 3  # set 1 empty, 4 sets
    got = set2set_pooling(memories, set_index, *weights, num_sets=4, processing_steps=3)
    np.testing.assert_allclose(got, _direct_loop(memories, set_index, *weights, 4, 3), atol=1e-13)
    d = memories.shape[1]
    np.testing.assert_array_equal(got[1, d:], 0.0)  # the empty set reads nothing


def test_set2set_is_invariant_to_permuting_the_memories():
    memories, set_index, weights = _inputs(1, n=11)
    perm = np.random.default_rng(2).permutation(len(set_index))
    kwargs = {"num_sets": 3, "processing_steps": 4}
    y, pullback = refimpl.vjp(set2set_pooling, memories, set_index, *weights, **kwargs)
    y_perm, pullback_perm = refimpl.vjp(set2set_pooling, memories[perm], set_index[perm], *weights, **kwargs)
    np.testing.assert_allclose(y_perm, y, atol=1e-14)
    g = np.random.default_rng(3).standard_normal(y.shape)
    grads, grads_perm = pullback(g), pullback_perm(g)
    np.testing.assert_allclose(grads_perm[0], grads[0][perm], atol=1e-13)  # memory cotangents move along
    for a, b in zip(grads[1:], grads_perm[1:]):
        np.testing.assert_allclose(b, a, atol=1e-13)


def test_set2set_hand_value_with_zero_weights():
    # zero weights: i = f = o = 1/2, g = 0 → c = 0, q = 0 → uniform attention, r = mean; every step alike
    memories = np.array([[1.0, 0.0], [3.0, 4.0], [-2.0, 5.0]])
    d = 2
    zeros = (np.zeros((4 * d, 2 * d)), np.zeros((4 * d, d)), np.zeros(4 * d), np.zeros(4 * d))
    y = set2set_pooling(memories, np.array([0, 0, 1]), *zeros, num_sets=2, processing_steps=2)
    np.testing.assert_allclose(y, [[0, 0, 2, 2], [0, 0, -2, 5]], atol=0)


def test_set2set_readout_is_a_convex_combination_of_the_set():
    memories, set_index, weights = _inputs(4, n=6, sets=1)
    y = set2set_pooling(memories, np.zeros(6, dtype=np.int64), *weights, num_sets=1, processing_steps=2)
    d = memories.shape[1]
    # r lies in the box of the memories (a convex combination)
    assert np.all(y[0, d:] <= memories.max(axis=0) + 1e-15)
    assert np.all(y[0, d:] >= memories.min(axis=0) - 1e-15)


def test_set2set_matches_torch_lstm_and_scatter_softmax_forward_and_backward():
    torch = pytest.importorskip("torch")
    memories, set_index, weights = _inputs(5, n=10, d=4, sets=3)
    kwargs = {"num_sets": 3, "processing_steps": 3}
    y, pullback = refimpl.vjp(set2set_pooling, memories, set_index, *weights, **kwargs)
    g = np.random.default_rng(6).standard_normal(y.shape)
    grads = pullback(g)
    # PyG Set2Set.forward transcribed: torch.nn.LSTM(2d, d), softmax by index, scatter-sum readout
    d = 4
    x = torch.from_numpy(memories).requires_grad_()
    lstm = torch.nn.LSTM(2 * d, d, dtype=torch.float64)
    with torch.no_grad():
        for name, value in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), weights):
            getattr(lstm, name).copy_(torch.from_numpy(value))
    index = torch.from_numpy(set_index)
    h = (torch.zeros(1, 3, d, dtype=torch.float64), torch.zeros(1, 3, d, dtype=torch.float64))
    q_star = torch.zeros(3, 2 * d, dtype=torch.float64)
    for _ in range(3):
        q, h = lstm(q_star[None], h)
        q = q[0]
        e = (x * q[index]).sum(-1)
        w = (e - e.max()).exp()
        a = w / torch.zeros(3, dtype=torch.float64).index_add(0, index, w)[index]
        r = torch.zeros(3, d, dtype=torch.float64).index_add(0, index, a[:, None] * x)
        q_star = torch.cat([q, r], -1)
    q_star.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, q_star.detach().numpy(), atol=1e-13)
    np.testing.assert_allclose(grads[0], x.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(grads[1], lstm.weight_ih_l0.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(grads[2], lstm.weight_hh_l0.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(grads[3], lstm.bias_ih_l0.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(grads[4], lstm.bias_hh_l0.grad.numpy(), atol=1e-12)


def test_set2set_attention_backward_matches_finite_differences_in_the_memories():
    memories, set_index, weights = _inputs(7, n=7, d=2, sets=2)
    kwargs = {"num_sets": 2, "processing_steps": 2}
    y, pullback = refimpl.vjp(set2set_pooling, memories, set_index, *weights, **kwargs)
    g = np.random.default_rng(8).standard_normal(y.shape)
    g_memories = pullback(g)[0]
    step = 1e-6
    for n in range(memories.shape[0]):
        for j in range(memories.shape[1]):
            plus, minus = memories.copy(), memories.copy()
            plus[n, j] += step
            minus[n, j] -= step
            fd = np.sum(
                (
                    set2set_pooling(plus, set_index, *weights, **kwargs)
                    - set2set_pooling(minus, set_index, *weights, **kwargs)
                )
                * g
            ) / (2 * step)
            assert abs(fd - g_memories[n, j]) < 1e-8
