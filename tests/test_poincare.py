"""Poincaré ball: Möbius addition and the maps at the origin — gyrogroup laws, inverses,
Euclidean limits, the boundary and the origin, bad input, on every backend."""

from fractions import Fraction

import numpy as np
import pytest

import refimpl
from refimpl.layers import mobius_add, poincare_expmap0, poincare_logmap0
from refimpl.layers.poincare import SERIES_BELOW, expmap0_factors, logmap0_factors

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        return refimpl.backend("cupy").host_variant()
    return refimpl.backend(name)


def _ball_points(rng, shape, c=1.0, low=0.0, high=0.95):
    """Random directions at radius fractions uniform in [low, high] of 1/√c."""
    d = rng.standard_normal(shape)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    return d * rng.uniform(low, high, shape[:-1] + (1,)) / np.sqrt(c)


def _textbook_mobius_add(x, y, c):
    xy = np.sum(x * y, axis=-1, keepdims=True)
    x2 = np.sum(x * x, axis=-1, keepdims=True)
    y2 = np.sum(y * y, axis=-1, keepdims=True)
    return ((1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y) / (1 + 2 * c * xy + c**2 * x2 * y2)


# -- Möbius addition: known values and the gyrogroup laws --------------------------------
def test_mobius_add_on_a_line_is_relativistic_velocity_addition():
    x = np.array([[0.5], [0.9], [-0.3], [0.2]])
    y = np.array([[0.5], [-0.9], [0.6], [0.7]])
    for c in (1.0, 0.5):
        np.testing.assert_allclose(mobius_add(x, y, c=c), (x + y) / (1 + c * x * y), rtol=1e-15, atol=1e-16)
    assert mobius_add(np.array([0.5]), np.array([0.5]))[0] == 0.8


@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
def test_mobius_add_stable_form_equals_the_textbook_formula_away_from_the_boundary(c):
    rng = np.random.default_rng(0)
    x, y = _ball_points(rng, (20, 5), c), _ball_points(rng, (20, 5), c)
    np.testing.assert_allclose(mobius_add(x, y, c=c), _textbook_mobius_add(x, y, c), rtol=1e-12, atol=1e-14)


def test_mobius_add_backward_equals_the_catalog_vjp_away_from_the_boundary():
    rng = np.random.default_rng(12)
    c = 1.3
    x, y, g_o = _ball_points(rng, (7, 4), c), _ball_points(rng, (7, 4), c), rng.standard_normal((7, 4))

    def dot(a, b):
        return np.sum(a * b, axis=-1, keepdims=True)

    alpha, beta = 1 + 2 * c * dot(x, y) + c * dot(y, y), 1 - c * dot(x, x)
    denominator = 1 + 2 * c * dot(x, y) + c**2 * dot(x, x) * dot(y, y)
    o = (alpha * x + beta * y) / denominator
    g, d_bar = g_o / denominator, -dot(g_o, o) / denominator
    s_x, s_y = dot(g, x), dot(g, y)
    g_x = alpha * g + 2 * c * s_x * y - 2 * c * s_y * x + d_bar * (2 * c * y + 2 * c**2 * dot(y, y) * x)
    g_y = beta * g + 2 * c * s_x * (x + y) + d_bar * (2 * c * x + 2 * c**2 * dot(x, x) * y)
    _, pullback = refimpl.vjp(mobius_add, x, y, c=c)
    ours_x, ours_y = pullback(g_o)
    np.testing.assert_allclose(ours_x, g_x, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ours_y, g_y, rtol=1e-12, atol=1e-13)


def test_zero_is_the_identity_of_mobius_add():
    rng = np.random.default_rng(1)
    x = _ball_points(rng, (6, 4), 2.0)
    zero = np.zeros_like(x)
    # exact up to an ulp: the stable form divides (β_x + q)·x by β_x + q
    np.testing.assert_allclose(mobius_add(x, zero, c=2.0), x, rtol=1e-15, atol=0)
    np.testing.assert_allclose(mobius_add(zero, x, c=2.0), x, rtol=1e-15, atol=0)


def test_minus_x_is_the_inverse_of_x_exactly_even_at_the_boundary():
    rng = np.random.default_rng(2)
    x = _ball_points(rng, (5, 4), low=0.5, high=1 - 1e-7)
    x[0] *= (1 - 1e-7) / np.linalg.norm(x[0])
    np.testing.assert_array_equal(mobius_add(-x, x), 0.0)
    np.testing.assert_array_equal(mobius_add(x, -x), 0.0)


@pytest.mark.parametrize("c", [0.3, 1.0, 4.0])
def test_mobius_add_left_cancellation(c):
    rng = np.random.default_rng(3)
    x, y = _ball_points(rng, (10, 3), c), _ball_points(rng, (10, 3), c)
    np.testing.assert_allclose(mobius_add(-x, mobius_add(x, y, c=c), c=c), y, rtol=1e-12, atol=1e-13)


def test_mobius_add_is_gyrocommutative_in_norm_and_keeps_the_conformal_identity():
    # x ⊕ y = gyr[x, y](y ⊕ x) with gyr a rotation, so the norms agree; and
    # 1 − c‖x ⊕ y‖² = (1 − c‖x‖²)(1 − c‖y‖²)/D
    rng = np.random.default_rng(4)
    c = 1.7
    x, y = _ball_points(rng, (8, 5), c), _ball_points(rng, (8, 5), c)
    o = mobius_add(x, y, c=c)
    np.testing.assert_allclose(np.linalg.norm(o, axis=-1), np.linalg.norm(mobius_add(y, x, c=c), axis=-1))
    x2, y2 = np.sum(x * x, -1), np.sum(y * y, -1)
    denominator = 1 + 2 * c * np.sum(x * y, -1) + c**2 * x2 * y2
    np.testing.assert_allclose(
        1 - c * np.sum(o * o, -1), (1 - c * x2) * (1 - c * y2) / denominator, rtol=1e-13
    )


def test_mobius_add_tends_to_vector_addition_as_c_tends_to_zero():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    for c in (1e-4, 1e-8):
        gap = np.abs(mobius_add(x, y, c=c) - (x + y)).max()
        assert gap < 50 * c  # first order in c
    np.testing.assert_allclose(mobius_add(x, y, c=1e-12), x + y, rtol=1e-10)


# -- exp_0 and log_0 -----------------------------------------------------------------
def test_expmap0_and_logmap0_on_a_line_are_tanh_and_artanh():
    c = 2.0
    v = np.array([[-2.0], [0.0], [0.3]])
    np.testing.assert_allclose(poincare_expmap0(v, c=c), np.tanh(np.sqrt(c) * v) / np.sqrt(c), rtol=1e-15)
    y = np.array([[-0.6], [0.0], [0.3]])
    np.testing.assert_allclose(poincare_logmap0(y, c=c), np.arctanh(np.sqrt(c) * y) / np.sqrt(c), rtol=1e-14)
    np.testing.assert_allclose(poincare_logmap0(np.array([0.6, 0.0])), [np.log(2.0), 0.0], rtol=1e-15)


@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
def test_logmap0_inverts_expmap0_and_back(c):
    rng = np.random.default_rng(6)
    # tangent norms from 1e-6 (series) to 3 (tanh still below 1) in units of 1/√c
    v = rng.standard_normal((12, 4))
    v *= (10 ** rng.uniform(-6, np.log10(3), (12, 1))) / (
        np.sqrt(c) * np.linalg.norm(v, axis=-1, keepdims=True)
    )
    np.testing.assert_allclose(poincare_logmap0(poincare_expmap0(v, c=c), c=c), v, rtol=1e-11, atol=0)
    y = _ball_points(rng, (12, 4), c, low=0.0, high=1 - 1e-7)
    np.testing.assert_allclose(poincare_expmap0(poincare_logmap0(y, c=c), c=c), y, rtol=1e-13, atol=0)


def test_expmap0_and_logmap0_tend_to_the_identity_as_c_tends_to_zero():
    rng = np.random.default_rng(7)
    v = rng.standard_normal((4, 3))
    np.testing.assert_allclose(poincare_expmap0(v, c=1e-12), v, rtol=1e-11)
    np.testing.assert_allclose(poincare_logmap0(v, c=1e-12), v, rtol=1e-11)


@pytest.mark.parametrize("backend", BACKENDS)
def test_results_stay_inside_the_ball(backend):
    rng = np.random.default_rng(8)
    be = _backend(backend)
    c = 3.0
    x, y = _ball_points(rng, (50, 6), c, high=0.999), _ball_points(rng, (50, 6), c, high=0.999)
    o = refimpl.vjp("mobius_add", x, y, c=c, backend=be)[0]
    assert np.all(c * np.sum(o * o, axis=-1) < 1)
    v = rng.standard_normal((50, 6))  # √c‖v‖ up to ~8: tanh still below 1 in float64
    e = refimpl.vjp("poincare_expmap0", v, c=c, backend=be)[0]
    assert np.all(c * np.sum(e * e, axis=-1) < 1)


def test_expmap0_of_a_huge_vector_rounds_onto_the_boundary_with_finite_gradient():
    v = np.array([[30.0, 40.0]])  # u = 50: tanh(u) = 1 in float64
    o, pullback = refimpl.vjp(poincare_expmap0, v)
    np.testing.assert_allclose(o, [[0.6, 0.8]], rtol=1e-15)
    (g_v,) = pullback(np.array([[1.0, -1.0]]))
    # f ō + h ⟨ō, v⟩ v with f = 1/50, h ≈ −f/u²: the radial part cancels, the tangential stays
    np.testing.assert_allclose(g_v, [[0.0224, -0.0168]], rtol=1e-12)


# -- the origin: series, identity Jacobian -------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op_name", ["poincare_expmap0", "poincare_logmap0"])
def test_map_at_zero_gives_zero_and_the_identity_jacobian(backend, op_name):
    n = 3
    for dtype in (np.float64, np.float32):
        zero = np.zeros((n, n), dtype)  # one row per basis cotangent
        out, pullback = refimpl.vjp(op_name, zero, c=1.7, backend=_backend(backend))
        np.testing.assert_array_equal(out, 0.0)
        (jacobian,) = pullback(np.eye(n, dtype=dtype))
        assert jacobian.dtype == dtype
        np.testing.assert_array_equal(jacobian, np.eye(n))


def test_expmap0_and_logmap0_factors_are_continuous_across_the_series_switch():
    below = np.nextafter(SERIES_BELOW, 0.0)
    u2 = np.array([below**2, SERIES_BELOW**2 * (1 + 1e-12)])
    for factors in (expmap0_factors, logmap0_factors):
        f, h = factors(u2)
        assert abs(f[0] - f[1]) < 1e-15
        assert abs(h[0] - h[1]) < 1e-9  # the direct h loses ~6 digits here; it is weighted by u²


def test_tiny_vectors_whose_squared_norm_underflows_map_to_themselves():
    v = np.array([[1e-200, -3e-200]])
    np.testing.assert_array_equal(poincare_expmap0(v), v)
    np.testing.assert_array_equal(poincare_logmap0(v), v)


# -- the boundary ----------------------------------------------------------------------
def _boundary_points(rng, shape, c):
    d = rng.standard_normal(shape)
    return d / np.linalg.norm(d, axis=-1, keepdims=True) * (1 - 1e-7) / np.sqrt(c)


@pytest.mark.parametrize("backend", BACKENDS)
def test_points_at_one_minus_1e7_of_the_radius_give_finite_outputs_and_gradients(backend):
    rng = np.random.default_rng(9)
    be = _backend(backend)
    c = 2.0
    x = _boundary_points(rng, (4, 3), c)
    y = np.concatenate([_boundary_points(rng, (2, 3), c), -x[2:]])  # two generic, two antipodal
    g = rng.standard_normal(x.shape)
    o, pullback = refimpl.vjp("mobius_add", x, y, c=c, backend=be)
    g_x, g_y = pullback(g)
    v, pullback = refimpl.vjp("poincare_logmap0", x, c=c, backend=be)
    (g_log,) = pullback(g)
    e, pullback = refimpl.vjp("poincare_expmap0", v, c=c, backend=be)
    (g_exp,) = pullback(g)
    for array in (o, g_x, g_y, v, g_log, e, g_exp):
        assert np.all(np.isfinite(array))
    np.testing.assert_array_equal(o[2:], 0.0)
    assert np.all(c * np.sum(o * o, axis=-1) < 1)
    # ‖log_0(x)‖ = artanh(1 − 1e-7)/√c, and the radial gradient is ~1/(1 − c‖x‖²) ≈ 5e6
    np.testing.assert_allclose(np.linalg.norm(v, axis=-1), np.arctanh(1 - 1e-7) / np.sqrt(c), rtol=1e-8)
    assert np.abs(g_log).max() > 1e5
    np.testing.assert_allclose(e, x, rtol=1e-9)


def _exact_mobius_add(x, y, c):
    """The textbook formula in exact rational arithmetic on the given float64 numbers."""
    x, y, c = [Fraction(float(a)) for a in x], [Fraction(float(b)) for b in y], Fraction(c)
    xy = sum(a * b for a, b in zip(x, y))
    x2, y2 = sum(a * a for a in x), sum(b * b for b in y)
    alpha, beta = 1 + 2 * c * xy + c * y2, 1 - c * x2
    denominator = 1 + 2 * c * xy + c * c * x2 * y2
    return np.array([float((alpha * a + beta * b) / denominator) for a, b in zip(x, y)])


def test_nearly_antipodal_boundary_points_keep_their_digits():
    # y rotated 1e-6 away from −x, both at 1 − 1e-7 of the radius: D ≈ 1e-12 comes out of
    # terms of size 1, so the textbook formula in float64 keeps ~4 digits (3e-5 here); the
    # stable form matches exact rational arithmetic to 7e-12, within the ~1e-9 that rounding
    # the inputs' squared norms allows (1 − c‖x‖² ≈ 2e-7)
    x = np.array([1 - 1e-7, 0.0])
    y = -(1 - 1e-7) * np.array([np.cos(1e-6), np.sin(1e-6)])
    exact = _exact_mobius_add(x, y, 1.0)
    np.testing.assert_allclose(mobius_add(x, y), exact, rtol=1e-9)
    textbook_error = np.abs(_textbook_mobius_add(x, y, 1.0) - exact).max() / np.abs(exact).max()
    assert textbook_error > 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_point_an_ulp_inside_gives_finite_results_even_where_float64_says_outside(backend):
    # float32 sums give c‖y‖² = 1 − 2⁻²⁴ (accepted); the exact value is 1 + 1.05e-8. A
    # backend that sums in float64 must not take log(1 − c‖y‖² ≤ 0) or divide by D ≤ 0.
    y = np.array(
        [[0.3624352812767029, 0.019014088436961174, 0.7761486172676086, 0.07307203859090805,
          -0.2454327493906021, -0.14634762704372406, -0.42293980717658997]],
        np.float32,
    )  # fmt: skip
    assert np.sum(y * y) < 1 <= np.sum(y.astype(np.float64) ** 2)
    be = _backend(backend)
    g = np.ones_like(y)
    v, pullback = refimpl.vjp("poincare_logmap0", y, backend=be)
    outputs = [v, *pullback(g)]
    o, pullback = refimpl.vjp("mobius_add", y, -0.5 * y, backend=be)
    outputs += [o, *pullback(g)]
    for array in outputs:
        assert array.dtype == np.float32 and np.all(np.isfinite(array))


# -- dtypes and bad input ---------------------------------------------------------------
def test_float32_stays_float32_and_close_to_float64():
    rng = np.random.default_rng(10)
    x, y = _ball_points(rng, (6, 5)), _ball_points(rng, (6, 5))
    for op, args in ((mobius_add, (x, y)), (poincare_expmap0, (3 * x,)), (poincare_logmap0, (x,))):
        out32 = op(*(a.astype(np.float32) for a in args))
        assert out32.dtype == np.float32
        assert op(*(a.astype(np.float32) for a in args), c=np.float64(0.5)).dtype == np.float32
        np.testing.assert_allclose(
            out32, op(*(a.astype(np.float32).astype(np.float64) for a in args)), atol=1e-5
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_points_outside_the_ball_raise_input_error_naming_op_and_argument(backend):
    be = _backend(backend)
    inside = np.array([[0.1, 0.2], [0.0, 0.3]])
    outside = np.array([[0.1, 0.2], [0.9, 0.6]])
    with pytest.raises(
        refimpl.InputError, match=r"^mobius_add: argument 'y': .*inside the Poincaré ball.*in row 1"
    ):
        be.get("mobius_add")(inside, outside)
    with pytest.raises(refimpl.InputError, match=r"^mobius_add: argument 'x': .*1/√c = 0\.5"):
        be.get("mobius_add")(np.array([[0.6, 0.0]]), np.array([[0.0, 0.0]]), c=4.0)
    with pytest.raises(refimpl.InputError, match=r"^poincare_logmap0: argument 'y': .*c‖y‖² = 1\.0"):
        be.get("poincare_logmap0")(np.array([[0.0, 1.0]]))
    with pytest.raises(refimpl.InputError, match=r"^poincare_logmap0: argument 'y': .*nan"):
        be.get("poincare_logmap0")(np.array([[np.nan, 0.0]]))


@pytest.mark.parametrize("c", [0.0, -1.0, float("inf"), float("nan")])
def test_non_positive_or_non_finite_curvature_raises_input_error(c):
    x = np.array([[0.1, 0.2]])
    for name, args in (("mobius_add", (x, x)), ("poincare_expmap0", (x,)), ("poincare_logmap0", (x,))):
        with pytest.raises(refimpl.InputError, match=rf"^{name}: argument 'c'"):
            refimpl.get(name)(*args, c=c)


def test_mismatched_shapes_raise_input_error():
    x = np.zeros((2, 3))
    with pytest.raises(refimpl.InputError, match=r"^mobius_add: argument 'y': .*n = 3"):
        mobius_add(x, np.zeros((2, 4)))
    with pytest.raises(refimpl.InputError, match=r"^mobius_add: argument 'y': .*nothing is broadcast"):
        mobius_add(x, np.zeros(3))
    with pytest.raises(refimpl.InputError, match=r"^mobius_add: argument 'y': .*nothing is cast"):
        mobius_add(x, np.zeros((2, 3), np.float32))
