"""WEAT's loss: hand values, the official formula, both variants' β defaults, the detached
weights, finite differences of both KL VJPs at fixed weights, and shift invariance."""

import numpy as np
import pytest

import refimpl
from refimpl.reweighting import energy_instance_weight, weat_loss

LOG_E_MINUS_1 = np.log(np.e - 1)


def _log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _official(z_nat, z_adv, y, variant, beta):
    """The loss lines of the official WEAT_adv/WEAT_nat (Adversarial ML/WEAT_loss.py), with NumPy:
    weights = 1/log(1 + exp(|−logsumexp(logits)|)); F.cross_entropy; KLDivLoss(reduction='none') of
    log(softmax(adv_logits) + 1e-12) against softmax(logits), summed over classes; both / batch_size."""
    batch = len(y)
    p, q = np.exp(_log_softmax(z_nat)), np.exp(_log_softmax(z_adv))
    m = z_nat.max(axis=1)
    energy = -(np.log(np.exp(z_nat - m[:, None]).sum(axis=1)) + m)
    weights = 1 / np.log(1 + np.exp(np.abs(energy)))
    logits = z_adv if variant == "weat_adv" else z_nat
    cross_entropy = -_log_softmax(logits)[np.arange(batch), y]
    kl = (p * (np.log(p) - np.log(q + 1e-12))).sum(axis=1)
    return (1.0 / batch) * np.sum(cross_entropy * weights) + beta * ((1.0 / batch) * np.sum(kl * weights))


def _fixed_weight_loss(z_nat, z_adv, y, variant, beta, weights):
    """The loss with the weights held fixed (what the backward differentiates)."""
    log_p, log_q = _log_softmax(z_nat), _log_softmax(z_adv)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=1)
    cross_entropy = -(log_q if variant == "weat_adv" else log_p)[np.arange(len(y)), y]
    return np.mean(weights * (cross_entropy + beta * kl))


@pytest.fixture
def batch():
    rng = np.random.default_rng(89)
    z_nat = rng.standard_normal((6, 5)) * 2 + rng.uniform(-5, 5, size=(6, 1))
    z_adv = z_nat + rng.standard_normal((6, 5))
    return z_nat, z_adv, rng.integers(0, 5, size=6)


def test_weat_loss_hand_computed_values():
    # p = q = (1/2, 1/2): KL = 0, CE = log 2, E = −log 2, w = 1/log 3
    z, y = np.zeros((1, 2)), np.array([0])
    for variant in ("weat_adv", "weat_nat"):
        np.testing.assert_allclose(weat_loss(z, z, y, variant=variant), np.log(2) / np.log(3), rtol=1e-15)
    # p = (3/4, 1/4) with LSE = log(e − 1) (w = 1), q = (1/2, 1/2), y = 1
    z_nat = LOG_E_MINUS_1 + np.log([[0.75, 0.25]])
    z_adv = np.zeros((1, 2))
    kl = 0.75 * np.log(1.5) + 0.25 * np.log(0.5)
    np.testing.assert_allclose(weat_loss(z_nat, z_adv, np.array([1]), variant="weat_adv"), np.log(2) + 7 * kl)
    np.testing.assert_allclose(weat_loss(z_nat, z_adv, np.array([1]), variant="weat_nat"), np.log(4) + 6 * kl)
    np.testing.assert_allclose(
        weat_loss(z_nat, z_adv, np.array([0]), variant="weat_nat", beta=2.5), np.log(4 / 3) + 2.5 * kl
    )


def test_beta_defaults_follow_the_variant(batch):
    z_nat, z_adv, y = batch
    assert weat_loss(z_nat, z_adv, y, variant="weat_adv") == weat_loss(
        z_nat, z_adv, y, variant="weat_adv", beta=7.0
    )
    assert weat_loss(z_nat, z_adv, y, variant="weat_nat") == weat_loss(
        z_nat, z_adv, y, variant="weat_nat", beta=6.0
    )
    with pytest.raises(refimpl.InputError, match="variant"):
        weat_loss(z_nat, z_adv, y)
    with pytest.raises(refimpl.InputError, match="beta"):
        weat_loss(z_nat, z_adv, y, variant="weat_adv", beta=-1.0)


