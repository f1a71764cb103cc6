"""LT-SFT's mask: the top-K rule, its tie rule, rounds, and the sparse phase it sets up."""

import numpy as np
import pytest

import refimpl
from refimpl.adapters import lt_sft_mask


def official_unfreeze(theta0, theta1, mask, k):
    """The official unfreeze_k_most_changed_params, transcribed: np.partition of the frozen |Δ|,
    then (|Δ| ≥ t) & ~mask, unioned with the mask."""
    delta = np.abs(theta1 - theta0)
    diffs = np.partition(delta[~mask].tolist(), len(delta[~mask]) - k)
    thresh = diffs[len(diffs) - k]
    return ((delta >= thresh) & ~mask) | mask


def test_mask_unfreezes_exactly_the_k_largest_changes_without_ties():
    theta0 = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    theta1 = theta0 + np.array([0.01, -0.4, 0.2, -0.03, 0.5, 0.1])
    mask, threshold = lt_sft_mask(theta0, theta1, ft_params_num=3)
    np.testing.assert_array_equal(mask, [False, True, True, False, True, False])
    assert float(threshold) == pytest.approx(0.2, rel=1e-12)


def test_ties_at_the_threshold_unfreeze_more_than_k():
    theta1 = np.array([0.1, -0.5, 0.3, 0.3, 0.0, -0.3])
    mask, threshold = lt_sft_mask(np.zeros(6), theta1, ft_params_num=2)
    assert float(threshold) == 0.3
    np.testing.assert_array_equal(mask, [False, True, True, True, False, True])
    assert mask.sum() == 4  # K = 2, but three entries tie at t = 0.3


def test_proportion_default_and_rounds_split_the_budget():
    rng = np.random.default_rng(0)
    theta0 = rng.standard_normal(1000)
    theta1 = theta0 + rng.standard_normal(1000)
    mask, _ = lt_sft_mask(theta0, theta1)  # ⌊0.01·1000⌋ = 10
    assert mask.sum() == 10
    first, _ = lt_sft_mask(theta0, theta1, ft_params_num=10, n_ft_iterations=2)  # 5 per round
    assert first.sum() == 5
    changed = theta0 + rng.standard_normal(1000)  # a second full fine-tune
    second, _ = lt_sft_mask(theta0, changed, first, ft_params_num=10, n_ft_iterations=2)
    assert second.sum() == 10 and np.all(second[first])


def test_later_rounds_skip_earlier_entries_and_match_the_official_code():
    rng = np.random.default_rng(1)
    theta0 = rng.standard_normal(50).astype(np.float32)
    mask = rng.random(50) < 0.3
    theta1 = (theta0 + np.round(rng.standard_normal(50), 1)).astype(np.float32)  # many ties
    for k in (1, 4, 9, 20):
        ours, _ = lt_sft_mask(theta0, theta1, mask, ft_params_num=k)
        np.testing.assert_array_equal(ours, official_unfreeze(theta0, theta1, mask, k))


def test_sparse_phase_with_the_mask_leaves_frozen_entries_and_nnz_bounded():
    rng = np.random.default_rng(2)
    theta0 = rng.standard_normal(200)
    theta1 = theta0 + 0.1 * rng.standard_normal(200)
    mask, _ = lt_sft_mask(theta0, theta1, ft_params_proportion=0.05)
    theta = theta0.copy()  # reset to θ₀, then masked SGD steps g ⊙ μ
    for _ in range(5):
        gradient = rng.standard_normal(200)
        theta = theta - 0.1 * gradient * mask
    np.testing.assert_array_equal(theta[~mask], theta0[~mask])
    phi = (theta - theta0) * mask
    assert np.count_nonzero(phi) <= mask.sum() == 10


def test_k_zero_and_too_few_frozen_are_refused():
    with pytest.raises(refimpl.InputError, match="K = 0"):
        lt_sft_mask(np.zeros(50), np.ones(50))  # ⌊0.01·50⌋ = 0
    with pytest.raises(refimpl.InputError, match="still-frozen"):
        lt_sft_mask(np.zeros(3), np.ones(3), np.array([True, True, False]), ft_params_num=2)
