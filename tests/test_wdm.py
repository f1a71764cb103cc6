"""WDM Kantorovich–Rubinstein estimate: hand values, invariances, bilinear-critic gradient."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import wdm_kr_estimate


def test_wdm_known_value():
    F = np.array([[3.0, 1.0], [0.0, 1.0]])  # noqa: N806
    assert float(wdm_kr_estimate(F)) == 1.5  # (3 + 1)/2 − (1 + 0)/2
    F3 = np.array([[2.0, 0.0, 1.0], [1.0, 5.0, 0.0], [3.0, 2.0, -1.0]])  # noqa: N806
    np.testing.assert_allclose(wdm_kr_estimate(F3), 6.0 / 3 - 7.0 / 6, rtol=1e-15)


def test_wdm_separable_critic_sees_no_dependence():
    rng = np.random.default_rng(0)
    g, h = rng.standard_normal(6), rng.standard_normal(6)
    # f(x, y) = g(x) + h(y): E_joint f = E_marginals f, so Î = 0
    np.testing.assert_allclose(wdm_kr_estimate(g[:, None] + h[None, :]), 0.0, atol=1e-15)


def test_wdm_is_invariant_to_a_constant_shift_and_scales_linearly():
    rng = np.random.default_rng(1)
    F = rng.standard_normal((7, 7))  # noqa: N806
    base = float(wdm_kr_estimate(F))
    np.testing.assert_allclose(wdm_kr_estimate(F + 13.0), base, rtol=1e-12)
    np.testing.assert_allclose(wdm_kr_estimate(-2.5 * F), -2.5 * base, rtol=1e-14)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_wdm_large_diagonal_keeps_the_off_diagonal_digits(backend):
    rng = np.random.default_rng(2)
    noise = rng.standard_normal((6, 6)) * (1 - np.eye(6))
    F = noise + np.diag([1e15, -1e15, 3e15, -3e15, 0.0, 0.0])  # noqa: N806
    # tr F = 0 exactly: Î = −mean of the off-diagonal entries (ΣF − tr F would keep ~0.1 of them)
    expected = -noise.sum() / 30
    np.testing.assert_allclose(refimpl.backend(backend).get("wdm_kr_estimate")(F), expected, rtol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_wdm_bilinear_critic_gradient_matches_the_catalog(backend):
    # F = X W Yᵀ: W̄ = Xᵀ F̄ Y = mean_i x_i y_iᵀ − mean_{i≠j} x_i y_jᵀ
    rng = np.random.default_rng(3)
    n, d = 5, 3
    X, Y, W = rng.standard_normal((n, d)), rng.standard_normal((n, d)), rng.standard_normal((d, d))  # noqa: N806
    _, pullback = refimpl.vjp("wdm_kr_estimate", X @ W @ Y.T, backend=backend)
    (g_F,) = pullback(np.array(1.0))  # noqa: N806
    g_W = X.T @ g_F @ Y  # noqa: N806
    joint = sum(np.outer(X[i], Y[i]) for i in range(n)) / n
    marginals = sum(np.outer(X[i], Y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    np.testing.assert_allclose(g_W, joint - marginals, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(g_F.sum(), 0.0, atol=1e-15)  # shift invariance


def test_wdm_requires_two_pairs():
    with pytest.raises(refimpl.InputError, match="N >= 2"):
        wdm_kr_estimate(np.ones((1, 1)))
    with pytest.raises(refimpl.InputError):
        wdm_kr_estimate(np.ones((2, 3)))  # not square
