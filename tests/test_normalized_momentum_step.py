"""Normalized momentum (BO-REP's upper update): steps of length η along the momentum."""

import numpy as np
import pytest

import refimpl
from refimpl.optim import normalized_momentum_step


def _backend(name):
    if name == "cupy[host]":
        from refimpl_cupy import host_backend

        return host_backend()
    return refimpl.backend(name)


def test_normalized_momentum_step_known_first_step():
    x, g = np.array([1.0, 2.0]), np.array([3.0, -4.0])
    new_x, m = normalized_momentum_step(x, g, np.zeros(2), lr=0.5, eps=0.0)
    np.testing.assert_allclose(m, [0.3, -0.4], rtol=1e-15)  # (1 − 0.9)·g
    np.testing.assert_allclose(new_x, [0.7, 2.4], rtol=1e-15)  # x − 0.5·(0.6, −0.8)


def test_normalized_momentum_step_has_length_lr():
    rng = np.random.default_rng(0)
    for scale in (1e-8, 1.0, 1e8):
        x, g, m = rng.standard_normal(20), rng.standard_normal(20) * scale, rng.standard_normal(20) * scale
        new_x, _ = normalized_momentum_step(x, g, m, lr=0.03, eps=0.0)
        assert abs(np.linalg.norm(new_x - x) - 0.03) < 1e-15
        # with the official guard ε = 1e-10 the length is η·‖m'‖/(‖m'‖ + ε)
        new_x, new_m = normalized_momentum_step(x, g, m, lr=0.03)
        norm = np.linalg.norm(new_m)
        np.testing.assert_allclose(np.linalg.norm(new_x - x), 0.03 * norm / (norm + 1e-10), rtol=1e-13)


def test_normalized_momentum_step_uses_the_updated_momentum():
    new_x, m = normalized_momentum_step(
        np.zeros(2), np.array([0.0, 10.0]), np.array([1.0, 0.0]), lr=1.0, beta=0.5, eps=0.0
    )
    np.testing.assert_array_equal(m, [0.5, 5.0])
    np.testing.assert_allclose(new_x, -m / np.linalg.norm(m), rtol=1e-12)


def test_normalized_momentum_step_matches_the_official_update():
    # official (bo_rep.py): m = β·m + (1 − β)·g; lr_t = η·(1/(1e-10 + ‖m‖)); SGD: x ← x − lr_t·m
    rng = np.random.default_rng(1)
    x, m = rng.standard_normal((3, 4)), np.zeros((3, 4))
    official_x, official_m = x.copy(), m.copy()
    outer_lr, beta = 1e-2, 0.9
    for _ in range(25):
        g = rng.standard_normal((3, 4))
        official_m = beta * official_m + (1 - beta) * g
        momentum_coeff = 1.0 / (1e-10 + np.sqrt(np.sum(official_m**2)))
        official_x = official_x - outer_lr * momentum_coeff * official_m
        x, m = normalized_momentum_step(x, g, m, lr=outer_lr)
    np.testing.assert_allclose(m, official_m, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(x, official_x, rtol=1e-13, atol=1e-15)


def test_normalized_momentum_step_zero_momentum_does_not_move():
    x = np.array([1.0, -2.0])
    for eps in (0.0, 1e-10):
        new_x, m = normalized_momentum_step(x, np.zeros(2), np.zeros(2), lr=0.1, eps=eps)
        np.testing.assert_array_equal(new_x, x)
        np.testing.assert_array_equal(m, 0.0)


def test_normalized_momentum_step_norm_does_not_overflow():
    x = np.array([0.0, 0.0])
    new_x, _ = normalized_momentum_step(x, np.array([3e300, 4e300]), np.zeros(2), lr=1.0, beta=0.0)
    np.testing.assert_allclose(new_x, [-0.6, -0.8], rtol=1e-14)
    new_x, _ = normalized_momentum_step(x, np.array([3e-300, 4e-300]), np.zeros(2), lr=1.0, beta=0.0, eps=0.0)
    np.testing.assert_allclose(new_x, [-0.6, -0.8], rtol=1e-14)


def test_normalized_momentum_on_a_quadratic_bilevel_problem_reaches_the_stationary_point():
    # Φ(x) = ½(x − x*)ᵀ M (x − x*): exact hypergradients, normalized momentum with a decaying η
    rng = np.random.default_rng(2)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    curvature = (q * np.array([0.2, 1.0, 5.0, 50.0])) @ q.T  # large curvature: plain GD would need η < 0.04
    x_star = rng.standard_normal(4)
    x, m = np.zeros(4), np.zeros(4)
    for t in range(2000):
        x, m = normalized_momentum_step(x, curvature @ (x - x_star), m, lr=0.5 / (1 + t) ** 0.75)
    assert np.linalg.norm(x - x_star) < 1e-2


@pytest.mark.parametrize("backend", ["numba", "cupy[host]"])
def test_normalized_momentum_step_backends_agree(backend):
    rng = np.random.default_rng(3)
    impl = _backend(backend).get("normalized_momentum_step")
    for dtype in (np.float32, np.float64):
        args = tuple(rng.standard_normal((6, 5)).astype(dtype) for _ in range(3))
        want_x, want_m = normalized_momentum_step(*args, lr=0.05)
        got_x, got_m = impl(*args, lr=0.05)
        assert got_x.dtype == dtype and got_m.dtype == dtype
        np.testing.assert_array_equal(got_m, want_m)
        np.testing.assert_allclose(got_x, want_x, rtol=4 * np.finfo(dtype).eps)
