"""nngp_kernel_recursion: closed forms, criticality, quadrature, and a wide random network."""

import numpy as np
import pytest

from refimpl.other import nngp_kernel_recursion


def _relu_arccos(k_aa, k_bb, k_ab):
    theta = np.arccos(k_ab / np.sqrt(k_aa * k_bb))
    return np.sqrt(k_aa * k_bb) / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))


def test_relu_step_is_the_arc_cosine_kernel():
    k0 = np.array([[1.3, 0.4], [0.4, 0.8]])
    k1 = nngp_kernel_recursion(k0, depth=1, C_b=0.1, C_W=1.7, activation="relu")[1]
    assert k1[0, 0] == pytest.approx(0.1 + 1.7 * 1.3 / 2, rel=1e-15)
    assert k1[0, 1] == pytest.approx(0.1 + 1.7 * _relu_arccos(1.3, 0.8, 0.4), rel=1e-14)


def test_relu_at_criticality_preserves_the_diagonal_exactly_and_correlations_grow():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6))
    k0 = x @ x.T / 6
    kernels = nngp_kernel_recursion(k0, depth=20, C_b=0.0, C_W=2.0, activation="relu")
    for kernel in kernels:
        np.testing.assert_allclose(np.diag(kernel), np.diag(k0), rtol=1e-14)
    correlation = kernels[:, 0, 1] / np.sqrt(kernels[:, 0, 0] * kernels[:, 1, 1])
    assert np.all(np.diff(correlation) > 0)  # ReLU correlations flow to 1 with depth
    assert correlation[-1] > 0.9  # 1 − ρ decays like 1/l², slowly


def test_tanh_at_criticality_decays_like_one_over_twice_the_depth():
    # K' = E[tanh(z)²] = K − 2K² + O(K³) → K_l ≈ 1/(2l) (book, Chapter 5, K* = 0 class)
    depth = 1000
    kernels = nngp_kernel_recursion(
        np.array([[1.0]]), depth=depth, C_b=0.0, C_W=1.0, activation="tanh", quadrature_order=20
    )
    assert np.all(np.diff(kernels[:, 0, 0]) < 0)
    assert depth * kernels[-1, 0, 0] == pytest.approx(0.5, rel=0.01)  # log(l)/l corrections (0.2 % here)


@pytest.mark.parametrize("activation", ["erf", "linear"])
def test_quadrature_matches_the_smooth_closed_forms(activation):
    k0 = np.array([[0.9, -0.5, 0.2], [-0.5, 1.4, 0.3], [0.2, 0.3, 0.6]])
    kwargs = {"depth": 4, "C_b": 0.05, "C_W": 1.6, "activation": activation}
    closed = nngp_kernel_recursion(k0, **kwargs)
    quadrature = nngp_kernel_recursion(k0, quadrature_order=200, **kwargs)  # erf: analytic, geometric
    np.testing.assert_allclose(quadrature, closed, rtol=1e-11, atol=1e-14)


def test_quadrature_converges_to_the_relu_closed_form():
    k0 = np.array([[1.0, 0.6], [0.6, 2.0]])
    kwargs = {"depth": 2, "C_b": 0.0, "C_W": 2.0, "activation": "relu"}
    closed = nngp_kernel_recursion(k0, **kwargs)
    errors = [
        np.abs(nngp_kernel_recursion(k0, quadrature_order=q, **kwargs) - closed).max() for q in (10, 40, 160)
    ]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 3e-3  # the kink at 0: algebraic, not geometric, convergence


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_recursion_matches_a_wide_random_network(activation):
    """Monte Carlo: 3 networks of width 2000, depth 3; the empirical kernel (1/N)Σ_i z_i(a)z_i(b)
    averaged over them has standard error ≈ √(2/(3·2000))·K ≈ 0.018·K: tolerance 0.08 (≈ 4.4σ,
    fixed seed)."""
    rng = np.random.default_rng(2024)
    width, depth, networks = 2000, 3, 3
    c_b, c_w = (0.0, 2.0) if activation == "relu" else (0.1, 1.3)
    x = rng.standard_normal((3, 5))
    k0 = c_b + c_w * x @ x.T / 5
    order = None if activation == "relu" else 40
    expected = nngp_kernel_recursion(
        k0, depth=depth, C_b=c_b, C_W=c_w, activation=activation, quadrature_order=order
    )
    sigma = (lambda z: np.maximum(z, 0)) if activation == "relu" else np.tanh
    empirical = np.zeros((depth + 1, 3, 3))
    for _ in range(networks):
        weight = rng.standard_normal((width, 5)) * np.sqrt(c_w / 5)
        z = x @ weight.T + rng.standard_normal(width) * np.sqrt(c_b)  # (3 inputs, width)
        empirical[0] += z @ z.T / width
        for layer in range(1, depth + 1):
            weight = rng.standard_normal((width, width)) * np.sqrt(c_w / width)
            z = sigma(z) @ weight.T + rng.standard_normal(width) * np.sqrt(c_b)
            empirical[layer] += z @ z.T / width
    empirical /= networks
    scale = np.sqrt(np.einsum("lii,ljj->lij", expected, expected))
    assert np.abs(empirical - expected).max() / scale.max() < 0.08
    assert np.all(np.abs(empirical - expected) < 0.08 * scale + 1e-12)


def test_depth_zero_returns_k0_and_dtype_is_kept():
    k0 = np.array([[2.0, 1.0], [1.0, 2.0]], dtype=np.float32)
    kernels = nngp_kernel_recursion(k0, depth=0, C_b=0.0, C_W=2.0, activation="relu")
    assert kernels.shape == (1, 2, 2) and kernels.dtype == np.float32
    np.testing.assert_array_equal(kernels[0], k0)


def test_parallel_antiparallel_and_zero_inputs():
    k0 = np.array(
        [[1.0, 2.0, -1.0, 0.0], [2.0, 4.0, -2.0, 0.0], [-1.0, -2.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    )
    k1 = nngp_kernel_recursion(k0, depth=1, C_b=0.0, C_W=2.0, activation="relu")[1]
    np.testing.assert_allclose(k1[:3, :3], [[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, 1.0]], atol=1e-15)
    np.testing.assert_array_equal(k1[3], 0.0)
