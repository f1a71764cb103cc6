"""DIFF2: telescoping to the full gradient, DP-GD at T = 1, and hand-computed rounds."""

import numpy as np
import pytest

import refimpl
from refimpl.optim import diff2_estimator_step

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        from refimpl_cupy import host_backend

        return host_backend()
    return refimpl.backend(name)


def _quadratic_grads(x, a, b):
    """Node i's gradient of f_i(x) = ½‖A_i x − b_i‖²: A_iᵀ(A_i x − b_i)."""
    return np.einsum("nkp,nk->np", a, np.einsum("nkp,p->nk", a, x) - b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_noise_or_clipping_the_estimator_is_the_full_gradient_every_round(backend):
    # v_r = v_{r−1} + mean(g_r − g_{r−1}) telescopes to mean(g_r) = ∇f(x_r)
    step = _backend(backend).get("diff2_estimator_step")
    rng = np.random.default_rng(0)
    n, p = 4, 6
    a, b = rng.standard_normal((n, 5, p)), rng.standard_normal((n, 5))
    x, v = rng.standard_normal(p), np.zeros(p)
    g_prev = np.zeros((n, p))
    for r in range(9):
        g = _quadratic_grads(x, a, b)
        kwargs = {
            "clip_restart": None,
            "clip_difference": None,
            "sigma_restart": 0.0,
            "sigma_difference": 0.0,
        }
        x_next, v = step(x, g, g_prev, v, rng.standard_normal(p), round_index=r, period=4, lr=0.01, **kwargs)
        np.testing.assert_allclose(v, g.mean(axis=0), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(x_next, x - 0.01 * g.mean(axis=0), rtol=1e-13, atol=1e-14)
        x, g_prev = x_next, g


def test_period_one_is_dp_gd():
    rng = np.random.default_rng(1)
    x, g, xi = rng.standard_normal(4), rng.standard_normal((3, 4)) * 3, rng.standard_normal(4)
    x1, v = diff2_estimator_step(
        x, g, np.full((3, 4), 9.0), np.full(4, 9.0), xi, round_index=5, period=1,
        clip_restart=1.5, clip_difference=1e-3, sigma_restart=0.7, sigma_difference=99.0, lr=0.2,
    )  # fmt: skip
    norms = np.linalg.norm(g, axis=1)
    clipped = g * np.minimum(1.0, 1.5 / norms)[:, None]
    expected = clipped.mean(axis=0) + 0.7 * xi
    np.testing.assert_allclose(v, expected, rtol=1e-14)
    np.testing.assert_allclose(x1, x - 0.2 * expected, rtol=1e-14)


def test_difference_round_by_hand():
    # u = g − g' = [(0, 1), (0, 1), (−1, −1)], norms 1, 1, √2; C₂ = 0.5 halves the first two
    # and scales the third by 0.5/√2: mean = ((0, 0.5) + (0, 0.5) + (−0.5/√2, −0.5/√2))/3
    g = np.array([[3.0, 4.0], [0.0, 1.0], [0.0, 0.0]])
    g_prev = np.array([[3.0, 3.0], [0.0, 0.0], [1.0, 1.0]])
    v_prev, xi, x = np.array([0.25, 0.5]), np.array([0.3, -1.2]), np.array([1.0, -1.0])
    x1, v = diff2_estimator_step(
        x, g, g_prev, v_prev, xi, round_index=7, period=3,
        clip_restart=1.0, clip_difference=0.5, sigma_restart=5.0, sigma_difference=0.1, lr=0.1,
    )  # fmt: skip
    s = 0.5 / np.sqrt(2)
    expected = v_prev + np.array([-s, 1.0 - s]) / 3 + 0.1 * xi
    np.testing.assert_allclose(v, expected, rtol=1e-15)
    np.testing.assert_allclose(x1, x - 0.1 * expected, rtol=1e-15)


def test_restart_ignores_previous_estimator_and_gradients():
    rng = np.random.default_rng(2)
    x, g, xi = rng.standard_normal(3), rng.standard_normal((2, 3)), rng.standard_normal(3)
    kwargs = dict(round_index=6, period=3, clip_restart=0.5, clip_difference=0.1, sigma_restart=0.2,
                  sigma_difference=0.0, lr=0.3)  # fmt: skip
    first = diff2_estimator_step(x, g, np.zeros((2, 3)), np.zeros(3), xi, **kwargs)
    second = diff2_estimator_step(x, g, np.full((2, 3), 5.0), np.full(3, -4.0), xi, **kwargs)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_noise_accumulates_between_restarts():
    # zero gradients, σ₂ = 1: v after k difference rounds is v_restart + Σ ξ (never renormalized)
    p = 3
    zeros = np.zeros((2, p))
    xis = [np.array([1.0, 0.0, -1.0]), np.array([0.5, 0.5, 0.5]), np.array([-2.0, 1.0, 0.0])]
    v, x = np.zeros(p), np.zeros(p)
    for r, xi in enumerate(xis):
        x, v = diff2_estimator_step(
            x, zeros, zeros, v, xi, round_index=r, period=10,
            clip_restart=1.0, clip_difference=1.0, sigma_restart=2.0, sigma_difference=1.0, lr=0.0,
        )  # fmt: skip
    np.testing.assert_array_equal(v, 2.0 * xis[0] + xis[1] + xis[2])


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_huge_gradients_are_clipped_without_overflow(backend):
    g = np.array([[1e20, -1e20, 1e20], [1e19, 0.0, 0.0]], dtype=np.float32)
    zeros = np.zeros(3, dtype=np.float32)
    x1, v = _backend(backend).get("diff2_estimator_step")(
        zeros, g, np.zeros((2, 3), np.float32), zeros, zeros, round_index=0, period=4,
        clip_restart=1.0, clip_difference=1.0, sigma_restart=0.0, sigma_difference=0.0, lr=1.0,
    )  # fmt: skip
    expected = (np.array([1.0, -1.0, 1.0]) / np.sqrt(3) + np.array([1.0, 0.0, 0.0])) / 2
    np.testing.assert_allclose(v, expected, rtol=1e-6)
    np.testing.assert_allclose(x1, -expected, rtol=1e-6)
