"""Pinball loss, WIS and quantile aggregation: hand values, the WIS–pinball identity, ties, invariants."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import pinball_loss, quantile_aggregation, weighted_interval_score

LEVELS_7 = np.array([0.025, 0.1, 0.25, 0.5, 0.75, 0.9, 0.975])


def test_pinball_loss_matches_hand_value_and_slopes():
    y, q, tau = np.array([1.0]), np.array([[0.5, 1.5]]), np.array([0.1, 0.9])
    loss, pullback = refimpl.vjp(pinball_loss, y, q, tau)
    # ρ_0.1(0.5) = 0.05 and ρ_0.9(−0.5) = max(−0.45, 0.05) = 0.05
    assert loss == pytest.approx(0.05, abs=1e-15)
    (g_q,) = pullback(np.array(1.0))
    np.testing.assert_allclose(g_q, [[-0.1 / 2, (1 - 0.9) / 2]], atol=1e-15)


def test_pinball_tie_returns_the_midpoint_of_the_subdifferential():
    tau = np.array([0.1, 0.5, 0.8])
    y, q = np.array([2.0]), np.array([[2.0, 2.0, 2.0]])
    loss, pullback = refimpl.vjp(pinball_loss, y, q, tau, reduction="sum")
    assert loss == 0.0
    np.testing.assert_allclose(pullback(np.array(1.0))[0], [[0.4, 0.0, -0.3]], atol=1e-15)


def test_pinball_minimizer_over_a_constant_is_the_empirical_quantile():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(1001)
    grid = np.linspace(-3, 3, 6001)
    losses = [pinball_loss(y, np.full((y.size, 1), c), np.array([0.8])) for c in grid]
    best = grid[int(np.argmin(losses))]
    assert abs(best - np.quantile(y, 0.8, method="inverted_cdf")) < 2e-3


def test_pinball_is_convex_along_a_random_segment():
    rng = np.random.default_rng(1)
    y, tau = rng.standard_normal(6), np.array([0.2, 0.5, 0.9])
    a, b = rng.standard_normal((6, 3)), rng.standard_normal((6, 3))
    for t in np.linspace(0, 1, 11):
        mixed = pinball_loss(y, (1 - t) * a + t * b, tau)
        assert mixed <= (1 - t) * pinball_loss(y, a, tau) + t * pinball_loss(y, b, tau) + 1e-15


def test_wis_matches_hand_value():
    y, q, tau = np.array([3.0]), np.array([[1.0, 2.0, 4.0]]), np.array([0.1, 0.5, 0.9])
    # IS_0.2 = (4 − 1) = 3, (α/2)·IS = 0.3, ½|3 − 2| = 0.5, WIS = 0.8/1.5
    assert weighted_interval_score(y, q, tau) == pytest.approx(0.8 / 1.5, rel=1e-15)


def test_wis_with_median_only_is_the_absolute_error():
    y, q = np.array([1.0, -1.0]), np.array([[0.25], [2.0]])
    np.testing.assert_allclose(weighted_interval_score(y, q, np.array([0.5]), reduction="none"), [0.75, 3.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_wis_equals_scaled_pinball_sum_and_so_does_its_gradient(dtype):
    rng = np.random.default_rng(2)
    y = rng.standard_normal(8).astype(dtype)
    q = rng.standard_normal((8, 7)).astype(dtype)
    tau = LEVELS_7.astype(dtype)
    wis, wis_pullback = refimpl.vjp(weighted_interval_score, y, q, tau, reduction="none")
    rho, rho_pullback = refimpl.vjp(pinball_loss, y, q, tau, reduction="none")
    assert wis.dtype == dtype
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(wis, 2 / 7 * rho.sum(axis=1), rtol=rtol, atol=rtol)
    g = rng.standard_normal(8).astype(dtype)
    (g_wis,) = wis_pullback(g)
    (g_rho,) = rho_pullback(np.repeat(g[:, None], 7, axis=1) * dtype(2 / 7))
    np.testing.assert_allclose(g_wis, g_rho, rtol=rtol, atol=rtol)


def test_wis_ties_match_the_pinball_midpoints():
    tau = np.array([0.2, 0.5, 0.8])
    y, q = np.array([1.0]), np.array([[1.0, 1.0, 1.0]])
    (g_wis,) = refimpl.vjp(weighted_interval_score, y, q, tau)[1](np.array(1.0))
    (g_rho,) = refimpl.vjp(pinball_loss, y, q, tau, reduction="sum")[1](np.array(2 / 3))
    np.testing.assert_allclose(g_wis, g_rho, atol=1e-15)


def test_sorting_crossing_quantiles_never_increases_wis():
    rng = np.random.default_rng(3)
    for _ in range(50):
        y = rng.standard_normal(5) * 2
        q = rng.standard_normal((5, 7)) * 2
        unsorted = weighted_interval_score(y, q, LEVELS_7, reduction="none")
        sorted_ = weighted_interval_score(y, np.sort(q, axis=1), LEVELS_7, reduction="none")
        assert np.all(sorted_ <= unsorted + 1e-12)


def test_wis_refuses_asymmetric_levels():
    with pytest.raises(refimpl.InputError, match="symmetric"):
        weighted_interval_score(np.zeros(1), np.zeros((1, 3)), np.array([0.1, 0.5, 0.8]))


def test_aggregation_with_equal_logits_is_the_member_average():
    members = np.array([[[1.0, 2.0], [3.0, 6.0]]])
    np.testing.assert_allclose(quantile_aggregation(members, np.zeros(2)), [[2.0, 4.0]])
    np.testing.assert_allclose(quantile_aggregation(members, np.zeros((2, 2))), [[2.0, 4.0]])


def test_aggregation_global_logits_equal_tiled_per_level_logits_and_gradients_add_up():
    rng = np.random.default_rng(4)
    members, theta = rng.standard_normal((5, 3, 4)), rng.standard_normal(3)
    g = rng.standard_normal((5, 4))
    out_global, pb_global = refimpl.vjp(quantile_aggregation, members, theta)
    out_tiled, pb_tiled = refimpl.vjp(quantile_aggregation, members, np.repeat(theta[:, None], 4, axis=1))
    np.testing.assert_allclose(out_global, out_tiled, rtol=1e-14)
    g_members_global, g_theta_global = pb_global(g)
    g_members_tiled, g_theta_tiled = pb_tiled(g)
    np.testing.assert_allclose(g_members_global, g_members_tiled, rtol=1e-14)
    # a shared logit collects the gradients of every level
    np.testing.assert_allclose(g_theta_global, g_theta_tiled.sum(axis=1), atol=1e-14)
    assert abs(g_theta_global.sum()) < 1e-14


def test_aggregation_fit_by_pinball_descends_toward_the_best_member():
    # member 0 predicts the true quantiles, member 1 is off by 3: descent moves the weight to member 0
    rng = np.random.default_rng(5)
    tau = np.array([0.1, 0.5, 0.9])
    y = rng.standard_normal(400)
    truth = np.quantile(y, tau)
    members = np.stack([np.tile(truth, (400, 1)), np.tile(truth + 3.0, (400, 1))], axis=1)
    theta = np.zeros(2)
    for _ in range(200):
        q_hat, pb_aggregate = refimpl.vjp(quantile_aggregation, members, theta)
        _, pb_loss = refimpl.vjp(pinball_loss, y, q_hat, tau)
        (g_q_hat,) = pb_loss(np.array(1.0))
        theta = theta - 5.0 * pb_aggregate(g_q_hat)[1]
    w = np.exp(theta) / np.exp(theta).sum()
    assert w[0] > 0.95


def test_aggregation_float32_stays_float32_and_large_logits_are_finite():
    members = np.ones((2, 3, 2), np.float32)
    theta = np.array([[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0]], np.float32)
    out, pullback = refimpl.vjp(quantile_aggregation, members, theta)
    g_members, g_theta = pullback(np.ones((2, 2), np.float32))
    assert out.dtype == g_members.dtype == g_theta.dtype == np.float32
    assert np.all(np.isfinite(g_theta))
    np.testing.assert_allclose(out, 1.0)