@pytest.mark.parametrize(("variant", "beta"), [("weat_adv", 7.0), ("weat_nat", 6.0), ("weat_nat", 0.5)])
def test_weat_loss_matches_the_official_formula(batch, variant, beta):
    z_nat, z_adv, y = batch
    official = _official(z_nat, z_adv, y, variant, beta)
    # the official log(q + 1e-12) differs by ~β·1e-12/q_min here (q_min ≫ 1e-12)
    np.testing.assert_allclose(weat_loss(z_nat, z_adv, y, variant=variant, beta=beta), official, rtol=1e-9)


def test_official_log_q_plus_1e_12_caps_a_confidently_wrong_prediction():
    z_nat, z_adv, y = np.array([[0.0, 40.0]]), np.array([[40.0, 0.0]]), np.array([1])
    # w = 1/40 (|E| = 40 + log1p(e^−40)), CE = −log q_1 = 40, KL = 40 − O(e^−40)
    np.testing.assert_allclose(weat_loss(z_nat, z_adv, y, variant="weat_adv"), (40 + 7 * 40) / 40, rtol=1e-14)
    np.testing.assert_allclose(_official(z_nat, z_adv, y, "weat_adv", 7.0), (40 + 7 * 27.631) / 40, rtol=1e-4)


def test_the_loss_is_the_energy_weighted_mean_of_the_trades_terms(batch):
    z_nat, z_adv, y = batch
    w = energy_instance_weight(z_nat)
    unweighted = _fixed_weight_loss(z_nat, z_adv, y, "weat_adv", 7.0, np.ones(6))
    assert not np.isclose(unweighted, weat_loss(z_nat, z_adv, y, variant="weat_adv"))
    np.testing.assert_allclose(
        weat_loss(z_nat, z_adv, y, variant="weat_adv"),
        _fixed_weight_loss(z_nat, z_adv, y, "weat_adv", 7.0, w),
    )


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("variant", ["weat_adv", "weat_nat"])
def test_both_cotangents_match_finite_differences_at_fixed_weights(batch, variant, backend):
    z_nat, z_adv, y = batch
    w = energy_instance_weight(z_nat)  # detached: held fixed
    _, pullback = refimpl.vjp("weat_loss", z_nat, z_adv, y, variant=variant, beta=3.0, backend=backend)
    g_nat, g_adv = pullback(np.array(1.0))
    h = 1e-6
    for index in np.ndindex(z_nat.shape):
        step = np.zeros_like(z_nat)
        step[index] = h
        d_nat = (
            _fixed_weight_loss(z_nat + step, z_adv, y, variant, 3.0, w)
            - _fixed_weight_loss(z_nat - step, z_adv, y, variant, 3.0, w)
        ) / (2 * h)
        d_adv = (
            _fixed_weight_loss(z_nat, z_adv + step, y, variant, 3.0, w)
            - _fixed_weight_loss(z_nat, z_adv - step, y, variant, 3.0, w)
        ) / (2 * h)
        np.testing.assert_allclose(g_nat[index], d_nat, rtol=1e-6, atol=1e-10)
        np.testing.assert_allclose(g_adv[index], d_adv, rtol=1e-6, atol=1e-10)


def test_the_weights_are_detached_from_the_natural_logits():
    # β = 0, weat_adv: the loss depends on z_nat only through w, so its cotangent is exactly 0
    rng = np.random.default_rng(3)
    z_nat, z_adv, y = rng.standard_normal((4, 3)) * 3, rng.standard_normal((4, 3)), np.array([0, 1, 2, 0])
    _, pullback = refimpl.vjp(weat_loss, z_nat, z_adv, y, variant="weat_adv", beta=0.0)
    g_nat, g_adv = pullback(np.array(1.0))
    np.testing.assert_array_equal(g_nat, 0.0)
    assert np.abs(g_adv).max() > 0.01
    # while the full derivative (w not detached) would not be 0
    step = np.zeros_like(z_nat)
    step[0, 0] = 1e-6
    moved = weat_loss(z_nat + step, z_adv, y, variant="weat_adv", beta=0.0)
    assert abs(moved - weat_loss(z_nat, z_adv, y, variant="weat_adv", beta=0.0)) > 1e-9


