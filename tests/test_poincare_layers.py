"""Poincaré ResNet layers and geometry: the catalog's invariants as value tests — FC identity
initialization, gyrogroup laws, Euclidean limits, gyration and transport isometries, the
midpoint and the midpoint batch norm, convolution = unfold + β-concatenation + FC."""

import math

import numpy as np
import pytest

import refimpl
from refimpl.layers import (
    mobius_add,
    mobius_matvec,
    mobius_scalar_mul,
    poincare_batch_norm,
    poincare_beta_concat,
    poincare_conv2d,
    poincare_distance,
    poincare_expmap,
    poincare_expmap0,
    poincare_fc,
    poincare_gyration,
    poincare_identity_init,
    poincare_logmap,
    poincare_logmap0,
    poincare_midpoint,
    poincare_parallel_transport,
    poincare_relu,
    poincare_residual,
)
from refimpl.layers.poincare_batchnorm import VARIANCE_EPS
from refimpl.layers.poincare_fc import beta_concat_ratio

TINY_C = 1e-10  # the Euclidean limit: relative corrections are ~c‖x‖²


def _ball_points(rng, shape, c=1.0, low=0.0, high=0.95):
    """Random directions at radius fractions uniform in [low, high] of 1/√c."""
    d = rng.standard_normal(shape)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    return d * rng.uniform(low, high, shape[:-1] + (1,)) / np.sqrt(c)


def _conformal(x, c):
    return 2 / (1 - c * np.sum(x * x, axis=-1, keepdims=True))


def _dot(a, b):
    return np.sum(a * b, axis=-1, keepdims=True)


# -- poincare_fc: identity initialization and the Euclidean limit --------------------------------
@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
def test_fc_with_half_identity_and_zero_offsets_is_the_identity_on_the_whole_ball(c):
    rng = np.random.default_rng(0)
    n = 5
    x = _ball_points(rng, (200, n), c, 0.0, 0.999)
    x[0] = 0.0
    Z, r = poincare_identity_init(n, n)
    np.testing.assert_array_equal(Z, 0.5 * np.eye(n))
    np.testing.assert_array_equal(r, np.zeros(n))
    np.testing.assert_allclose(poincare_fc(x, Z, r, c=c), x, rtol=1e-12, atol=1e-15)


def test_fc_identity_holds_at_one_minus_1e7_of_the_radius_and_in_float32():
    rng = np.random.default_rng(1)
    n = 4
    x = _ball_points(rng, (6, n), 1.0, 1 - 1e-7, 1 - 1e-7)
    Z, r = poincare_identity_init(n, n)
    np.testing.assert_allclose(poincare_fc(x, Z, r), x, rtol=1e-8)  # λ ≈ 1e7 amplifies the rounding
    x32 = _ball_points(rng, (50, n), 1.0, 0.0, 0.99).astype(np.float32)
    Z32, r32 = poincare_identity_init(n, n, dtype=np.float32)
    y32 = poincare_fc(x32, Z32, r32)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, x32, rtol=2e-4, atol=1e-6)


