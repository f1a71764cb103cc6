"""PRESTO's fused penalty: hand values, the official reparameterization and standardization,
subgradient validity, proportional odds and the soft-threshold prox."""

import numpy as np
import pytest

import refimpl
from refimpl.losses import presto_penalty


def test_presto_penalty_known_value():
    beta = np.array([[1.0, 1.0, 3.0], [-2.0, 0.0, 0.0]])  # ψ = [[1, 0, 2], [−2, 2, 0]]
    assert float(presto_penalty(beta, np.eye(2), lam=0.5, standardize=False)) == 3.5
    _, pullback = refimpl.vjp(presto_penalty, beta, np.eye(2), lam=0.5, standardize=False)
    (g_beta,) = pullback(np.array(2.0))
    # 2·0.5·(σ_k − σ_{k+1}): σ = [[1, 0, 1], [−1, 1, 0]]
    np.testing.assert_array_equal(g_beta, [[1.0, -1.0, 1.0], [-2.0, 1.0, 0.0]])


def test_presto_penalty_matches_the_official_reparameterization():
    # getParamEstsMod: Beta[, 1] = psi_1, Beta[, k] = Beta[, k − 1] + psi_k; penalty λ Σ|psi| on
    # the standardized design (xSD = sqrt(Σ(x − x̄)²/n), 0 → 1)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((20, 4)) * np.array([0.5, 2.0, 1.0, 3.0])
    X[:, 2] = 7.0  # constant column
    psi_standardized = rng.standard_normal((4, 3))
    x_sd = np.sqrt(((X - X.mean(axis=0)) ** 2).sum(axis=0) / 20)
    x_sd[x_sd == 0] = 1
    beta = np.cumsum(psi_standardized, axis=1) / x_sd[:, None]  # back to the original scale
    expected = 0.3 * np.abs(psi_standardized).sum()
    np.testing.assert_allclose(presto_penalty(beta, X, lam=0.3), expected, rtol=1e-13)
    np.testing.assert_allclose(
        presto_penalty(beta * x_sd[:, None], X, lam=0.3, standardize=False), expected, rtol=1e-13
    )


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_presto_penalty_subgradient_satisfies_the_subgradient_inequality(backend):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((9, 3))
    beta = np.array([[1.0, 1.0, 0.0, 2.0], [0.0, 0.0, 0.0, 0.0], [-1.0, 0.5, 0.5, -3.0]])  # kinks
    penalty, pullback = refimpl.vjp("presto_penalty", beta, X, lam=0.7, backend=backend)
    (g_beta,) = pullback(np.array(1.0))
    for _ in range(200):
        other = beta + rng.standard_normal(beta.shape) * rng.choice([1e-3, 1.0])
        assert presto_penalty(other, X, lam=0.7) >= penalty + (g_beta * (other - beta)).sum() - 1e-12


def test_presto_penalty_of_proportional_odds_is_the_lasso_on_the_common_slope():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((10, 3))
    common = rng.standard_normal(3)
    beta = np.repeat(common[:, None], 5, axis=1)  # all β_k equal: every ψ_{j,k≥1} = 0
    scale = X.std(axis=0)
    np.testing.assert_allclose(
        presto_penalty(beta, X, lam=2.0), 2.0 * (scale * np.abs(common)).sum(), rtol=1e-14
    )
    _, pullback = refimpl.vjp(presto_penalty, beta, X, lam=2.0)
    (g_beta,) = pullback(np.array(1.0))
    np.testing.assert_allclose(g_beta[:, 0], 2.0 * scale * np.sign(common), rtol=1e-14)
    np.testing.assert_array_equal(g_beta[:, 1:], 0.0)  # sign(0) = 0 at the fused differences


def test_presto_penalty_prox_in_psi_is_soft_thresholding():
    # prox_{tP}(v) in ψ coordinates, coordinate by coordinate on a grid, = soft-threshold(v, tλs_j)
    rng = np.random.default_rng(5)
    X = rng.standard_normal((12, 2)) * np.array([1.0, 3.0])
    s = X.std(axis=0)
    lam, t = 0.4, 0.5
    v = np.array([[0.9, -0.05, 1.8], [-2.5, 0.3, 0.01]])
    grid = np.linspace(-4, 4, 80001)
    for j in range(2):
        for k in range(3):
            values = []
            for candidate in grid[::50]:
                psi = v.copy()
                psi[j, k] = candidate
                values.append(
                    0.5 * (candidate - v[j, k]) ** 2
                    + t * float(presto_penalty(np.cumsum(psi, 1), X, lam=lam))
                )
            coarse = grid[::50][int(np.argmin(values))]
            fine = grid[np.abs(grid - coarse) <= 1e-2]
            objective = []
            for candidate in fine:
                psi = v.copy()
                psi[j, k] = candidate
                objective.append(
                    0.5 * (candidate - v[j, k]) ** 2
                    + t * float(presto_penalty(np.cumsum(psi, 1), X, lam=lam))
                )
            best = fine[int(np.argmin(objective))]
            expected = np.sign(v[j, k]) * max(abs(v[j, k]) - t * lam * s[j], 0.0)
            assert abs(best - expected) <= 1e-4
