"""L2R-GNN weighted RFF decorrelation: hand values, the catalog's cluster-pair formula and ∂C/∂w."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.reweighting import weighted_rff_decorrelation_loss


@pytest.fixture
def problem():
    rng = np.random.default_rng(5)
    n, d, q = 7, 5, 3
    Z = rng.standard_normal((n, d))  # noqa: N806
    Z[:, 1] = Z[:, 0] + 0.1 * rng.standard_normal(n)  # a correlated pair across clusters
    w = rng.uniform(0.3, 2.0, size=n)
    omega, phi = rng.standard_normal((d, q)), rng.uniform(0, 2 * math.pi, size=(d, q))
    return Z, w, np.array([0, 1, 1, 2, 0]), omega, phi


def _weighted_cov(A, B, w):  # noqa: N803 - the catalog's Ĉov_w(A, B)
    n = A.shape[0]
    a_bar, b_bar = (w @ A) / n, (w @ B) / n
    return ((w[:, None] * (A - a_bar)).T @ (B - b_bar)) / n


def test_rff_known_values():
    Z = np.array([[0.0, 0.0], [math.pi, math.pi]])  # noqa: N806
    ones, zeros = np.ones((2, 1)), np.zeros((2, 1))
    # u = ±√2 in both dimensions, Ā = 0, C = [[2, 2], [2, 2]]: L = 2·2²
    np.testing.assert_allclose(
        weighted_rff_decorrelation_loss(Z, np.ones(2), np.array([0, 1]), ones, zeros), 8.0
    )
    # u = [√2, √2], [0, 0]; w = [1, 3]: C_01 = w_1(1 − w_1/2)² + w_2 w_1²/4 = 1, L = 2
    Z2 = np.array([[0.0, 0.0], [math.pi / 2, math.pi / 2]])  # noqa: N806
    loss, pullback = refimpl.vjp(
        weighted_rff_decorrelation_loss, Z2, np.array([1.0, 3.0]), np.array([0, 1]), ones, zeros
    )
    np.testing.assert_allclose(loss, 2.0, rtol=1e-12)
    np.testing.assert_allclose(pullback(np.array(1.0))[0], [5.0, 1.0], rtol=1e-12)  # 4 C_01 ∂C_01/∂w


def test_rff_matches_the_catalog_sum_over_cluster_pairs(problem):
    Z, w, clusters, omega, phi = problem  # noqa: N806
    features = [math.sqrt(2) * np.cos(omega[a] * Z[:, a : a + 1] + phi[a]) for a in range(Z.shape[1])]
    expected = 0.0
    for a in range(Z.shape[1]):
        for b in range(Z.shape[1]):
            if clusters[a] != clusters[b]:  # Σ_{p≠q} Σ_{a∈P_p, b∈P_q} ‖Ĉov_w(u(Z_a), u(Z_b))‖_F²
                expected += (_weighted_cov(features[a], features[b], w) ** 2).sum()
    np.testing.assert_allclose(
        weighted_rff_decorrelation_loss(Z, w, clusters, omega, phi), expected, rtol=1e-12
    )


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("total", [None, "n"])
def test_rff_gradient_matches_the_catalog_dC_dw(problem, backend, total):
    Z, w, clusters, omega, phi = problem  # noqa: N806
    n = Z.shape[0]
    if total == "n":
        w = w * n / w.sum()
    _, pullback = refimpl.vjp("weighted_rff_decorrelation_loss", Z, w, clusters, omega, phi, backend=backend)
    (g_w,) = pullback(np.array(1.0))
    U = (math.sqrt(2) * np.cos(Z[:, :, None] * omega + phi)).reshape(n, -1)  # noqa: N806
    a_bar = (w @ U) / n
    C = _weighted_cov(U, U, w)  # noqa: N806
    labels = np.repeat(clusters, omega.shape[1])
    M = labels[:, None] != labels[None, :]  # noqa: N806
    s = w.sum()
    expected = np.empty(n)
    for k in range(n):  # ∂C/∂w_k = (1/n)(U_k − Ā)(U_k − Ā)ᵀ − ((n − s)/n²)(U_k Āᵀ + Ā U_kᵀ)
        v = U[k] - a_bar
        dC = np.outer(v, v) / n - (n - s) / n**2 * (np.outer(U[k], a_bar) + np.outer(a_bar, U[k]))  # noqa: N806
        expected[k] = (2 * M * C * dC).sum()
    np.testing.assert_allclose(g_w, expected, rtol=1e-10, atol=1e-13)


def test_rff_one_cluster_is_zero_and_labels_are_names(problem):
    Z, w, clusters, omega, phi = problem  # noqa: N806
    loss, pullback = refimpl.vjp(weighted_rff_decorrelation_loss, Z, w, np.full(5, 3), omega, phi)
    assert float(loss) == 0.0
    assert np.all(pullback(np.array(1.0))[0] == 0)
    relabeled = np.array([7, 0, 0, 4, 7])  # the same partition under other labels
    np.testing.assert_allclose(
        weighted_rff_decorrelation_loss(Z, w, relabeled, omega, phi),
        weighted_rff_decorrelation_loss(Z, w, clusters, omega, phi),
        rtol=1e-14,
    )


def test_rff_is_invariant_to_permuting_the_samples(problem):
    Z, w, clusters, omega, phi = problem  # noqa: N806
    order = np.random.default_rng(0).permutation(Z.shape[0])
    np.testing.assert_allclose(
        weighted_rff_decorrelation_loss(Z[order], w[order], clusters, omega, phi),
        weighted_rff_decorrelation_loss(Z, w, clusters, omega, phi),
        rtol=1e-12,
    )


def test_rff_downweighting_the_correlated_samples_lowers_the_loss():
    # two dimensions equal on samples 0..3 and unrelated on 4..7: weight on the unrelated half
    # (Σw = n both times) gives a smaller between-cluster covariance
    rng = np.random.default_rng(1)
    x = rng.standard_normal(8)
    Z = np.stack([x, np.where(np.arange(8) < 4, x, rng.standard_normal(8))], axis=1)  # noqa: N806
    omega, phi = np.ones((2, 1)), np.zeros((2, 1))
    clusters = np.array([0, 1])
    even = weighted_rff_decorrelation_loss(Z, np.ones(8), clusters, omega, phi)
    shifted = weighted_rff_decorrelation_loss(
        Z, np.r_[np.full(4, 0.25), np.full(4, 1.75)], clusters, omega, phi
    )
    assert shifted < even


def test_rff_refuses_negative_weights():
    with pytest.raises(refimpl.InputError, match="w >= 0"):
        weighted_rff_decorrelation_loss(
            np.zeros((2, 2)), np.array([1.0, -1.0]), np.array([0, 1]), np.ones((2, 1)), np.ones((2, 1))
        )