def test_fc_identity_init_of_a_wider_layer_pads_with_zero_coordinates():
    rng = np.random.default_rng(2)
    x = _ball_points(rng, (20, 3), 0.5, 0.0, 0.99)
    Z, r = poincare_identity_init(3, 7)
    y = poincare_fc(x, Z, r, c=0.5)
    np.testing.assert_allclose(y[:, :3], x, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(y[:, 3:], 0.0)


def test_fc_tends_to_the_affine_map_2_x_z_minus_2_norm_z_r_as_c_tends_to_zero():
    rng = np.random.default_rng(3)
    x, Z, r = rng.standard_normal((6, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    expected = 2 * x @ Z - 2 * np.linalg.norm(Z, axis=0) * r
    np.testing.assert_allclose(poincare_fc(x, Z, r, c=TINY_C), expected, rtol=1e-8, atol=1e-9)


# -- Möbius addition, scalar multiplication, matrix-vector product -------------------------------
@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
def test_left_cancellation_minus_x_plus_x_plus_y_is_y(c):
    rng = np.random.default_rng(4)
    x, y = _ball_points(rng, (50, 4), c), _ball_points(rng, (50, 4), c)
    np.testing.assert_allclose(mobius_add(-x, mobius_add(x, y, c=c), c=c), y, rtol=1e-10, atol=1e-12)


def test_mobius_scalar_mul_laws_one_times_and_distributivity_over_scalar_sums():
    rng = np.random.default_rng(5)
    c = 1.7
    x = _ball_points(rng, (20, 3), c, 0.0, 0.9)
    r1, r2 = rng.uniform(-1.5, 1.5, 20), rng.uniform(-1.5, 1.5, 20)
    np.testing.assert_allclose(mobius_scalar_mul(np.ones(20), x, c=c), x, rtol=1e-13, atol=1e-15)
    lhs = mobius_scalar_mul(r1 + r2, x, c=c)
    rhs = mobius_add(mobius_scalar_mul(r1, x, c=c), mobius_scalar_mul(r2, x, c=c), c=c)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-11, atol=1e-13)
    # r₁ ⊗ (r₂ ⊗ x) = (r₁r₂) ⊗ x
    np.testing.assert_allclose(
        mobius_scalar_mul(r1, mobius_scalar_mul(r2, x, c=c), c=c),
        mobius_scalar_mul(r1 * r2, x, c=c),
        rtol=1e-11,
        atol=1e-13,
    )


def test_mobius_matvec_identity_composition_and_scalar_matrices():
    rng = np.random.default_rng(6)
    c = 0.8
    x = _ball_points(rng, (10, 3), c, 0.0, 0.9)
    M, N = 0.5 * rng.standard_normal((3, 3)), 0.5 * rng.standard_normal((3, 3))
    np.testing.assert_allclose(mobius_matvec(np.eye(3), x, c=c), x, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(
        mobius_matvec(M @ N, x, c=c), mobius_matvec(M, mobius_matvec(N, x, c=c), c=c), rtol=1e-10, atol=1e-13
    )
    np.testing.assert_allclose(
        mobius_matvec(1.7 * np.eye(3), x, c=c), mobius_scalar_mul(np.full(10, 1.7), x, c=c), rtol=1e-12
    )


# -- the Euclidean limits (c → 0) ---------------------------------------------------------------
def test_euclidean_limits_of_the_geometry_ops():
    rng = np.random.default_rng(7)
    x, y, v = rng.standard_normal((3, 5, 4))
    r, M = rng.standard_normal(5), rng.standard_normal((3, 4))
    c = TINY_C

    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-8)

    close(mobius_add(x, y, c=c), x + y)
    close(mobius_scalar_mul(r, x, c=c), r[:, None] * x)
    close(mobius_matvec(M, x, c=c), x @ M.T)
    close(poincare_expmap0(v, c=c), v)
    close(poincare_logmap0(y, c=c), y)
    close(poincare_expmap(x, v, c=c), x + v)
    close(poincare_logmap(x, y, c=c), y - x)
    close(poincare_distance(x, y, c=c), 2 * np.linalg.norm(x - y, axis=-1))
    close(poincare_gyration(x, y, v, c=c), v)
    close(poincare_parallel_transport(x, y, v, c=c), v)
    close(poincare_midpoint(x, c=c), x.mean(axis=0))
    close(poincare_relu(x, c=c), np.maximum(x, 0))
    close(poincare_residual(x, y, c=c), np.maximum(x + y, 0))


def test_euclidean_limit_of_beta_concatenation_is_the_rho_scaled_concatenation():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, 4))  # 3 pieces of 4 coordinates
    rho = beta_concat_ratio(4, 12)
    np.testing.assert_allclose(
        poincare_beta_concat(x, c=TINY_C), rho * x.reshape(2, 12), rtol=1e-8, atol=1e-9
    )
    assert beta_concat_ratio(1, 2) == pytest.approx(2 / math.pi, rel=1e-14)  # B(1, ½)/B(½, ½)
    assert beta_concat_ratio(4, 4) == 1.0


