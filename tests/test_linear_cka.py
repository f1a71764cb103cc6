"""Linear CKA: CKA(X, X) = 1, orthogonal/scale/shift invariance, the official formula, the catalog VJP."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import linear_cka


@pytest.fixture
def pair():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((9, 5)) * 2 + 1
    Y = X @ rng.standard_normal((5, 4)) + rng.standard_normal((9, 4))
    return X, Y


def _official_linear_cka(X, Y):
    """rep_sim/rep_sims.py CKA.linear_CKA transcribed in NumPy: H K H with an explicit H, uncentred X."""
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n

    def linear_hsic(A, B):
        return np.sum((H @ (A @ A.T) @ H) * (H @ (B @ B.T) @ H))

    return linear_hsic(X, Y) / (np.sqrt(linear_hsic(X, X)) * np.sqrt(linear_hsic(Y, Y)))


def test_linear_cka_hand_computed_value():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    Y = np.array([[1.0], [-1.0], [0.0]])
    # Y_cᵀX_c = [1, −1]: h = 2; ‖Y_cᵀY_c‖ = 2; X_cᵀX_c = [[2, −1], [−1, 2]]/3: ‖·‖ = √10/3
    np.testing.assert_allclose(linear_cka(X, Y), 3 / math.sqrt(10), rtol=1e-15)


def test_linear_cka_matches_the_official_formula(pair):
    X, Y = pair
    np.testing.assert_allclose(linear_cka(X, Y), _official_linear_cka(X, Y), rtol=1e-13)
    np.testing.assert_allclose(linear_cka(X, Y), linear_cka(Y, X), rtol=1e-14)  # symmetric


def test_linear_cka_of_a_representation_with_itself_is_one(pair):
    X, _ = pair
    np.testing.assert_allclose(linear_cka(X, X), 1.0, rtol=1e-14)


def test_linear_cka_is_invariant_to_orthogonal_maps_isotropic_scaling_and_shifts(pair):
    X, Y = pair
    rng = np.random.default_rng(4)
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    base = float(linear_cka(X, Y))
    assert 0.2 < base < 1.0  # a non-trivial value, so the invariance is not 1 = 1
    for transformed in (X @ Q, -3e4 * X, X + 1e3, 1e-12 * X @ Q - 5e-12):
        np.testing.assert_allclose(linear_cka(transformed, Y), base, rtol=1e-9)
    R, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    np.testing.assert_allclose(linear_cka(X, 0.25 * Y @ R + 7.0), base, rtol=1e-9)  # and on the Y side


def test_linear_cka_is_not_invariant_to_anisotropic_scaling(pair):
    X, Y = pair
    stretched = X * np.array([1.0, 10.0, 1.0, 1.0, 1.0])
    assert abs(float(linear_cka(stretched, Y)) - float(linear_cka(X, Y))) > 1e-3


def test_linear_cka_two_examples_is_one_with_zero_gradient(pair):
    X, Y = pair
    value, pullback = refimpl.vjp(linear_cka, X[:2], Y[:2])
    np.testing.assert_allclose(value, 1.0, rtol=1e-14)
    for g in pullback(np.array(1.0)):
        np.testing.assert_allclose(g, 0.0, atol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_linear_cka_gradient_matches_the_catalog_formula(pair, backend):
    X, Y = pair
    _, pullback = refimpl.vjp("linear_cka", X, Y, backend=backend)
    g_X, g_Y = pullback(np.array(0.7))
    X_c, Y_c = X - X.mean(0), Y - Y.mean(0)
    K, L = X_c @ X_c.T, Y_c @ Y_c.T
    h, nK, nL = np.sum(K * L), np.linalg.norm(K), np.linalg.norm(L)
    n = X.shape[0]
    C = np.eye(n) - np.ones((n, n)) / n
    expected_X = 0.7 * C @ (2 / (nK * nL) * (L @ X_c - h / nK**2 * K @ X_c))
    expected_Y = 0.7 * C @ (2 / (nK * nL) * (K @ Y_c - h / nL**2 * L @ Y_c))
    np.testing.assert_allclose(g_X, expected_X, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(g_Y, expected_Y, rtol=1e-10, atol=1e-15)
    # CKA is invariant to shifts and to scaling X: the gradient is ⟂ to the ones and to X_c
    np.testing.assert_allclose(g_X.sum(axis=0), 0.0, atol=1e-13)
    np.testing.assert_allclose(np.sum(g_X * X_c), 0.0, atol=1e-13)


def test_linear_cka_float32_survives_magnitudes_whose_gram_overflows():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((6, 3))
    Y = X + 0.5 * rng.standard_normal((6, 3))
    expected = float(linear_cka(X, Y))
    big = linear_cka((X * 1e25).astype(np.float32), (Y * 1e-25).astype(np.float32))
    assert big.dtype == np.float32
    np.testing.assert_allclose(big, expected, rtol=1e-5)


def test_linear_cka_refuses_identical_rows():
    X = np.arange(6.0).reshape(3, 2)
    with pytest.raises(refimpl.InputError, match="argument 'X'.*not all equal"):
        linear_cka(np.ones((3, 2)), X)
