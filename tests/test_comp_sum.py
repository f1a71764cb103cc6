"""Comp-sum losses: the special cases of the family, continuity at τ = 1, the gradient."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.losses import comp_sum_loss


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 5)) * 2, rng.integers(0, 5, size=6)


def _probabilities(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_comp_sum_known_values_for_p_y_one_quarter():
    z, y = np.array([[0.0, math.log(3.0)]]), np.array([0])  # u = 3, p_y = 1/4
    np.testing.assert_allclose(comp_sum_loss(z, y, tau=0.0), 3.0, rtol=1e-15)  # sum-exponential: u
    np.testing.assert_allclose(comp_sum_loss(z, y, tau=1.0), math.log(4.0), rtol=1e-15)  # CE
    np.testing.assert_allclose(comp_sum_loss(z, y, tau=2.0), 0.75, rtol=1e-15)  # 1 − p_y
    np.testing.assert_allclose(comp_sum_loss(z, y, tau=0.5), (4**0.5 - 1) / 0.5, rtol=1e-15)


def test_comp_sum_tau_zero_is_the_sum_exponential_loss(batch):
    z, y = batch
    rows = np.arange(6)
    u = np.exp(z - z[rows, y][:, None]).sum(axis=1) - 1  # Σ_{k≠y} exp(z_k − z_y)
    np.testing.assert_allclose(comp_sum_loss(z, y, tau=0.0, reduction="none"), u, rtol=1e-13)


def test_comp_sum_tau_one_is_cross_entropy(batch):
    z, y = batch
    p = _probabilities(z)
    np.testing.assert_allclose(comp_sum_loss(z, y, tau=1.0, reduction="none"), -np.log(p[np.arange(6), y]))


@pytest.mark.parametrize("q", [0.05, 0.7, 0.95])
def test_comp_sum_matches_the_official_gce_loss(batch, q):
    # GCELoss(q) of Optimization-AI/ICML2023_LDR: (1 − (1/Σ_k exp(z_k − z_y))^q)/q, k = 0 (no truncation)
    z, y = batch
    rows = np.arange(6)
    gce = (1 - (1 / np.exp(z - z[rows, y][:, None]).sum(axis=1)) ** q) / q
    np.testing.assert_allclose(comp_sum_loss(z, y, tau=1.0 + q), gce.mean(), rtol=1e-13)


def test_comp_sum_tau_two_is_one_minus_p_y(batch):
    z, y = batch
    p = _probabilities(z)
    np.testing.assert_allclose(
        comp_sum_loss(z, y, tau=2.0, reduction="none"), 1 - p[np.arange(6), y], rtol=1e-13
    )


def test_comp_sum_is_continuous_at_tau_one(batch):
    z, y = batch
    ce = comp_sum_loss(z, y, tau=1.0, reduction="none")
    for tau in (1 - 1e-9, 1 + 1e-9):
        # expm1 keeps this to ~1e-9·log²p; (p^{τ−1} − 1)/(1 − τ) would keep ~7 digits
        np.testing.assert_allclose(comp_sum_loss(z, y, tau=tau, reduction="none"), ce, rtol=1e-8)


def test_comp_sum_is_shift_invariant(batch):
    z, y = batch
    np.testing.assert_allclose(comp_sum_loss(z + 50.0, y, tau=0.5), comp_sum_loss(z, y, tau=0.5), rtol=1e-12)


@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 1.7, 2.0])
def test_comp_sum_gradient_is_p_y_power_times_cross_entropy_gradient(batch, tau):
    z, y = batch
    _, pullback = refimpl.vjp(comp_sum_loss, z, y, tau=tau, reduction="sum")
    (g_z,) = pullback(np.array(1.0))
    p = _probabilities(z)
    p_y = p[np.arange(6), y][:, None]
    np.testing.assert_allclose(g_z, p_y ** (tau - 1) * (p - np.eye(5)[y]), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_comp_sum_large_logits_stay_finite_for_tau_at_least_one(backend):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]], np.float32)
    for tau in (1.0, 1.7, 2.0):
        loss, pullback = refimpl.vjp(
            "comp_sum_loss", z, np.array([1, 1]), tau=tau, reduction="none", backend=backend
        )
        (g_z,) = pullback(np.ones(2, np.float32))
        assert loss.dtype == np.float32 and np.all(np.isfinite(loss)) and np.all(np.isfinite(g_z))
    # row 1 has p_y = 1/2 exactly: CE = log 2 in float32 too
    np.testing.assert_allclose(
        comp_sum_loss(z, np.array([1, 1]), tau=1.0, reduction="none")[1], math.log(2), rtol=1e-6
    )


def test_comp_sum_requires_tau():
    with pytest.raises(refimpl.InputError, match="tau"):
        comp_sum_loss(np.zeros((1, 3)), np.array([0]))
    with pytest.raises(refimpl.InputError, match="'tau'"):
        comp_sum_loss(np.zeros((1, 3)), np.array([0]), tau=-1.0)