def test_euclidean_limit_of_batch_norm_is_a_shifted_rescaled_batch_with_four_times_the_variance():
    rng = np.random.default_rng(9)
    x, beta, gamma = rng.standard_normal((6, 3)), rng.standard_normal(3), np.array(0.7)
    centred = x - x.mean(axis=0)
    variance = 4 * np.mean(np.sum(centred**2, axis=-1))  # d → 2‖x − y‖
    expected = beta + np.sqrt(gamma / (variance + VARIANCE_EPS)) * centred
    np.testing.assert_allclose(poincare_batch_norm(x, gamma, beta, c=TINY_C), expected, rtol=1e-8, atol=1e-9)


# -- gyration and parallel transport ------------------------------------------------------------
def test_gyration_is_the_composition_of_mobius_additions_and_an_isometry():
    rng = np.random.default_rng(10)
    c = 1.3
    a, b, v = (_ball_points(rng, (30, 4), c, 0.0, 0.9) for _ in range(3))
    composed = mobius_add(-mobius_add(a, b, c=c), mobius_add(a, mobius_add(b, v, c=c), c=c), c=c)
    gyr_v = poincare_gyration(a, b, v, c=c)
    np.testing.assert_allclose(gyr_v, composed, rtol=1e-10, atol=1e-12)
    # a rotation: inner products are kept, gyr[b, a] undoes gyr[a, b]
    u = rng.standard_normal((30, 4))
    np.testing.assert_allclose(
        _dot(poincare_gyration(a, b, u, c=c), gyr_v), _dot(u, v), rtol=1e-10, atol=1e-12
    )
    np.testing.assert_allclose(poincare_gyration(b, a, gyr_v, c=c), v, rtol=1e-10, atol=1e-12)
    # a ⊕ (b ⊕ v) = (a ⊕ b) ⊕ gyr[a, b] v
    np.testing.assert_allclose(
        mobius_add(a, mobius_add(b, v, c=c), c=c), mobius_add(mobius_add(a, b, c=c), gyr_v, c=c), rtol=1e-10
    )


@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
def test_parallel_transport_preserves_the_riemannian_inner_product(c):
    rng = np.random.default_rng(11)
    x, y = _ball_points(rng, (40, 3), c, 0.0, 0.95), _ball_points(rng, (40, 3), c, 0.0, 0.95)
    u, v = rng.standard_normal((2, 40, 3))
    pu, pv = poincare_parallel_transport(x, y, u, c=c), poincare_parallel_transport(x, y, v, c=c)
    lam_x, lam_y = _conformal(x, c), _conformal(y, c)
    # ⟨PT u, PT v⟩_y = ⟨u, v⟩_x with ⟨a, b⟩_p = λ_p² ⟨a, b⟩; in particular the norm ⟨v, v⟩_x λ_x²
    np.testing.assert_allclose(lam_y**2 * _dot(pu, pv), lam_x**2 * _dot(u, v), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lam_y**2 * _dot(pv, pv), lam_x**2 * _dot(v, v), rtol=1e-9)
    # back again is the identity; x → x is the identity; from 0 it scales by 1 − c‖y‖²
    np.testing.assert_allclose(poincare_parallel_transport(y, x, pv, c=c), v, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(poincare_parallel_transport(x, x, v, c=c), v, rtol=1e-12, atol=1e-14)
    zero = np.zeros_like(x)
    np.testing.assert_allclose(
        poincare_parallel_transport(zero, y, v, c=c), (1 - c * _dot(y, y)) * v, rtol=1e-12, atol=1e-14
    )


def test_exp_and_log_at_a_point_are_inverse_and_measure_distance():
    rng = np.random.default_rng(12)
    c = 0.7
    x, y = _ball_points(rng, (20, 3), c, 0.0, 0.9), _ball_points(rng, (20, 3), c, 0.0, 0.9)
    v = poincare_logmap(x, y, c=c)
    np.testing.assert_allclose(poincare_expmap(x, v, c=c), y, rtol=1e-10, atol=1e-12)
    riemannian_norm = _conformal(x, c)[:, 0] * np.linalg.norm(v, axis=-1)
    np.testing.assert_allclose(riemannian_norm, poincare_distance(x, y, c=c), rtol=1e-11)


def test_known_distance_from_the_origin_is_two_artanh():
    assert poincare_distance(np.zeros(1), np.array([0.6]))[()] == pytest.approx(2 * math.log(2.0), rel=1e-15)


# -- the midpoint ----------------------------------------------------------------------------
@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.99, 0.9999, 1 - 1e-7])
def test_midpoint_of_identical_points_is_the_point_up_to_an_ulp_even_at_the_boundary(fraction):
    rng = np.random.default_rng(13)
    point = _ball_points(rng, (4,), 1.0, fraction, fraction)
    m = poincare_midpoint(np.repeat(point[None], 3, axis=0))
    np.testing.assert_allclose(m, point, rtol=4e-16, atol=0)


