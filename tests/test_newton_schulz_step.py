"""Newton–Schulz step: hand values, the official update, the squared error recursion,
quadratic convergence when looped, the stated VJP against finite differences, float32 stall."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import newton_schulz_step


def _spd(rng, d, condition=10.0):
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return (q * np.geomspace(1.0, condition, d)) @ q.T


def test_newton_schulz_step_hand_values():
    assert newton_schulz_step(np.array([[0.25]]), np.array([[2.0]]))[0, 0] == pytest.approx(0.375, abs=1e-15)
    out = newton_schulz_step(np.diag([0.5, 0.1]), np.diag([1.0, 4.0]))
    np.testing.assert_allclose(out, np.diag([0.75, 0.16]), rtol=1e-14)


def test_newton_schulz_step_matches_official_update():
    # official src/models.py newton_inv: inv = inv @ (2*eye - A@inv)
    rng = np.random.default_rng(0)
    s, m = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    official = m @ (2 * np.eye(5) - s @ m)
    np.testing.assert_allclose(newton_schulz_step(m, s), official, rtol=1e-12, atol=1e-12)


def test_newton_schulz_step_squares_the_error():
    rng = np.random.default_rng(1)
    s = _spd(rng, 4)
    m = np.linalg.inv(s) + 0.05 * rng.standard_normal((4, 4))
    error = np.eye(4) - m @ s
    np.testing.assert_allclose(np.eye(4) - newton_schulz_step(m, s) @ s, error @ error, atol=1e-13)


def test_newton_schulz_step_inverse_is_fixed_point():
    s = np.array([[2.0, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(newton_schulz_step(np.linalg.inv(s), s), np.linalg.inv(s), rtol=1e-14)


def test_newton_schulz_step_loop_converges_quadratically():
    rng = np.random.default_rng(2)
    s = _spd(rng, 6, condition=20.0)
    m = s / np.linalg.norm(s @ s)  # the official α = 1/‖SSᵀ‖_F
    errors = []
    for _ in range(14):
        m = newton_schulz_step(m, s)
        errors.append(np.linalg.norm(np.eye(6) - m @ s, 2))
    np.testing.assert_allclose(m, np.linalg.inv(s), rtol=1e-11, atol=1e-12)
    # in the quadratic phase e_{k+1} = e_k² (2-norm of a symmetric error: exact for a symmetric M)
    k = next(i for i, e in enumerate(errors) if e < 0.5)
    pairs = [(b, a) for b, a in zip(errors[k:], errors[k + 1 :], strict=False) if b > 1e-7]
    assert len(pairs) >= 2
    for before, after in pairs:
        assert after == pytest.approx(before**2, rel=1e-6)


def test_newton_schulz_step_backward_matches_stated_formula_and_differences():
    rng = np.random.default_rng(3)
    m, s, g = (rng.standard_normal((4, 4)) for _ in range(3))
    _, pullback = refimpl.vjp("newton_schulz_step", m, s)
    g_m, g_s = pullback(g)
    np.testing.assert_allclose(g_m, 2 * g - g @ (s @ m).T - (m @ s).T @ g, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g_s, -(m.T @ g @ m.T), rtol=1e-12, atol=1e-12)
    # central differences of ⟨g, M'(M + h dM, S + h dS)⟩
    dm, ds = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    h = 1e-6
    plus = np.sum(g * newton_schulz_step(m + h * dm, s + h * ds))
    minus = np.sum(g * newton_schulz_step(m - h * dm, s - h * ds))
    assert (plus - minus) / (2 * h) == pytest.approx(np.sum(g_m * dm) + np.sum(g_s * ds), rel=1e-7)


def test_newton_schulz_step_float32_stalls_near_single_precision():
    rng = np.random.default_rng(4)
    s = _spd(rng, 5, condition=10.0).astype(np.float32)
    m = (s / np.linalg.norm(s.astype(np.float64) @ s)).astype(np.float32)
    for _ in range(30):
        m = newton_schulz_step(m, s)
    assert m.dtype == np.float32
    relative = np.linalg.norm(m - np.linalg.inv(s.astype(np.float64))) / np.linalg.norm(np.linalg.inv(s))
    assert 1e-9 < relative < 1e-5
