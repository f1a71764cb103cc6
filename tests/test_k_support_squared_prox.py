"""k-support squared prox: optimality x − prox(x) ∈ ∂(γ s_k)(prox(x)), a direct numerical
minimization, the limits k = n and k = 1, and hand values."""

import numpy as np
import pytest
from scipy.optimize import minimize

import refimpl
from refimpl.regularizers import k_support_squared_prox


def _envelope(w, k):
    """s_k by its definition: the r ∈ {0..k−1} with a_{k−r−1} > θ_r ≥ a_{k−r} (both inequalities)."""
    a = np.concatenate([[np.inf], np.sort(np.abs(w))[::-1]])  # 1-based, a_0 = +∞
    for r in range(k):
        theta = a[k - r :].sum() / (r + 1)
        if a[k - r - 1] > theta >= a[k - r]:
            return 0.5 * ((a[1 : k - r] ** 2).sum() + (r + 1) * theta**2), theta
    raise AssertionError("no split r")


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_prox_satisfies_the_optimality_condition(backend):
    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.integers(1, 9))
        k, gamma = int(rng.integers(1, n + 1)), float(rng.choice([0.05, 0.7, 4.0]))
        x = rng.standard_normal(n) * float(rng.choice([0.1, 1.0, 10.0]))
        w = refimpl.backend(backend).get("k_support_squared_prox")(x, k=k, gamma=gamma)
        v = (x - w) / gamma  # must lie in ∂s_k(w)
        theta = _envelope(w, k)[1] if np.any(w) else 0.0
        support = w != 0
        np.testing.assert_allclose(
            v[support], np.sign(w[support]) * np.maximum(np.abs(w[support]), theta), rtol=1e-10, atol=1e-12
        )
        assert np.all(np.abs(v[~support]) <= theta * (1 + 1e-10) + 1e-12)


def test_prox_matches_a_direct_numerical_minimization():
    rng = np.random.default_rng(1)
    for n, k, gamma in ((3, 1, 1.0), (4, 2, 0.5), (5, 2, 3.0), (5, 3, 0.2), (6, 4, 1.5)):
        x = rng.standard_normal(n) * 2

        def objective(w, x=x, k=k, gamma=gamma):
            return 0.5 * ((w - x) ** 2).sum() + gamma * _envelope(w, k)[0]

        start = x / (1 + gamma)
        for _ in range(4):  # Nelder–Mead restarted from its own answer
            best = minimize(objective, start, method="Nelder-Mead", options={"xatol": 1e-11, "fatol": 1e-15})
            start = best.x
        w = k_support_squared_prox(x, k=k, gamma=gamma)
        assert objective(w) <= best.fun + 1e-12
        np.testing.assert_allclose(w, best.x, atol=1e-5)


def test_prox_k_n_is_ridge_shrinkage_and_hand_values():
    x = np.random.default_rng(2).standard_normal((3, 5))
    np.testing.assert_allclose(k_support_squared_prox(x, k=5, gamma=0.5), x / 1.5, rtol=1e-15)
    np.testing.assert_array_equal(k_support_squared_prox(np.array([4.0, 1.0]), k=2, gamma=1.0), [2.0, 0.5])
    # k = 1, x = [3, −1], γ = 1: w_2 = 0 (|x_2| ≤ γ‖w‖₁), w_1 = 3 − w_1
    np.testing.assert_array_equal(k_support_squared_prox(np.array([3.0, -1.0]), k=1, gamma=1.0), [1.5, 0.0])
    # k = 2, x = [6, 2, 1, 0.2], γ = 1: head 6/2 = 3; tail {2, 1}: θ = 3/(1 + 2) = 1, w = [2 − 1, 1 − 1]
    np.testing.assert_allclose(
        k_support_squared_prox(np.array([6.0, -2.0, 1.0, 0.2]), k=2, gamma=1.0),
        [3.0, -1.0, 0.0, 0.0],
        atol=1e-15,
    )


def test_prox_is_k_sparse_for_large_gamma_and_identity_for_tiny_gamma():
    x = np.array([5.0, -4.0, 0.3, 0.2, -0.1])
    w = k_support_squared_prox(x, k=2, gamma=1e-9)
    np.testing.assert_allclose(w, x, rtol=1e-7)  # within ~γ·max|x| of x
    assert np.count_nonzero(k_support_squared_prox(x, k=2, gamma=2.0)) <= 3


def test_prox_rejects_bad_k_and_gamma():
    with pytest.raises(refimpl.InputError, match="k <= n = 3"):
        k_support_squared_prox(np.ones(3), k=4, gamma=1.0)
    with pytest.raises(refimpl.InputError, match="'gamma'"):
        k_support_squared_prox(np.ones(3), k=2, gamma=0.0)