@pytest.mark.parametrize("fraction", [0.999, 0.9999, 0.99999])
def test_midpoint_of_identical_float32_points_keeps_the_point_and_a_bounded_gradient(fraction):
    # the catalog's u/(1 + √(1 − c‖u‖²)) loses 1 − c‖u‖² below float32 resolution here
    point = (fraction * np.array([0.6, -0.8, 0.0])).astype(np.float32)
    points = np.repeat(point[None], 3, axis=0)
    m, pullback = refimpl.vjp(poincare_midpoint, points)
    assert m.dtype == np.float32
    np.testing.assert_allclose(m, point, rtol=3e-7, atol=0)
    (g,) = pullback(np.ones(3, np.float32))
    np.testing.assert_allclose(g, np.full((3, 3), 1 / 3), rtol=5e-3)  # exact: every point moves m by 1/3


def test_midpoint_of_two_points_is_the_geodesic_midpoint_and_known_on_a_line():
    rng = np.random.default_rng(14)
    c = 1.9
    x, y = _ball_points(rng, (2, 5), c, 0.0, 0.95)
    m = poincare_midpoint(np.stack([x, y]), c=c)
    half = poincare_distance(x, y, c=c) / 2
    assert poincare_distance(x, m, c=c) == pytest.approx(half, rel=1e-11)
    assert poincare_distance(m, y, c=c) == pytest.approx(half, rel=1e-11)
    # midpoint(0, 0.6) = tanh(½ artanh 0.6) = tanh(log √2) = 1/3
    assert poincare_midpoint(np.array([[0.0], [0.6]]))[0] == pytest.approx(1 / 3, rel=1e-15)
    np.testing.assert_array_equal(poincare_midpoint(np.array([[0.5, 0.1], [-0.5, -0.1]])), [0.0, 0.0])


def test_midpoint_equals_the_catalog_formula_away_from_the_boundary():
    rng = np.random.default_rng(15)
    for c, batch in [(0.3, 1), (1.0, 4), (2.5, 9)]:
        x = _ball_points(rng, (batch, 3), c, 0.0, 0.95)
        lam = _conformal(x, c)
        u = np.sum(lam * x, axis=0) / np.sum(lam - 1)
        catalog = u / (1 + np.sqrt(1 - c * np.sum(u * u)))
        np.testing.assert_allclose(poincare_midpoint(x, c=c), catalog, rtol=1e-12, atol=1e-15)


def test_midpoint_commutes_with_mobius_translations_and_rotations():
    rng = np.random.default_rng(16)
    c = 1.0
    x = _ball_points(rng, (5, 3), c, 0.0, 0.9)
    a = _ball_points(rng, (3,), c, 0.5, 0.5)
    a_rows = np.repeat(a[None], 5, axis=0)
    translated = poincare_midpoint(mobius_add(a_rows, x, c=c), c=c)
    np.testing.assert_allclose(translated, mobius_add(a, poincare_midpoint(x, c=c), c=c), rtol=1e-11)
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    np.testing.assert_allclose(
        poincare_midpoint(x @ rotation.T, c=c), rotation @ poincare_midpoint(x, c=c), rtol=1e-12, atol=1e-15
    )


