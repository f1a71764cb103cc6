"""AR-Net sparsity regularizer: R(0) = 0, saturation at 1, the official formulas (NeuralProphet
reg_func_ar, the original AR-Net script), the gradient near and at 0, and λ(s)."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import arnet_sparsity_regularizer


def _official(theta, c1=3.0, c2=3.0, eps=1e-12):
    # NeuralProphet utils.reg_func_ar: mean(2/(1 + exp(−3 (1e-12 + |w|)^{1/3})) − 1)
    return np.mean(2.0 / (1.0 + np.exp(-c1 * (eps + np.abs(theta)) ** (1.0 / c2))) - 1.0)


def test_arnet_is_zero_at_zero_and_saturates_at_one():
    assert arnet_sparsity_regularizer(np.zeros(4), eps=0.0) == 0.0
    np.testing.assert_allclose(arnet_sparsity_regularizer(np.zeros(4)), math.tanh(1.5e-4), rtol=1e-12)
    np.testing.assert_allclose(arnet_sparsity_regularizer(np.array([1e9, -1e12])), 1.0, rtol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_arnet_matches_the_official_formulas(backend):
    theta = np.random.default_rng(0).standard_normal((3, 5)) * 0.4
    function = refimpl.backend(backend).get("arnet_sparsity_regularizer")
    np.testing.assert_allclose(function(theta), _official(theta), rtol=1e-13)
    # the original AR-Net script: no ε, c1 = c2 = 3
    np.testing.assert_allclose(function(theta, eps=0.0), _official(theta, eps=0.0), rtol=1e-13)
    # NeuralProphet's earlier `original` variant: c1 = c2 = 2, ε = 1e-9
    np.testing.assert_allclose(
        function(theta, c1=2.0, c2=2.0, eps=1e-9), _official(theta, 2.0, 2.0, 1e-9), rtol=1e-13
    )


def test_arnet_tanh_identity_and_sparsity_weight():
    theta = np.array([0.3, -2.0, 0.01])
    u = (1e-12 + np.abs(theta)) ** (1 / 3)
    np.testing.assert_allclose(arnet_sparsity_regularizer(theta), np.tanh(1.5 * u).mean(), rtol=1e-14)
    np.testing.assert_allclose(
        arnet_sparsity_regularizer(theta, sparsity=0.1), 0.02 * 9.0 * np.tanh(1.5 * u).mean(), rtol=1e-14
    )
    assert arnet_sparsity_regularizer(theta, sparsity=1.0) == 0.0


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_arnet_gradient_matches_differences_and_the_catalog_formula(backend):
    theta = np.array([0.3, -2.0, 0.01, 1e-3])
    _, pullback = refimpl.vjp("arnet_sparsity_regularizer", theta, backend=backend)
    (g,) = pullback(np.array(1.0))
    sigma = 1 / (1 + np.exp(-3 * (1e-12 + np.abs(theta)) ** (1 / 3)))
    catalog = 2 * 3 * sigma * (1 - sigma) * (1 / 3) * (1e-12 + np.abs(theta)) ** (-2 / 3) * np.sign(theta) / 4
    np.testing.assert_allclose(g, catalog, rtol=1e-10)
    step = 1e-7 * np.abs(theta)
    for i in range(4):
        shift = np.zeros(4)
        shift[i] = step[i]
        difference = (_official(theta + shift) - _official(theta - shift)) / (2 * step[i])
        np.testing.assert_allclose(g[i], difference, rtol=1e-6)


def test_arnet_gradient_near_and_at_zero():
    # p = 1, 0 < θ ≪ ε = 1e-12: ∂R/∂θ ≈ c1·½·(1/c2)·ε^{−2/3} = 5.0e7
    _, pullback = refimpl.vjp(arnet_sparsity_regularizer, np.array([1e-20]))
    np.testing.assert_allclose(pullback(np.array(1.0))[0], [5.0e7], rtol=1e-3)
    # exactly 0: sign(0) = 0, with and without ε
    for eps in (1e-12, 0.0):
        _, pullback = refimpl.vjp(arnet_sparsity_regularizer, np.array([0.0, 0.5]), eps=eps)
        (g,) = pullback(np.array(1.0))
        assert g[0] == 0.0 and g[1] > 0.0


def test_arnet_rejects_bad_hyperparameters():
    with pytest.raises(refimpl.InputError, match="'sparsity'"):
        arnet_sparsity_regularizer(np.ones(3), sparsity=0.0)
    with pytest.raises(refimpl.InputError, match="'c2'"):
        arnet_sparsity_regularizer(np.ones(3), c2=0.0)
