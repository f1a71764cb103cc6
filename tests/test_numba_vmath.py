"""The vectorizable exp/expm1/log/log1p of the Numba backend against NumPy's."""

import numpy as np
import pytest

pytest.importorskip("numba")

from numba import njit  # noqa: E402

from refimpl_numba._vmath import exp, exp32, expm1, log, log1p, tanh, vexp  # noqa: E402


@njit
def _apply_exp(x, out):
    for i in range(x.size):
        out[i] = exp(x[i])


@njit
def _apply_expm1(x, out):
    for i in range(x.size):
        out[i] = expm1(x[i])


def _inputs():
    rng = np.random.default_rng(0)
    tiny = np.geomspace(1e-300, 0.5, 20_000)
    return np.concatenate(
        [np.linspace(-760.0, 720.0, 400_001), rng.uniform(-2, 2, 100_000), tiny, -tiny, [0.0, -0.0]]
    )


@pytest.mark.parametrize(("ours", "numpy_fn"), [(_apply_exp, np.exp), (_apply_expm1, np.expm1)])
def test_within_two_ulp_of_numpy_and_same_zeros_and_infinities(ours, numpy_fn):
    x = _inputs()
    out = np.empty_like(x)
    ours(x, out)
    with np.errstate(over="ignore"):
        expected = numpy_fn(x)
    normal = np.isfinite(expected) & (np.abs(expected) > np.finfo(np.float64).tiny)
    ulps = np.abs(out[normal] - expected[normal]) / (np.abs(expected[normal]) * np.finfo(np.float64).eps)
    assert ulps.max() <= 2.0
    # beyond the normal range: the same infinities, and subnormals/zeros within one subnormal step
    assert np.array_equal(np.isinf(out), np.isinf(expected))
    small = ~normal & np.isfinite(expected)
    assert np.abs(out[small] - expected[small]).max() <= 5e-324


def test_infinite_inputs():
    out = np.empty(2)
    _apply_exp(np.array([-np.inf, np.inf]), out)
    assert out[0] == 0.0 and out[1] == np.inf
    _apply_expm1(np.array([-np.inf, np.inf]), out)
    assert out[0] == -1.0 and out[1] == np.inf


@njit
def _apply_vexp(x, out):
    for i in range(x.size):
        out[i] = vexp(x[i])


def test_exp32_within_one_ulp_of_the_correctly_rounded_float32_exp():
    rng = np.random.default_rng(1)
    x = np.concatenate([np.linspace(-104.0, 89.0, 2_000_001), rng.uniform(-3, 3, 200_000)]).astype(np.float32)
    out = np.empty_like(x)
    _apply_vexp(x, out)  # float32 arguments take exp32
    with np.errstate(over="ignore"):
        exact = np.exp(x.astype(np.float64))
        rounded = exact.astype(np.float32)
    normal = np.isfinite(rounded) & (rounded > np.finfo(np.float32).tiny)
    ulps = np.abs(out[normal] - exact[normal]) / np.spacing(rounded[normal]).astype(np.float64)
    assert ulps.max() < 0.6  # measured 0.54
    subnormal = (rounded <= np.finfo(np.float32).tiny) & (x > -103.9)
    assert np.all(np.abs(out[subnormal] - exact[subnormal]) <= np.float32(1.5e-45))


def test_exp32_limits_and_the_dtype_dispatch():
    edges = np.array([-np.inf, -1000.0, -104.0, 0.0, 88.8, 1000.0, np.inf], dtype=np.float32)
    out = np.empty_like(edges)
    _apply_vexp(edges, out)
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0, 1.0, np.inf, np.inf, np.inf])
    assert exp32(np.float32(1.0)) == np.float32(np.e)
    x64 = np.array([-700.0, -1.0, 0.5, 700.0])
    out64 = np.empty_like(x64)
    _apply_vexp(x64, out64)  # float64 arguments keep the float64 exp
    np.testing.assert_allclose(out64, np.exp(x64), rtol=4.5e-16)


@njit
def _apply_log(x, out):
    for i in range(x.size):
        out[i] = log(x[i])


@njit
def _apply_log1p(x, out):
    for i in range(x.size):
        out[i] = log1p(x[i])


def _ulp_error(got, exact):
    """|got − exact| in units of the float64 spacing at ``exact`` (a long-double array)."""
    spacing = np.spacing(np.abs(exact.astype(np.float64))).astype(np.longdouble)
    return np.abs((got.astype(np.longdouble) - exact) / spacing).astype(np.float64)


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 60, reason="needs an extended long double")
def test_log_within_one_ulp_over_the_whole_positive_range_subnormals_included():
    rng = np.random.default_rng(1)
    x = np.concatenate(
        [
            np.exp(rng.uniform(-744.0, 709.0, 200_000)),
            rng.uniform(0.5, 2.0, 200_000),  # around 1, where log's digits are smallest
            10.0 ** rng.uniform(-323.0, -308.0, 20_000),  # subnormal
            [5e-324, 1.0, np.nextafter(1.0, 2.0), np.nextafter(1.0, 0.0), np.finfo(np.float64).max],
        ]
    )
    out = np.empty_like(x)
    _apply_log(x, out)
    assert _ulp_error(out, np.log(x.astype(np.longdouble))).max() < 1.0
    assert out[x == 1.0][0] == 0.0


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 60, reason="needs an extended long double")
def test_log1p_within_two_ulp_and_exact_where_one_plus_x_rounds_to_one():
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            rng.uniform(-0.999, 1.0, 200_000),
            10.0 ** rng.uniform(-300.0, 0.0, 100_000),
            -(10.0 ** rng.uniform(-300.0, 0.0, 100_000)) * 0.999999,
            10.0 ** rng.uniform(0.0, 308.0, 100_000),
        ]
    )
    out = np.empty_like(x)
    _apply_log1p(x, out)
    assert _ulp_error(out, np.log1p(x.astype(np.longdouble))).max() < 2.0
    tiny = np.array([1e-17, -1e-17, 1e-300, 5e-324])
    out = np.empty_like(tiny)
    _apply_log1p(tiny, out)
    np.testing.assert_array_equal(out, tiny)


def test_log_and_log1p_special_values():
    x = np.array([0.0, np.inf, -1.0, np.nan])
    out = np.empty_like(x)
    _apply_log(x, out)
    assert out[0] == -np.inf and out[1] == np.inf and np.isnan(out[2]) and np.isnan(out[3])
    y = np.array([0.0, np.inf, -1.0])
    out = np.empty_like(y)
    _apply_log1p(y, out)
    assert out[0] == 0.0 and out[1] == np.inf and out[2] == -np.inf


@njit
def _apply_tanh(x, out):
    for i in range(x.size):
        out[i] = tanh(x[i])


def test_tanh_within_three_ulp_odd_and_saturating():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-25.0, 25.0, 200_000), 10.0 ** rng.uniform(-300.0, 0.0, 100_000)])
    x = np.concatenate([x, -x, [0.0, 19.0, 20.0, 700.0, np.inf, -np.inf]])
    out = np.empty_like(x)
    _apply_tanh(x, out)
    expected = np.tanh(x)
    finite = expected != 0
    spacing = np.spacing(np.abs(expected[finite]))
    assert (np.abs(out[finite] - expected[finite]) / spacing).max() <= 3.0
    assert out[x == 0.0][0] == 0.0
    np.testing.assert_array_equal(out[np.abs(x) >= 20.0], np.sign(x[np.abs(x) >= 20.0]))
