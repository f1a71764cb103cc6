"""PS-KD: the α schedule's off-by-one, soft targets, the loss and its gradient, the memory."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import pskd_alpha_schedule, pskd_loss, pskd_memory_update, pskd_targets


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _official_loss(z, targets):
    """The official ``Custom_CrossEntropy_PSKD`` in NumPy: ``(−t·log_softmax(z)).mean(0).sum()``."""
    return (-targets * np.log(_softmax(z))).mean(axis=0).sum()


def test_alpha_schedule_uses_epoch_plus_one():
    alpha = pskd_alpha_schedule(np.array([0, 1, 149, 299]), end_epoch=300)
    np.testing.assert_allclose(alpha, 0.8 * np.array([1, 2, 150, 300]) / 300, rtol=1e-15)
    assert alpha[0] > 0  # the first epoch is α_T/T, not 0
    assert alpha[-1] == 0.8  # the last epoch reaches α_T exactly
    assert alpha.dtype == np.float64


def test_alpha_schedule_refuses_epochs_past_the_end():
    with pytest.raises(refimpl.InputError, match=r"\[0, end_epoch\)"):
        pskd_alpha_schedule(np.array([300]), end_epoch=300)


def test_targets_mix_the_label_with_the_memory_and_sum_to_one():
    rng = np.random.default_rng(0)
    memory = _softmax(rng.standard_normal((10, 4)))
    y, idx = np.array([0, 3, 1]), np.array([7, 2, 7])
    t = pskd_targets(y, idx, memory, alpha_t=0.3)
    np.testing.assert_allclose(t, 0.7 * np.eye(4)[y] + 0.3 * memory[idx], rtol=1e-15)
    np.testing.assert_allclose(t.sum(axis=1), 1.0, rtol=1e-15)


def test_targets_in_the_first_epoch_are_the_labels():
    memory = np.zeros((5, 3))  # never read in the first epoch
    t = pskd_targets(np.array([2, 0]), np.array([4, 1]), memory, alpha_t=0.8 / 300, first_epoch=True)
    np.testing.assert_array_equal(t, np.eye(3)[[2, 0]])


def test_alpha_zero_is_cross_entropy():
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((5, 4)) * 3, rng.integers(0, 4, size=5)
    memory = _softmax(rng.standard_normal((8, 4)))
    t = pskd_targets(y, rng.integers(0, 8, size=5), memory, alpha_t=0.0)
    cross_entropy = -np.log(_softmax(z)[np.arange(5), y]).mean()
    np.testing.assert_allclose(pskd_loss(z, t), cross_entropy, rtol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_loss_matches_the_official_criterion(backend):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((6, 5)) * 2
    t = 0.6 * np.eye(5)[rng.integers(0, 5, size=6)] + 0.4 * _softmax(rng.standard_normal((6, 5)))
    loss, pullback = refimpl.vjp("pskd_loss", z, t, backend=backend)
    np.testing.assert_allclose(loss, _official_loss(z, t), rtol=1e-14)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], (_softmax(z) - t) / 6, rtol=1e-12, atol=1e-16)


def test_gradient_is_p_minus_t_over_b_and_the_hard_example_view():
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((4, 5)), np.array([1, 0, 4, 2])
    p_prev = _softmax(rng.standard_normal((4, 5)))
    alpha = 0.6
    t = pskd_targets(y, np.arange(4), p_prev, alpha_t=alpha)
    _, pullback = refimpl.vjp(pskd_loss, z, t)
    (g_z,) = pullback(np.array(1.0))
    p = _softmax(z)
    np.testing.assert_allclose(g_z, (p - t) / 4, rtol=1e-13, atol=1e-16)
    rows = np.arange(4)
    push = (1 - alpha) * (1 - p[rows, y]) + alpha * (p_prev[rows, y] - p[rows, y])
    np.testing.assert_allclose(-4 * g_z[rows, y], push, rtol=1e-13)


def test_gradient_for_targets_off_the_simplex_is_p_sum_t_minus_t():
    z = np.array([[0.5, -1.0, 2.0]])
    t = np.array([[0.2, 0.9, 0.4]])  # sums to 1.5
    _, pullback = refimpl.vjp(pskd_loss, z, t, reduction="sum")
    (g_z,) = pullback(np.array(1.0))
    np.testing.assert_allclose(g_z, _softmax(z) * 1.5 - t, rtol=1e-14)


def test_memory_update_writes_only_the_batch_rows_and_returns_a_new_array():
    memory = np.full((5, 3), 1 / 3)
    before = memory.copy()
    z = np.array([[0.0, 0.0, np.log(2.0)], [1e4, -1e4, 0.0]])
    new = pskd_memory_update(memory, np.array([3, 0]), z)
    np.testing.assert_array_equal(memory, before)
    np.testing.assert_allclose(new[3], [0.25, 0.25, 0.5], rtol=1e-15)
    np.testing.assert_allclose(new[0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(new[[1, 2, 4]], before[[1, 2, 4]])


def test_two_epochs_of_the_official_loop():
    # epoch 0: t = Y; the memory then holds the softmax; epoch 1 mixes it in with α_1
    rng = np.random.default_rng(5)
    n, k, end_epoch = 6, 3, 2
    y = rng.integers(0, k, size=n)
    memory = np.zeros((n, k))
    batches = [np.array([4, 1, 0]), np.array([2, 5, 3])]
    logits = {0: rng.standard_normal((n, k)), 1: rng.standard_normal((n, k))}
    alphas = pskd_alpha_schedule(np.arange(end_epoch), end_epoch=end_epoch)
    losses = []
    for epoch in range(end_epoch):
        for idx in batches:
            t = pskd_targets(y[idx], idx, memory, alpha_t=float(alphas[epoch]), first_epoch=epoch == 0)
            losses.append(pskd_loss(logits[epoch][idx], t))
            memory = pskd_memory_update(memory, idx, logits[epoch][idx])
    np.testing.assert_allclose(memory, _softmax(logits[1]), rtol=1e-15)
    t_last = (1 - 0.8) * np.eye(k)[y[batches[1]]] + 0.8 * _softmax(logits[0])[batches[1]]
    np.testing.assert_allclose(losses[-1], _official_loss(logits[1][batches[1]], t_last), rtol=1e-14)


def test_memory_update_refuses_repeated_indices():
    with pytest.raises(refimpl.InputError, match="distinct sample indices"):
        pskd_memory_update(np.zeros((3, 2)), np.array([1, 1]), np.zeros((2, 2)))
