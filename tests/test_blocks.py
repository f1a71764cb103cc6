"""The shared building blocks: values against direct formulas, backwards against differences."""

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
