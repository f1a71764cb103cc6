"""orthotrans_basis (OLinear): an orthogonal basis that diagonalizes the averaged lag correlation."""

import numpy as np
import pytest

from refimpl.layers import orthotrans_basis


def _series(seed=0, n=60, channels=3):
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    return np.sin(2 * np.pi * t / rng.uniform(4, 15, channels)) + 0.5 * rng.standard_normal((n, channels))


def _pearson_lag_correlation(a, tau):
    """Transcribed from the paper: Pearson correlation of the τ lagged windows of one series."""
    width = len(a) - tau + 1
    windows = np.array([a[k : k + width] for k in range(tau)])
    return np.corrcoef(windows)


def test_orthotrans_basis_is_orthogonal_to_float64_precision_and_diagonalizes():
    series = _series()
    q, eigenvalues = orthotrans_basis(series, tau=12)
    assert np.abs(q @ q.T - np.eye(12)).max() <= 1e-14 * 12
    assert np.abs(q.T @ q - np.eye(12)).max() <= 1e-14 * 12
    mean_corr = np.mean([_pearson_lag_correlation(series[:, c], 12) for c in range(3)], axis=0)
    np.testing.assert_allclose(q @ mean_corr @ q.T, np.diag(eigenvalues), atol=1e-12)
    assert np.all(np.diff(eigenvalues) <= 0)
    np.testing.assert_allclose(eigenvalues.sum(), 12.0, rtol=1e-12)  # trace of a correlation matrix


def test_orthotrans_basis_sign_convention_makes_it_deterministic():
    series = _series(1)
    q, _ = orthotrans_basis(series, tau=8)
    pivots = np.argmax(np.abs(q) > 1e-8, axis=1)
    assert np.all(q[np.arange(8), pivots] > 0)
    q_permuted, _ = orthotrans_basis(series[:, ::-1], tau=8)  # channel order does not matter
    np.testing.assert_allclose(q_permuted, q, atol=1e-12)


def test_orthotrans_basis_skips_constant_channels():
    series = _series(2)
    with_constant = np.hstack([series, np.full((60, 1), 4.0)])
    q, lam = orthotrans_basis(series, tau=6)
    q_c, lam_c = orthotrans_basis(with_constant, tau=6)
    np.testing.assert_allclose(q_c, q, atol=1e-13)
    np.testing.assert_allclose(lam_c, lam, atol=1e-13)


def test_orthotrans_basis_official_column_normalization_matches_the_official_formula():
    series = _series(3, n=40, channels=2)
    tau = 5
    matrices = []
    for c in range(2):  # the official construction, transcribed: cov / var (columns), then eigh
        width = 40 - tau + 1
        cov = np.cov(np.array([series[k : k + width, c] for k in range(tau)]))
        matrices.append(cov / np.diag(cov)[None, :])
    official_values, official_vectors = np.linalg.eigh(np.mean(matrices, axis=0))
    q, lam = orthotrans_basis(series, tau=tau, official_column_normalization=True)
    np.testing.assert_allclose(lam, official_values[::-1], rtol=1e-12)
    for row, vector in zip(q, official_vectors[:, ::-1].T):  # equal up to sign
        np.testing.assert_allclose(np.abs(row @ vector), 1.0, rtol=1e-10)
    pearson_lam = orthotrans_basis(series, tau=tau)[1]
    assert np.abs(pearson_lam - lam).max() > 1e-6  # the two normalizations differ on real data


def test_orthotrans_basis_hand_value():
    q, lam = orthotrans_basis(np.array([[0.0], [1.0], [0.0], [3.0]]), tau=2)
    r = 2 / np.sqrt(7)
    np.testing.assert_allclose(lam, [1 + r, 1 - r], rtol=1e-12)
    np.testing.assert_allclose(q, np.array([[1, -1], [1, 1]]) / np.sqrt(2), rtol=1e-12)


def test_orthotrans_basis_refuses_all_constant_input():
    import refimpl

    with pytest.raises(refimpl.InputError, match="at least one channel"):
        orthotrans_basis(np.ones((10, 2)), tau=3)
