"""Linear decay and the refined schedule: closed forms, the official recipe, the paper's shapes."""

import numpy as np
import pytest
from scipy.ndimage import median_filter

import refimpl
from refimpl.optim import linear_decay_schedule, official_filter_width, refined_schedule


def _official_closed_form(G, weights):
    """facebookresearch/adaptive_scheduling find_schedule.py, find_closed_form_schedule."""
    T = len(G)
    sched = np.zeros(T)
    tail_sums = np.flip(np.cumsum(np.flip(weights)))
    for t in range(T):
        sched[t] = 0 if t == T - 1 else weights[t] * tail_sums[t + 1] / tail_sums[-1]
    return sched


def _official_pipeline(gnorms, nvals, power, sigma2=0.1):
    """visual.py: interpolate up to nvals, median filter with reflect padding, interpolate, refine."""
    glen = len(gnorms)
    if glen < nvals:
        gnorms = np.interp(np.linspace(0, 1.0, nvals), np.linspace(0, 1.0, glen), gnorms)
        glen = len(gnorms)
    filter_width = 2 * (int(sigma2 * nvals) // 2) + 1
    pad = 2 * filter_width
    filtered = median_filter(np.pad(gnorms, (0, pad), mode="reflect"), size=filter_width, mode="nearest")[
        :-pad
    ]
    smoothed = np.interp(np.linspace(0, 1.0, nvals), np.linspace(0, 1.0, glen), filtered)
    sched = _official_closed_form(smoothed, smoothed**-power)
    return sched / np.max(sched)


def _run(T, seed=0):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, T)
    return (0.3 + np.minimum(8 * t, 1) + 2 * t**4) * np.exp(0.2 * rng.standard_normal(T))


# -- linear decay ----------------------------------------------------------------------------
def test_linear_decay_known_values():
    out = linear_decay_schedule(np.array([0, 1, 50, 99, 100]), total_steps=100, lr=0.5)
    np.testing.assert_allclose(out, [0.5, 0.495, 0.25, 0.005, 0.0], rtol=1e-15)
    assert out.dtype == np.float64


def test_linear_decay_refuses_steps_past_the_end():
    with pytest.raises(refimpl.InputError, match=r"^linear_decay_schedule: argument 'steps'.*\[0, 4\]"):
        linear_decay_schedule(np.array([5]), total_steps=4, lr=1.0)


# -- refinement ------------------------------------------------------------------------------
def test_constant_norms_give_exact_linear_decay():
    for T in (2, 5, 37):
        out = refined_schedule(np.full(T, 0.37), width=1)
        np.testing.assert_allclose(out, (T - 1 - np.arange(T)) / (T - 1), rtol=1e-14, atol=1e-15)
        assert out[-1] == 0 and out.max() == 1.0
        # ... the linear decay schedule η(1 − t/T), t = 1..T, scaled to a peak of 1
        linear = linear_decay_schedule(np.arange(1, T + 1), total_steps=T, lr=1.0)
        np.testing.assert_allclose(out, linear / linear.max(), rtol=1e-14, atol=1e-15)


def test_known_value_by_hand():
    # G = [1, 2, 2]: w = [1, 1/4, 1/4], η = [1/2, 1/16, 0] → [1, 1/8, 0]
    np.testing.assert_allclose(refined_schedule(np.array([1.0, 2.0, 2.0]), width=1), [1.0, 0.125, 0.0])
    # ℓ1: w = [1, 1/2, 1/2], η = [1, 1/4, 0]
    out = refined_schedule(np.array([1.0, 2.0, 2.0]), width=1, norm="l1")
    np.testing.assert_allclose(out, [1.0, 0.25, 0.0])


def test_matches_the_official_closed_form():
    G = _run(200)
    for power, norm in ((2.0, "l2"), (1.0, "l1")):
        official = _official_closed_form(G, G**-power)
        np.testing.assert_allclose(
            refined_schedule(G, width=1, norm=norm), official / official.max(), rtol=1e-12, atol=1e-15
        )


@pytest.mark.parametrize("T", [37, 80, 250])
def test_matches_the_official_median_filter_pipeline(T):
    # a short run is stretched to n points, a long one filtered at full length then thinned
    G = _run(T, seed=T)
    nvals = 100
    expected = _official_pipeline(G, nvals, power=2.0)
    out = refined_schedule(G, num_points=nvals)
    assert out.shape == (nvals,)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15)
    # the official 10 % width of 100 points: 2·⌊10/2⌋ + 1 = 11
    assert official_filter_width(nvals) == 11 and official_filter_width(10_000) == 1001


def test_median_filter_padding_mirrors_the_end_and_repeats_the_start():
    G = np.array([5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 9.0, 2.0])
    padded = np.pad(G, (0, 6), mode="reflect")  # [.. 9, 2 | 9, 1, 1, 1, 1, 1]
    expected_smooth = median_filter(padded, size=3, mode="nearest")[:-6]
    np.testing.assert_array_equal(expected_smooth, [5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 9.0])
    w = expected_smooth**-2.0
    expected = _official_closed_form(expected_smooth, w)
    np.testing.assert_allclose(refined_schedule(G, width=3), expected / expected.max(), rtol=1e-13)


def test_rising_norms_at_the_end_anneal_faster_than_linear_decay():
    T = 100
    G = np.ones(T)
    G[70:] = np.linspace(1, 10, 30)
    out = refined_schedule(G, width=1)
    linear = (T - 1 - np.arange(T)) / (T - 1)
    assert np.all(out[75:-1] < linear[75:-1])


def test_large_early_norms_produce_a_warm_up():
    # η_t ∝ Ĝ_t^(−2) times a decreasing tail sum: large early norms give small early steps
    G = np.ones(100)
    G[:20] = np.linspace(5.0, 1.0, 20)
    out = refined_schedule(G, width=1)
    assert out[0] < 0.1 and np.argmax(out) >= 15  # rises to its peak, then decays
    assert np.all(np.diff(out[:18]) > 0) and np.all(np.diff(out[25:]) < 0)


def test_small_early_norms_give_large_early_steps_not_a_warm_up():
    G = np.ones(100)
    G[:20] = np.linspace(0.05, 1.0, 20)
    out = refined_schedule(G, width=1)
    assert out[0] == 1.0 and out[5] < 0.02  # w_1 = 400 dominates: the first step is the peak


def test_the_schedule_is_scale_free():
    G = _run(60)
    out = refined_schedule(G)
    assert out.max() == 1.0 and out[-1] == 0.0
    for scale in (1e-30, 3.0, 1e30):
        np.testing.assert_allclose(refined_schedule(G * scale), out, rtol=1e-13, atol=1e-16)


def test_zero_norms_need_eps():
    G = np.array([1.0, 0.0, 0.0, 2.0, 1.5])
    with pytest.raises(refimpl.InputError, match="pass eps > 0"):
        refined_schedule(G, width=1)
    out = refined_schedule(G, width=1, eps=1e-2)
    weights = 1 / (G**2 + 1e-2)
    expected = _official_closed_form(G, weights)
    np.testing.assert_allclose(out, expected / expected.max(), rtol=1e-13)


def test_float32_in_float32_out():
    out = refined_schedule(_run(30).astype(np.float32))
    assert out.dtype == np.float32 and out.shape == (30,)
