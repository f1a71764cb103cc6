"""kl inverse and PAC-Bayes prompt bounds: high-precision values (mpmath), the catalog's value,
edge cases, monotonicity, and the ordering of the bounds."""

import mpmath
import numpy as np
import pytest

import refimpl
from refimpl.other import kl_inverse, pac_bayes_prompt_bound

mpmath.mp.dps = 50


def mp_kl_inverse(q, c):
    """kl⁻¹(q, c) at 50 digits: the root of kl(q‖p)/c − 1 on (q, 1), by mpmath.findroot in
    t = log p (well scaled from 1e-300 to 1)."""
    q, c = mpmath.mpf(q), mpmath.mpf(c)

    def excess(t):
        p = mpmath.exp(t)
        positive = q * (mpmath.log(q) - t) if q > 0 else mpmath.mpf(0)
        # relative to c: findroot's tolerance is absolute in the function's value
        return (positive + (1 - q) * (mpmath.log1p(-q) - mpmath.log1p(-p))) / c - 1

    # bracket the root: excess < 0 at p = q; kl(q‖p) ≥ (p − q)²/(2p) for p ≥ q puts the root
    # below q + c + sqrt(c² + 2qc) (and below 1)
    hi = min(
        1 - mpmath.mpf(10) ** -40, (q + c + mpmath.sqrt(c * c + 2 * q * c)) * (1 + mpmath.mpf(10) ** -30)
    )
    lo = mpmath.log(q) if q > 0 else mpmath.log(c) - 5  # kl(0‖p) = −log(1 − p) < c for p < c
    return mpmath.exp(mpmath.findroot(excess, (lo, mpmath.log(hi)), solver="illinois"))


@pytest.mark.parametrize(
    ("q", "c"),
    [(0.1, 0.05), (0.0, 0.3), (0.02, 1e-4), (0.5, 0.01), (0.9, 0.2), (0.3, 2.0), (1e-6, 1e-3), (0.99, 1e-5)],
)
def test_kl_inverse_matches_mpmath_findroot(q, c):
    p, iterations, converged = kl_inverse(np.array([q]), np.array([c]))
    expected = float(mp_kl_inverse(q, c))
    assert bool(converged[0]) and int(iterations[0]) > 0
    np.testing.assert_allclose(p[0], expected, rtol=4e-15)
    assert p[0] >= expected * (1 - 1e-15)  # the never-feasible end: an upper bound up to rounding


def test_kl_inverse_matches_the_catalog_value():
    p, _, _ = kl_inverse(np.array([0.1]), np.array([0.05]))
    assert round(float(p[0]), 7) == 0.2200786


def test_kl_inverse_edge_cases():
    p, iterations, converged = kl_inverse(np.array([0.0, 1.0, 0.37, 0.5]), np.array([0.7, 4.0, 0.0, 1e3]))
    np.testing.assert_allclose(p[0], -np.expm1(-0.7), rtol=1e-15)  # q = 0: 1 − e^{−c}
    assert p[1] == 1.0 and p[2] == 0.37  # q = 1 → 1, c = 0 → q, exactly
    assert iterations[1] == 0 and iterations[2] == 0 and converged.all()
    assert p[3] == 1.0  # huge c


def test_kl_inverse_tiny_values_match_mpmath():
    # 1 − p rounds to 1 here: the kl must use log1p, or the bisection stalls near 1e-16
    p, _, converged = kl_inverse(np.array([1e-300]), np.array([1e-300]))
    expected = float(mp_kl_inverse(mpmath.mpf("1e-300"), mpmath.mpf("1e-300")))
    assert converged[0]
    np.testing.assert_allclose(p[0], expected, rtol=1e-12)


def test_kl_inverse_is_monotone_in_c_and_satisfies_the_kl_constraint():
    c = np.geomspace(1e-6, 10, 60)
    q = np.full_like(c, 0.15)
    p, _, _ = kl_inverse(q, c)
    assert np.all(np.diff(p) > 0)
    kl = q * np.log(q / p) + (1 - q) * np.log((1 - q) / (1 - p))
    assert np.all(kl >= c - 1e-15)  # just past the sup: infeasible, up to the rounding of kl itself
    assert np.all(p <= q + np.sqrt(c / 2) + 1e-15)  # Pinsker: kl ≥ 2(p − q)²


