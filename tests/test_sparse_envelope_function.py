"""Sparse envelope function: limits k = 1 and k = n, k-sparse vectors, the conjugate
characterization, hand values and the gradient formula."""

import numpy as np
import pytest
from scipy.optimize import minimize

import refimpl
from refimpl.regularizers import sparse_envelope_function


@pytest.fixture
def vectors():
    return np.random.default_rng(0).standard_normal((5, 7)) * 2


def test_sparse_envelope_k_one_is_half_squared_l1(vectors):
    np.testing.assert_allclose(
        sparse_envelope_function(vectors, k=1), 0.5 * np.abs(vectors).sum(-1) ** 2, rtol=1e-14
    )


def test_sparse_envelope_k_n_is_half_squared_l2(vectors):
    np.testing.assert_allclose(sparse_envelope_function(vectors, k=7), 0.5 * (vectors**2).sum(-1), rtol=1e-14)


def test_sparse_envelope_equals_half_squared_norm_on_k_sparse_vectors():
    x = np.array([0.0, 4.0, 0.0, -0.3, 0.0, 2.5, 0.0])
    for k in (3, 4, 7):
        np.testing.assert_allclose(sparse_envelope_function(x, k=k), 0.5 * (x**2).sum(), rtol=1e-14)
    assert sparse_envelope_function(x, k=2) > 0.5 * (x**2).sum() + 0.1  # 3-sparse is not 2-sparse


def test_sparse_envelope_hand_values():
    # a = [3, 1, 1], k = 2: r = 0 (3 > θ = 2 ≥ 1): ½(9 + 2²)
    assert sparse_envelope_function(np.array([3.0, -1.0, 1.0]), k=2) == 6.5
    # a = [1, 1, 1], k = 2: r = 0 fails (1 > 2), r = 1: θ = 3/2, ½·2·θ² = 9/4
    assert sparse_envelope_function(np.array([1.0, 1.0, -1.0]), k=2) == 2.25
    # a = [5, 3, 1, 1], k = 3: r = 0: a_2 = 3 > θ_0 = 1 + 1 ≥ a_3 = 1 → ½(25 + 9 + 2²)
    assert sparse_envelope_function(np.array([1.0, -5.0, 1.0, 3.0]), k=3) == 19.0
    # a = [5, 2, 1, 1], k = 3: r = 0 fails (2 > 2), r = 1: θ = 4/2 → ½(25 + 2·2²)
    assert sparse_envelope_function(np.array([1.0, -5.0, 1.0, 2.0]), k=3) == 16.5


def test_sparse_envelope_matches_the_box_variational_form_and_fenchel_young():
    # ‖x‖²_(k) = min {Σ x_i²/θ_i : 0 < θ_i ≤ 1, Σ θ_i ≤ k} (McDonald, Pontil, Stamos 2014), solved by
    # SLSQP; and s_k is the conjugate of ½ Σ_{top k} y_(i)², with equality ⟨x, y⟩ − ½Σ_top y² = s_k(x)
    # at y = ∇s_k(x) (Fenchel–Young)
    rng = np.random.default_rng(3)
    for n, k in ((4, 2), (5, 3), (6, 2), (6, 1)):
        x = rng.standard_normal(n)
        best = minimize(
            lambda theta, x=x: (x * x / theta).sum(),
            np.full(n, k / n),
            method="SLSQP",
            bounds=[(1e-9, 1.0)] * n,
            constraints=[{"type": "ineq", "fun": lambda theta, k=k: k - theta.sum()}],
            options={"ftol": 1e-15, "maxiter": 500},
        )
        value, pullback = refimpl.vjp(sparse_envelope_function, x, k=k)
        np.testing.assert_allclose(value, 0.5 * best.fun, rtol=1e-7)
        (y,) = pullback(np.array(1.0))
        top = np.sort(np.abs(y))[::-1][:k]
        np.testing.assert_allclose(x @ y - 0.5 * (top**2).sum(), value, rtol=1e-12)


def test_sparse_envelope_norm_is_between_l2_and_l1_and_decreases_in_k(vectors):
    values = np.stack([sparse_envelope_function(vectors, k=k) for k in range(1, 8)])
    assert np.all(np.diff(values, axis=0) <= 1e-12)
    assert np.all(values >= 0.5 * (vectors**2).sum(-1) - 1e-12)
    assert np.all(values <= 0.5 * np.abs(vectors).sum(-1) ** 2 + 1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_sparse_envelope_gradient_is_sign_times_max_of_magnitude_and_level(backend):
    x = np.array([[3.0, -1.0, 1.0, 0.5], [0.2, -0.1, 4.0, 0.0]])
    _, pullback = refimpl.vjp("sparse_envelope_function", x, k=2, backend=backend)
    (g_x,) = pullback(np.array([1.0, 2.0]))
    # row 0: a = [3, 1, 1, 0.5]; r = 0: 3 > θ = 2.5 → head 3, tail sign·2.5
    # row 1: a = [4, 0.2, 0.1, 0]; θ_0 = 0.3 < 4 → head 4, tail sign·0.3, zero at 0
    np.testing.assert_allclose(g_x, [[3.0, -2.5, 2.5, 2.5], [0.6, -0.6, 8.0, 0.0]], rtol=1e-14)


def test_sparse_envelope_rejects_k_above_n():
    with pytest.raises(refimpl.InputError, match="k <= n = 3"):
        sparse_envelope_function(np.ones(3), k=4)
    with pytest.raises(refimpl.InputError, match="'k'"):
        sparse_envelope_function(np.ones(3), k=0)
