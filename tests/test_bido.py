"""BiDO: Gaussian kernels, HSIC, normalized HSIC, COCO, BiDO loss: hand values, invariants, official code."""

import numpy as np
import pytest

import refimpl
from refimpl.regularizers import bido_loss, coco, gaussian_kernel_matrix, hsic, normalized_hsic
from refimpl.regularizers.bido import linear_kernel_matrix, linear_kernel_matrix_backward


def _centering(m):
    return np.eye(m) - np.ones((m, m)) / m


def _gaussian(Z, v):
    D = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(axis=-1)
    return np.exp(-D / v)


def _pull(op, *args, cotangents=None, **kwargs):
    outputs, pullback = refimpl.vjp(op, *args, **kwargs)
    if cotangents is None:
        cotangents = np.ones_like(outputs)
    return outputs, pullback(cotangents)


# -- explicit transcriptions of the official torch code (explicit H, explicit inverses) ---------------
def _official_kernelmat(X, sigma, linear=False):
    """``kernelmat`` of BiDO/hsic.py: |Gram-form distances|, variance 2σ²·d, right centring K H."""
    m = X.shape[0]
    if linear:
        Kx = X @ X.T
    else:
        r = np.sum(X * X, axis=1)[:, None]
        D = np.abs(r - 2 * X @ X.T + r.T)
        Kx = np.exp(-D / (2.0 * sigma * sigma * X.shape[1]))
    return Kx @ _centering(m)


def _official_hsic_normalized_cca(x, y, sigma, linear_y=False):
    m = x.shape[0]
    Kxc, Kyc = _official_kernelmat(x, sigma), _official_kernelmat(y, sigma, linear=linear_y)
    epsilon = 1e-5
    Rx = Kxc @ np.linalg.inv(Kxc + epsilon * m * np.eye(m))
    Ry = Kyc @ np.linalg.inv(Kyc + epsilon * m * np.eye(m))
    return np.sum(Rx * Ry.T)


def _official_coco_normalized_cca(x, y, sigma, linear_y=False):
    m = x.shape[0]
    H = _centering(m)
    K = H @ _official_kernelmat(x, sigma) @ H  # coco_kernelmat: H Kx H (H K H H = H K H)
    L = H @ _official_kernelmat(y, sigma, linear=linear_y) @ H
    return np.sqrt(np.linalg.norm(K @ L)) / m  # torch.norm: Frobenius


# -- gaussian_kernel_matrix ---------------------------------------------------------------------------
def test_gaussian_kernel_matches_hand_values_for_paper_and_official_bandwidths():
    Z = np.array([[0.0, 0.0], [1.0, 1.0]])  # ‖z_0 − z_1‖² = 2
    paper = gaussian_kernel_matrix(Z, sigma=1.0)  # v = 2σ² = 2
    official = gaussian_kernel_matrix(Z, sigma=1.0, bandwidth_scales_with_dim=True)  # v = 2σ²·d = 4
    np.testing.assert_allclose(paper, [[1, np.exp(-1)], [np.exp(-1), 1]], rtol=1e-15)
    np.testing.assert_allclose(official, [[1, np.exp(-0.5)], [np.exp(-0.5), 1]], rtol=1e-15)


def test_gaussian_kernel_matches_pairwise_differences_and_official_kernelmat():
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((6, 4))
    np.testing.assert_allclose(gaussian_kernel_matrix(Z, sigma=1.3), _gaussian(Z, 2 * 1.3**2), rtol=1e-13)
    official = gaussian_kernel_matrix(Z, sigma=5.0, bandwidth_scales_with_dim=True, abs_distances=True)
    np.testing.assert_allclose(official @ _centering(6), _official_kernelmat(Z, 5.0), rtol=1e-13, atol=1e-15)


def test_gaussian_kernel_of_duplicated_points_is_one_and_bounded_by_one():
    rng = np.random.default_rng(1)
    Z = 50 + rng.standard_normal((3, 5))
    Z = np.vstack([Z, Z[:1]])  # row 3 duplicates row 0; norms ~1e2 make the Gram form round off
    for abs_distances in (False, True):
        K = gaussian_kernel_matrix(Z, sigma=0.5, abs_distances=abs_distances)
        assert np.all(K <= 1.0)
        assert K[0, 3] == pytest.approx(1.0, abs=1e-10)
        np.testing.assert_allclose(np.diag(K), 1.0, atol=1e-10)