def test_kl_inverse_tolerance_and_cap_give_the_convergence_record():
    p_loose, it_loose, conv_loose = kl_inverse(np.array([0.1]), np.array([0.05]), tol=1e-6)
    p_full, it_full, _ = kl_inverse(np.array([0.1]), np.array([0.05]))
    assert conv_loose[0] and it_loose[0] < it_full[0]
    assert 0 <= p_loose[0] - p_full[0] <= 1e-6  # hi stays above the sup
    _, it_capped, conv_capped = kl_inverse(np.array([0.1]), np.array([0.05]), tol=1e-9, max_iter=5)
    assert it_capped[0] == 5 and not conv_capped[0]


def test_kl_inverse_float32_keeps_dtype():
    p, _, _ = kl_inverse(np.array([0.1], np.float32), np.array([0.05], np.float32))
    assert p.dtype == np.float32
    np.testing.assert_allclose(p, 0.2200786, rtol=1e-6)


def _kl_of(prompts):
    return -np.sum(prompts, axis=1)


def test_bounds_match_mpmath_values():
    prompts = np.log(np.array([[0.5, 0.5, 1.0], [0.01, 0.2, 0.3]]))
    errors = np.array([0.1, 0.0])
    n, delta = 1000, 0.05
    for i in range(2):
        kl_term = -mpmath.fsum(mpmath.log(mpmath.mpf(float(np.exp(v)))) for v in prompts[i])
        r = mpmath.mpf(float(errors[i]))
        occam = r + mpmath.sqrt((kl_term + mpmath.log(1 / mpmath.mpf(delta))) / (2 * n))
        mcallester = r + mpmath.sqrt((kl_term + mpmath.log(1 / mpmath.mpf(delta)) + 2) / (2 * n - 1))
        kl = mp_kl_inverse(r, (kl_term + mpmath.log(2 * mpmath.sqrt(n) / delta)) / n)
        for bound, expected in (("occam", occam), ("mcallester", mcallester), ("kl", kl)):
            got = pac_bayes_prompt_bound(errors, prompts, n=n, delta=delta, bound=bound)[i]
            np.testing.assert_allclose(got, float(expected), rtol=1e-13, err_msg=bound)


def test_kl_bound_is_tighter_than_occam_on_typical_values():
    rng = np.random.default_rng(0)
    errors = rng.uniform(0.0, 0.1, size=50)  # low training error, as for engineered prompts
    prompts = np.log(rng.uniform(1e-3, 1.0, size=(50, 6)))
    kw = {"n": 50000, "delta": 0.01}
    kl = pac_bayes_prompt_bound(errors, prompts, bound="kl", **kw)
    occam = pac_bayes_prompt_bound(errors, prompts, bound="occam", **kw)
    assert np.all(kl < occam) and np.all(kl >= errors)


def test_a_likelier_prompt_gets_a_tighter_bound():
    prompts = np.log(np.array([[0.9, 0.9], [0.1, 0.1]]))
    for bound in ("occam", "kl", "mcallester"):
        b = pac_bayes_prompt_bound(np.array([0.05, 0.05]), prompts, n=500, delta=0.05, bound=bound)
        assert b[0] < b[1], bound


def test_uniform_prior_kl_is_length_times_log_vocabulary():
    # the explainer's example: a uniform prior over 49408 tokens, 77 positions
    prompts = np.full((1, 77), -np.log(49408.0))
    b = pac_bayes_prompt_bound(np.array([0.0]), prompts, n=50000, delta=0.01, bound="occam")
    np.testing.assert_allclose(b[0], np.sqrt((77 * np.log(49408.0) + np.log(100.0)) / 100000), rtol=1e-13)


def test_bound_choice_is_required():
    with pytest.raises(refimpl.InputError, match="bound"):
        pac_bayes_prompt_bound(np.array([0.1]), np.zeros((1, 2)), n=10, delta=0.1)


@pytest.mark.parametrize(
    ("q", "c", "argument"),
    [(np.array([1.1]), np.array([0.1]), "q"), (np.array([0.1]), np.array([-1.0]), "c")],
)
def test_kl_inverse_bad_input_raises_input_error(q, c, argument):
    with pytest.raises(refimpl.InputError, match=rf"^kl_inverse: argument '{argument}'"):
        kl_inverse(q, c)
