"""WiSE-FT interpolation: endpoints, hand values, linearity in α and whole state dicts."""

import numpy as np
import pytest

import refimpl
from refimpl.merging import wise_ft_interpolate

RNG = np.random.default_rng(34)
PRE, FT = RNG.standard_normal((4, 5)), RNG.standard_normal((4, 5))


def test_endpoints_are_exactly_the_two_models():
    np.testing.assert_array_equal(wise_ft_interpolate(PRE, FT, alpha=0.0), PRE)
    np.testing.assert_array_equal(wise_ft_interpolate(PRE, FT, alpha=1.0), FT)


def test_hand_values_and_default_alpha_is_the_midpoint():
    theta = wise_ft_interpolate(np.array([0.0, 2.0]), np.array([4.0, 0.0]), alpha=0.25)
    np.testing.assert_allclose(theta, [1.0, 1.5], rtol=0, atol=0)
    np.testing.assert_allclose(wise_ft_interpolate(PRE, FT), (PRE + FT) / 2, rtol=1e-15, atol=1e-16)


@pytest.mark.parametrize("alpha", [0.1, 0.5, 0.73])
def test_interpolation_is_affine_in_alpha(alpha):
    # θ(α) − θ_pre = α(θ_ft − θ_pre)
    theta = wise_ft_interpolate(PRE, FT, alpha=alpha)
    np.testing.assert_allclose(theta - PRE, alpha * (FT - PRE), atol=1e-14)


def test_identical_models_are_a_fixed_point():
    np.testing.assert_allclose(wise_ft_interpolate(PRE, PRE, alpha=0.37), PRE, rtol=2e-16)


def test_float32_keeps_dtype():
    theta = wise_ft_interpolate(PRE.astype(np.float32), FT.astype(np.float32), alpha=0.5)
    assert theta.dtype == np.float32
    np.testing.assert_allclose(theta, (PRE + FT) / 2, rtol=1e-6, atol=1e-6)


def test_state_dicts_interpolate_floats_and_copy_integer_buffers():
    pre = {"w": PRE, "b": np.zeros(3), "steps": np.array(7)}
    ft = {"w": FT, "b": np.ones(3), "steps": np.array(99)}
    merged = wise_ft_interpolate(pre, ft, alpha=0.25)
    assert list(merged) == ["w", "b", "steps"]
    np.testing.assert_allclose(merged["w"], 0.75 * PRE + 0.25 * FT, atol=1e-15)
    np.testing.assert_allclose(merged["b"], np.full(3, 0.25))
    assert int(merged["steps"]) == 7  # integer buffers come from θ_pre, never averaged


def test_state_dicts_with_different_names_are_refused():
    with pytest.raises(refimpl.InputError, match="parameter names"):
        wise_ft_interpolate({"w": PRE}, {"v": FT})


def test_alpha_outside_unit_interval_is_refused():
    with pytest.raises(refimpl.InputError):
        wise_ft_interpolate(PRE, FT, alpha=1.5)
