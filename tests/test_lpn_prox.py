"""lpn_prox: the gradient of lpn_potential, a symmetric PSD Jacobian, monotone, and its VJP."""

import math

import numpy as np

import refimpl
from refimpl.layers import lpn_potential, lpn_prox
from refimpl_conformance.cases.layers.lpn import lpn_network


def _network(seed, B=4, D=3, H=5, L=3, nonnegative=True):
    return lpn_network(np.random.default_rng(seed), B, D, H, L, nonnegative=nonnegative)


def test_lpn_prox_equals_the_finite_difference_gradient_of_the_potential():
    y, A, b, W, w = _network(0, nonnegative=False)
    kwargs = {"alpha": 0.3, "beta": 2.0}
    f = lpn_prox(y, A, b, W, w, **kwargs)
    h = 1e-6
    for k in range(y.shape[1]):
        step = np.zeros_like(y)
        step[:, k] = h
        fd = (
            lpn_potential(y + step, A, b, W, w, **kwargs) - lpn_potential(y - step, A, b, W, w, **kwargs)
        ) / (2 * h)
        np.testing.assert_allclose(f[:, k], fd, rtol=1e-8, atol=1e-9)


def test_lpn_prox_one_unit_by_hand():
    f = lpn_prox(
        np.array([[2.0]]), np.ones((1, 1, 1)), np.zeros((1, 1)), np.zeros((0, 1, 1)), np.ones(1), alpha=0.25
    )
    np.testing.assert_allclose(f, [[1 / (1 + math.exp(-2.0)) + 1.0]], rtol=1e-15)


def _jacobian(y_row, A, b, W, w, **kwargs):
    """∂f/∂y of one row, from the op's VJP against unit cotangents (row i = e_iᵀ J)."""
    _, pullback = refimpl.vjp(lpn_prox, y_row[None], A, b, W, w, **kwargs)
    D = y_row.shape[0]
    return np.stack([pullback(np.eye(D)[i][None])[0][0] for i in range(D)])


def test_lpn_prox_jacobian_is_symmetric_positive_semidefinite_for_nonnegative_weights():
    y, A, b, W, w = _network(1, B=6, D=4, H=6)
    for row in y:
        J = _jacobian(row, A, b, W, w, beta=1.5)
        np.testing.assert_allclose(J, J.T, atol=1e-13)
        assert np.linalg.eigvalsh((J + J.T) / 2).min() > -1e-12
        # with α the Hessian shifts by exactly 2α I
        np.testing.assert_allclose(
            _jacobian(row, A, b, W, w, beta=1.5, alpha=0.4), J + 0.8 * np.eye(4), atol=1e-13
        )


def test_lpn_prox_jacobian_matches_central_differences_of_f():
    y, A, b, W, w = _network(2, B=1, D=3, nonnegative=False)
    J = _jacobian(y[0], A, b, W, w, beta=0.7)
    h = 1e-6
    for k in range(3):
        step = np.zeros_like(y)
        step[0, k] = h
        column = (lpn_prox(y + step, A, b, W, w, beta=0.7) - lpn_prox(y - step, A, b, W, w, beta=0.7))[0] / (
            2 * h
        )
        np.testing.assert_allclose(J[:, k], column, rtol=1e-7, atol=1e-9)


def test_lpn_prox_is_monotone():
    rng = np.random.default_rng(3)
    _, A, b, W, w = _network(3, D=5, H=8)
    y1, y2 = rng.standard_normal((50, 5)) * 2, rng.standard_normal((50, 5)) * 2
    gap = np.sum((lpn_prox(y1, A, b, W, w) - lpn_prox(y2, A, b, W, w)) * (y1 - y2), axis=1)
    assert gap.min() >= 0.0


def test_lpn_prox_parameter_vjp_matches_central_differences():
    args = _network(4, nonnegative=False)
    kwargs = {"alpha": 0.1, "beta": 1.3}
    v = np.random.default_rng(5).standard_normal(args[0].shape)
    _, pullback = refimpl.vjp(lpn_prox, *args, **kwargs)
    grads = pullback(v)
    h = 1e-6
    for index, (arg, grad) in enumerate(zip(args, grads, strict=True)):
        direction = np.random.default_rng(20 + index).standard_normal(arg.shape)
        plus, minus = list(args), list(args)
        plus[index], minus[index] = arg + h * direction, arg - h * direction
        fd = np.sum((lpn_prox(*plus, **kwargs) - lpn_prox(*minus, **kwargs)) * v) / (2 * h)
        np.testing.assert_allclose(np.sum(grad * direction), fd, rtol=1e-7, atol=1e-9)