def test_midpoint_is_invariant_to_the_order_of_the_batch():
    rng = np.random.default_rng(17)
    x = _ball_points(rng, (6, 3), 1.0, 0.0, 0.95)
    np.testing.assert_allclose(poincare_midpoint(x[::-1]), poincare_midpoint(x), rtol=1e-13, atol=1e-16)


# -- midpoint batch norm -------------------------------------------------------------------
def _batch_norm_reference(x, gamma, beta, c):
    """The catalog's composition, op by op (midpoint, distance, log, transport, exp)."""
    mu = np.repeat(poincare_midpoint(x, c=c)[None], len(x), axis=0)
    b = np.repeat(poincare_expmap0(beta, c=c)[None], len(x), axis=0)
    variance = np.mean(poincare_distance(x, mu, c=c) ** 2)
    tangent = poincare_parallel_transport(mu, b, poincare_logmap(mu, x, c=c), c=c)
    return (
        poincare_expmap(b, np.sqrt(gamma / (variance + VARIANCE_EPS)) * tangent, c=c),
        mu[0],
        b[0],
        variance,
    )


def test_batch_norm_is_the_catalog_composition_and_rescales_distances_to_b():
    rng = np.random.default_rng(18)
    c = 1.4
    x = _ball_points(rng, (7, 3), c, 0.0, 0.9)
    gamma, beta = np.array(0.6), 0.3 * rng.standard_normal(3)
    out = poincare_batch_norm(x, gamma, beta, c=c)
    expected, mu, b, variance = _batch_norm_reference(x, gamma, beta, c)
    np.testing.assert_allclose(out, expected, rtol=1e-13, atol=1e-15)
    # exp/log/PT are isometric: d(out_i, b) = s·d(x_i, μ), so the output variance about b is γσ²/(σ² + ε)
    scale = np.sqrt(gamma / (variance + VARIANCE_EPS))
    b_rows = np.repeat(b[None], 7, axis=0)
    mu_rows = np.repeat(mu[None], 7, axis=0)
    np.testing.assert_allclose(
        poincare_distance(out, b_rows, c=c), scale * poincare_distance(x, mu_rows, c=c), rtol=1e-10
    )
    assert np.mean(poincare_distance(out, b_rows, c=c) ** 2) == pytest.approx(
        gamma * variance / (variance + VARIANCE_EPS), rel=1e-10
    )


def test_batch_norm_with_unit_scale_is_an_isometry_that_moves_the_midpoint_to_b():
    rng = np.random.default_rng(19)
    x = _ball_points(rng, (6, 3), 1.0, 0.0, 0.8)
    beta = 0.4 * rng.standard_normal(3)
    _, mu, _, variance = _batch_norm_reference(x, np.array(1.0), beta, 1.0)
    gamma = np.array(variance + VARIANCE_EPS)  # s = 1
    out = poincare_batch_norm(x, gamma, beta)
    np.testing.assert_allclose(poincare_midpoint(out), poincare_expmap0(beta), rtol=1e-10, atol=1e-13)
    i, j = np.triu_indices(6, k=1)
    np.testing.assert_allclose(poincare_distance(out[i], out[j]), poincare_distance(x[i], x[j]), rtol=1e-10)


def test_batch_norm_known_value_for_a_symmetric_pair_on_a_line():
    # ±0.6: μ = 0, d = 2 artanh 0.6 = 2 log 2, log_0(±0.6) = ±log 2, b = 0 (β = 0), γ = 1
    out = poincare_batch_norm(np.array([[0.6], [-0.6]]), np.array(1.0), np.zeros(1))
    expected = math.tanh(math.log(2) / math.sqrt(4 * math.log(2) ** 2 + VARIANCE_EPS))
    np.testing.assert_allclose(out, [[expected], [-expected]], rtol=1e-14)
    assert expected == pytest.approx(math.tanh(0.5), rel=1e-6)  # σ² ≫ ε: unit variance, tanh(½)


