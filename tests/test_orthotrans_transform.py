"""orthotrans_transform (OLinear): Q x + δ along time, its inverse, and the adjoint."""

import numpy as np

import refimpl
from refimpl.layers import orthotrans_basis, orthotrans_transform


def _basis(seed=0, t=6):
    rng = np.random.default_rng(seed)
    return np.linalg.qr(rng.standard_normal((t, t)))[0], rng


def test_orthotrans_transform_inverse_undoes_forward_and_keeps_norms():
    rng = np.random.default_rng(0)
    series = rng.standard_normal((50, 2)).cumsum(axis=0)
    q, _ = orthotrans_basis(series, tau=6)
    x = rng.standard_normal((3, 4, 6))
    z = orthotrans_transform(x, q, np.zeros(6))
    np.testing.assert_allclose(np.linalg.norm(z, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-13)
    np.testing.assert_allclose(orthotrans_transform(z, q, np.zeros(6), inverse=True), x, atol=1e-13)


def test_orthotrans_transform_matches_per_window_matrix_product():
    q, rng = _basis(1)
    x, offset = rng.standard_normal((5, 6)), rng.standard_normal(6)
    expected = np.array([q @ row + offset for row in x])
    np.testing.assert_allclose(orthotrans_transform(x, q, offset), expected, rtol=1e-13)
    expected_inverse = np.array([q.T @ row + offset for row in x])
    np.testing.assert_allclose(orthotrans_transform(x, q, offset, inverse=True), expected_inverse, rtol=1e-13)


def test_orthotrans_transform_vjp_is_the_adjoint():
    q, rng = _basis(2)
    x, g = rng.standard_normal((2, 3, 6)), rng.standard_normal((2, 3, 6))
    for inverse in (False, True):
        y, pullback = refimpl.vjp(orthotrans_transform, x, q, np.zeros(6), inverse=inverse)
        g_x, g_offset = pullback(g)
        np.testing.assert_allclose(np.sum(y * g), np.sum(x * g_x), rtol=1e-12)  # ⟨Ax, g⟩ = ⟨x, Aᵀg⟩
        np.testing.assert_allclose(g_offset, g.sum(axis=(0, 1)), rtol=1e-13)


def test_orthotrans_transform_decorrelates_the_training_windows():
    rng = np.random.default_rng(3)
    a = np.convolve(rng.standard_normal(4000), np.ones(5) / 5, mode="valid")  # a correlated series
    q, lam = orthotrans_basis(a[:, None], tau=8)
    windows = np.array([a[k : k + 8] for k in range(len(a) - 7)])
    standardized = (windows - windows.mean(0)) / windows.std(0, ddof=1)
    z = orthotrans_transform(standardized, q, np.zeros(8))
    cov = np.cov(z.T)
    np.testing.assert_allclose(np.diag(cov), lam, rtol=1e-10)
    assert np.abs(cov - np.diag(np.diag(cov))).max() < 1e-10
