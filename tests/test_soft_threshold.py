"""Soft thresholding: the ℓ1 prox (argmin checked by SciPy), Moreau's decomposition, firm
non-expansiveness, the masked VJP, and agreement with the private helper of block coordinate descent."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import refimpl
from refimpl.solvers import soft_threshold


def test_soft_threshold_matches_hand_values():
    x = soft_threshold(np.array([3.0, -0.5, -2.0, 1.0, 0.0]), lam=1.0)
    np.testing.assert_array_equal(x, [2.0, 0.0, -1.0, 0.0, 0.0])


@pytest.mark.parametrize("lam", [0.0, 0.3, 2.0])
def test_soft_threshold_is_the_argmin_of_the_l1_prox_problem(lam):
    v = np.random.default_rng(0).standard_normal(9) * 2
    x = soft_threshold(v, lam=lam)
    for j in range(v.size):  # the problem separates: minimize each coordinate on its own
        result = minimize_scalar(
            lambda z, j=j: 0.5 * (z - v[j]) ** 2 + lam * abs(z),
            bounds=(-10, 10),
            method="bounded",
            options={"xatol": 1e-12},
        )
        assert abs(result.x - x[j]) < 1e-6


def test_moreau_decomposition_with_the_box_projection():
    # v = prox_{λ‖·‖₁}(v) + proj_{‖·‖∞ ≤ λ}(v): the conjugate of λ‖·‖₁ is the box's indicator
    v = np.random.default_rng(1).standard_normal(50) * 3
    lam = 0.7
    np.testing.assert_allclose(soft_threshold(v, lam=lam) + np.clip(v, -lam, lam), v, rtol=0, atol=1e-15)


def test_soft_threshold_is_firmly_nonexpansive():
    rng = np.random.default_rng(2)
    for _ in range(50):
        a, b = rng.standard_normal(6) * 2, rng.standard_normal(6) * 2
        pa, pb = soft_threshold(a, lam=0.5), soft_threshold(b, lam=0.5)
        assert np.sum((pa - pb) ** 2) <= np.dot(pa - pb, a - b) + 1e-12


def test_soft_threshold_vjp_is_the_active_mask():
    v = np.array([3.0, -0.5, -2.0, 1.0, -1.0000001])
    g = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    _, vjp = refimpl.vjp(soft_threshold, v, lam=1.0)
    np.testing.assert_array_equal(vjp(g)[0], [1.0, 0.0, 3.0, 0.0, 5.0])  # |v| = λ exactly: slope 0


def test_soft_threshold_agrees_with_the_block_coordinate_descent_helper():
    from refimpl.solvers.block_coordinate_descent import _soft_threshold  # the private duplicate

    v = np.random.default_rng(3).standard_normal(20)
    np.testing.assert_array_equal(soft_threshold(v, lam=0.4), _soft_threshold(v, 0.4))


def test_soft_threshold_keeps_float32():
    assert soft_threshold(np.ones(3, dtype=np.float32), lam=0.5).dtype == np.float32


def test_soft_threshold_refuses_a_negative_threshold():
    with pytest.raises(refimpl.InputError, match="lam"):
        soft_threshold(np.ones(3), lam=-1.0)
