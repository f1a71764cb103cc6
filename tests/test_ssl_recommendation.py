"""SSL4Rec: cosine InfoNCE, logQ sampled softmax and correlated feature masking."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import correlated_feature_masking, cosine_infonce, sampled_softmax_logq


def test_cosine_infonce_matches_hand_value():
    z = np.array([[1.0, 0.0], [0.0, 2.0]])
    # ẑ = I, S = I: each row −(1 − log(e + 1))
    expected = np.log(np.e + 1) - 1
    assert cosine_infonce(z, z, temperature=1.0, alpha=1.0) == pytest.approx(expected, rel=1e-15)
    assert cosine_infonce(z, z, temperature=1.0, alpha=0.25) == pytest.approx(expected / 4, rel=1e-15)


def test_cosine_infonce_is_invariant_to_a_joint_row_permutation():
    rng = np.random.default_rng(0)
    z, z_prime = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    perm = rng.permutation(6)
    for symmetric in (False, True):
        kw = {"temperature": 0.2, "alpha": 1.0, "symmetric": symmetric}
        base = cosine_infonce(z, z_prime, **kw)
        assert cosine_infonce(z[perm], z_prime[perm], **kw) == pytest.approx(base, rel=1e-13)


def test_cosine_infonce_is_invariant_to_positive_row_scaling_at_eps_zero():
    rng = np.random.default_rng(1)
    z, z_prime = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    scale = rng.uniform(0.01, 100, (5, 1))
    kw = {"temperature": 0.1, "alpha": 1.0}
    assert cosine_infonce(z * scale, z_prime, **kw) == pytest.approx(
        cosine_infonce(z, z_prime, **kw), rel=1e-13
    )
    # the gradient of a scale-invariant function is orthogonal to each row
    (g_z, _) = refimpl.vjp(cosine_infonce, z, z_prime, **kw)[1](np.array(1.0))
    assert np.abs((g_z * z).sum(axis=1)).max() < 1e-15


def test_symmetric_is_the_average_of_both_directions():
    rng = np.random.default_rng(2)
    z, z_prime = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    kw = {"temperature": 0.3, "alpha": 2.0}
    both = cosine_infonce(z, z_prime, symmetric=True, **kw)
    average = (cosine_infonce(z, z_prime, **kw) + cosine_infonce(z_prime, z, **kw)) / 2
    assert both == pytest.approx(average, rel=1e-14)
    g_sym = refimpl.vjp(cosine_infonce, z, z_prime, symmetric=True, **kw)[1](np.array(1.0))
    g_ab = refimpl.vjp(cosine_infonce, z, z_prime, **kw)[1](np.array(0.5))
    g_ba = refimpl.vjp(cosine_infonce, z_prime, z, **kw)[1](np.array(0.5))
    np.testing.assert_allclose(g_sym[0], g_ab[0] + g_ba[1], atol=1e-14)
    np.testing.assert_allclose(g_sym[1], g_ab[1] + g_ba[0], atol=1e-14)


def test_small_temperature_stays_finite_in_float32():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 4)).astype(np.float32)
    loss, pullback = refimpl.vjp(cosine_infonce, z, -z, temperature=1e-3, alpha=1.0)
    g_z, g_z_prime = pullback(np.array(1.0, np.float32))
    assert loss.dtype == np.float32 and np.isfinite(loss) and loss > 100
    assert np.all(np.isfinite(g_z)) and np.all(np.isfinite(g_z_prime))


def test_one_item_gives_zero_loss_and_gradient():
    loss, pullback = refimpl.vjp(
        cosine_infonce, np.ones((1, 3)), np.ones((1, 3)) * -2, temperature=0.1, alpha=1.0
    )
    assert loss == 0.0
    assert all(np.all(g == 0) for g in pullback(np.array(1.0)))


def test_zero_embedding_needs_eps():
    z = np.array([[0.0, 0.0], [1.0, 0.0]])
    with pytest.raises(refimpl.InputError, match="nonzero norm"):
        cosine_infonce(z, z + 1, temperature=0.1, alpha=1.0)
    loss, pullback = refimpl.vjp(cosine_infonce, z, z + 1, temperature=0.1, alpha=1.0, eps=1e-8)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in pullback(np.array(1.0)))


def test_a_float32_row_whose_squared_norm_underflows_is_normalized_by_scaling():
    # ‖(1e-30, 0)‖² underflows in float32, but the direction is exact: the norm is
    # recomputed on the row scaled by its largest entry, so the row counts as (1, 0).
    tiny = np.array([[1e-30, 0.0], [1.0, 0.0]], np.float32)
    unit = np.array([[1.0, 0.0], [1.0, 0.0]], np.float32)
    other = np.array([[0.5, 1.0], [1.0, 2.0]], np.float32)
    got = cosine_infonce(tiny, other, temperature=0.1, alpha=1.0)
    want = cosine_infonce(unit, other, temperature=0.1, alpha=1.0)
    assert got == pytest.approx(want, rel=1e-6)


def test_a_float32_row_of_zeros_is_refused_at_eps_zero():
    z = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
    with pytest.raises(refimpl.InputError, match="a zero row at row 0"):
        cosine_infonce(z, z + 1, temperature=0.1, alpha=1.0)


def test_temperature_and_alpha_are_required():
    z = np.ones((2, 2))
    with pytest.raises(refimpl.InputError, match="temperature"):
        cosine_infonce(z, z, alpha=1.0)
    with pytest.raises(refimpl.InputError, match="alpha"):
        cosine_infonce(z, z, temperature=0.1)


def test_sampled_softmax_logq_matches_hand_value_and_uniform_correction_changes_nothing():
    s = np.array([[2.0, 0.0], [1.0, 1.0]])
    # uniform p: a constant shift of every logit, the plain in-batch softmax
    plain = np.mean([np.log1p(np.exp(-2.0)), np.log(2.0)])
    assert sampled_softmax_logq(s, np.log(np.array([0.5, 0.5]))) == pytest.approx(plain, rel=1e-15)
    # p = (0.8, 0.2): row 0 logits (2 − log .8, −log .2)
    u0 = np.array([2 - np.log(0.8), -np.log(0.2)])
    u1 = np.array([1 - np.log(0.8), 1 - np.log(0.2)])
    expected = [np.logaddexp(*u0) - u0[0], np.logaddexp(*u1) - u1[1]]
    got = sampled_softmax_logq(s, np.log(np.array([0.8, 0.2])), reduction="none")
    np.testing.assert_allclose(got, expected, rtol=1e-15)


def test_sampled_softmax_gradient_rows_sum_to_zero():
    rng = np.random.default_rng(4)
    s, log_p = rng.standard_normal((5, 5)), np.log(rng.uniform(0.01, 1, 5))
    (g,) = refimpl.vjp(sampled_softmax_logq, s, log_p, reduction="sum")[1](np.array(1.0))
    np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-15)
    assert np.all(np.diag(g) < 0)


def test_cfm_masks_the_seed_and_its_most_correlated_fields():
    mi = np.array([[0, 0.1, 0.9, 0.2], [0.1, 0, 0.3, 0.4], [0.9, 0.3, 0, 0.5], [0.2, 0.4, 0.5, 0]])
    view1, view2 = correlated_feature_masking(mi, seed_field=0)
    np.testing.assert_array_equal(view1, [True, False, True, False])
    np.testing.assert_array_equal(view2, ~view1)
    view1, _ = correlated_feature_masking(mi, seed_field=1)
    np.testing.assert_array_equal(view1, [False, True, False, True])


def test_cfm_ties_take_the_lowest_index_and_odd_counts_round_up():
    view1, _ = correlated_feature_masking(np.ones((5, 5)), seed_field=3)
    np.testing.assert_array_equal(view1, [True, True, False, True, False])  # ⌈5/2⌉ = 3 fields
    view1, view2 = correlated_feature_masking(np.array([[1.0]]), seed_field=0)
    assert view1.tolist() == [True] and view2.tolist() == [False]
