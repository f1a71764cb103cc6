"""The shared building blocks: values against direct formulas, backwards against differences."""

import math

import numpy as np
import pytest

from refimpl import _blocks as b


def _fd_vjp(f, z, g, h=1e-6):
    out = np.zeros_like(z)
    for index in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[index] = h
        out[index] = np.sum(g * (f(z + step) - f(z - step))) / (2 * h)
    return out


def test_logsumexp_matches_the_direct_formula_and_survives_large_logits():
    z = np.array([[0.5, -1.0, 2.0], [1000.0, 1000.0, -1000.0]])
    np.testing.assert_allclose(b.logsumexp(z)[0], np.log(np.exp(z[0]).sum()), rtol=1e-15)
    np.testing.assert_allclose(b.logsumexp(z)[1], 1000.0 + np.log(2.0), rtol=1e-15)
    assert b.logsumexp(np.array([-np.inf, -np.inf])) == -np.inf


def test_softmax_and_log_softmax_backward_match_finite_differences():
    rng = np.random.default_rng(0)
    z, g = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    p = b.softmax(z)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(b.softmax_backward(p, g), _fd_vjp(b.softmax, z, g), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(
        b.log_softmax_backward(p, g), _fd_vjp(b.log_softmax, z, g), rtol=1e-7, atol=1e-10
    )


@pytest.mark.parametrize("u", [-800.0, -30.0, -1.0, 0.0, 1.0, 30.0, 800.0])
def test_softplus_sigmoid_and_log_sigmoid_are_finite_and_exact(u):
    x = np.array(u)
    assert np.isfinite(b.softplus(x)) and np.isfinite(b.log_sigmoid(x))
    if abs(u) < 30:
        np.testing.assert_allclose(b.softplus(x), np.log1p(np.exp(u)), rtol=1e-15)
        np.testing.assert_allclose(b.sigmoid(x), 1 / (1 + np.exp(-u)), rtol=1e-15)
    np.testing.assert_allclose(b.log_sigmoid(x), -b.softplus(-x), rtol=0)


def test_l2_normalize_backward_matches_finite_differences():
    rng = np.random.default_rng(1)
    z, g = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    z_hat, norm = b.l2_normalize(z)
    np.testing.assert_allclose(np.linalg.norm(z_hat, axis=-1), 1.0, rtol=1e-15)
    expected = _fd_vjp(lambda v: b.l2_normalize(v)[0], z, g)
    np.testing.assert_allclose(b.l2_normalize_backward(z_hat, norm, g), expected, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reduce_rows_and_row_weights_are_the_mean_or_sum_and_its_gradient(reduction, dtype):
    per_row = np.array([0.5, 2.0, -1.0, 4.0])
    value = b.reduce_rows(per_row.astype(dtype), reduction, dtype)
    independent = {"mean": sum(per_row) / 4, "sum": sum(per_row), "none": per_row}[reduction]
    assert value.dtype == dtype
    np.testing.assert_allclose(value, independent, rtol=1e-7)
    # ℓ̄_i = ∂L/∂ℓ_i · L̄: by finite differences of the reduction itself
    g = np.array(1.5) if reduction != "none" else np.array([1.0, -2.0, 0.5, 3.0])
    weights = b.row_weights(g.astype(dtype), reduction, 4)
    expected = _fd_vjp(lambda r: b.reduce_rows(r, reduction, np.float64), per_row, g)
    np.testing.assert_allclose(weights, expected, rtol=1e-7)
    assert weights.shape == (4,) and weights.dtype == dtype


def test_reduce_rows_none_copies_its_input():
    per_row = np.ones(3)
    b.reduce_rows(per_row, "none", np.float64)[0] = 5.0
    assert per_row[0] == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1.0, 1e-30, 1e30, 1e-200, 1e200, 0.0])
def test_row_norm_is_the_euclidean_norm_at_every_scale(dtype, scale):
    info = np.finfo(dtype)
    if scale != 0 and not (float(info.tiny) < scale < float(info.max)):
        pytest.skip("not representable in this dtype")
    rows = np.array([[3.0, 4.0, 0.0], [1.0, -1.0, 1.0], [0.0, 0.0, 0.0]]) * scale
    got = b.row_norm(rows.astype(dtype))
    # math.hypot in float64 on the unscaled rows, times the scale: no overflow anywhere
    independent = np.array([[math.hypot(*row) * scale] for row in rows / (scale or 1)])
    assert got.shape == (3, 1) and got.dtype == dtype
    np.testing.assert_allclose(got, independent, rtol=4 * info.eps)
    with_eps = b.row_norm(rows.astype(dtype), eps=1e-6)
    np.testing.assert_allclose(with_eps[2], np.sqrt(1e-6), rtol=info.eps)


@pytest.mark.parametrize("a", [-800.0, -40.0, -5.0, -1e-8, 0.0, 1e-8, 5.0, 40.0, 800.0])
def test_sigmoid_and_slope_match_the_direct_formulas(a):
    alpha, slope = b.sigmoid_and_slope(np.array(a))
    # float64 direct formulas where they are safe; the limits where exp over- or underflows
    direct = 1 / (1 + math.exp(-a)) if a > -700 else 0.0
    direct_slope = math.exp(-abs(a)) / (1 + math.exp(-abs(a))) ** 2
    np.testing.assert_allclose(alpha, direct, rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(slope, direct_slope, rtol=1e-14, atol=0)
    if abs(a) == 40:
        assert slope > 0  # α(1 − α) would round 1 − α to 0 here


def test_softmax_matches_exp_over_sum_and_log_softmax_its_log():
    z = np.array([[0.2, -1.3, 2.5, 0.0], [5.0, 5.0, 5.0, 5.0]])
    direct = np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(b.softmax(z), direct, rtol=1e-15)
    np.testing.assert_allclose(b.log_softmax(z), np.log(direct), rtol=1e-13)
    np.testing.assert_allclose(b.softmax(z + 1000.0), direct, rtol=1e-11)  # z + 1000 rounds z by 1e-13
