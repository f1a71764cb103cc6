"""AdaMixUp's loss: the official build_graph losses, λ endpoints, label gradient, stop-gradient."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import adamixup_loss


def _softmax_ce(labels, logits):
    """tf.nn.softmax_cross_entropy_with_logits, row by row."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -(labels * log_p).sum(axis=1)


def _official_loss(z_mix, z_orig, y1, y2, d_pos, d_neg, alpha, delta, u, seed=0):
    """build_graph from the network outputs on, in NumPy: ran = α + uni·α2, label_mix, the two
    shuffled concatenations and their reduce_mean, ce_cost1 + ce_cost2 (weight decay left out)."""
    rng = np.random.default_rng(seed)
    weight = (alpha + u * delta)[:, None]
    label_mix = y1 * weight + y2 * (1 - weight)
    all_logits, all_labels = np.concatenate([z_mix, z_orig]), np.concatenate([label_mix, y1])
    idx = rng.permutation(len(all_logits))  # tf.random_shuffle: irrelevant to the mean
    ce_cost1 = _softmax_ce(all_labels[idx], all_logits[idx]).mean()
    labels_pos = np.eye(2)[np.ones(len(d_pos), dtype=int)]
    labels_neg = np.eye(2)[np.zeros(len(d_neg), dtype=int)]
    binary_logits = np.concatenate([d_pos, d_neg])
    binary_labels = np.concatenate([labels_pos, labels_neg])
    idx = rng.permutation(len(binary_logits))
    ce_cost2 = _softmax_ce(binary_labels[idx], binary_logits[idx]).mean()
    return ce_cost1 + ce_cost2


def _step(seed, pairs=4, classes=5):
    rng = np.random.default_rng(seed)
    gate = rng.standard_normal((pairs, 3))
    cc = np.exp(gate) / np.exp(gate).sum(axis=1, keepdims=True)  # softmax (a, b, c)
    eye = np.eye(classes)
    return (
        rng.standard_normal((pairs, classes)) * 2,
        rng.standard_normal((pairs, classes)) * 2,
        eye[rng.integers(0, classes, pairs)],
        eye[rng.integers(0, classes, pairs)],
        rng.standard_normal((2 * pairs, 2)),  # [x_u; x¹]: P = 2M
        rng.standard_normal((pairs, 2)),
        cc[:, 0],
        cc[:, 1],
        rng.random(pairs),
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_adamixup_loss_matches_the_official_build_graph(seed):
    args = _step(seed)
    np.testing.assert_allclose(adamixup_loss(*args), _official_loss(*args, seed=seed), rtol=1e-14)


def test_adamixup_lambda_endpoints_give_the_unmixed_labels():
    z_mix, z_orig, y1, y2, d_pos, d_neg, _, _, u = _step(3)
    ones, zeros = np.ones(4), np.zeros(4)
    # λ = 1 (α = 1, Δ = 0): ỹ = y1; λ = 0: ỹ = y2 (u is then irrelevant)
    at_one = adamixup_loss(z_mix, z_orig, y1, y2, d_pos, d_neg, ones, zeros, u)
    at_zero = adamixup_loss(z_mix, z_orig, y1, y2, d_pos, d_neg, zeros, zeros, u)
    positives, negatives = np.eye(2)[[1] * 8], np.eye(2)[[0] * 4]
    intrusion = (_softmax_ce(positives, d_pos).sum() + _softmax_ce(negatives, d_neg).sum()) / 12
    orig = _softmax_ce(y1, z_orig).sum()
    np.testing.assert_allclose(at_one, (_softmax_ce(y1, z_mix).sum() + orig) / 8 + intrusion, rtol=1e-14)
    np.testing.assert_allclose(at_zero, (_softmax_ce(y2, z_mix).sum() + orig) / 8 + intrusion, rtol=1e-14)
    # u = 1 puts λ at the top of the region α + Δ
    top = adamixup_loss(z_mix, z_orig, y1, y2, d_pos, d_neg, 0.3 * ones, 0.5 * ones, ones)
    np.testing.assert_allclose(top, adamixup_loss(z_mix, z_orig, y1, y2, d_pos, d_neg, 0.8 * ones, zeros, u))


def test_adamixup_policy_gradient_is_the_label_path_derivative():
    args = _step(4)
    _, pullback = refimpl.vjp(adamixup_loss, *args)
    g = pullback(np.array(1.0))
    g_alpha, g_delta = g[4], g[5]
    # ∂L/∂λ_i = (1/2M)(CE(z_mix,i, y1_i) − CE(z_mix,i, y2_i)): the CE is linear in its labels
    z_mix, y1, y2, u = args[0], args[2], args[3], args[8]
    expected = (_softmax_ce(y1, z_mix) - _softmax_ce(y2, z_mix)) / 8
    np.testing.assert_allclose(g_alpha, expected, rtol=1e-13)
    np.testing.assert_allclose(g_delta, u * expected, rtol=1e-13)
    # the logits' gradients do not depend on the stop-gradient
    _, pullback_official = refimpl.vjp(adamixup_loss, *args, stop_label_gradient=True)
    g_official = pullback_official(np.array(1.0))
    for mine, theirs in zip(g[:4], g_official[:4], strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_array_equal(g_official[4], 0.0)
    np.testing.assert_array_equal(g_official[5], 0.0)


def test_adamixup_logit_gradients_are_softmax_minus_targets():
    z_mix, z_orig, y1, y2, d_pos, d_neg, alpha, delta, u = _step(5)
    _, pullback = refimpl.vjp(adamixup_loss, z_mix, z_orig, y1, y2, d_pos, d_neg, alpha, delta, u)
    g_z_mix, g_z_orig, g_d_pos, g_d_neg, _, _ = pullback(np.array(3.0))
    lam = (alpha + u * delta)[:, None]

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    np.testing.assert_allclose(g_z_mix, 3.0 / 8 * (softmax(z_mix) - (lam * y1 + (1 - lam) * y2)), rtol=1e-13)
    np.testing.assert_allclose(g_z_orig, 3.0 / 8 * (softmax(z_orig) - y1), rtol=1e-13)
    np.testing.assert_allclose(g_d_pos, 3.0 / 12 * (softmax(d_pos) - [0.0, 1.0]), rtol=1e-13)
    np.testing.assert_allclose(g_d_neg, 3.0 / 12 * (softmax(d_neg) - [1.0, 0.0]), rtol=1e-13)
    # every softmax-CE gradient row sums to 0 for labels summing to 1
    np.testing.assert_allclose(g_z_mix.sum(axis=1), 0.0, atol=1e-16)
