"""bin_uniform_sampling: a uniform draw without replacement from every bin, randomness as keys."""

from __future__ import annotations

import numpy as np
import pytest

import refimpl
from refimpl import InputError


def test_known_value_with_tied_keys():
    bins = np.arange(10).reshape(2, 5)
    keys = np.array([[0.9, 0.1, 0.5, 0.3, 0.7], [0.0, 0.0, 0.5, 0.0, 0.25]])
    picked = refimpl.data_selection.bin_uniform_sampling(bins, keys, ratio=0.4)
    np.testing.assert_array_equal(picked, [1, 3, 5, 6])  # ties: the lower position first


def test_per_bin_count_is_pythons_round_of_ratio_times_bin_size():
    bins = np.arange(10).reshape(2, 5)
    keys = np.tile(np.linspace(0.0, 0.8, 5), (2, 1))
    assert refimpl.data_selection.bin_uniform_sampling(bins, keys, ratio=0.5).size == 2 * round(2.5)  # 4
    assert refimpl.data_selection.bin_uniform_sampling(bins, keys, ratio=0.1).size == 0  # round(0.5) = 0
    np.testing.assert_array_equal(
        refimpl.data_selection.bin_uniform_sampling(bins, keys, ratio=1.0), np.arange(10)
    )


def test_inclusion_frequencies_are_uniform_within_five_sigma():
    """Over 4000 seeded draws every entry of a 6-entry bin is picked with probability 2/6."""
    rng = np.random.default_rng(2024)
    bins = np.array([[10, 11, 12, 13, 14, 15], [0, 1, 2, 3, 4, 5]])
    draws = 4000
    counts = np.zeros(16)
    for _ in range(draws):
        counts[refimpl.data_selection.bin_uniform_sampling(bins, rng.random((2, 6)), ratio=1 / 3)] += 1
    p = 2 / 6
    sigma = np.sqrt(draws * p * (1 - p))
    members = np.r_[0:6, 10:16]
    assert np.all(np.abs(counts[members] - draws * p) < 5 * sigma)
    assert counts[6:10].sum() == 0


def test_pairs_are_uniform_chi_square():
    """Every 2-subset of a 4-entry bin is equally likely (chi-square, p > 1e-3 at a fixed seed)."""
    from scipy.stats import chisquare

    rng = np.random.default_rng(7)
    bins = np.array([[0, 1, 2, 3]])
    tally = {}
    for _ in range(3000):
        pair = tuple(sorted(refimpl.data_selection.bin_uniform_sampling(bins, rng.random((1, 4)), ratio=0.5)))
        tally[pair] = tally.get(pair, 0) + 1
    assert len(tally) == 6
    assert chisquare(list(tally.values())).pvalue > 1e-3


def test_overlapping_bins_are_refused():
    with pytest.raises(InputError, match="disjoint"):
        refimpl.data_selection.bin_uniform_sampling(np.array([[0, 1], [1, 2]]), np.full((2, 2), 0.5))
