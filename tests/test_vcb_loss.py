"""VCB loss (HACO): hand values, the catalog's gradient, the official BCELoss clamp, the epoch
fallback, and agreement with a transcription of the official VCBLoss.forward."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import vcb_class_weights, vcb_loss

SMALL = {
    "epoch": 1,
    "total_epochs": 2,
    "beta": 0.5,
    "total_samples": 4.0,
    "vertex_weight_max": 1.0,
    "min_samples": 1.0,
}
COUNTS = (np.array([[3.0, 1.0], [3.0, 1.0]]), np.array([1.0, 1.0]))  # w = [4/11, 7/11] at SMALL


def _batch(seed=0, batch=4, vertices=7):
    rng = np.random.default_rng(seed)
    contacts = rng.binomial(500, rng.uniform(0.01, 0.5, size=vertices)).astype(np.float64)
    vertex_counts = np.stack([500 - contacts, contacts], axis=1)
    z = rng.standard_normal((batch, vertices)) * 3
    y = (rng.random((batch, vertices)) < 0.3).astype(np.int64)
    return z, y, vertex_counts, vertex_counts.sum(axis=0)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_vcb_loss_matches_hand_value_at_zero_logits():
    loss = vcb_loss(np.zeros((1, 2)), np.array([[0, 1]]), *COUNTS, **SMALL)
    # ℓ = log 2 for both vertices (weights 4/11 and 7/11 sum to 1); penalty 0.5·σ(0) on vertex 0
    assert float(loss) == pytest.approx((math.log(2) + 0.5 * 0.5) / 2, rel=1e-14)


def test_vcb_loss_is_the_weighted_cross_entropy_plus_the_penalty():
    z, y, vertex_counts, global_counts = _batch()
    kwargs = {"epoch": 3, "total_epochs": 10}
    w = vcb_class_weights(vertex_counts, global_counts, **kwargs)
    w_y = np.where(y == 1, w[:, 1], w[:, 0])
    p = _sigmoid(z)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    expected = np.mean(w_y * bce) + 0.5 * np.mean((1 - y) * p)
    assert float(vcb_loss(z, y, vertex_counts, global_counts, **kwargs)) == pytest.approx(expected, rel=1e-12)
    with_double_penalty = vcb_loss(z, y, vertex_counts, global_counts, fp_weight=1.0, **kwargs)
    assert float(with_double_penalty) == pytest.approx(expected + 0.5 * np.mean((1 - y) * p), rel=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_vcb_loss_gradient_matches_the_catalog_formula(backend):
    z, y, vertex_counts, global_counts = _batch(1)
    kwargs = {"epoch": 5, "total_epochs": 8}
    _, pullback = refimpl.vjp(vcb_loss, z, y, vertex_counts, global_counts, backend=backend, **kwargs)
    (g_z,) = pullback(np.array(2.5))
    w = vcb_class_weights(vertex_counts, global_counts, **kwargs)
    w_y = np.where(y == 1, w[:, 1], w[:, 0])
    p = _sigmoid(z)
    expected = 2.5 * (w_y * (p - y) + 0.5 * (1 - y) * p * (1 - p)) / z.size
    np.testing.assert_allclose(g_z, expected, rtol=1e-12, atol=1e-17)


def test_vcb_loss_clamp_caps_terms_at_100_with_zero_gradient():
    z = np.array([[200.0, -200.0]])
    y = np.array([[0, 1]])
    loss, pullback = refimpl.vjp(vcb_loss, z, y, *COUNTS, fp_weight=0.0, bce_log_clamp=True, **SMALL)
    assert float(loss) == pytest.approx(100 * (4 / 11 + 7 / 11) / 2, rel=1e-14)
    np.testing.assert_array_equal(pullback(np.array(1.0))[0], 0.0)
    unclamped, pullback = refimpl.vjp(vcb_loss, z, y, *COUNTS, fp_weight=0.0, **SMALL)
    assert float(unclamped) == pytest.approx(200 * (4 / 11 + 7 / 11) / 2, rel=1e-14)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], [[4 / 22, -7 / 22]], rtol=1e-14)


def test_vcb_loss_saturated_logits_keep_their_digits():
    # y = 1 at z = 40: ℓ = softplus(−40) = e^−40 (log of σ(40) = 1.0 would give 0 and σ − y = 0)
    loss, pullback = refimpl.vjp(vcb_loss, np.array([[40.0, 40.0]]), np.array([[1, 1]]), *COUNTS, **SMALL)
    assert float(loss) == pytest.approx(math.exp(-40) * (7 / 11 + 7 / 11) / 2, rel=1e-12)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], -math.exp(-40) * 7 / 22, rtol=1e-12)


def test_vcb_loss_epoch_past_the_last_uses_the_last_table():
    z, y, vertex_counts, global_counts = _batch(2)
    last = vcb_loss(z, y, vertex_counts, global_counts, epoch=9, total_epochs=10)
    later = vcb_loss(z, y, vertex_counts, global_counts, epoch=40, total_epochs=10)
    first = vcb_loss(z, y, vertex_counts, global_counts, epoch=0, total_epochs=10)
    assert float(later) == float(last) and float(first) != float(last)


def test_vcb_loss_refuses_a_single_epoch():
    z, y, vertex_counts, global_counts = _batch(3)
    with pytest.raises(refimpl.InputError, match="total_epochs"):
        vcb_loss(z, y, vertex_counts, global_counts, epoch=0, total_epochs=1)


def _official_vcb_loss(z, y, all_contact_samples, epoch, total_epoch=10, beta=0.9999):
    """HACO_RELEASE lib/core/loss.py, VCBLoss (v_type='mesh'), transcribed in NumPy (float64)."""
    count_v = np.stack([(all_contact_samples == 0).sum(0), (all_contact_samples == 1).sum(0)], 1).astype(
        float
    )
    count = np.array([(all_contact_samples == 0).sum(), (all_contact_samples == 1).sum()], dtype=float)
    samples_v = count_v / np.maximum(count_v.sum(1, keepdims=True), 1e-6) * 1000
    samples = count / max(count.sum(), 1e-6) * 1000
    tables = {}
    for e in range(total_epoch):
        v_weight = 0.3 * (e / (total_epoch - 1))
        n = np.maximum(v_weight * samples_v + (1 - v_weight) * samples, 20.0)
        tables[e] = n / n.sum(1, keepdims=True) * 1000
    n = tables[epoch if epoch in tables else max(tables)]
    class_weights = (1 - beta) / (1 - np.power(beta, n))
    class_weights = class_weights / class_weights.sum(1, keepdims=True)
    w = class_weights[np.arange(z.shape[1])[None, :], y]
    pred = 1 / (1 + np.exp(-z))
    # nn.BCELoss: logs clamped at −100 (log(0) = −inf where σ(z) rounds to 0 or 1)
    with np.errstate(divide="ignore"):
        log_p, log_not_p = np.log(pred), np.log(1 - pred)
    bce = -(y * np.maximum(log_p, -100) + (1 - y) * np.maximum(log_not_p, -100))
    return (bce * w).mean() + 0.5 * ((y == 0) * pred).mean()


@pytest.mark.parametrize("epoch", [0, 4, 9, 12])
def test_vcb_loss_matches_the_official_code(epoch):
    rng = np.random.default_rng(epoch)
    samples = (rng.random((600, 30)) < rng.uniform(0.001, 0.4, size=30)).astype(np.int64)
    z = rng.standard_normal((5, 30)) * 4
    z[0, :3] = [-150.0, 150.0, -30.0]  # the clamp (float64 σ(150) = 1 exactly) and a moderate tail
    y = (rng.random((5, 30)) < 0.3).astype(np.int64)
    y[0, :3] = [1, 0, 1]
    contacts = samples.sum(0).astype(np.float64)
    vertex_counts = np.stack([600 - contacts, contacts], axis=1)
    ours = vcb_loss(
        z, y, vertex_counts, vertex_counts.sum(0), epoch=epoch, total_epochs=10, bce_log_clamp=True
    )
    assert float(ours) == pytest.approx(_official_vcb_loss(z, y, samples, epoch), rel=1e-10)
    # the default (no clamp) differs exactly by the two clamped terms: 150 instead of 100 each
    plain = vcb_loss(z, y, vertex_counts, vertex_counts.sum(0), epoch=epoch, total_epochs=10)
    w = vcb_class_weights(vertex_counts, vertex_counts.sum(0), epoch=epoch, total_epochs=10)
    extra = 50 * (w[0, 1] + w[1, 0]) / z.size
    assert float(plain) - float(ours) == pytest.approx(extra, rel=1e-9)
