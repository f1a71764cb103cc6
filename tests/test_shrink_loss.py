"""ShrinkMatch's shrink_loss: hand values, the official loop transcribed, ties, invariants, the EMA."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import shrink_loss

E = math.e


def _logsumexp(x):
    m = x.max()
    return m + math.log(np.exp(x - m).sum())


def _official_shrink_loss(pseudo_label, logits_u_s, conf_thresh):
    """LiheYoung/ShrinkMatch, CIFAR/shrinkmatch.py ``shrink_loss``, transcribed in NumPy.

    ``topk(C, sorted=True)`` is taken as a stable descending sort (torch leaves ties open).
    Returns the batch sum Σ_b ω_b ℓ_b (the caller divides by B and multiplies by ρ)."""
    batch, num_classes = pseudo_label.shape
    max_probs = pseudo_label.max(axis=-1)
    sorted_idx = np.argsort(-pseudo_label, axis=-1, kind="stable")
    sorted_prob_w = np.take_along_axis(pseudo_label, sorted_idx, axis=-1)
    sorted_logits_s = np.take_along_axis(logits_u_s, sorted_idx, axis=-1)
    loss_u_shrink_batch = 0.0
    for b in range(batch):
        if max_probs[b] >= conf_thresh:  # skip certain samples
            continue
        for c in range(2, num_classes):
            sub_conf = sorted_prob_w[b, 0] / (sorted_prob_w[b, 0] + sorted_prob_w[b, c:].sum())
            if (sub_conf >= conf_thresh) or (c == num_classes - 1):
                sub_logits_s = np.concatenate([sorted_logits_s[b, :1], sorted_logits_s[b, c:]])
                loss_u_shrink = _logsumexp(sub_logits_s) - sub_logits_s[0]  # F.cross_entropy(·, 0)
                loss_u_shrink *= max_probs[b] * (sub_conf >= conf_thresh)
                loss_u_shrink_batch += loss_u_shrink
                break
    return loss_u_shrink_batch


def _official_step(pseudo_label, logits_u_s_aux, threshold, certain_ratio_ema):
    """CIFAR/shrinkmatch.py ``train``: the EMA is updated first, then weights the shrink term."""
    mask = (pseudo_label.max(axis=-1) >= threshold).astype(np.float64)
    loss_u_shrink = _official_shrink_loss(pseudo_label, logits_u_s_aux, threshold)
    if certain_ratio_ema is None:
        certain_ratio_ema = mask.mean()
    else:
        certain_ratio_ema = certain_ratio_ema * 0.999 + mask.mean() * 0.001
    batch = logits_u_s_aux.shape[0]
    return (loss_u_shrink / batch) * certain_ratio_ema, certain_ratio_ema


def _batch(seed, batch=16, num_classes=10):
    """Weak probabilities with a top class, a few confusion classes and a small tail."""
    rng = np.random.default_rng(seed)
    logits = 0.5 * rng.standard_normal((batch, num_classes))
    for b in range(batch):
        classes = rng.permutation(num_classes)
        a = math.log(num_classes) + rng.uniform(2.0, 6.0)
        logits[b, classes[0]] += a
        k = int(rng.integers(0, 4))
        logits[b, classes[1 : 1 + k]] += a - rng.uniform(0.0, 1.5, size=k)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p, 2.0 * rng.standard_normal((batch, num_classes))


def test_shrink_loss_hand_computed_value_and_gradient():
    p, z = np.array([[0.6, 0.3, 0.1]]), np.array([[1.0, 2.0, 0.0]])
    # conf_2 = 0.6/0.7 ≥ 0.8: class 1 removed, S = {0, 2}, ω = 0.6, ℓ = log(e + 1) − 1
    (loss, ratio), pullback = refimpl.vjp(shrink_loss, p, z, certain_ratio=0.5, threshold=0.8, momentum=0.9)
    np.testing.assert_allclose(loss, 0.5 * 0.6 * math.log1p(1 / E), rtol=1e-15)
    np.testing.assert_allclose(ratio, 0.45, rtol=1e-15)  # 0.9·0.5 + 0.1·0 (no certain sample)
    (g_z,) = pullback((np.array(1.0), np.array(0.0)))
    np.testing.assert_allclose(g_z, [[-0.3 / (E + 1), 0.0, 0.3 / (E + 1)]], rtol=1e-14)


def test_shrink_loss_never_reaching_the_threshold_has_weight_zero():
    # conf_2 = 0.5/0.6 < 0.9 at the last c: the official loop breaks there with ω = 0
    p, z = np.array([[0.5, 0.4, 0.1]]), np.array([[3.0, -1.0, 2.0]])
    (loss, _), pullback = refimpl.vjp(shrink_loss, p, z, certain_ratio=1.0, threshold=0.9)
    assert loss == 0.0
    np.testing.assert_array_equal(pullback((np.array(1.0), np.array(0.0)))[0], 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [0.95, 0.8])
def test_shrink_loss_matches_the_official_training_step(seed, threshold):
    p, z = _batch(seed)
    rho = 0.4
    expected_loss, expected_ratio = _official_step(p, z, threshold, rho)
    _, ratio = shrink_loss(p, z, certain_ratio=rho, threshold=threshold)
    # the official order: ρ is updated first and weights this batch's loss
    loss, _ = shrink_loss(p, z, certain_ratio=float(ratio), threshold=threshold)
    np.testing.assert_allclose(ratio, expected_ratio, rtol=1e-15)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-12)
    assert expected_loss > 0  # the batch has uncertain rows that reach τ


def test_shrink_loss_batches_mix_certain_shrunk_and_dropped_rows():
    p, z = _batch(0, batch=64)
    p[-1] = 0.1  # flat: conf_{C−1} = 0.1/0.2 < 0.95, the row is dropped
    per_row, _ = shrink_loss(p, z, certain_ratio=1.0, reduction="none")
    certain = p.max(axis=1) >= 0.95
    assert certain.any() and (~certain).any()
    np.testing.assert_array_equal(per_row[certain], 0.0)
    assert (per_row[~certain][:-1] > 0).all() and per_row[-1] == 0.0
    # the official loop agrees row by row
    for b in range(64):
        expected = _official_shrink_loss(p[b : b + 1], z[b : b + 1], 0.95)
        np.testing.assert_allclose(per_row[b], expected, rtol=1e-13)


def test_shrink_loss_first_step_ratio_is_the_certain_fraction():
    # the official loop starts ρ at the first batch's certain fraction: momentum = 0 gives it
    p, z = _batch(5, batch=20)
    _, ratio = shrink_loss(p, z, certain_ratio=0.0, momentum=0.0)
    _, expected = _official_step(p, z, 0.95, None)
    np.testing.assert_allclose(ratio, expected, rtol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_shrink_loss_ties_keep_the_lowest_class_first(backend):
    p = np.array([[0.25, 0.25, 0.25, 0.25], [0.125, 0.375, 0.375, 0.125]])
    z = np.array([[0.0, 1.0, 2.0, 3.0], [0.5, -1.0, 4.0, 2.0]])
    (per_row, _), pullback = refimpl.vjp(
        "shrink_loss", p, z, certain_ratio=1.0, threshold=0.5, reduction="none", backend=backend
    )
    # row 0: top = class 0; conf_2 = 0.25/0.75 < 0.5, conf_3 = 0.25/0.5 = τ (≥): S = {0, 3}
    # row 1: top = class 1 (before class 2); conf_2 = 0.375/0.625 ≥ 0.5: class 2 removed, S = {1, 0, 3}
    expected = [0.25 * math.log1p(E**3), 0.375 * (_logsumexp(np.array([-1.0, 0.5, 2.0])) + 1.0)]
    np.testing.assert_allclose(per_row, expected, rtol=1e-13)
    (g_z,) = pullback((np.ones(2), np.array(0.0)))
    assert g_z[0, 1] == 0.0 and g_z[0, 2] == 0.0 and g_z[1, 2] == 0.0  # removed classes
    assert g_z[0, 0] < 0 and g_z[1, 1] < 0  # the top-1 class is pushed up


def test_shrink_loss_max_probability_at_the_threshold_is_certain():
    p, z = np.array([[0.5, 0.25, 0.25]]), np.array([[0.0, 1.0, 2.0]])
    (loss, ratio) = shrink_loss(p, z, certain_ratio=0.5, threshold=0.5, momentum=0.5)
    assert loss == 0.0
    np.testing.assert_allclose(ratio, 0.75)  # 0.5·0.5 + 0.5·1


def test_shrink_loss_compares_with_the_threshold_rounded_to_the_dtype():
    # PyTorch's p.ge(0.95) on float32 compares with float32(0.95) = 0.949999988
    p32 = np.array([[np.float32(0.95), 0.03, 0.02]], dtype=np.float32)
    z32 = np.array([[0.0, 1.0, 2.0]], dtype=np.float32)
    _, ratio32 = shrink_loss(p32, z32, certain_ratio=0.0, momentum=0.0)
    _, ratio64 = shrink_loss(p32.astype(np.float64), z32.astype(np.float64), certain_ratio=0.0, momentum=0.0)
    assert float(ratio32) == 1.0 and float(ratio64) == 0.0


def test_shrink_loss_with_two_classes_or_all_certain_is_zero():
    z = np.array([[1.0, -2.0], [0.5, 3.0]])
    (loss, ratio), pullback = refimpl.vjp(
        shrink_loss, np.array([[0.6, 0.4], [0.97, 0.03]]), z, certain_ratio=0.5, momentum=0.9
    )
    assert loss == 0.0
    np.testing.assert_allclose(ratio, 0.9 * 0.5 + 0.1 * 0.5)  # one of two rows certain
    np.testing.assert_array_equal(pullback((np.array(1.0), np.array(0.0)))[0], 0.0)
    p = np.array([[0.96, 0.02, 0.02], [0.01, 0.98, 0.01]])
    loss, ratio = shrink_loss(p, np.ones((2, 3)), certain_ratio=0.3)
    assert loss == 0.0
    np.testing.assert_allclose(ratio, 0.999 * 0.3 + 0.001, rtol=1e-15)


def test_shrink_loss_gradient_sums_to_zero_and_vanishes_outside_the_kept_classes():
    p, z = _batch(3, batch=32)
    (per_row, _), pullback = refimpl.vjp(
        shrink_loss, p, z, certain_ratio=0.7, threshold=0.9, reduction="none"
    )
    (g_z,) = pullback((np.linspace(0.5, 2.0, 32), np.array(0.0)))
    np.testing.assert_allclose(g_z.sum(axis=1), 0.0, atol=1e-15)  # shift invariance of each row
    np.testing.assert_array_equal(g_z[per_row == 0], 0.0)
    # the loss does not move when a removed class's logit moves
    rows = np.flatnonzero(per_row > 0)
    b = rows[0]
    order = np.argsort(-p[b], kind="stable")
    removed = [j for j in range(10) if g_z[b, j] == 0.0]
    assert removed and order[0] not in removed
    nudged = z.copy()
    nudged[b, removed] += 5.0
    np.testing.assert_array_equal(
        shrink_loss(p, nudged, certain_ratio=0.7, threshold=0.9, reduction="none")[0], per_row
    )


def test_shrink_loss_gradient_matches_finite_differences_of_the_official_loop():
    p, z = _batch(7, batch=6, num_classes=8)
    threshold, rho = 0.8, 0.6
    (_, _), pullback = refimpl.vjp(shrink_loss, p, z, certain_ratio=rho, threshold=threshold)
    (g_z,) = pullback((np.array(1.0), np.array(0.0)))
    h = 1e-6
    numeric = np.zeros_like(z)
    for index in np.ndindex(*z.shape):
        up, down = z.copy(), z.copy()
        up[index] += h
        down[index] -= h
        difference = _official_shrink_loss(p, up, threshold) - _official_shrink_loss(p, down, threshold)
        numeric[index] = rho * difference / (2 * h) / z.shape[0]
    np.testing.assert_allclose(g_z, numeric, atol=1e-9)
    assert np.abs(g_z).max() > 1e-3


def test_shrink_loss_is_equivariant_to_permuting_the_classes():
    p, z = _batch(11, batch=8, num_classes=9)
    permutation = np.random.default_rng(0).permutation(9)
    (loss, _), pullback = refimpl.vjp(shrink_loss, p, z, certain_ratio=0.5, reduction="none")
    (loss_permuted, _), pullback_permuted = refimpl.vjp(
        shrink_loss, p[:, permutation], z[:, permutation], certain_ratio=0.5, reduction="none"
    )
    np.testing.assert_allclose(loss_permuted, loss, rtol=1e-14)
    g = pullback((np.ones(8), np.array(0.0)))[0]
    g_permuted = pullback_permuted((np.ones(8), np.array(0.0)))[0]
    np.testing.assert_allclose(g_permuted, g[:, permutation], rtol=1e-14, atol=1e-17)


def test_shrink_loss_is_linear_in_the_certain_ratio():
    p, z = _batch(2)
    base = shrink_loss(p, z, certain_ratio=1.0, reduction="none")[0]
    np.testing.assert_allclose(
        shrink_loss(p, z, certain_ratio=0.25, reduction="none")[0], 0.25 * base, rtol=1e-15
    )
    assert shrink_loss(p, z, certain_ratio=0.0)[0] == 0.0


def test_shrink_loss_refuses_bad_probabilities_and_needs_the_ratio():
    z = np.zeros((2, 3))
    with pytest.raises(refimpl.InputError, match="a negative entry in row 1"):
        shrink_loss(np.array([[0.2, 0.3, 0.5], [0.5, 0.6, -0.1]]), z, certain_ratio=0.5)
    with pytest.raises(refimpl.InputError, match="all zeros in row 0"):
        shrink_loss(np.array([[0.0, 0.0, 0.0], [0.5, 0.4, 0.1]]), z, certain_ratio=0.5)
    with pytest.raises(refimpl.InputError, match="'certain_ratio'"):
        shrink_loss(np.full((2, 3), 1 / 3), z)
    with pytest.raises(refimpl.InputError, match="'certain_ratio'"):
        shrink_loss(np.full((2, 3), 1 / 3), z, certain_ratio=1.5)
