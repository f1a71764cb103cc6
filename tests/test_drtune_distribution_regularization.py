"""DR-Tune's distribution regularization: the official loss (one cross-entropy over the batch and
the calibrated queue), its gradient to the head and the batch features, and hand values."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import drtune_distribution_regularization


def _grads(args, g, backend=None):
    """(∂features, ∂head_weight, ∂head_bias) at the cotangent g."""
    _, pullback = refimpl.vjp("drtune_distribution_regularization", *args, backend=backend)
    return pullback(np.asarray(g, dtype=args[0].dtype))


def _log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _inputs(rng, batch=6, queue=20, width=5, classes=4):
    return (
        rng.standard_normal((batch, width)),
        rng.integers(0, classes, size=batch),
        rng.standard_normal((queue, width)),
        rng.integers(0, classes, size=queue),
        rng.standard_normal((classes, width)),
        rng.standard_normal(classes),
    )


def _official(features, labels, calibrated, queue_labels, weight, bias):
    """weeknan/DR-Tune: logit = cls_head(cat(down_feat, cali_pre_feat)); nn.CrossEntropyLoss() (mean)."""
    logits = np.concatenate([features, calibrated]) @ weight.T + bias
    targets = np.concatenate([labels, queue_labels])
    return -_log_softmax(logits)[np.arange(len(targets)), targets].mean()


def test_matches_the_official_loss_and_splits_into_batch_and_queue_terms():
    args = _inputs(np.random.default_rng(0))
    features, labels, calibrated, queue_labels, weight, bias = args
    loss = float(drtune_distribution_regularization(*args))
    assert loss == pytest.approx(_official(*args), rel=1e-14)
    # L = B/(B+N)·CE(batch) + N/(B+N)·CE(queue): the effective regularization weight is N/(B + N)
    batch_ce = -_log_softmax(features @ weight.T + bias)[np.arange(6), labels].mean()
    queue_ce = -_log_softmax(calibrated @ weight.T + bias)[np.arange(20), queue_labels].mean()
    assert loss == pytest.approx((6 * batch_ce + 20 * queue_ce) / 26, rel=1e-14)


def test_gradients_are_the_catalogs_formulas():
    args = _inputs(np.random.default_rng(1))
    features, labels, calibrated, queue_labels, weight, bias = args
    stacked = np.concatenate([features, calibrated])
    targets = np.concatenate([labels, queue_labels])
    p = np.exp(_log_softmax(stacked @ weight.T + bias))
    onehot = np.eye(4)[targets]
    g = 2.5
    grads = _grads(args, g)
    expected_weight = g * (p - onehot).T @ stacked / 26  # (1/(B + N)) Σ (p_i − Y_i) f_iᵀ
    np.testing.assert_allclose(grads[0], g * (p - onehot)[:6] @ weight / 26, rtol=1e-12)
    np.testing.assert_allclose(grads[1], expected_weight, rtol=1e-12)
    np.testing.assert_allclose(grads[2], g * (p - onehot).sum(axis=0) / 26, rtol=1e-12)


def test_bias_shift_invariance_and_zero_sum_bias_gradient():
    args = list(_inputs(np.random.default_rng(2)))
    loss = float(drtune_distribution_regularization(*args))
    shifted = args.copy()
    shifted[5] = args[5] + 3.0
    assert float(drtune_distribution_regularization(*shifted)) == pytest.approx(loss, rel=1e-13)
    g_bias = _grads(tuple(args), 1.0)[2]
    assert abs(g_bias.sum()) < 1e-15


def test_the_queue_gets_no_gradient_but_moves_the_head_gradient():
    args = _inputs(np.random.default_rng(3))
    grads = _grads(args, 1.0)
    assert len(grads) == 3  # features, head_weight, head_bias: the calibrated queue is detached
    moved = list(args)
    moved[2] = args[2] + 1.0
    moved_grads = _grads(tuple(moved), 1.0)
    assert np.abs(moved_grads[1] - grads[1]).max() > 1e-3


def test_hand_value_logits_zero_log3():
    args = (
        np.array([[0.0, 0.0]]),
        np.array([0]),
        np.array([[0.0, 1.0]]),
        np.array([1]),
        np.array([[1.0, 0.0], [0.0, 0.0]]),
        np.array([0.0, math.log(3.0)]),
    )
    assert float(drtune_distribution_regularization(*args)) == pytest.approx(
        0.5 * math.log(16 / 3), rel=1e-15
    )
    g_features, g_weight, g_bias = _grads(args, 1.0)
    np.testing.assert_allclose(g_features, [[-3 / 8, 0.0]], atol=1e-16)
    np.testing.assert_allclose(g_weight, [[0.0, 1 / 8], [0.0, -1 / 8]], atol=1e-16)
    np.testing.assert_allclose(g_bias, [-1 / 4, 1 / 4], atol=1e-16)


def test_large_logits_stay_finite_in_float32():
    args = [a.astype(np.float32) if a.dtype == np.float64 else a for a in _inputs(np.random.default_rng(4))]
    args[0] = args[0] * np.float32(500.0)
    args[2] = args[2] * np.float32(500.0)
    loss = drtune_distribution_regularization(*args)
    assert loss.dtype == np.float32 and np.isfinite(loss)
    reference = _official(*[a.astype(np.float64) if a.dtype == np.float32 else a for a in args])
    assert float(loss) == pytest.approx(reference, rel=1e-4)