def test_batch_norm_of_a_single_point_or_identical_points_is_exp0_of_beta():
    beta = np.array([0.2, -0.4])
    for x in (np.array([[0.3, 0.5]]), np.repeat(np.array([[0.3, 0.5]]), 4, axis=0)):
        out = poincare_batch_norm(x, np.array(1.0), beta)
        np.testing.assert_allclose(out, np.repeat(poincare_expmap0(beta)[None], len(x), axis=0), atol=1e-12)


def test_batch_norm_has_no_running_statistics_each_call_uses_its_own_batch():
    # the official PoincareBatchNorm registers running_mean/running_var and takes momentum=0.9
    # but never updates or reads them: the op is a pure function of the batch, in training and
    # evaluation alike, and a point's output depends on the batch it is normalized with
    rng = np.random.default_rng(20)
    x = _ball_points(rng, (8, 3), 1.0, 0.0, 0.9)
    gamma, beta = np.array(1.0), np.zeros(3)
    first = poincare_batch_norm(x, gamma, beta)
    for _ in range(3):
        poincare_batch_norm(_ball_points(rng, (8, 3), 1.0, 0.0, 0.9), gamma, beta)
    np.testing.assert_array_equal(poincare_batch_norm(x, gamma, beta), first)
    half = poincare_batch_norm(x[:4], gamma, beta)
    assert np.abs(half - first[:4]).max() > 1e-3
    assert set(poincare_batch_norm.signature.parameters) == {"x", "gamma", "beta", "c"}


def test_batch_norm_lou_et_al_scale_gamma_over_sigma_is_gamma_squared_under_the_root():
    rng = np.random.default_rng(21)
    x = _ball_points(rng, (5, 2), 1.0, 0.0, 0.9)
    beta, gamma_lou = 0.2 * rng.standard_normal(2), 1.7
    _, mu, b, variance = _batch_norm_reference(x, np.array(1.0), beta, 1.0)
    mu_rows, b_rows = np.repeat(mu[None], 5, axis=0), np.repeat(b[None], 5, axis=0)
    tangent = poincare_parallel_transport(mu_rows, b_rows, poincare_logmap(mu_rows, x))
    lou = poincare_expmap(b_rows, gamma_lou / math.sqrt(variance + VARIANCE_EPS) * tangent)
    np.testing.assert_allclose(poincare_batch_norm(x, np.array(gamma_lou**2), beta), lou, rtol=1e-12)


def test_batch_norm_float32_stays_float32_and_close_to_float64():
    rng = np.random.default_rng(22)
    x = _ball_points(rng, (8, 4), 1.0, 0.0, 0.9)
    gamma, beta = np.array(0.8), 0.2 * rng.standard_normal(4)
    out32, pullback = refimpl.vjp(
        poincare_batch_norm, x.astype(np.float32), gamma.astype(np.float32), beta.astype(np.float32)
    )
    assert out32.dtype == np.float32
    assert all(g.dtype == np.float32 for g in pullback(np.ones_like(out32)))
    np.testing.assert_allclose(out32, poincare_batch_norm(x, gamma, beta), rtol=1e-4, atol=1e-5)


