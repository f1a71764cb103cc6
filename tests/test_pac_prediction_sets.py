"""PAC threshold calibration: k* against an exact binomial tail (mpmath), the order statistic,
ties, monotonicity in n, and the PAC guarantee by Monte Carlo."""

import mpmath
import numpy as np
import pytest

import refimpl
from refimpl.other import pac_threshold_calibration

mpmath.mp.dps = 60


def exact_k_star(n, epsilon, delta):
    """max{k : Σ_{j≤k} C(n, j) ε^j (1 − ε)^{n−j} ≤ δ} with exact binomials at 60 digits (−1 if none)."""
    eps, total, k_star = mpmath.mpf(epsilon), mpmath.mpf(0), -1
    for k in range(n + 1):
        total += mpmath.binomial(n, k) * eps**k * (1 - eps) ** (n - k)
        if total > mpmath.mpf(delta):
            break
        k_star = k
    return k_star


@pytest.mark.parametrize(
    ("n", "epsilon", "delta"),
    [
        (100, 0.1, 0.05),
        (10, 0.1, 0.05),
        (29, 0.1, 0.05),
        (500, 0.05, 0.01),
        (2000, 0.01, 0.001),
        (1, 0.99, 0.5),
        (300, 0.3, 0.2),
        (5000, 0.2, 1e-6),
    ],
)
def test_k_star_matches_the_exact_binomial_tail(n, epsilon, delta):
    scores = np.random.default_rng(n).permutation(n).astype(float)  # the order statistics are 0..n−1
    tau, k = pac_threshold_calibration(scores, epsilon=epsilon, delta=delta)
    expected = exact_k_star(n, epsilon, delta)
    assert int(k) == expected
    assert float(tau) == (expected if expected >= 0 else -np.inf)


def test_trivial_set_when_too_few_examples():
    # (1 − 0.1)^28 = 0.0523 > 0.05 and 0.9^29 = 0.0471: 29 examples are the fewest
    tau, k = pac_threshold_calibration(np.ones(28), epsilon=0.1, delta=0.05)
    assert float(tau) == -np.inf and int(k) == -1
    tau, k = pac_threshold_calibration(np.full(29, 3.0), epsilon=0.1, delta=0.05)
    assert float(tau) == 3.0 and int(k) == 0


def test_ties_keep_the_misses_at_most_k_star():
    scores = np.array([0.3, 0.1, 0.1, 0.1, 0.7, 0.1] * 10)  # 40 copies of 0.1
    tau, k = pac_threshold_calibration(scores, epsilon=0.3, delta=0.1)
    assert float(tau) == 0.1 and int(k) == exact_k_star(60, 0.3, 0.1)
    assert np.count_nonzero(scores < tau) <= int(k)


def test_k_star_is_monotone_in_n():
    ks = [int(pac_threshold_calibration(np.zeros(n), epsilon=0.1, delta=0.05)[1]) for n in range(1, 400)]
    assert np.all(np.diff(ks) >= 0) and ks[-1] > 20


def test_threshold_keeps_the_dtype():
    tau, k = pac_threshold_calibration(np.arange(100, dtype=np.float32), epsilon=0.1, delta=0.05)
    assert tau.dtype == np.float32 and k.dtype == np.int64 and float(tau) == 4.0


def test_pac_guarantee_holds_by_monte_carlo():
    # scores τ ~ U(0, 1): the true miss rate of τ̂ is P(τ < τ̂) = τ̂; it may exceed ε in at most
    # a δ fraction of calibration draws (5-sigma allowance over 1000 draws, fixed seed)
    rng = np.random.default_rng(0)
    n, epsilon, delta, draws = 200, 0.1, 0.05, 1000
    miss = np.array(
        [
            float(pac_threshold_calibration(rng.uniform(size=n), epsilon=epsilon, delta=delta)[0])
            for _ in range(draws)
        ]
    )
    failures = np.mean(miss > epsilon)
    assert failures <= delta + 5 * np.sqrt(delta * (1 - delta) / draws)
    assert failures > 0.01  # and the threshold is not needlessly loose: close to δ, not 0
    assert np.mean(miss) < epsilon


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [({"epsilon": 0.0, "delta": 0.1}, "epsilon"), ({"epsilon": 0.1, "delta": 1.0}, "delta")],
)
def test_bad_input_raises_input_error(kwargs, argument):
    with pytest.raises(refimpl.InputError, match=rf"argument '{argument}'"):
        pac_threshold_calibration(np.arange(50.0), **kwargs)
