"""Co-teaching small-loss selection: hand values, the tie rule, the count's rounding, and the
small-loss property."""

import numpy as np
import pytest

import refimpl
from refimpl.reweighting import coteaching_small_loss_selection
from refimpl.reweighting.coteaching import remembered_count


def _by_loss_then_index(losses, keep):
    """The R smallest losses by brute force: sort the pairs (loss, index)."""
    return [i for _, i in sorted((float(loss), i) for i, loss in enumerate(losses))][:keep]


def test_selection_matches_hand_computed_indices_with_ties_by_lowest_index():
    losses_1 = np.array([0.5, 0.1, 0.5, 0.1, 0.9])
    losses_2 = np.array([2.0, 0.3, 0.1, 1.0, 0.2])
    indices_1, indices_2 = coteaching_small_loss_selection(losses_1, losses_2, forget_rate=0.4)
    assert indices_1.dtype == np.int64 and indices_2.dtype == np.int64
    np.testing.assert_array_equal(indices_1, [1, 3, 0])  # R = int(0.6·5) = 3; 1 before 3, 0 before 2
    np.testing.assert_array_equal(indices_2, [2, 4, 1])


def test_forget_rate_zero_keeps_everything_in_stable_ascending_order():
    losses = np.array([2.0, 1.0, 2.0, 0.0, 1.0])
    indices_1, indices_2 = coteaching_small_loss_selection(losses, np.zeros(5), forget_rate=0.0)
    np.testing.assert_array_equal(indices_1, [3, 1, 4, 0, 2])
    np.testing.assert_array_equal(indices_2, [0, 1, 2, 3, 4])


def test_forget_rate_one_keeps_nothing():
    indices_1, indices_2 = coteaching_small_loss_selection(np.ones(6), np.ones(6), forget_rate=1.0)
    assert indices_1.shape == (0,) and indices_2.shape == (0,)
    assert indices_1.dtype == np.int64


def test_a_tied_group_across_the_cut_keeps_its_lowest_indices():
    losses = np.full(8, 0.7)
    indices_1, _ = coteaching_small_loss_selection(losses, losses, forget_rate=0.5)
    np.testing.assert_array_equal(indices_1, [0, 1, 2, 3])
    losses = np.array([3.0, 1.0, 2.0, 1.0, 2.0, 2.0])  # the 2.0s at 2, 4, 5 straddle R = 3
    indices_1, _ = coteaching_small_loss_selection(losses, losses, forget_rate=0.5)
    np.testing.assert_array_equal(indices_1, [1, 3, 2])


def test_negative_zero_ties_with_zero():
    indices_1, _ = coteaching_small_loss_selection(
        np.array([0.0, -0.0, 1.0, -0.0]), np.zeros(4), forget_rate=0.25
    )
    np.testing.assert_array_equal(indices_1, [0, 1, 3])  # R = 3 of the three tied zeros


@pytest.mark.parametrize(
    ("forget_rate", "batch", "kept"),
    [
        (0.3, 10, 7),
        (0.0, 7, 7),
        (1.0, 7, 0),
        (0.8, 5, 0),  # (1 − 0.8)·5 = 0.9999999999999998
        (0.2, 5, 4),  # (1 − 0.2)·5 = 4.0 exactly, though the exact product with τ = fl(0.2) is < 4
        (0.8, 10, 1),  # 1.9999999999999996
        (0.3, 448, 313),  # Clothing1M: 0.7·448 = 313.6
        (0.3, 1, 0),
    ],
)
def test_the_count_is_the_official_float64_expression(forget_rate, batch, kept):
    assert remembered_count(forget_rate, batch) == kept
    assert remembered_count(forget_rate, batch) == int((1 - forget_rate) * batch)
    indices_1, indices_2 = coteaching_small_loss_selection(
        np.arange(batch, dtype=np.float64), np.zeros(batch), forget_rate=forget_rate
    )
    assert indices_1.shape == indices_2.shape == (kept,)


def test_the_official_ramp_schedule_keeps_the_expected_counts():
    ramp = np.linspace(0, 0.3, 5)  # np.linspace(0, forgetRate, nGradual), the official schedule
    counts = [remembered_count(tau, 448) for tau in ramp]
    assert counts == [448, 414, 380, 347, 313]


@pytest.mark.parametrize("seed", range(6))
def test_selection_equals_brute_force_and_keeps_the_smallest_losses(seed):
    rng = np.random.default_rng(seed)
    batch = int(rng.integers(1, 40))
    losses_1 = np.round(rng.gamma(1.5, 1.0, size=batch) * 4) / 4  # coarse grid: many ties
    losses_2 = rng.gamma(1.5, 1.0, size=batch)
    tau = float(rng.uniform(0, 1))
    keep = remembered_count(tau, batch)
    indices_1, indices_2 = coteaching_small_loss_selection(losses_1, losses_2, forget_rate=tau)
    assert indices_1.tolist() == _by_loss_then_index(losses_1, keep)
    assert indices_2.tolist() == _by_loss_then_index(losses_2, keep)
    for losses, indices in ((losses_1, indices_1), (losses_2, indices_2)):
        assert np.all(np.diff(losses[indices]) >= 0)  # ascending loss
        dropped = np.setdiff1d(np.arange(batch), indices)
        if indices.size and dropped.size:
            assert losses[indices].max() <= losses[dropped].min()  # the small-loss property


def test_each_network_selects_from_its_own_losses_only():
    rng = np.random.default_rng(3)
    losses_1 = rng.gamma(1.5, 1.0, size=12)
    first, _ = coteaching_small_loss_selection(losses_1, rng.gamma(1.5, 1.0, size=12), forget_rate=0.3)
    again, _ = coteaching_small_loss_selection(losses_1, rng.gamma(1.5, 1.0, size=12), forget_rate=0.3)
    np.testing.assert_array_equal(first, again)
    swapped_2, swapped_1 = coteaching_small_loss_selection(
        rng.gamma(1.5, 1.0, size=12), losses_1, forget_rate=0.3
    )
    np.testing.assert_array_equal(swapped_1, first)


def test_float32_and_float64_select_the_same_indices():
    rng = np.random.default_rng(4)
    losses = rng.gamma(1.5, 1.0, size=20).astype(np.float32)
    got_32 = coteaching_small_loss_selection(losses, losses[::-1].copy(), forget_rate=0.25)
    got_64 = coteaching_small_loss_selection(
        losses.astype(np.float64), losses[::-1].astype(np.float64), forget_rate=0.25
    )
    for a, b in zip(got_32, got_64, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_forget_rate_has_no_default():
    with pytest.raises(refimpl.InputError, match="forget_rate"):
        coteaching_small_loss_selection(np.ones(3), np.ones(3))


@pytest.mark.parametrize(
    ("losses_1", "losses_2", "forget_rate", "argument"),
    [
        (np.ones(3), np.ones(3), 1.5, "forget_rate"),
        (np.ones(3), np.ones(3), -0.1, "forget_rate"),
        (np.ones(3), np.ones(4), 0.2, "losses_2"),
        (np.array([1, 2, 3]), np.ones(3), 0.2, "losses_1"),
        (np.array([1.0, np.nan]), np.ones(2), 0.2, "losses_1"),
        (np.ones((2, 2)), np.ones(2), 0.2, "losses_1"),
    ],
)
def test_bad_input_raises_input_error_naming_the_argument(losses_1, losses_2, forget_rate, argument):
    with pytest.raises(refimpl.InputError, match=rf"^coteaching_small_loss_selection: argument '{argument}'"):
        coteaching_small_loss_selection(losses_1, losses_2, forget_rate=forget_rate)
