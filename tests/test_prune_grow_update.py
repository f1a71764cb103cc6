"""Prune-and-grow: nnz preserved, the cosine drop schedule, tie rules, reserved weights, and a
brute-force comparison by full sorts."""

import math

import numpy as np
import pytest

import refimpl

qs = refimpl.quantization_sparsity


def _brute(w, mask, scores, reserved, step, end_step, zeta, regrow):
    fraction = zeta / 2 * (1 + math.cos(math.pi * step / end_step))
    k = int(fraction * mask.sum())  # rigl: int(n_ones · drop_fraction)
    if not regrow:
        k = min(k, int((~mask & ~reserved).sum()))
    active = sorted(np.flatnonzero(mask), key=lambda i: (abs(w[i]), i))[:k]
    kept = mask.copy()
    kept[active] = False
    candidates = np.flatnonzero((~kept if regrow else ~mask) & ~reserved)
    grown = sorted(candidates, key=lambda i: (-scores[i], i))[:k]
    new_mask = kept.copy()
    new_mask[grown] = True
    return new_mask, np.where(kept, w, 0.0), k


@pytest.mark.parametrize("seed", range(6))
def test_matches_brute_force_sorts_and_preserves_nnz(seed):
    rng = np.random.default_rng(seed)
    n = 200
    mask = rng.random(n) < 0.4
    w = np.where(mask, rng.standard_normal(n), 0.0)
    scores = np.round(rng.random(n), 1)  # many exact ties
    reserved = ~mask & (rng.random(n) < 0.3)
    regrow = bool(seed % 2)
    new_mask, new_w, k = qs.prune_grow_update(w, mask, scores, reserved, step=seed * 10, end_step=100,
                                              drop_fraction=0.5, regrow_pruned=regrow)  # fmt: skip
    expected_mask, expected_w, expected_k = _brute(w, mask, scores, reserved, seed * 10, 100, 0.5, regrow)
    np.testing.assert_array_equal(new_mask, expected_mask)
    np.testing.assert_array_equal(new_w, expected_w)
    assert int(k) == expected_k > 0
    assert new_mask.sum() == mask.sum()
    assert not np.any(new_mask & reserved)


@pytest.mark.parametrize(("step", "expected"), [(0, 20), (50, 10), (100, 0), (25, 17)])
def test_cosine_drop_schedule(step, expected):
    # 40 active weights, ζ = 0.5: k = ⌊0.25(1 + cos(πt/100))·40⌋; t = 25: ⌊17.07⌋
    mask = np.zeros(100, bool)
    mask[:40] = True
    _, _, k = qs.prune_grow_update(np.arange(100.0), mask, np.zeros(100), np.zeros(100, bool),
                                   step=step, end_step=100, drop_fraction=0.5)  # fmt: skip
    assert int(k) == expected


def test_ties_and_hand_example():
    w = np.array([0.5, -0.5, 2.0, 0.0, 0.5, 0.0, -3.0, 0.0])
    mask = np.array([True, True, True, False, True, False, True, False])
    scores = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    new_mask, new_w, k = qs.prune_grow_update(w, mask, scores, np.zeros(8, bool), step=0, end_step=10,
                                              drop_fraction=0.8)  # fmt: skip
    # k = ⌊0.8·5⌋ = 4, capped at the 3 candidates; |w| = 0.5 three times: indices 0, 1, 4
    assert int(k) == 3
    assert new_mask.astype(int).tolist() == [0, 0, 1, 1, 0, 1, 1, 1]
    np.testing.assert_array_equal(new_w, [0, 0, 2.0, 0, 0, 0, -3.0, 0])


def test_regrown_pruned_weight_restarts_at_zero():
    w = np.array([0.1, 2.0, 0.0, 0.0])
    mask = np.array([True, True, False, False])
    scores = np.array([9.0, 0.0, 1.0, 0.5])
    new_mask, new_w, _ = qs.prune_grow_update(
        w, mask, scores, np.zeros(4, bool), step=0, end_step=10, drop_fraction=1.0, regrow_pruned=True
    )
    # k = ⌊1·2⌋ = 2: both pruned; the two largest scores among all non-kept: 0 (9.0) and 2 (1.0)
    assert new_mask.tolist() == [True, False, True, False]
    np.testing.assert_array_equal(new_w, [0.0, 0.0, 0.0, 0.0])
