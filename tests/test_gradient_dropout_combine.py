"""R-AMT gradient dropout: the keep probability's values, λ's limits, and the official rule."""

import numpy as np
import pytest

import refimpl
from refimpl.optim import gradient_dropout_combine


def _backend(name):
    if name == "cupy[host]":
        from refimpl_cupy import host_backend

        return host_backend()
    return refimpl.backend(name)


BACKENDS = ["numpy", "numba", "cupy[host]"]


def _official(g_a, g_b, u, lam):
    """The catalog's transcription of the official R-AMT rule, written in NumPy."""
    p = (np.sign(g_a) * (g_a + g_b) / (np.abs(g_a) + np.abs(g_b) + 1e-8) + 1) / 2
    return ((1 - lam) + lam * (p > u).astype(g_a.dtype)) * g_a


def test_lambda_zero_returns_the_task_gradient():
    rng = np.random.default_rng(0)
    g_a, g_b, u = rng.standard_normal(50), rng.standard_normal(50), rng.uniform(size=50)
    np.testing.assert_array_equal(gradient_dropout_combine(g_a, g_b, u, lam=0.0), g_a)


def test_zero_gradients_give_keep_probability_one_half():
    # P = ½ exactly: U just below keeps (factor 1), U = ½ and above drop (factor 1 − λ)
    g_a = np.array([0.0, 0.0, 0.0])
    g = gradient_dropout_combine(g_a, np.array([0.0, 3.0, -3.0]), np.array([0.5, 0.5, 0.5]), lam=1.0)
    np.testing.assert_array_equal(g, 0.0)
    # a nonzero g_a with g_b = −g_a also has P = ½: U = 0.4999 keeps, U = 0.5 drops
    g = gradient_dropout_combine(
        np.array([2.0, 2.0]), np.array([-2.0, -2.0]), np.array([0.4999, 0.5]), lam=0.75
    )
    np.testing.assert_array_equal(g, [2.0, 0.5])


def test_hand_computed_keep_probabilities():
    # P = (sign(a)(a + b)/(|a| + |b| + 1e-8) + 1)/2:
    #   a = 1, b = 3  -> (4/4 + 1)/2 ≈ 1;   a = 1, b = −3 -> (−2/4 + 1)/2 = 1/4
    #   a = −2, b = 1 -> (1/3 + 1)/2 = 2/3; a = 4, b = 0  -> ≈ 1
    g_a, g_b = np.array([1.0, 1.0, -2.0, 4.0]), np.array([3.0, -3.0, 1.0, 0.0])
    below = np.array([0.999, 0.249, 0.666, 0.999])
    above = np.array([1.0, 0.251, 0.667, 1.0])
    np.testing.assert_array_equal(gradient_dropout_combine(g_a, g_b, below, lam=0.4), g_a)
    np.testing.assert_array_equal(gradient_dropout_combine(g_a, g_b, above, lam=0.4), 0.6 * g_a)


def test_distillation_gradient_is_never_added():
    g_a = np.array([1.0, -1.0])
    g = gradient_dropout_combine(g_a, np.array([1e6, -1e6]), np.array([0.3, 0.3]), lam=1.0)
    np.testing.assert_array_equal(g, g_a)


def test_output_takes_only_two_values_per_element():
    rng = np.random.default_rng(1)
    g_a, g_b, u = rng.standard_normal(1000), rng.standard_normal(1000), rng.uniform(size=1000)
    g = gradient_dropout_combine(g_a, g_b, u, lam=0.3)
    kept = g == g_a
    dropped = g == 0.7 * g_a
    assert np.all(kept | dropped)
    assert 0.3 < kept.mean() < 0.99  # both happen on Gaussian draws


def test_keep_rate_matches_the_keep_probability():
    # for fixed (g_a, g_b) the fraction of U that keeps is P: one element, many draws
    rng = np.random.default_rng(2)
    u = rng.uniform(size=200_000)
    g = gradient_dropout_combine(np.full(u.shape, 1.0), np.full(u.shape, -3.0), u, lam=1.0)
    assert abs((g != 0).mean() - 0.25) < 0.005


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_the_official_rule(backend, dtype):
    rng = np.random.default_rng(3)
    g_a = rng.standard_normal((7, 9)).astype(dtype)
    g_b = (rng.standard_normal((7, 9)) * 3).astype(dtype)
    g_a[0, :3] = 0
    u = rng.uniform(size=(7, 9)).astype(dtype)
    g = _backend(backend).get("gradient_dropout_combine")(g_a, g_b, u, lam=0.6)
    assert g.dtype == dtype
    np.testing.assert_array_equal(np.asarray(g), _official(g_a, g_b, u, 0.6))


def test_uniform_draws_outside_unit_interval_are_refused():
    with pytest.raises(refimpl.InputError, match="uniform draws in"):
        gradient_dropout_combine(np.ones(2), np.ones(2), np.array([0.2, 1.2]), lam=0.5)
