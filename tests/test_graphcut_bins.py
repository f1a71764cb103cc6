"""graphcut_bins: Dataset Quantization's GraphCut bins against a direct evaluation of GraphCut."""

from __future__ import annotations

import numpy as np
import pytest

import refimpl
from refimpl import InputError


def _official_similarity(f):
    """cossim_pair_np of the official code: 0.5 + 0.5·cos, in float64."""
    norms = np.linalg.norm(f, axis=1)
    return 0.5 + 0.5 * (f @ f.T) / (norms[:, None] * norms[None, :])


def _graphcut_value(similarity, pool, chosen, lam):
    """f(S) = λ Σ_{i∈R, j∈S} s_ij − Σ_{i,j∈S} s_ij (ordered pairs, the diagonal included)."""
    chosen = list(chosen)
    return lam * similarity[np.ix_(pool, chosen)].sum() - similarity[np.ix_(chosen, chosen)].sum()


def _official_naive_greedy(f, k, lam):
    """quantize_sample.py's bins through GraphCut.calc_gain and NaiveGreedy, transcribed (float64)."""
    similarity = _official_similarity(f)
    available = np.arange(f.shape[0])
    budget = f.shape[0] // k
    bins = []
    for _ in range(k):
        sub = similarity[np.ix_(available, available)]
        column_sums = sub.sum(axis=0)
        selected = np.zeros(available.size, dtype=bool)
        greedy_gain = np.zeros(available.size)
        order = []
        for _ in range(budget):
            candidates = ~selected
            greedy_gain[candidates] = (
                -2.0 * sub[np.ix_(selected, candidates)].sum(axis=0) + lam * column_sums[candidates]
            )
            current = int(greedy_gain.argmax())
            selected[current] = True
            greedy_gain[current] = -np.inf
            order.append(current)
        bins.append(available[order])
        available = np.delete(available, order)
    return np.array(bins)


@pytest.mark.parametrize("seed", range(5))
def test_graphcut_bins_match_the_transcribed_official_greedy(seed):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((12, 4))
    lam = [1.0, 0.5, 2.0, 1.0, 3.0][seed]
    bins, gains = refimpl.data_selection.graphcut_bins(f, k=3, lam=lam)
    np.testing.assert_array_equal(bins, _official_naive_greedy(f, 3, lam))
    # the official code returns each bin as a set in ascending order: the same sets
    assert bins.shape == (3, 4)


@pytest.mark.parametrize("seed", range(4))
def test_graphcut_picks_maximize_the_brute_force_marginal_value(seed):
    rng = np.random.default_rng(100 + seed)
    f = rng.standard_normal((10, 3))
    lam = 1.0 + seed
    bins, gains = refimpl.data_selection.graphcut_bins(f, k=2, lam=lam)
    similarity = _official_similarity(f)
    pool = np.arange(10)
    for b in range(2):
        chosen = []
        for step, x in enumerate(bins[b]):
            value = _graphcut_value(similarity, pool, chosen, lam)
            marginal = {
                c: _graphcut_value(similarity, pool, [*chosen, c], lam) - value
                for c in pool
                if c not in chosen
            }
            best = max(marginal.values())
            assert marginal[x] == pytest.approx(best, abs=1e-12)
            # the code's gain omits the constant self term s_xx = 1 of f(S ∪ x) − f(S)
            assert gains[b, step] == pytest.approx(marginal[x] + 1.0, abs=1e-12)
            chosen.append(int(x))
        pool = np.setdiff1d(pool, bins[b])


def test_graphcut_bins_are_disjoint_and_cover_k_budget_samples():
    rng = np.random.default_rng(3)
    f = rng.standard_normal((23, 5))
    bins, _ = refimpl.data_selection.graphcut_bins(f, k=4)
    assert bins.shape == (4, 5)
    assert np.unique(bins).size == 20


def test_first_pick_is_the_largest_column_sum():
    rng = np.random.default_rng(4)
    f = rng.standard_normal((9, 3))
    bins, gains = refimpl.data_selection.graphcut_bins(f, k=3, lam=2.0)
    similarity = _official_similarity(f)
    assert bins[0, 0] == int(np.argmax(2.0 * similarity.sum(axis=0)))
    assert gains[0, 0] == pytest.approx(2.0 * similarity.sum(axis=0).max(), rel=1e-13)


def test_duplicates_go_to_the_lowest_index_and_the_doctest_value():
    f = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [-1.0, 0.0]])
    bins, gains = refimpl.data_selection.graphcut_bins(f, k=2)
    np.testing.assert_array_equal(bins, [[1, 3], [0, 2]])
    # all column sums tie (3 each); then 1 and 3 tie, then 2 and 3: the lowest index each time
    tied = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    bins, gains = refimpl.data_selection.graphcut_bins(tied, k=1)
    np.testing.assert_array_equal(bins, [[0, 1, 2, 3]])
    np.testing.assert_allclose(gains, [[3.0, 2.0, 0.0, -1.0]], atol=1e-15)


def test_graphcut_is_scale_invariant():
    rng = np.random.default_rng(6)
    f = rng.standard_normal((8, 3))
    scales = rng.uniform(0.1, 10.0, size=(8, 1))
    a, _ = refimpl.data_selection.graphcut_bins(f, k=2)
    b, _ = refimpl.data_selection.graphcut_bins(f * scales, k=2)
    np.testing.assert_array_equal(a, b)


def test_zero_embedding_is_refused():
    with pytest.raises(InputError, match="non-zero norm"):
        refimpl.data_selection.graphcut_bins(np.array([[1.0, 2.0], [0.0, 0.0]]), k=1)