def test_gaussian_kernel_vjp_is_the_graph_laplacian_of_the_weighted_kernel():
    # z̄_a = Σ_j (K̄_aj + K̄_ja) K_aj·(−2/v)(z_a − z_j), written as an explicit double loop
    rng = np.random.default_rng(2)
    Z, g_K = rng.standard_normal((5, 3)), rng.standard_normal((5, 5))
    v = 2 * 0.8**2
    K, (g_Z,) = _pull("gaussian_kernel_matrix", Z, sigma=0.8, cotangents=g_K)
    expected = np.zeros_like(Z)
    for a in range(5):
        for j in range(5):
            expected[a] += (g_K[a, j] + g_K[j, a]) * K[a, j] * (-2 / v) * (Z[a] - Z[j])
    np.testing.assert_allclose(g_Z, expected, rtol=1e-12, atol=1e-14)


def test_gaussian_kernel_vjp_is_zero_for_a_single_point_and_translation_invariant():
    _, (g_Z,) = _pull("gaussian_kernel_matrix", np.array([[0.3, -1.0]]), cotangents=np.array([[2.0]]))
    np.testing.assert_array_equal(g_Z, 0.0)
    rng = np.random.default_rng(3)
    Z, g_K = rng.standard_normal((4, 2)), rng.standard_normal((4, 4))
    _, (g_Z,) = _pull("gaussian_kernel_matrix", Z, sigma=1.0, cotangents=g_K)
    np.testing.assert_allclose(g_Z.sum(axis=0), 0.0, atol=1e-14)  # K depends only on differences


def test_linear_kernel_vjp_matches_finite_differences():
    rng = np.random.default_rng(4)
    Z, g_K = rng.standard_normal((4, 3)), rng.standard_normal((4, 4))
    analytic = linear_kernel_matrix_backward(Z, g_K)
    h, numeric = 1e-6, np.zeros_like(Z)
    for index in np.ndindex(Z.shape):
        E = np.zeros_like(Z)
        E[index] = h
        numeric[index] = np.sum(g_K * (linear_kernel_matrix(Z + E) - linear_kernel_matrix(Z - E))) / (2 * h)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-8, atol=1e-9)


def test_gaussian_kernel_keeps_float32():
    Z = np.random.default_rng(5).standard_normal((4, 3)).astype(np.float32)
    K, (g_Z,) = _pull("gaussian_kernel_matrix", Z, cotangents=np.ones((4, 4), dtype=np.float32))
    assert K.dtype == np.float32 and g_Z.dtype == np.float32


# -- hsic ---------------------------------------------------------------------------------------------
def test_hsic_of_identity_kernels_is_one_for_two_samples():
    assert float(hsic(np.eye(2), np.eye(2))) == 1.0  # tr(H·H)/(2 − 1)² = tr(H) = 1


