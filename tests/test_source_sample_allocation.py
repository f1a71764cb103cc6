"""Source-sample allocation: ν¹ shares ∝ |ν_t|, ν² shares ∝ ν_t², zero relevance gets no samples, the
shares sum to 1, and the allocation is scale·weight (the unpinned constant is the caller's)."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import source_sample_allocation


def test_nu1_allocation_is_proportional_to_the_absolute_relevance():
    allocation, shares = source_sample_allocation(np.array([2.0, -1.0, 0.0, 1.0]), scale=10.0)
    np.testing.assert_array_equal(allocation, [20.0, 10.0, 0.0, 10.0])
    np.testing.assert_array_equal(shares, [0.5, 0.25, 0.0, 0.25])


def test_nu2_allocation_is_proportional_to_the_squared_relevance():
    allocation, shares = source_sample_allocation(np.array([2.0, -1.0, 0.0, 1.0]), scale=10.0, strategy="nu2")
    np.testing.assert_array_equal(allocation, [40.0, 10.0, 0.0, 10.0])
    np.testing.assert_allclose(shares, [4 / 6, 1 / 6, 0.0, 1 / 6], rtol=1e-15)


def test_shares_sum_to_one_and_are_scale_free():
    nu = np.random.default_rng(0).standard_normal(7)
    for strategy in ("nu1", "nu2"):
        _, shares = source_sample_allocation(nu, scale=3.0, strategy=strategy)
        _, shares_scaled = source_sample_allocation(5 * nu, scale=3.0, strategy=strategy)
        np.testing.assert_allclose(shares.sum(), 1.0, rtol=1e-15)
        np.testing.assert_allclose(shares_scaled, shares, rtol=1e-14)


def test_the_nu1_strategy_is_sparser_than_nu2_on_a_lasso_relevance():
    # the paper's motivation: ν¹ from the Lasso zeroes irrelevant sources; the ν² minimum-norm
    # solution spreads samples over every source
    rng = np.random.default_rng(1)
    W = rng.standard_normal((4, 8))  # noqa: N806 - more sources than dimensions
    w0 = W[:, 0] * 2.0 + W[:, 3] * 0.5
    nu1, *_ = refimpl.solvers.lasso_task_relevance(W, w0, lam=0.05, max_iter=10000, tol=1e-12)
    nu2 = np.linalg.pinv(W) @ w0  # the minimum ℓ2-norm solution
    _, shares1 = source_sample_allocation(nu1, scale=1.0)
    _, shares2 = source_sample_allocation(nu2, scale=1.0, strategy="nu2")
    assert np.count_nonzero(shares1) < np.count_nonzero(shares2) == 8


def test_zero_relevance_gives_no_samples():
    allocation, shares = source_sample_allocation(np.zeros(3), scale=5.0)
    np.testing.assert_array_equal(allocation, 0.0)
    np.testing.assert_array_equal(shares, 0.0)


def test_the_scale_is_required():
    with pytest.raises(refimpl.InputError, match="scale"):
        source_sample_allocation(np.ones(2))
