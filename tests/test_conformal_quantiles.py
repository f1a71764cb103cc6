"""Quantile sorting, isotonic regression by PAV (against an exact brute force, scikit-learn and
SciPy, ties and duplicate x included) and conformalized quantile regression."""

import itertools
import math

import numpy as np
import pytest
import scipy.optimize
from sklearn.isotonic import IsotonicRegression

import refimpl
from refimpl.losses import weighted_interval_score
from refimpl.other import cqr_calibration, isotonic_regression_pav, quantile_sort


# -- quantile_sort ------------------------------------------------------------------------------
def test_quantile_sort_values_and_inverse_permutation_vjp():
    q = np.array([[0.5, 0.2, 0.9, -0.1]])
    out, pullback = refimpl.vjp(quantile_sort, q)
    np.testing.assert_array_equal(out, [[-0.1, 0.2, 0.5, 0.9]])
    (g_q,) = pullback(np.array([[1.0, 2.0, 3.0, 4.0]]))
    np.testing.assert_array_equal(g_q, [[3.0, 2.0, 4.0, 1.0]])  # each cotangent back to its source


def test_quantile_sort_is_stable_on_ties():
    q = np.array([0.5, 0.1, 0.5, 0.1])
    out, pullback = refimpl.vjp(quantile_sort, q)
    np.testing.assert_array_equal(out, [0.1, 0.1, 0.5, 0.5])
    (g_q,) = pullback(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(g_q, [3.0, 1.0, 4.0, 2.0])  # order 1, 3, 0, 2


# -- isotonic_regression_pav: exact references ----------------------------------------------------
def _brute_force(y, w, x=None):
    """The exact weighted isotonic fit: the best of every partition into consecutive blocks
    (of the x order; tied x never split) whose block means are nondecreasing."""
    n = len(y)
    order = np.argsort(x, kind="stable") if x is not None else np.arange(n)
    ys, ws = y[order], w[order]
    xs = x[order] if x is not None else np.arange(n)
    best, best_fit = math.inf, None
    for cuts in itertools.product([False, True], repeat=n - 1):
        if any(cut and xs[i] == xs[i + 1] for i, cut in enumerate(cuts)):
            continue  # tied x stay in one block
        bounds = [0] + [i + 1 for i, cut in enumerate(cuts) if cut] + [n]
        means = [np.dot(ws[a:b], ys[a:b]) / ws[a:b].sum() for a, b in itertools.pairwise(bounds)]
        if any(m1 > m2 for m1, m2 in itertools.pairwise(means)):
            continue
        fit = np.concatenate([np.full(b - a, m) for (a, b), m in zip(itertools.pairwise(bounds), means)])
        loss = float(np.dot(ws, (ys - fit) ** 2))
        if loss < best:
            best, best_fit = loss, fit
    result = np.empty(n)
    result[order] = best_fit
    return result


@pytest.mark.parametrize("seed", range(6))
def test_pav_equals_the_brute_force_optimum_with_weights_ties_and_duplicate_x(seed):
    rng = np.random.default_rng(seed)
    n = 7
    y = rng.integers(-3, 4, size=n).astype(np.float64)  # small integers: many tied values
    w = rng.integers(1, 4, size=n).astype(np.float64)
    x = rng.integers(0, 4, size=n).astype(np.float64)  # duplicate x
    np.testing.assert_allclose(isotonic_regression_pav(y), _brute_force(y, np.ones(n)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(isotonic_regression_pav(y, w), _brute_force(y, w), rtol=0, atol=1e-12)
    np.testing.assert_allclose(isotonic_regression_pav(y, w, x), _brute_force(y, w, x), rtol=0, atol=1e-12)


def test_pav_matches_scikit_learn_and_scipy():
    rng = np.random.default_rng(7)
    for _ in range(10):
        n = 30
        y = np.cumsum(rng.standard_normal(n)) * 0.2 + rng.standard_normal(n)
        w = rng.uniform(0.1, 5.0, size=n)
        x = rng.integers(0, 12, size=n).astype(np.float64)
        expected = IsotonicRegression(increasing=True).fit_transform(x, y, sample_weight=w)
        np.testing.assert_allclose(isotonic_regression_pav(y, w, x), expected, rtol=1e-12, atol=1e-12)
        scipy_fit = scipy.optimize.isotonic_regression(y, weights=w).x
        np.testing.assert_allclose(isotonic_regression_pav(y, w), scipy_fit, rtol=1e-12, atol=1e-12)


def test_pav_satisfies_the_projection_kkt_conditions():
    rng = np.random.default_rng(11)
    y = rng.standard_normal((5, 20)) + np.linspace(0, 1, 20)
    w = rng.uniform(0.5, 2.0, size=(5, 20))
    f = isotonic_regression_pav(y, w)
    assert np.all(np.diff(f, axis=1) >= 0)  # feasible
    # λ_k = Σ_{i≤k} w_i(y_i − f_i) ≥ 0, λ_n = 0, and λ_k = 0 wherever f_k < f_{k+1}
    multipliers = np.cumsum(w * (y - f), axis=1)
    assert np.all(multipliers >= -1e-12)
    np.testing.assert_allclose(multipliers[:, -1], 0.0, atol=1e-12)
    np.testing.assert_allclose(multipliers[:, :-1][np.diff(f, axis=1) > 0], 0.0, atol=1e-12)


def test_pav_known_values():
    np.testing.assert_array_equal(
        isotonic_regression_pav(np.array([1.0, 3.0, 2.0, 4.0])), [1.0, 2.5, 2.5, 4.0]
    )
    np.testing.assert_array_equal(
        isotonic_regression_pav(np.array([3.0, 1.0]), np.array([1.0, 3.0])), [1.5, 1.5]
    )
    # duplicate x: (x = 0: 5), (x = 1: 1 and 3 merged, mean 2) → one block (5 + 2·2)/3 = 3
    np.testing.assert_allclose(
        isotonic_regression_pav(np.array([1.0, 5.0, 3.0]), None, np.array([1.0, 0.0, 1.0])), [3.0, 3.0, 3.0]
    )


# -- isotonic_regression_pav: the VJP ----------------------------------------------------------------
def test_pav_vjp_is_the_weighted_block_mean_of_the_cotangent():
    y, w = np.array([1.0, 3.0, 2.0, 4.0, 0.0]), np.array([1.0, 2.0, 1.0, 1.0, 3.0])
    fitted, pullback = refimpl.vjp(isotonic_regression_pav, y, w)
    # blocks {0}, {1, 2, 3, 4}: 3·2 + 2 + 4 + 0 = 12 over weight 7
    np.testing.assert_allclose(fitted, [1.0, 12 / 7, 12 / 7, 12 / 7, 12 / 7], rtol=1e-15)
    g = np.array([0.5, 1.0, -2.0, 3.0, 0.25])
    (g_y,) = pullback(g)
    block = (1.0 - 2.0 + 3.0 + 0.25) / 7
    np.testing.assert_allclose(g_y, [0.5, 2 * block, block, block, 3 * block], rtol=1e-15)


def test_pav_vjp_matches_finite_differences_of_scikit_learn():
    rng = np.random.default_rng(2)
    y = rng.standard_normal(12) + np.linspace(0, 1, 12)
    w = rng.uniform(0.5, 2.0, size=12)
    g = rng.standard_normal(12)
    _, pullback = refimpl.vjp(isotonic_regression_pav, y, w)
    (g_y,) = pullback(g)
    h = 1e-6
    model = IsotonicRegression()
    for i in range(12):
        step = np.zeros(12)
        step[i] = h
        plus = model.fit_transform(np.arange(12.0), y + step, sample_weight=w)
        minus = model.fit_transform(np.arange(12.0), y - step, sample_weight=w)
        assert abs(np.dot(g, (plus - minus) / (2 * h)) - g_y[i]) < 1e-8


# -- monotonization never increases the weighted interval score ------------------------------------
def test_sorting_and_pav_never_increase_the_weighted_interval_score():
    rng = np.random.default_rng(5)
    tau = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    for _ in range(30):
        q = np.sort(rng.standard_normal((50, 5)), axis=1) + 0.8 * rng.standard_normal((50, 5))  # crossings
        y = rng.standard_normal(50) * 1.5
        before = weighted_interval_score(y, q, tau, reduction="none")
        after_sort = weighted_interval_score(y, quantile_sort(q), tau, reduction="none")
        after_pav = weighted_interval_score(y, isotonic_regression_pav(q), tau, reduction="none")
        assert np.all(after_sort <= before + 1e-12)
        assert np.all(after_pav <= before + 1e-12)


# -- cqr_calibration ---------------------------------------------------------------------------------
def test_cqr_known_values_and_the_infinite_correction():
    lo, hi, q = cqr_calibration(
        np.zeros(4), np.ones(4), np.array([0.5, 2.0, -1.5, 1.2]), np.array([0.0]), np.array([1.0]), alpha=0.4
    )
    assert float(q) == 1.0  # E = (−0.5, 1, 1.5, 0.2); k = ⌈5·0.6⌉ = 3
    np.testing.assert_array_equal([lo[0], hi[0]], [-1.0, 2.0])
    lo, hi, q = cqr_calibration(
        np.zeros(3), np.ones(3), np.array([0.5, 0.2, 0.9]), np.array([0.0]), np.array([1.0]), alpha=0.1
    )
    assert q == np.inf and lo[0] == -np.inf and hi[0] == np.inf  # ⌈4·0.9⌉ = 4 > 3
    _, _, q = cqr_calibration(
        -np.ones(4), np.ones(4), np.array([0.0, 0.5, -0.25, 0.1]), np.array([0.0]), np.array([1.0]), alpha=0.5
    )
    assert float(q) == -0.75  # all inside: E = (−1, −0.5, −0.75, −0.9); k = 3 → −0.75


def test_cqr_coverage_on_exchangeable_data():
    """Marginal coverage lies in [1 − α, 1 − α + 1/(n + 1)] (Romano et al., Theorem 1). Seeded;
    2000 calibration draws of n = 19 with 10 test points each: the standard error of the mean
    coverage is about 0.0035, and the tolerance 0.02 is about 6 of them."""
    rng = np.random.default_rng(12)
    alpha, n, trials = 0.2, 19, 2000
    covered = []
    for _ in range(trials):
        x = rng.uniform(-1, 1, size=n + 10)
        y = 2 * x + (1 + np.abs(x)) * rng.standard_normal(n + 10)  # heteroscedastic
        lower, upper = 2 * x - 0.5, 2 * x + 0.5  # a poor fixed-width quantile model
        lo, hi, _ = cqr_calibration(lower[:n], upper[:n], y[:n], lower[n:], upper[n:], alpha=alpha)
        covered.append(np.mean((lo <= y[n:]) & (y[n:] <= hi)))
    coverage = float(np.mean(covered))
    assert 1 - alpha - 0.02 <= coverage <= 1 - alpha + 1 / (n + 1) + 0.02
    naive = np.mean(np.abs(y - 2 * x) <= 0.5)
    assert naive < 0.5  # the uncalibrated interval was far off