def test_hsic_matches_trace_formula_with_explicit_centering_matrix():
    rng = np.random.default_rng(6)
    K, L = rng.standard_normal((5, 5)), rng.standard_normal((5, 5))
    H = _centering(5)
    assert float(hsic(K, L)) == pytest.approx(np.trace(K @ H @ L @ H) / 16, rel=1e-12)
    _, (g_K, g_L) = _pull("hsic", K, L, cotangents=np.array(2.0))
    np.testing.assert_allclose(g_K, 2 * H @ L.T @ H / 16, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(g_L, 2 * H @ K.T @ H / 16, rtol=1e-12, atol=1e-15)


def test_hsic_is_zero_for_a_constant_kernel():
    rng = np.random.default_rng(7)
    Z = rng.standard_normal((6, 2))
    constant = gaussian_kernel_matrix(np.zeros((6, 3)))  # every sample identical: K = 1
    assert float(hsic(constant, gaussian_kernel_matrix(Z))) == 0.0


def test_hsic_is_nonnegative_and_invariant_to_joint_permutations():
    rng = np.random.default_rng(8)
    for _ in range(5):
        X, Y = rng.standard_normal((7, 2)), rng.standard_normal((7, 3))
        K, L = gaussian_kernel_matrix(X, sigma=1.0), gaussian_kernel_matrix(Y, sigma=1.0)
        value = float(hsic(K, L))
        assert value >= 0
        order = rng.permutation(7)
        permuted = float(hsic(K[np.ix_(order, order)], L[np.ix_(order, order)]))
        assert permuted == pytest.approx(value, rel=1e-12)


def test_hsic_separates_identical_from_independent_samples():
    rng = np.random.default_rng(9)
    X, Y = rng.standard_normal((200, 2)), rng.standard_normal((200, 2))
    K, L = gaussian_kernel_matrix(X, sigma=1.0), gaussian_kernel_matrix(Y, sigma=1.0)
    identical, independent = float(hsic(K, K)), float(hsic(K, L))
    assert independent < 0.05 * identical  # independent: O(1/m) bias only
    dependent = float(hsic(K, gaussian_kernel_matrix(X + 0.1 * Y, sigma=1.0)))
    assert dependent > 10 * independent


# -- normalized_hsic ------------------------------------------------------------------------------
def test_normalized_hsic_of_identity_kernels_is_rank_over_ridge():
    # K H = H has eigenvalues 1 (twice) and 0: tr(R²) = 2/(1 + εm)² with εm = 3e-5
    assert float(normalized_hsic(np.eye(3), np.eye(3))) == pytest.approx(2 / (1 + 3e-5) ** 2, rel=1e-12)


def test_normalized_hsic_matches_the_official_hsic_normalized_cca():
    rng = np.random.default_rng(10)
    x, z = rng.standard_normal((8, 12)), rng.standard_normal((8, 5))
    official = {"sigma": 5.0, "bandwidth_scales_with_dim": True, "abs_distances": True}
    K, L = gaussian_kernel_matrix(x, **official), gaussian_kernel_matrix(z, **official)
    assert float(normalized_hsic(K, L)) == pytest.approx(_official_hsic_normalized_cca(x, z, 5.0), rel=1e-8)


def test_normalized_hsic_is_symmetric_and_its_vjp_matches_the_inverse_formula():
    rng = np.random.default_rng(11)
    K, L = (
        gaussian_kernel_matrix(rng.standard_normal((5, 2))),
        gaussian_kernel_matrix(rng.standard_normal((5, 2))),
    )
    assert float(normalized_hsic(K, L)) == pytest.approx(float(normalized_hsic(L, K)), rel=1e-12)
    _, (g_K, g_L) = _pull("normalized_hsic", K, L, epsilon=0.01)
    c, H = 0.01 * 5, _centering(5)
    A_x, A_y = K @ H, L @ H
    M_x, M_y = np.linalg.inv(A_x + c * np.eye(5)), np.linalg.inv(A_y + c * np.eye(5))
    R_x, R_y = A_x @ M_x, A_y @ M_y
    np.testing.assert_allclose(g_K, c * (M_x @ R_y @ M_x).T @ H, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g_L, c * (M_y @ R_x @ M_y).T @ H, rtol=1e-9, atol=1e-12)


def test_normalized_hsic_computes_in_float64_and_returns_float32():
    rng = np.random.default_rng(12)
    K = gaussian_kernel_matrix(rng.standard_normal((6, 2)))
    L = gaussian_kernel_matrix(rng.standard_normal((6, 2)))
    value32 = normalized_hsic(K.astype(np.float32), L.astype(np.float32))
    assert value32.dtype == np.float32
    expected = normalized_hsic(
        K.astype(np.float32).astype(np.float64), L.astype(np.float32).astype(np.float64)
    )
    assert float(value32) == pytest.approx(float(expected), rel=1e-6)


# -- coco -----------------------------------------------------------------------------------------
def test_coco_hand_value():
    K = np.array([[2.0, 0.0], [0.0, 0.0]])  # HKH = ½[[1, −1], [−1, 1]], (HKH)² has σ₁ = 1
    assert float(coco(K, K)) == 0.5
    assert float(coco(K, K, norm="fro")) == 0.5  # rank one: both norms agree


def test_coco_spectral_is_the_largest_singular_value_and_below_frobenius():
    rng = np.random.default_rng(13)
    K, L = (
        gaussian_kernel_matrix(rng.standard_normal((6, 2))),
        gaussian_kernel_matrix(rng.standard_normal((6, 3))),
    )
    H = _centering(6)
    P = H @ K @ H @ H @ L @ H
    assert float(coco(K, L)) == pytest.approx(np.sqrt(np.linalg.norm(P, 2)) / 6, rel=1e-12)
    assert float(coco(K, L)) < float(coco(K, L, norm="fro"))


def test_coco_fro_matches_the_official_coco_normalized_cca():
    rng = np.random.default_rng(14)
    x, z = rng.standard_normal((7, 10)), rng.standard_normal((7, 4))
    official = {"sigma": 5.0, "bandwidth_scales_with_dim": True, "abs_distances": True}
    K, L = gaussian_kernel_matrix(x, **official), gaussian_kernel_matrix(z, **official)
    expected = _official_coco_normalized_cca(x, z, 5.0)
    assert float(coco(K, L, norm="fro")) == pytest.approx(expected, rel=1e-10)


def test_coco_of_a_constant_kernel_is_zero_with_a_finite_zero_gradient():
    L = gaussian_kernel_matrix(np.random.default_rng(15).standard_normal((4, 2)))
    for norm in ("spectral", "fro"):
        value, (g_K, g_L) = _pull("coco", np.ones((4, 4)), L, norm=norm)
        assert float(value) == 0.0
        np.testing.assert_array_equal(g_K, 0.0)
        np.testing.assert_array_equal(g_L, 0.0)


def test_coco_vjp_of_spectral_norm_uses_the_top_singular_pair():
    rng = np.random.default_rng(16)
    K, L = (
        gaussian_kernel_matrix(rng.standard_normal((5, 2))),
        gaussian_kernel_matrix(rng.standard_normal((5, 2))),
    )
    H = _centering(5)
    K_c, L_c = H @ K @ H, H @ L @ H
    U, s, Vt = np.linalg.svd(K_c @ L_c)
    g_P = np.outer(U[:, 0], Vt[0]) / (2 * 5 * np.sqrt(s[0]))
    _, (g_K, g_L) = _pull("coco", K, L)
    np.testing.assert_allclose(g_K, H @ g_P @ L_c.T @ H, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(g_L, H @ K_c.T @ g_P @ H, rtol=1e-10, atol=1e-13)


# -- bido_loss ------------------------------------------------------------------------------------
def _bido_data(seed=17, B=8):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, 10)), rng.standard_normal((B, 4)), rng.integers(0, 3, size=B)


