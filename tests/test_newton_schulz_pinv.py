"""Newton–Schulz pseudo-inverse: against np.linalg.pinv/inv (full rank and rank-deficient), the
official newton_inv transcribed, the default α, the α = 2/‖SSᵀ‖₂ boundary, the record."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import newton_schulz_pinv, newton_schulz_step


def _official_newton_inv(a, n_newton_steps):
    """DeqingFu/transformers-icl-second-order src/models.py newton_inv, transcribed in NumPy."""
    lam = np.linalg.norm(a @ a.T)  # torch.linalg.norm of a matrix: Frobenius
    inv = (1 / lam) * a.T
    eye = np.eye(a.shape[0])
    for _ in range(n_newton_steps):
        inv = inv @ (2 * eye - a @ inv)
    return inv


def test_newton_schulz_pinv_matches_official_code():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 5))
    s = x.T @ x
    for steps in (0, 1, 3, 6):
        m, *_ = newton_schulz_pinv(s, num_steps=steps)
        np.testing.assert_allclose(m, _official_newton_inv(s, steps), rtol=1e-12, atol=1e-15)


def test_newton_schulz_pinv_matches_direct_inverse():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 5))
    s = x.T @ x
    m, norms, iterations, converged = newton_schulz_pinv(s, num_steps=100, tol=1e-13)
    np.testing.assert_allclose(m, np.linalg.pinv(s), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(m, np.linalg.inv(s), rtol=1e-10, atol=1e-13)
    assert bool(converged) and int(iterations) < 20 and norms.shape == (int(iterations),)


def test_newton_schulz_pinv_rank_deficient_converges_to_pseudo_inverse():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4))
    s = x.T @ x  # rank 2
    m, _, iterations, converged = newton_schulz_pinv(s, num_steps=200, tol=1e-12)
    assert bool(converged)
    pinv = np.linalg.pinv(s)
    np.testing.assert_allclose(m, pinv, atol=1e-9 * np.abs(pinv).max())
    # Penrose conditions
    np.testing.assert_allclose(m @ s @ m, m, atol=1e-9 * np.abs(m).max())
    np.testing.assert_allclose(s @ m @ s, s, atol=1e-9 * np.abs(s).max())


def test_newton_schulz_pinv_default_alpha_is_inverse_frobenius_norm_of_s_st():
    s = np.diag([3.0, 4.0])
    m, norms, iterations, converged = newton_schulz_pinv(s, num_steps=0)
    np.testing.assert_allclose(m, s / np.sqrt(81.0 + 256.0), rtol=1e-15)
    assert norms.shape == (0,) and int(iterations) == 0 and not bool(converged)


def test_newton_schulz_pinv_paper_quoted_alpha_sits_on_the_boundary():
    # α = 2/λ_max²: the top eigen-direction's error factor is 1 − αλ² = −1, squared to 1 forever
    s = np.diag([1.0, 2.0])
    m, *_ = newton_schulz_pinv(s, num_steps=30, alpha=2.0 / 4.0)
    assert m[1, 1] == pytest.approx(0.0, abs=1e-12)  # M₀ = S/2 → 1 − MS = −1 ... M stays 0 after step 1
    assert m[0, 0] == pytest.approx(1.0, rel=1e-12)
    m_code, *_ = newton_schulz_pinv(s, num_steps=30)
    np.testing.assert_allclose(m_code, np.diag([1.0, 0.5]), rtol=1e-12)


def test_newton_schulz_pinv_record_matches_looped_steps():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, 3))
    s = x.T @ x
    m_final, norms, iterations, converged = newton_schulz_pinv(s, num_steps=50, tol=1e-6)
    m = s / np.linalg.norm(s @ s)
    expected = []
    while True:
        m_next = newton_schulz_step(m, s)
        expected.append(np.linalg.norm(m_next - m))
        m = m_next
        if expected[-1] <= 1e-6 * np.linalg.norm(m):
            break
    assert int(iterations) == len(expected) and bool(converged)
    np.testing.assert_allclose(norms, expected, rtol=1e-10, atol=1e-14 * np.linalg.norm(m))
    np.testing.assert_allclose(m_final, m, rtol=1e-12)


def test_newton_schulz_pinv_float32_output():
    s = np.diag([1.0, 2.0]).astype(np.float32)
    m, norms, *_ = newton_schulz_pinv(s, num_steps=10)
    assert m.dtype == np.float32 and norms.dtype == np.float32
    np.testing.assert_allclose(m, np.diag([1.0, 0.5]), rtol=1e-7)


def test_newton_schulz_pinv_refuses_asymmetric_and_zero():
    with pytest.raises(refimpl.InputError, match="symmetric"):
        newton_schulz_pinv(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(refimpl.InputError, match="nonzero"):
        newton_schulz_pinv(np.zeros((2, 2)))
