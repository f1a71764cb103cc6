"""Soft Dice and FEBS Dice (FairSeg): hand values, the official febs_loss transcribed, the
absent-group bug, constant weights (exact derivative where they cannot move), the D_g = 0 refusal."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.reweighting import febs_dice_loss, soft_dice_loss

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


# -- the official code, transcribed in NumPy (TransUNet/utils.py, febs_loss) ------------------------
def _official_dice_loss(score, target, smooth=1e-5):
    """``febs_loss._dice_loss``: 1 − (2Σst + smooth)/(Σs² + Σt² + smooth)."""
    intersect = np.sum(score * target)
    y_sum = np.sum(target * target)
    z_sum = np.sum(score * score)
    return 1 - (2 * intersect + smooth) / (z_sum + y_sum + smooth)


def _official_febs(inputs, target, attr, n_attr, gamma, smooth=1e-5):
    """``febs_loss.forward`` on probabilities and a one-hot target (softmax=False, weight=None)."""
    n_classes = inputs.shape[1]
    tmp_weights = np.zeros(n_attr)
    for x in np.unique(attr):
        tmp_input, tmp_target = inputs[attr == x], target[attr == x]
        tmp_weights[x] = sum(
            _official_dice_loss(tmp_input[:, i], tmp_target[:, i], smooth) for i in range(n_classes)
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        tmp_weights = np.tanh((np.min(tmp_weights) / tmp_weights) ** gamma)
    loss = 0.0
    for i in range(n_classes):
        loss += _official_dice_loss(inputs[:, i] * tmp_weights[attr][:, None, None], target[:, i], smooth)
    return loss / n_classes


def _batch(rng, B=6, C=3, H=5, W=4, scale=2.0):
    logits = rng.standard_normal((B, C, H, W)) * scale
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    t = np.moveaxis(np.eye(C)[rng.integers(0, C, size=(B, H, W))], -1, 1)
    return p, t


def _numerical_gradient(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        grad[index] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


# -- soft_dice_loss ---------------------------------------------------------------------------------
def test_soft_dice_loss_known_value_and_gradient():
    s, t = np.array([1.0, 0.0]), np.array([1.0, 1.0])
    loss, pullback = refimpl.vjp(soft_dice_loss, s, t, eps=1.0)
    np.testing.assert_allclose(loss, 0.25, rtol=1e-15)  # Q = 1, S = 1 + 2 + 1
    # κ = (2 + 1)/4; (2/S)(κ s − t) = ½([3/4, 0] − [1, 1])
    np.testing.assert_allclose(pullback(np.array(2.0))[0], [-0.25, -1.0], rtol=1e-15)


def test_soft_dice_loss_equals_the_official_form_and_its_catalog_gradient():
    rng = np.random.default_rng(0)
    s, t = rng.uniform(size=(3, 4, 5)), (rng.uniform(size=(3, 4, 5)) < 0.3).astype(float)
    loss, pullback = refimpl.vjp(soft_dice_loss, s, t)
    np.testing.assert_allclose(loss, _official_dice_loss(s, t), rtol=1e-13)
    (g_s,) = pullback(np.array(1.0))
    intersection, total = np.sum(s * t), np.sum(s * s) + np.sum(t * t) + 1e-5
    expected = -(2 * t * total - (2 * intersection + 1e-5) * 2 * s) / total**2  # the catalog's VJP
    np.testing.assert_allclose(g_s, expected, rtol=1e-12, atol=1e-17)
    np.testing.assert_allclose(
        g_s, _numerical_gradient(lambda x: float(soft_dice_loss(x, t)), s), rtol=1e-6, atol=1e-10
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_soft_dice_loss_is_zero_with_zero_gradient_at_s_equal_t(backend):
    t = np.array([[0.0, 1.0, 0.2], [0.7, 0.0, 1.0]])
    loss, pullback = refimpl.vjp("soft_dice_loss", t.copy(), t, backend=_backend(backend))
    assert float(loss) == 0.0  # Σ(s − t)²/S: exactly 0, where 1 − (2I + ε)/S may round off 0
    np.testing.assert_allclose(pullback(np.array(1.0))[0], 0.0, atol=1e-16)
    # two empty masks: D = 0/ε = 0 (a perfect overlap)
    assert float(refimpl.get("soft_dice_loss")(np.zeros(4), np.zeros(4))) == 0.0


def test_soft_dice_loss_keeps_its_digits_near_a_perfect_overlap():
    rng = np.random.default_rng(1)
    t = (rng.uniform(size=200) < 0.5).astype(float)
    s = t + 1e-7 * rng.standard_normal(200)
    delta = s - t  # exact (Sterbenz): the perturbation as stored
    exact = np.sum(delta**2) / (np.sum(s * s) + np.sum(t * t) + 1e-5)
    np.testing.assert_allclose(soft_dice_loss(s, t), exact, rtol=1e-13)
    assert abs(_official_dice_loss(s, t) - exact) > 1e-4 * exact  # the official form cancels


def test_soft_dice_loss_of_an_absent_target_class_is_near_one_with_a_precise_gradient():
    s = np.array([0.5, 0.25, 0.0])
    loss, pullback = refimpl.vjp(soft_dice_loss, s, np.zeros(3))
    squares = 0.3125
    np.testing.assert_allclose(loss, squares / (squares + 1e-5), rtol=1e-15)
    kappa = 1e-5 / (squares + 1e-5)  # summed directly, not 1 − D
    np.testing.assert_allclose(pullback(np.array(1.0))[0], 2 * kappa * s / (squares + 1e-5), rtol=1e-14)


# -- febs_dice_loss ---------------------------------------------------------------------------------
def test_febs_dice_loss_hand_computed_value_and_gradient():
    p, t = np.array([0.0, 2.0]).reshape(2, 1, 1, 1), np.ones((2, 1, 1, 1))
    loss, pullback = refimpl.vjp(febs_dice_loss, p, t, np.array([0, 1]), num_groups=2, eps=1.0)
    # D_0 = 1/(0 + 1 + 1), D_1 = 1/(4 + 1 + 1): ratios 1/3 and 1
    w0, w1 = math.tanh(1 / 3), math.tanh(1.0)
    s1 = 2 * w1
    total = s1**2 + 2 + 1
    np.testing.assert_allclose(loss, (1 + (s1 - 1) ** 2) / total, rtol=1e-15)
    kappa = (2 * s1 + 1) / total
    expected = [w0 * (2 / total) * -1.0, w1 * (2 / total) * (kappa * s1 - 1)]
    np.testing.assert_allclose(pullback(np.array(1.0))[0].ravel(), expected, rtol=1e-14)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_febs_dice_loss_matches_the_official_febs_loss_when_every_group_is_present(gamma):
    rng = np.random.default_rng(int(10 * gamma))
    p, t = _batch(rng)
    groups = np.array([0, 1, 2, 2, 1, 0])
    for official_absent_group in (False, True):  # the flag changes nothing with every group present
        loss = febs_dice_loss(
            p, t, groups, num_groups=3, gamma=gamma, official_absent_group=official_absent_group
        )
        np.testing.assert_allclose(loss, _official_febs(p, t, groups, 3, gamma), rtol=1e-12)


def test_febs_dice_loss_official_flag_reproduces_the_absent_group_bug():
    rng = np.random.default_rng(5)
    p, t = _batch(rng)
    groups = np.array([0, 1, 1, 0, 0, 1])  # group 2 of 3 absent
    official = _official_febs(p, t, groups, 3, 1.0)
    loss, pullback = refimpl.vjp(febs_dice_loss, p, t, groups, num_groups=3, official_absent_group=True)
    np.testing.assert_allclose(loss, official, rtol=1e-13)
    # every weight tanh(0) = 0: the constant (1/C) Σ_c Σt²/(Σt² + ε), no gradient
    t_squares = (t * t).sum(axis=(0, 2, 3))
    np.testing.assert_allclose(loss, np.mean(t_squares / (t_squares + 1e-5)), rtol=1e-14)
    np.testing.assert_array_equal(pullback(np.array(1.0))[0], 0.0)
    # by default the minimum runs over the groups present: as if the attribute had 2 groups
    default = febs_dice_loss(p, t, groups, num_groups=3)
    np.testing.assert_allclose(default, _official_febs(p, t, groups, 2, 1.0), rtol=1e-12)
    assert default < 0.9 * float(loss)


def test_febs_dice_loss_deviation_record_reproduces_with_its_flag():
    from refimpl._deviations import matches, run_example

    (deviation,) = refimpl.deviations("febs_dice_loss")
    assert matches(deviation.example.official, run_example(deviation, with_flag=True), rtol=1e-12)
    assert matches(deviation.example.reference, run_example(deviation), rtol=1e-12)


@pytest.mark.parametrize("case", ["gamma = 0", "one group"])
def test_febs_dice_loss_where_the_weights_cannot_move_is_the_soft_dice_of_tanh1_p(case):
    rng = np.random.default_rng(7)
    p, t = _batch(rng, B=3, C=2, H=3, W=2)
    groups, kwargs = (np.array([0, 1, 2]), {"num_groups": 3, "gamma": 0.0})
    if case == "one group":
        groups, kwargs = np.zeros(3, dtype=int), {"num_groups": 1}
    loss, pullback = refimpl.vjp(febs_dice_loss, p, t, groups, **kwargs)
    w = math.tanh(1.0)
    per_class = [soft_dice_loss(w * p[:, c], t[:, c]) for c in range(2)]
    np.testing.assert_allclose(loss, np.mean(per_class), rtol=1e-14)
    # the weights are constant here, so the custom VJP is the exact derivative
    (g_p,) = pullback(np.array(1.0))

    def forward(x):
        return float(febs_dice_loss(x, t, groups, **kwargs))

    np.testing.assert_allclose(g_p, _numerical_gradient(forward, p), rtol=1e-6, atol=1e-11)


def test_febs_dice_loss_backward_is_the_soft_dice_vjp_at_the_frozen_weights():
    rng = np.random.default_rng(11)
    p, t = _batch(rng, B=4, C=2, H=3, W=3)
    groups = np.array([0, 1, 1, 0])
    _, pullback = refimpl.vjp(febs_dice_loss, p, t, groups, num_groups=2, gamma=2.0)
    (g_p,) = pullback(np.array(1.0))
    # the official weights (every group present), frozen; differentiate the Dice term alone
    group_loss = np.array(
        [sum(_official_dice_loss(p[groups == g, c], t[groups == g, c]) for c in range(2)) for g in (0, 1)]
    )
    w = np.tanh((group_loss.min() / group_loss) ** 2.0)[groups][:, None, None, None]
    assert np.ptp(w) > 0.01  # the groups differ: a test with equal weights would prove less

    def dice_term(x):
        return np.mean([_official_dice_loss(w[:, 0] * x[:, c], t[:, c]) for c in range(2)])

    np.testing.assert_allclose(g_p, _numerical_gradient(dice_term, p), rtol=1e-6, atol=1e-11)


def test_febs_dice_loss_worse_groups_get_smaller_weights_and_larger_dice_terms():
    rng = np.random.default_rng(3)
    p, t = _batch(rng, B=2, C=2, H=4, W=4, scale=0.5)
    good = 0.9 * t + 0.1 * p  # sample 0 near its target (group 0), sample 1 not (group 1)
    p = np.concatenate([good[:1], p[1:]])
    groups = np.array([0, 1])
    _, pullback = refimpl.vjp(febs_dice_loss, p, t, groups, num_groups=2)
    (g_p,) = pullback(np.array(1.0))
    # p̄ = (2w/(C S_c))(κ w p − t): on the target pixels (t = 1) of class c the pull is
    # −(2w/(C S))(1 − κ w p); the better group has the larger w (tanh 1) and p near 1
    group_loss = [sum(_official_dice_loss(p[g, c], t[g, c]) for c in range(2)) for g in (0, 1)]
    assert group_loss[0] < group_loss[1]
    ratio = group_loss[0] / group_loss[1]
    w = np.array([math.tanh(1.0), math.tanh(ratio)])
    assert w[1] < w[0]
    total = ((w[:, None, None, None] * p) ** 2).sum(axis=(0, 2, 3)) + (t * t).sum(axis=(0, 2, 3)) + 1e-5
    overlap = ((w[:, None, None, None] * p) * t).sum(axis=(0, 2, 3))
    kappa = (2 * overlap + 1e-5) / total
    expected = (2 * w[:, None, None, None] / (2 * total[None, :, None, None])) * (
        kappa[None, :, None, None] * w[:, None, None, None] * p - t
    )
    np.testing.assert_allclose(g_p, expected, rtol=1e-12, atol=1e-17)


def test_febs_dice_loss_is_invariant_to_relabelling_groups_and_reordering_samples():
    rng = np.random.default_rng(9)
    p, t = _batch(rng)
    groups = np.array([0, 1, 2, 2, 1, 0])
    base = febs_dice_loss(p, t, groups, num_groups=3)
    np.testing.assert_allclose(febs_dice_loss(p, t, (groups + 1) % 3, num_groups=3), base, rtol=1e-14)
    order = rng.permutation(6)
    np.testing.assert_allclose(
        febs_dice_loss(p[order], t[order], groups[order], num_groups=3), base, rtol=1e-13
    )


def test_febs_dice_loss_refuses_a_group_with_zero_dice_loss_and_out_of_range_labels():
    p, t = _batch(np.random.default_rng(2), B=3, C=2, H=2, W=2)
    perfect = p.copy()
    perfect[1:] = t[1:]  # samples 1 and 2 predicted exactly
    with pytest.raises(refimpl.InputError, match="p equal to t on every sample of group 1"):
        febs_dice_loss(perfect, t, np.array([0, 1, 1]), num_groups=2)
    with pytest.raises(refimpl.InputError, match="p equal to t on every sample of group 0"):
        febs_dice_loss(perfect, t, np.array([1, 0, 1]), num_groups=3, official_absent_group=True)
    # perfect samples sharing a group with an imperfect one are fine (D_g > 0)
    loss = febs_dice_loss(perfect, t, np.array([0, 0, 0]), num_groups=1)
    np.testing.assert_allclose(
        loss, np.mean([soft_dice_loss(math.tanh(1.0) * perfect[:, c], t[:, c]) for c in range(2)]), rtol=1e-14
    )
    with pytest.raises(refimpl.InputError, match=r"group labels in \[0, num_groups\) = \[0, 2\)"):
        febs_dice_loss(p, t, np.array([0, 1, 2]), num_groups=2)
    with pytest.raises(refimpl.InputError, match="'num_groups'"):
        febs_dice_loss(p, t, np.array([0, 1, 1]))


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_febs_and_soft_dice_backends_agree_across_several_blocks(backend, dtype):
    rng = np.random.default_rng(21)
    p, t = _batch(rng, B=3, C=2, H=130, W=140)  # 18200 pixels per channel: two Numba blocks
    p, t = p.astype(dtype), t.astype(dtype)
    groups = np.array([0, 1, 1])
    want, want_pullback = refimpl.vjp("febs_dice_loss", p, t, groups, num_groups=2)
    got, got_pullback = refimpl.vjp("febs_dice_loss", p, t, groups, num_groups=2, backend=_backend(backend))
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=rtol)
    g = np.array(0.7, dtype)
    np.testing.assert_allclose(got_pullback(g)[0], want_pullback(g)[0], rtol=rtol, atol=rtol * 1e-6)
    flat_want = refimpl.get("soft_dice_loss")(p.reshape(-1), t.reshape(-1))
    flat_got = _backend(backend).get("soft_dice_loss")(p.reshape(-1), t.reshape(-1))
    np.testing.assert_allclose(flat_got, flat_want, rtol=rtol)