@pytest.mark.parametrize("variant", ["weat_adv", "weat_nat"])
def test_cotangents_sum_to_zero_and_the_loss_is_invariant_to_shifting_z_adv(batch, variant):
    z_nat, z_adv, y = batch
    loss, pullback = refimpl.vjp(weat_loss, z_nat, z_adv, y, variant=variant)
    g_nat, g_adv = pullback(np.array(2.0))
    np.testing.assert_allclose(g_nat.sum(axis=1), 0.0, atol=1e-14)
    np.testing.assert_allclose(g_adv.sum(axis=1), 0.0, atol=1e-14)
    shifted = z_adv + np.arange(6.0)[:, None] * 10
    np.testing.assert_allclose(weat_loss(z_nat, shifted, y, variant=variant), loss, rtol=1e-13)


def test_equal_predictions_leave_only_the_weighted_cross_entropy(batch):
    z_nat, _, y = batch
    w = energy_instance_weight(z_nat)
    log_p = _log_softmax(z_nat)
    _, pullback = refimpl.vjp(weat_loss, z_nat, z_nat.copy(), y, variant="weat_adv")
    g_nat, g_adv = pullback(np.array(1.0))
    np.testing.assert_array_equal(g_nat, 0.0)  # ∂KL/∂z_nat = p(d − KL), d = 0
    expected = w[:, None] / 6 * (np.exp(log_p) - np.eye(5)[y])  # w (q − e_y)/B
    np.testing.assert_allclose(g_adv, expected, rtol=1e-12, atol=1e-17)
    np.testing.assert_allclose(
        weat_loss(z_nat, z_nat, y, variant="weat_nat"), np.mean(w * -log_p[np.arange(6), y]), rtol=1e-14
    )


def test_a_confident_natural_row_keeps_its_small_kl_gradient():
    # p ≈ e_1 with |z| = 40: p_1 (d_1 − KL) is O(e^−40); the naive form d_1 − KL loses it to ulp(40)
    z_nat, z_adv = np.array([[0.0, 40.0, -3.0]]), np.array([[40.0, 0.0, 1.0]])
    _, pullback = refimpl.vjp(weat_loss, z_nat, z_adv, np.array([1]), variant="weat_adv", beta=1.0)
    g_nat, _ = pullback(np.array(1.0))
    p = np.exp(_log_softmax(z_nat))[0]
    d = (z_nat - z_adv)[0]
    pairwise = p * ((d[:, None] - d[None, :]) @ p)  # p_j Σ_k p_k (d_j − d_k), exact for Σ p = 1
    w = energy_instance_weight(z_nat)[0]
    np.testing.assert_allclose(g_nat[0], w * pairwise, rtol=1e-12)
    assert 0 < abs(g_nat[0, 1]) < 1e-14


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_huge_energy_keeps_the_row_in_float32(backend):
    # |E| = 100 + O(1): the official softplus gives w = 0 in float32; here w ≈ 1/100
    z_nat = np.array([[100.0, 0.0, 99.0]], dtype=np.float32)
    z_adv = np.array([[99.0, 1.0, 99.5]], dtype=np.float32)
    loss = refimpl.backend(backend).get("weat_loss")(z_nat, z_adv, np.array([0]), variant="weat_adv")
    assert loss.dtype == np.float32
    reference = weat_loss(
        z_nat.astype(np.float64), z_adv.astype(np.float64), np.array([0]), variant="weat_adv"
    )
    assert reference > 0.001
    np.testing.assert_allclose(loss, reference, rtol=1e-5)


def test_one_class_gives_zero_loss_and_zero_cotangents():
    z_nat, z_adv = np.array([[0.3], [-2.0]]), np.array([[1.5], [4.0]])
    loss, pullback = refimpl.vjp(weat_loss, z_nat, z_adv, np.array([0, 0]), variant="weat_nat")
    assert loss == 0.0
    for g in pullback(np.array(1.0)):
        np.testing.assert_array_equal(g, 0.0)