def test_bido_loss_hand_value():
    x, z, y = np.arange(4.0)[:, None], np.array([[0.0], [0.0], [1.0], [1.0]]), np.array([0, 0, 1, 1])
    loss, d_xz, d_zy = bido_loss(x, z, y, lambda_x=0.0, lambda_y=1.0, sigma=1.0)
    # K_Y centred is ½ssᵀ with s = (1, 1, −1, −1): D_zy = ½ sᵀK_Z s/9 = ½·8(1 − e^(−1/2))/9
    assert float(d_zy) == pytest.approx(8 * (1 - np.exp(-0.5)) / 18, rel=1e-13)
    assert float(loss) == -float(d_zy)


def test_bido_loss_is_the_weighted_difference_of_two_hsic_terms():
    x, z, y = _bido_data()
    K_X, K_Z = gaussian_kernel_matrix(x, sigma=2.0), gaussian_kernel_matrix(z, sigma=2.0)
    K_Y = np.eye(3)[y] @ np.eye(3)[y].T
    loss, d_xz, d_zy = bido_loss(x, z, y, lambda_x=0.05, lambda_y=0.5, sigma=2.0)
    assert float(d_xz) == pytest.approx(float(hsic(K_X, K_Z)), rel=1e-13)
    assert float(d_zy) == pytest.approx(float(hsic(K_Z, K_Y)), rel=1e-13)
    assert float(loss) == pytest.approx(0.05 * float(d_xz) - 0.5 * float(d_zy), rel=1e-13)


