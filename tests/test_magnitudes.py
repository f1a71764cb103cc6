"""Extreme magnitudes the math allows: a finite, correct answer, or a clear InputError.

Each case below was a silently wrong float32 result before: a squared norm that overflowed
to inf or underflowed to 0 turned a direction into 0, a kernel diagonal into 0, a COCO into 0.
"""

import numpy as np
import pytest

import refimpl

BACKENDS = ["numpy", "numba"]
rng = np.random.default_rng(7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_projecting_a_point_at_1e30_keeps_its_direction(backend):
    x = np.array([[3e30, 4e30], [0.3, 0.4]], np.float32)
    o = refimpl.backend(backend).get("poincare_project")(x, eps=0.5)
    np.testing.assert_allclose(o, [[0.3, 0.4], [0.3, 0.4]], rtol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_hyperplane_normal_of_norm_1e_30_is_a_direction_not_zero(backend):
    fc = refimpl.backend(backend).get("poincare_fc")
    x = np.array([[0.3, -0.2], [0.1, 0.5]], np.float32)
    Z = np.array([[0.5, 0.2], [-0.1, 0.4]], np.float32)
    r = np.array([0.1, -0.2], np.float32)
    # y_k depends on z_k through its direction and ‖z_k‖; both are exact at 1e-30 · Z
    # (ζ = s·‖Z/s‖), so the output is the float64 value of the same tiny-Z layer
    tiny = fc(x, Z * np.float32(1e-30), r)
    want = fc(x.astype(np.float64), Z.astype(np.float64) * 1e-30, r.astype(np.float64))
    assert np.all(tiny != 0)
    np.testing.assert_allclose(tiny, want, rtol=1e-4)


def _inside(v):
    return 0.5 * v / np.abs(v).max()


@pytest.mark.parametrize(
    ("name", "arguments", "argument"),
    [
        ("poincare_expmap0", lambda v: (v,), "v"),
        ("poincare_expmap", lambda v: (np.zeros_like(v), v), "v"),
        ("mobius_scalar_mul", lambda v: (np.full(v.shape[:-1], 1e30, v.dtype), _inside(v)), "r"),
        ("mobius_matvec", lambda v: (np.eye(2, dtype=v.dtype) * v.dtype.type(1e30), _inside(v)), "M"),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tangent_vector_beyond_the_dtype_range_is_refused(backend, name, arguments, argument):
    v = np.array([[1e30, 2e30], [0.1, 0.2]], np.float32)
    message = rf"argument '{argument}'.*at most 2\.2e\+12 in float32.*in row 0 "
    with pytest.raises(refimpl.InputError, match=message):
        refimpl.backend(backend).get(name)(*arguments(v))
    # the same magnitude is fine in float64 (the limit there is 1.6e102)
    refimpl.backend(backend).get(name)(*arguments(v.astype(np.float64)))


def test_a_tangent_vector_just_inside_the_limit_has_a_finite_accurate_gradient():
    limit = refimpl.layers.poincare.tangent_length_limit(np.float32)
    v = np.array([[0.6, 0.8]], np.float32) * np.float32(limit * 0.9)
    g = np.array([[1.0, 0.0]], np.float32)
    o, pullback = refimpl.vjp(refimpl.get("poincare_expmap0"), v, c=1.0)
    (g_v,) = pullback(g)
    o64, pullback64 = refimpl.vjp(refimpl.get("poincare_expmap0"), v.astype(np.float64), c=1.0)
    (g_v64,) = pullback64(g.astype(np.float64))
    np.testing.assert_allclose(o, o64, rtol=1e-6)
    np.testing.assert_allclose(g_v, g_v64, rtol=1e-4)
    assert np.all(g_v != 0)  # (1 − v̂v̂ᵀ)ō/u: the radial term is kept


def test_a_shift_beta_whose_squared_norm_overflows_is_refused():
    x = np.array([[0.1, 0.2], [0.3, -0.1]], np.float32)
    beta = np.array([1e30, 1e30], np.float32)
    with pytest.raises(refimpl.InputError, match="argument 'beta'"):
        refimpl.get("poincare_batch_norm")(x, np.asarray(1.0, np.float32), beta)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gaussian_kernel_of_far_away_points_has_a_unit_diagonal(backend):
    Z = rng.standard_normal((5, 3)) * 1e30
    K = refimpl.backend(backend).get("gaussian_kernel_matrix")(Z, sigma=1.0)
    np.testing.assert_array_equal(K, np.eye(5))


def test_a_gaussian_kernel_of_a_shifted_batch_is_the_kernel_of_the_batch():
    # ‖z‖ ~ 1e8 and distances ~ 1: the Gram form of the raw points keeps no digit of D
    Z = rng.standard_normal((6, 4))
    K = refimpl.get("gaussian_kernel_matrix")(Z, sigma=1.0)
    shifted = refimpl.get("gaussian_kernel_matrix")(Z + 1e8, sigma=1.0)
    np.testing.assert_allclose(shifted, K, atol=1e-7)


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_coco_of_tiny_or_huge_float32_kernels_is_homogeneous(scale):
    Z = rng.standard_normal((6, 3))
    K = refimpl.get("gaussian_kernel_matrix")(Z, sigma=1.0).astype(np.float32)
    L = refimpl.get("gaussian_kernel_matrix")(Z[:, :2], sigma=1.0).astype(np.float32)
    coco = refimpl.get("coco")
    base = float(coco(K, L))
    scaled = float(coco(K * np.float32(scale), L))
    assert scaled == pytest.approx(base * np.sqrt(scale), rel=1e-5)
    _, pullback = refimpl.vjp(coco, K * np.float32(scale), L)
    g_K, g_L = pullback(np.asarray(1.0, np.float32))
    _, pullback_base = refimpl.vjp(coco, K, L)
    g_K0, g_L0 = pullback_base(np.asarray(1.0, np.float32))
    # COCO(sK, L) = √s COCO(K, L): ∂/∂K at sK is ∂/∂K at K divided by √s; ∂/∂L times √s
    np.testing.assert_allclose(g_K, g_K0 / np.sqrt(scale), rtol=1e-4)
    np.testing.assert_allclose(g_L, g_L0 * np.sqrt(scale), rtol=1e-4)
