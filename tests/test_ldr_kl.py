"""LDR-KL and ALDR-KL: identities, limits, the official code's recipe, the λ state."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import aldr_kl_loss, aldr_lambda_update, ldr_kl_loss
from refimpl.losses.ldr_kl import log_mean_exp


def _cross_entropy(z, y):
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y]


def _softplus(x):
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _official_ldr(z, y, threshold, lam):
    """A NumPy transcription of the official ``LDRLoss_V1.forward`` (Optimization-AI/ICML2023_LDR)."""
    y_true = np.eye(z.shape[1])[y]
    y_pred = _softplus(z)
    y_pred = y_pred / y_pred.mean(axis=1, keepdims=True)
    diff = threshold * (1 - y_true) + y_pred - (y_pred * y_true).sum(axis=1, keepdims=True)
    diff = diff / lam
    max_diff = diff.max(axis=1, keepdims=True)
    loss = lam * (np.log(np.exp(diff - max_diff).mean(axis=1, keepdims=True)) + max_diff)
    return loss.mean()


def _official_aldr(z, y, lam_state, ids, threshold, lam_ref, alpha, softplus=False):
    """A NumPy transcription of the official ``ALDRLoss_V1.forward``: returns (loss, new state)."""
    num_class = z.shape[1]
    y_true = np.eye(num_class)[y]
    y_pred = _softplus(z) if softplus else z
    y_pred = y_pred / (np.abs(y_pred).sum(axis=1, keepdims=True) / num_class)
    lam_state = lam_state.copy()
    e = np.exp(
        y_pred / lam_state[ids][:, None] - (y_pred / lam_state[ids][:, None]).max(axis=1, keepdims=True)
    )
    pred_prob = e / e.sum(axis=1, keepdims=True) + 1e-5
    pred_prob = pred_prob / pred_prob.sum(axis=1, keepdims=True)
    kl_reg = (pred_prob * np.log(num_class * pred_prob)).sum(axis=1)
    log_k = math.log(num_class)
    lam_state[ids] = lam_ref - lam_ref * kl_reg / (alpha * log_k)
    lam = lam_state[ids][:, None]
    extra = -0.5 * alpha * log_k / lam_ref * (lam - lam_ref) ** 2
    diff = threshold * (1 - y_true) + y_pred - (y_pred * y_true).sum(axis=1, keepdims=True)
    a = diff / lam
    max_a = a.max(axis=1, keepdims=True)
    loss = lam * (np.log(np.exp(a - max_a).mean(axis=1, keepdims=True)) + max_a) + extra
    return loss.mean(), lam_state


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 5)) * 2, rng.integers(0, 5, size=6)


def test_ldr_kl_with_zero_margin_and_unit_lambda_is_cross_entropy_minus_log_k(batch):
    z, y = batch
    per_row = ldr_kl_loss(z, y, c=0.0, lam=1.0, reduction="none")
    np.testing.assert_allclose(per_row, _cross_entropy(z, y) - np.log(5), rtol=1e-13, atol=1e-14)
    # the docstring's hand value: log(e² + 1 + e⁻¹) − 2 − log 3
    value = math.log(math.exp(2) + 1 + math.exp(-1)) - 2 - math.log(3)
    np.testing.assert_allclose(
        ldr_kl_loss(np.array([[2.0, 0.0, -1.0]]), np.array([0]), c=0.0, lam=1.0), value
    )


def test_ldr_kl_tends_to_crammer_singer_as_lambda_goes_to_zero(batch):
    z, y = batch
    b = 0.1 * (1 - np.eye(5)[y]) + z - z[np.arange(6), y][:, None]
    np.testing.assert_allclose(ldr_kl_loss(z, y, lam=1e-7, reduction="none"), b.max(axis=1), atol=1e-6)


def test_ldr_kl_tends_to_the_mean_violation_as_lambda_grows(batch):
    z, y = batch
    b = 0.1 * (1 - np.eye(5)[y]) + z - z[np.arange(6), y][:, None]
    np.testing.assert_allclose(ldr_kl_loss(z, y, lam=1e8, reduction="none"), b.mean(axis=1), rtol=1e-7)


def test_ldr_kl_large_lambda_keeps_its_digits_in_float32(batch):
    z, y = batch
    reference = ldr_kl_loss(z, y, lam=1e4, reduction="none")
    single = ldr_kl_loss(z.astype(np.float32), y, lam=1e4, reduction="none")
    assert single.dtype == np.float32
    # LSE(b/λ) − log K would cancel to ~1 digit here; log1p(mean expm1) keeps ~6
    np.testing.assert_allclose(single, reference, rtol=1e-4)


def test_log_mean_exp_is_exact_where_lse_minus_log_k_cancels():
    a = np.array([[3.0, -1.0, 0.5, 700.0]])
    lse = np.log(np.exp(a - a.max()).sum()) + a.max()
    np.testing.assert_allclose(log_mean_exp(a), lse - np.log(4), rtol=1e-14)
    # nearly equal a: log mean exp(a) = mean(a) + var(a)/2 + O(a³) = 5e-10 + 6.25e-19
    tiny = np.array([[1e-9, 2e-9, 0.0, -1e-9]])
    np.testing.assert_allclose(log_mean_exp(tiny), 5.00000000625e-10, rtol=1e-15)
    lse_tiny = np.log(np.exp(tiny).sum()) - np.log(4)
    assert abs(lse_tiny - 5.00000000625e-10) > 1e-17  # the cancelling form is off in the 7th digit


def test_ldr_kl_gradient_is_the_worst_case_distribution_minus_the_label(batch):
    z, y = batch
    _, pullback = refimpl.vjp(ldr_kl_loss, z, y, c=0.3, lam=2.0, reduction="sum")
    (g_z,) = pullback(np.array(1.0))
    b = 0.3 * (1 - np.eye(5)[y]) + z - z[np.arange(6), y][:, None]
    q = np.exp(b / 2.0) / np.exp(b / 2.0).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(g_z, q - np.eye(5)[y], rtol=1e-12, atol=1e-15)


def test_ldr_kl_softplus_mean_matches_the_official_code(batch):
    z, y = batch
    np.testing.assert_allclose(
        ldr_kl_loss(z, y, normalize="softplus_mean"), _official_ldr(z, y, 0.1, 10.0), rtol=1e-13
    )


def test_softplus_mean_is_softplus_then_l1():
    # ALDR's CIFAR-100 recipe (softplus, then K u/‖u‖₁) is the same normalization
    rng = np.random.default_rng(3)
    z, y = rng.standard_normal((4, 6)), rng.integers(0, 6, 4)
    u = _softplus(z)
    np.testing.assert_allclose(
        ldr_kl_loss(z, y, normalize="softplus_mean", reduction="none"),
        ldr_kl_loss(u, y, normalize="l1", reduction="none"),
        rtol=1e-13,
    )


def test_ldr_kl_is_zero_with_one_class():
    loss, pullback = refimpl.vjp(ldr_kl_loss, np.array([[3.0], [-2.0]]), np.array([0, 0]))
    assert loss == 0.0
    np.testing.assert_array_equal(pullback(np.array(1.0))[0], 0.0)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_ldr_kl_large_logits_stay_finite_in_float32(backend):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], np.float32)
    loss, pullback = refimpl.vjp(
        "ldr_kl_loss", z, np.array([1, 0]), lam=1.0, reduction="none", backend=backend
    )
    (g_z,) = pullback(np.ones(2, np.float32))
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(g_z))
    # row 0: b = [2e4 + 0.1, 0, 1e4 + 0.1]: λ log mean exp(b) ≈ 2e4 + 0.1 − log 3
    np.testing.assert_allclose(loss[0], 2e4 + 0.1 - np.log(3), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "z", "match"),
    [
        ({"normalize": "l1"}, np.zeros((1, 3)), "nonzero logit"),
        ({"normalize": "softplus_mean"}, np.full((1, 3), -1e4), "softplus"),
        ({"lam": 0.0}, np.ones((1, 3)), "'lam'"),
        ({"c": -1.0}, np.ones((1, 3)), "'c'"),
    ],
)
def test_ldr_kl_refuses_bad_input(kwargs, z, match):
    with pytest.raises(refimpl.InputError, match=match):
        ldr_kl_loss(z, np.array([0]), **kwargs)


# -- ALDR-KL ---------------------------------------------------------------------------
def test_aldr_with_lambda_at_lambda0_is_ldr_kl(batch):
    z, y = batch
    lam = np.full(10, 10.0)
    ids = np.array([9, 0, 3, 4, 7, 2])
    np.testing.assert_allclose(aldr_kl_loss(z, y, lam, ids), ldr_kl_loss(z, y), rtol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_aldr_matches_the_official_forward_update_then_loss(batch, backend):
    z, y = batch
    rng = np.random.default_rng(1)
    lam = rng.uniform(5, 10, size=9)
    ids = np.array([8, 1, 3, 0, 5, 6])
    for normalize, softplus in (("l1", False), ("softplus_mean", True)):
        expected_loss, expected_state = _official_aldr(z, y, lam, ids, 0.1, 10.0, 2.0, softplus=softplus)
        kwargs = {"c": 0.1, "lam0": 10.0, "alpha": 2.0, "normalize": normalize}
        state = aldr_lambda_update(z, y, lam, ids, update_without_margin=True, **kwargs)
        np.testing.assert_allclose(state, expected_state, rtol=1e-13)
        loss = refimpl.vjp("aldr_kl_loss", z, y, state, ids, backend=backend, **kwargs)[0]
        np.testing.assert_allclose(loss, expected_loss, rtol=1e-13)


def test_aldr_update_without_margin_only_matters_when_the_margin_is_nonzero(batch):
    z, y = batch
    lam, ids = np.full(6, 10.0), np.arange(6)
    with_margin = aldr_lambda_update(z, y, lam, ids, c=1.0)
    without = aldr_lambda_update(z, y, lam, ids, c=1.0, update_without_margin=True)
    assert np.abs(with_margin - without).max() > 1e-3
    np.testing.assert_allclose(
        aldr_lambda_update(z, y, lam, ids, c=0.0),
        aldr_lambda_update(z, y, lam, ids, c=0.0, update_without_margin=True),
        rtol=1e-14,
    )


@pytest.mark.parametrize("alpha", [1.01, 2.0, 10.0])
def test_aldr_lambda_stays_between_lambda0_times_one_minus_inverse_alpha_and_lambda0(alpha):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((50, 7)) * rng.choice([0.01, 1.0, 100.0, 1e4], size=(50, 1))
    y = rng.integers(0, 7, size=50)
    lam = aldr_lambda_update(z, y, np.full(50, 10.0), np.arange(50), lam0=10.0, alpha=alpha)
    assert np.all(lam >= 10.0 * (1 - 1 / alpha)) and np.all(lam <= 10.0)
    # near-one-hot p: KL just under log K, so λ approaches the lower bound
    assert lam.min() < 10.0 * (1 - 1 / alpha) + 1e-2


def test_aldr_uniform_prediction_keeps_lambda0():
    lam = aldr_lambda_update(
        np.zeros((3, 4)), np.array([0, 1, 2]), np.full(3, 7.0), np.arange(3), c=0.0, lam0=7.0
    )
    np.testing.assert_allclose(lam, 7.0, rtol=1e-14)


def test_aldr_update_changes_only_the_batch_ids_and_does_not_mutate_the_state(batch):
    z, y = batch
    lam = np.linspace(6.0, 10.0, 12)
    before = lam.copy()
    ids = np.array([11, 0, 4, 5, 8, 2])
    new = aldr_lambda_update(z, y, lam, ids)
    np.testing.assert_array_equal(lam, before)
    untouched = np.setdiff1d(np.arange(12), ids)
    np.testing.assert_array_equal(new[untouched], lam[untouched])
    assert np.all(new[ids] != lam[ids])


def test_aldr_gradient_is_ldr_gradient_with_each_rows_lambda(batch):
    z, y = batch
    lam = np.array([3.0, 5.0, 7.0, 9.0, 4.0, 6.0])
    ids = np.arange(6)
    _, pullback = refimpl.vjp(aldr_kl_loss, z, y, lam, ids, reduction="sum")
    (g_z,) = pullback(np.array(1.0))
    for i in range(6):
        _, row_pullback = refimpl.vjp(
            ldr_kl_loss, z[i : i + 1], y[i : i + 1], lam=float(lam[i]), reduction="sum"
        )
        np.testing.assert_allclose(g_z[i], row_pullback(np.array(1.0))[0][0], rtol=1e-13, atol=1e-15)


def test_aldr_penalty_is_the_quadratic_in_lambda(batch):
    z, y = batch
    lam = np.array([4.0])
    ids = np.array([0])
    penalty = 2.0 * math.log(5) / (2 * 10.0) * (4.0 - 10.0) ** 2
    ldr = ldr_kl_loss(z[:1], y[:1], lam=4.0)
    np.testing.assert_allclose(aldr_kl_loss(z[:1], y[:1], lam, ids), ldr - penalty, rtol=1e-14)


def test_aldr_refuses_bad_state():
    z, y = np.ones((2, 3)) * np.array([1.0, 2.0, 3.0]), np.array([0, 1])
    with pytest.raises(refimpl.InputError, match="distinct sample ids"):
        aldr_lambda_update(z, y, np.full(3, 10.0), np.array([1, 1]))
    with pytest.raises(refimpl.InputError, match="λ_i > 0"):
        aldr_kl_loss(z, y, np.array([10.0, -1.0, 10.0]), np.array([0, 1]))
    with pytest.raises(refimpl.InputError, match="'alpha'"):
        aldr_kl_loss(z, y, np.full(3, 10.0), np.array([0, 1]), alpha=1.0)