# -- residual connection and activation ---------------------------------------------------------
def test_residual_is_tangent_relu_of_branch_mobius_plus_skip():
    rng = np.random.default_rng(23)
    c = 0.5
    fx, x = _ball_points(rng, (10, 4), c, 0.0, 0.9), _ball_points(rng, (10, 4), c, 0.0, 0.9)
    h = mobius_add(fx, x, c=c)  # F(x) on the left: the official skip_connection="fr"
    np.testing.assert_allclose(poincare_residual(fx, x, c=c), poincare_relu(h, c=c), rtol=1e-13, atol=1e-16)
    expected = poincare_expmap0(np.maximum(poincare_logmap0(h, c=c), 0), c=c)
    np.testing.assert_allclose(poincare_residual(fx, x, c=c), expected, rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(poincare_residual(fx, x, c=c, activation="none"), h, rtol=1e-15, atol=0)


def test_tangent_relu_known_value():
    np.testing.assert_allclose(
        poincare_relu(np.array([0.5, -0.5])), [math.tanh(math.atanh(math.sqrt(0.5)) / math.sqrt(2)), 0.0]
    )


# -- convolution = unfold + β-concatenation + FC --------------------------------------------------
def _unfold_points(x, k, stride, padding):
    """Neighbourhoods (B, Ho, Wo, k², n) of an image of points, padded with the origin."""
    batch, height, width, n = x.shape
    padded = np.zeros((batch, height + 2 * padding, width + 2 * padding, n), x.dtype)
    padded[:, padding : padding + height, padding : padding + width] = x
    out_h = (height + 2 * padding - k) // stride + 1
    out_w = (width + 2 * padding - k) // stride + 1
    windows = np.empty((batch, out_h, out_w, k * k, n), x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            patch = padded[:, i * stride : i * stride + k, j * stride : j * stride + k]
            windows[:, i, j] = patch.reshape(batch, k * k, n)  # pixel-major: (di·k + dj)
    return windows


@pytest.mark.parametrize(("k", "stride", "padding"), [(1, 1, 0), (2, 1, 0), (3, 1, 1), (3, 2, 1), (2, 2, 0)])
def test_conv2d_equals_unfold_then_beta_concatenation_then_fc(k, stride, padding):
    rng = np.random.default_rng(24)
    c, n, m = 0.8, 2, 3
    x = _ball_points(rng, (2, 5, 4, n), c, 0.0, 0.9)
    Z, r = 0.6 * rng.standard_normal((k * k * n, m)), 0.2 * rng.standard_normal(m)
    y, pullback = refimpl.vjp(poincare_conv2d, x, Z, r, c=c, kernel_size=k, stride=stride, padding=padding)

    windows = _unfold_points(x, k, stride, padding)
    points, concat_pullback = refimpl.vjp(poincare_beta_concat, windows, c=c)
    expected, fc_pullback = refimpl.vjp(poincare_fc, points, Z, r, c=c)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-14)

    # the backward is the composed backward, with unfold's adjoint scatter-adding the windows
    g = rng.standard_normal(y.shape)
    g_x, g_Z, g_r = pullback(g)
    g_points, g_Z_fc, g_r_fc = fc_pullback(g)
    (g_windows,) = concat_pullback(g_points)
    g_padded = np.zeros((2, 5 + 2 * padding, 4 + 2 * padding, n))
    for i in range(y.shape[1]):
        for j in range(y.shape[2]):
            g_padded[:, i * stride : i * stride + k, j * stride : j * stride + k] += g_windows[
                :, i, j
            ].reshape(2, k, k, n)
    np.testing.assert_allclose(
        g_x, g_padded[:, padding : padding + 5, padding : padding + 4], rtol=1e-10, atol=1e-13
    )
    np.testing.assert_allclose(g_Z, g_Z_fc, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(g_r, g_r_fc, rtol=1e-10, atol=1e-13)


def test_conv2d_tends_to_a_euclidean_convolution_of_the_rho_scaled_image():
    rng = np.random.default_rng(25)
    n, m, k = 2, 3, 3
    x = rng.standard_normal((1, 4, 4, n))
    Z, r = rng.standard_normal((k * k * n, m)), rng.standard_normal(m)
    rho = beta_concat_ratio(n, k * k * n)
    windows = _unfold_points(x, k, 1, 1).reshape(1, 4, 4, k * k * n)
    expected = 2 * rho * windows @ Z - 2 * np.linalg.norm(Z, axis=0) * r
    # outputs ~20, so the relative corrections c·v² with v ≈ 2·20 are ~1e-7 at c = 1e-10
    np.testing.assert_allclose(
        poincare_conv2d(x, Z, r, c=TINY_C, kernel_size=k, padding=1), expected, rtol=1e-6, atol=1e-8
    )


def test_conv2d_with_a_1x1_identity_kernel_is_the_identity():
    rng = np.random.default_rng(26)
    x = _ball_points(rng, (2, 3, 3, 4), 1.0, 0.0, 0.99)
    Z, r = poincare_identity_init(4, 4)
    np.testing.assert_allclose(poincare_conv2d(x, Z, r, kernel_size=1), x, rtol=1e-12, atol=1e-15)