def test_bido_loss_official_settings_reproduce_the_official_objective():
    x, z, y = _bido_data(18)
    onehot = np.eye(3)[y]
    official = {"sigma": 5.0, "bandwidth_scales_with_dim": True, "abs_distances": True}
    for measure, reference in (
        ("hsic", _official_hsic_normalized_cca),
        ("coco", _official_coco_normalized_cca),
    ):
        loss, d_xz, d_zy = bido_loss(
            x,
            z,
            y,
            lambda_x=0.05,
            lambda_y=0.5,
            measure=measure,
            estimator="normalized",
            norm="fro",
            **official,
        )
        # engine.multilayer_hsic: measure(hidden, h_data), measure(hidden, h_target), linear label kernel
        expected_xz, expected_zy = reference(z, x, 5.0), reference(z, onehot, 5.0, linear_y=True)
        assert float(d_xz) == pytest.approx(expected_xz, rel=1e-7)
        assert float(d_zy) == pytest.approx(expected_zy, rel=1e-7)
        assert float(loss) == pytest.approx(0.05 * expected_xz - 0.5 * expected_zy, rel=1e-7)


def test_bido_loss_vjp_chains_the_measure_and_kernel_vjps():
    x, z, y = _bido_data(19)
    g = (np.array(1.5), np.array(-0.3), np.array(0.7))
    _, (g_z,) = _pull(
        "bido_loss", x, z, y, lambda_x=0.2, lambda_y=0.9, sigma=1.5, measure="coco", cotangents=g
    )
    K_X, K_Z = gaussian_kernel_matrix(x, sigma=1.5), gaussian_kernel_matrix(z, sigma=1.5)
    K_Y = (y[:, None] == y[None, :]).astype(float)
    _, (_, g_KZ_xz) = _pull("coco", K_X, K_Z, cotangents=np.array(0.2 * 1.5 - 0.3))
    _, (g_KZ_zy, _) = _pull("coco", K_Z, K_Y, cotangents=np.array(0.7 - 0.9 * 1.5))
    _, (expected,) = _pull("gaussian_kernel_matrix", z, sigma=1.5, cotangents=g_KZ_xz + g_KZ_zy)
    np.testing.assert_allclose(g_z, expected, rtol=1e-12, atol=1e-14)


def test_bido_loss_with_zero_weights_is_zero_with_zero_gradient():
    x, z, y = _bido_data(20)
    (loss, _, _), (g_z,) = _pull(
        "bido_loss",
        x,
        z,
        y,
        lambda_x=0.0,
        lambda_y=0.0,
        cotangents=(np.array(1.0), np.array(0.0), np.array(0.0)),
    )
    assert float(loss) == 0.0
    np.testing.assert_array_equal(g_z, 0.0)


def test_bido_loss_label_dependence_vanishes_for_a_single_class():
    x, z, _ = _bido_data(21)
    for measure in ("hsic", "coco"):
        _, _, d_zy = bido_loss(x, z, np.zeros(8, dtype=np.int64), lambda_x=0.1, lambda_y=1.0, measure=measure)
        assert float(d_zy) == pytest.approx(0.0, abs=1e-12)


def test_bido_loss_label_term_rewards_features_that_separate_classes():
    y = np.array([0, 0, 0, 1, 1, 1])
    x = np.random.default_rng(22).standard_normal((6, 3))
    separated = np.array([[0.0], [0.1], [-0.1], [3.0], [3.1], [2.9]])
    mixed = separated[[0, 3, 1, 4, 2, 5]]
    _, _, d_separated = bido_loss(x, separated, y, lambda_x=0.0, lambda_y=1.0, sigma=1.0)
    _, _, d_mixed = bido_loss(x, mixed, y, lambda_x=0.0, lambda_y=1.0, sigma=1.0)
    assert float(d_separated) > 5 * float(d_mixed)


def test_bido_and_hsic_refuse_a_single_sample():
    with pytest.raises(refimpl.InputError, match=r"hsic: argument 'K'.*m = 2"):
        hsic(np.ones((1, 1)), np.ones((1, 1)))
    with pytest.raises(refimpl.InputError, match=r"bido_loss: argument 'x'"):
        bido_loss(np.ones((1, 2)), np.ones((1, 2)), np.array([0]), lambda_x=0.1, lambda_y=0.1)
    with pytest.raises(refimpl.InputError, match="lambda_y"):
        bido_loss(np.ones((3, 2)), np.ones((3, 2)), np.array([0, 1, 0]), lambda_x=0.1)
