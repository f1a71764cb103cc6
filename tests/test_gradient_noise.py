"""Annealed gradient noise: σ_t² = η/(1 + t)^γ given the draw, the step base, the statistics."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.optim import gradient_noise


def test_known_value_by_hand():
    # t = 3 + 1 = 4, γ = 1/2, η = √5/4: σ² = η/√5 = 1/4
    out = gradient_noise(
        np.array([1.0, -2.0]), np.array([0.5, 1.0]), step=3, eta=5**0.5 / 4, step_base=1, gamma=0.5
    )
    np.testing.assert_array_equal(out, [1.25, -1.5])


def test_equals_the_paper_formula_given_the_draw():
    rng = np.random.default_rng(0)
    g, xi = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    for step, step_base, eta, gamma in [
        (0, 0, 0.3, 0.55),
        (0, 1, 0.01, 0.55),
        (999, 1, 1.0, 0.55),
        (7, 0, 1.0, 2.0),
    ]:
        t = step + step_base
        expected = g + math.sqrt(eta / (1 + t) ** gamma) * xi
        out = gradient_noise(g, xi, step=step, eta=eta, step_base=step_base, gamma=gamma)
        np.testing.assert_allclose(out, expected, rtol=1e-15, atol=1e-16)


def test_step_base_changes_sigma_at_the_first_update_only_by_the_index():
    g, xi = np.zeros(3), np.ones(3)
    first_zero = gradient_noise(g, xi, step=0, eta=0.3, step_base=0)  # t = 0: σ² = η
    first_one = gradient_noise(g, xi, step=0, eta=0.3, step_base=1)  # t = 1: σ² = η/2^0.55
    np.testing.assert_allclose(first_zero, math.sqrt(0.3), rtol=1e-15)
    np.testing.assert_allclose(first_one, math.sqrt(0.3 / 2**0.55), rtol=1e-15)
    # base 1 at step k is base 0 at step k + 1
    np.testing.assert_array_equal(first_one, gradient_noise(g, xi, step=1, eta=0.3, step_base=0))


def test_default_gamma_is_the_papers_0_55():
    g, xi = np.zeros(2), np.ones(2)
    out = gradient_noise(g, xi, step=9, eta=1.0, step_base=1)
    np.testing.assert_allclose(out, math.sqrt(1 / 11**0.55), rtol=1e-15)


def test_noise_anneals_with_the_step():
    g, xi = np.zeros(1), np.ones(1)
    sigmas = [float(gradient_noise(g, xi, step=s, eta=1.0, step_base=0)[0]) for s in (0, 10, 1000, 10**6)]
    assert sigmas == sorted(sigmas, reverse=True) and sigmas[-1] < 0.03


def test_float32_stays_float32_with_sigma_rounded_once():
    g, xi = np.array([1.0, 2.0], np.float32), np.array([1.0, -1.0], np.float32)
    out = gradient_noise(g, xi, step=2, eta=0.3, step_base=1)
    sigma = np.float32(math.sqrt(0.3 / 4**0.55))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, g + sigma * xi)


@pytest.mark.slow
def test_mean_and_variance_over_many_draws():
    rng = np.random.default_rng(1)
    g = np.array([0.5, -1.0, 2.0])
    draws = rng.standard_normal((200_000, 3))
    out = gradient_noise(np.broadcast_to(g, draws.shape).copy(), draws, step=4, eta=0.3, step_base=1)
    variance = 0.3 / 6**0.55
    np.testing.assert_allclose(out.mean(axis=0), g, atol=5 * math.sqrt(variance / 200_000))
    np.testing.assert_allclose(out.var(axis=0), variance, rtol=0.02)


def test_bad_arguments_are_refused_with_the_argument_named():
    x = np.zeros(3)
    for kwargs, argument in [
        ({"step": -1, "eta": 1.0, "step_base": 0}, "step"),
        ({"step": 0, "eta": 0.0, "step_base": 0}, "eta"),
        ({"step": 0, "eta": 1.0, "step_base": 2}, "step_base"),
    ]:
        with pytest.raises(refimpl.InputError, match=rf"^gradient_noise: argument '{argument}'"):
            gradient_noise(x, x, **kwargs)
    with pytest.raises(refimpl.InputError, match="missing a required argument: 'step_base'"):
        gradient_noise(x, x, step=0, eta=1.0)  # the paper does not pin it: no default
