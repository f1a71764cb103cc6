"""Expert Merging++ chunk allocation: hand values, the κ limits, budget bookkeeping, the
order independence (no tie rule needed)."""

import numpy as np
import pytest

import refimpl
from refimpl.merging import expert_merging_pp_chunk_allocation

RNG = np.random.default_rng(211)
ALPHA = RNG.uniform(0, 1, size=(6, 3))
MAGNITUDES = RNG.uniform(0, 1e-3, size=(6, 3))
COUNTS = np.array([4096, 1024, 16384, 4096, 65536, 512])


def test_hand_value_with_kappa_two():
    # w = (0.5·1 + 0.25·2)·3 = 3 and 0.25·1·4 = 1; I = (3/4, 1/4); I² ∝ (9, 1); ⌊10·9/10⌋, ⌊10·1/10⌋
    importance, chunks = expert_merging_pp_chunk_allocation(
        np.array([[0.5, 0.25], [0.25, 0.0]]),
        np.array([[1.0, 2.0], [1.0, 1.0]]),
        np.array([3, 4]),
        budget=10,
        kappa=2.0,
    )
    np.testing.assert_allclose(importance, [0.75, 0.25], rtol=1e-15)
    np.testing.assert_array_equal(chunks, [9, 1])


def test_importance_is_the_l1_normalized_product_of_coefficient_magnitude_and_size():
    importance, _ = expert_merging_pp_chunk_allocation(ALPHA, MAGNITUDES, COUNTS, budget=10, kappa=1.0)
    weights = np.array(
        [sum(abs(ALPHA[l, k]) * MAGNITUDES[l, k] for k in range(3)) * COUNTS[l] for l in range(6)]
    )
    np.testing.assert_allclose(importance, weights / weights.sum(), rtol=1e-14)
    assert importance.sum() == pytest.approx(1.0, abs=1e-15)


def test_kappa_zero_is_uniform_and_large_kappa_concentrates():
    _, uniform = expert_merging_pp_chunk_allocation(ALPHA, MAGNITUDES, COUNTS, budget=20, kappa=0.0)
    np.testing.assert_array_equal(uniform, np.full(6, 20 // 6))
    importance, steep = expert_merging_pp_chunk_allocation(ALPHA, MAGNITUDES, COUNTS, budget=20, kappa=50.0)
    top = int(np.argmax(importance))
    assert steep[top] >= 19 and steep.sum() - steep[top] <= 1


@pytest.mark.parametrize("kappa", [0.5, 1.0, 2.0])
def test_budget_is_never_exceeded_and_floors_lose_less_than_one_per_layer(kappa):
    for budget in (0, 1, 7, 30):
        _, chunks = expert_merging_pp_chunk_allocation(ALPHA, MAGNITUDES, COUNTS, budget=budget, kappa=kappa)
        assert chunks.dtype == np.int64 and (chunks >= 0).all()
        assert budget - len(COUNTS) < chunks.sum() <= budget


def test_counts_are_monotone_in_importance_and_independent_of_layer_order():
    importance, chunks = expert_merging_pp_chunk_allocation(ALPHA, MAGNITUDES, COUNTS, budget=25, kappa=1.5)
    order = np.argsort(importance)
    assert (np.diff(chunks[order]) >= 0).all()
    permutation = RNG.permutation(6)
    _, permuted = expert_merging_pp_chunk_allocation(
        ALPHA[permutation], MAGNITUDES[permutation], COUNTS[permutation], budget=25, kappa=1.5
    )
    np.testing.assert_array_equal(permuted, chunks[permutation])


def test_zero_importance_layer_gets_no_chunks_and_all_zero_is_refused():
    alpha = ALPHA.copy()
    alpha[2] = 0.0
    importance, chunks = expert_merging_pp_chunk_allocation(alpha, MAGNITUDES, COUNTS, budget=30, kappa=1.0)
    assert importance[2] == 0.0 and chunks[2] == 0
    with pytest.raises(refimpl.InputError, match="importance"):
        expert_merging_pp_chunk_allocation(np.zeros((6, 3)), MAGNITUDES, COUNTS, budget=30, kappa=1.0)
