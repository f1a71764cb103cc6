"""CGS fixed point: a dense solve, the official loop transcribed (record included), geometric
decay, the implicit VJP against backpropagation through the unrolled iteration run to
convergence and against finite differences, the γ̄ formula, the joint stopping norm."""

import numpy as np
import pytest

import refimpl
from refimpl.solvers import cgs_fixed_point
from refimpl_conformance.cases.solvers.cgs import contraction, official_loop


def _system(seed, heads=2, n=5, signed=False):
    rng = np.random.default_rng(seed)
    return contraction(rng, heads, n, signed=signed), rng.standard_normal((heads, n)), rng


def test_cgs_fixed_point_matches_dense_solve():
    a, b, _ = _system(0, signed=True)
    z, norms, iterations, converged = cgs_fixed_point(a, b, tol=1e-14, max_iter=200)
    for h in range(2):
        np.testing.assert_allclose(
            z[h], np.linalg.solve(np.eye(5) - 0.5 * a[h], b[h]), rtol=1e-12, atol=1e-13
        )
    assert bool(converged) and norms[-1] < 1e-14 and norms.shape == (int(iterations) + 1,)


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_cgs_fixed_point_matches_official_loop_and_record(activation):
    a, b, _ = _system(1)
    z, norms, iterations, converged = cgs_fixed_point(a, b, activation=activation)  # official defaults
    z_official, norms_official, itr = official_loop(a, b, 0.5, activation, 1e-6, 50)
    np.testing.assert_allclose(z, z_official, rtol=1e-14)
    np.testing.assert_allclose(norms, norms_official, rtol=1e-8)  # differences of near-equal iterates
    assert int(iterations) == itr and bool(converged) == (norms_official[-1] < 1e-6)


def test_cgs_fixed_point_residual_decays_geometrically():
    a, b, _ = _system(2, signed=True)
    gamma = 0.9
    _, norms, iterations, _ = cgs_fixed_point(a, b, gamma=gamma, tol=1e-12, max_iter=1000)
    # identity φ: ‖x_{k+1} − x_k‖_F ≤ max_h ‖γA_h‖₂ ‖x_k − x_{k−1}‖_F
    bound = gamma * max(np.linalg.norm(a[h], 2) for h in range(2))
    ratios = norms[1:] / norms[:-1]
    assert np.all(ratios <= bound * (1 + 1e-9))
    assert norms[-1] < 1e-12 and int(iterations) > 20


def _unrolled_vjp(a, b, gamma, activation, steps, g_z):
    """Reverse-mode through x_{k+1} = φ(γAx_k + b), x_0 = 0, run ``steps`` times (to convergence)."""
    phi = np.tanh if activation == "tanh" else (lambda y: y)
    dphi = (lambda y: 1 - np.tanh(y) ** 2) if activation == "tanh" else np.ones_like
    xs, ys = [np.zeros_like(b)], []
    for _ in range(steps):
        ys.append(gamma * np.einsum("hij,hj->hi", a, xs[-1]) + b)
        xs.append(phi(ys[-1]))
    g_a, g_b, g_x = np.zeros_like(a), np.zeros_like(b), g_z.copy()
    for k in reversed(range(steps)):
        g_y = dphi(ys[k]) * g_x
        g_b += g_y
        g_a += gamma * g_y[:, :, None] * xs[k][:, None, :]
        g_x = gamma * np.einsum("hij,hi->hj", a, g_y)
    return g_a, g_b


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_cgs_fixed_point_implicit_vjp_matches_unrolled_iteration(activation):
    a, b, rng = _system(3, signed=True)
    g_z = rng.standard_normal(b.shape)
    (z, *_), pullback = refimpl.vjp(
        "cgs_fixed_point", a, b, gamma=0.7, activation=activation, tol=1e-15, max_iter=500
    )
    g_a, g_b = pullback((g_z, None, None, None))
    unrolled_a, unrolled_b = _unrolled_vjp(a, b, 0.7, activation, 400, g_z)
    np.testing.assert_allclose(g_b, unrolled_b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g_a, unrolled_a, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("activation", ["identity", "tanh"])
def test_cgs_fixed_point_vjp_matches_finite_differences(activation):
    a, b, rng = _system(4)
    g_z = rng.standard_normal(b.shape)
    kwargs = {"gamma": 0.5, "activation": activation, "tol": 1e-15, "max_iter": 500}
    _, pullback = refimpl.vjp("cgs_fixed_point", a, b, **kwargs)
    g_a, g_b = pullback((g_z, None, None, None))
    da, db = rng.standard_normal(a.shape) * (a != 0), rng.standard_normal(b.shape)
    h = 1e-6

    def value(t):
        return np.sum(g_z * cgs_fixed_point(a + t * da, b + t * db, **kwargs)[0])

    assert (value(h) - value(-h)) / (2 * h) == pytest.approx(np.sum(g_a * da) + np.sum(g_b * db), rel=1e-7)


def test_cgs_fixed_point_gamma_cotangent_formula():
    # the docstring's γ̄ = Σ_h ⟨Dλ, A z⟩ = Σ_h ⟨b̄_h, A_h z_h⟩ against a central difference in γ
    a, b, rng = _system(5)
    g_z = rng.standard_normal(b.shape)
    (z, *_), pullback = refimpl.vjp("cgs_fixed_point", a, b, activation="tanh", tol=1e-15, max_iter=500)
    _, g_b = pullback((g_z, None, None, None))
    g_gamma = np.sum(g_b * np.einsum("hij,hj->hi", a, z))
    h = 1e-6

    def value(gamma):
        return np.sum(g_z * cgs_fixed_point(a, b, gamma=gamma, activation="tanh", tol=1e-15, max_iter=500)[0])

    assert (value(0.5 + h) - value(0.5 - h)) / (2 * h) == pytest.approx(g_gamma, rel=1e-7)


def test_cgs_fixed_point_one_norm_over_all_heads():
    cycle = np.eye(3)[[1, 2, 0]]
    a = np.stack([0.1 * cycle, 0.95 * cycle])
    _, norms_joint, iterations_joint, _ = cgs_fixed_point(
        a, np.ones((2, 3)), gamma=0.9, tol=1e-8, max_iter=400
    )
    _, _, iterations_fast, _ = cgs_fixed_point(a[:1], np.ones((1, 3)), gamma=0.9, tol=1e-8, max_iter=400)
    _, _, iterations_slow, _ = cgs_fixed_point(a[1:], np.ones((1, 3)), gamma=0.9, tol=1e-8, max_iter=400)
    assert int(iterations_fast) < int(iterations_joint) == int(iterations_slow)


def test_cgs_fixed_point_max_iter_zero_applies_the_map_once():
    z, norms, iterations, converged = cgs_fixed_point(
        np.array([[[0.5]]]), np.array([[0.3]]), activation="tanh", max_iter=0
    )
    assert z[0, 0] == pytest.approx(np.tanh(0.3), rel=1e-15)
    assert norms.shape == (0,) and int(iterations) == 0 and not bool(converged)


def test_cgs_fixed_point_refuses_non_contraction():
    with pytest.raises(refimpl.InputError, match="contraction"):
        cgs_fixed_point(np.array([[[0.0, 1.5], [1.0, 0.0]]]), np.ones((1, 2)), gamma=0.9)
