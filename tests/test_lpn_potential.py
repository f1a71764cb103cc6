"""lpn_potential: hand values, convexity along lines, the VJP, and the official LPN.scalar."""

import math

import numpy as np

import refimpl
from refimpl.layers import lpn_potential
from refimpl_conformance.cases.layers.lpn import lpn_network


def _network(seed, B=4, D=3, H=5, L=3, nonnegative=True):
    return lpn_network(np.random.default_rng(seed), B, D, H, L, nonnegative=nonnegative)


def test_lpn_potential_two_unit_chain_by_hand():
    zero = np.zeros((1, 1))
    psi = lpn_potential(zero, np.array([[[1.0]], [[0.0]]]), np.zeros((2, 1)), np.ones((1, 1, 1)), np.ones(1))
    # z1 = softplus(0) = log 2, z2 = softplus(log 2) = log(1 + 2)
    np.testing.assert_allclose(psi, [math.log(3.0)], rtol=1e-15)


def test_lpn_potential_sharpness_and_strong_convexity_terms():
    y = np.array([[1.5, -0.5]])
    A = np.array([[[1.0, 1.0]]])
    psi = lpn_potential(y, A, np.zeros((1, 1)), np.zeros((0, 1, 1)), np.array([2.0]), alpha=0.3, beta=4.0)
    expected = 2.0 * math.log1p(math.exp(4.0 * 1.0)) / 4.0 + 0.3 * (1.5**2 + 0.5**2)
    np.testing.assert_allclose(psi, [expected], rtol=1e-14)


def test_lpn_potential_is_convex_along_random_lines():
    y, A, b, W, w = _network(0, B=1, D=4)
    rng = np.random.default_rng(1)
    ts = np.linspace(-3, 3, 61)
    for _ in range(5):
        direction = rng.standard_normal(4)
        values = lpn_potential(y + ts[:, None] * direction, A, b, W, w, beta=2.0)
        second_differences = values[:-2] - 2 * values[1:-1] + values[2:]
        assert second_differences.min() > -1e-12
    # with a negative hidden weight ψ = σ(5 − σ(y)) ≈ 5 − softplus(y) is concave: W ≥ 0 matters
    line = np.linspace(-3, 3, 61)[:, None]
    A1, b1, W1 = np.array([[[1.0]], [[0.0]]]), np.array([[0.0], [5.0]]), -np.ones((1, 1, 1))
    values = lpn_potential(line, A1, b1, W1, np.ones(1))
    assert (values[:-2] - 2 * values[1:-1] + values[2:]).min() < -1e-4


def test_lpn_potential_vjp_matches_central_differences():
    args = _network(2, nonnegative=False)
    g = np.random.default_rng(3).standard_normal(args[0].shape[0])
    _, pullback = refimpl.vjp(lpn_potential, *args, alpha=0.2, beta=1.5)
    grads = pullback(g)
    for index, (arg, grad) in enumerate(zip(args, grads, strict=True)):
        direction = np.random.default_rng(10 + index).standard_normal(arg.shape)
        h = 1e-6
        plus = list(args)
        minus = list(args)
        plus[index], minus[index] = arg + h * direction, arg - h * direction
        fd = (
            (lpn_potential(*plus, alpha=0.2, beta=1.5) - lpn_potential(*minus, alpha=0.2, beta=1.5))
            @ g
            / (2 * h)
        )
        np.testing.assert_allclose(np.sum(grad * direction), fd, rtol=1e-7, atol=1e-9)


def _official_scalar(x, first, cores, res_weights, res_biases, last, last_res_w, last_res_b, beta):
    """NumPy transcription of the official 1-D ``LPN.scalar`` (exps/laplacian/network.py) with
    torch's ``Softplus(beta)`` (threshold 20: the identity where βx > 20)."""

    def act(u):
        return np.where(beta * u > 20, u, np.log1p(np.exp(np.minimum(beta * u, 20))) / beta)

    y = act(x @ first.T)
    for core, rw, rb in zip(cores, res_weights, res_biases, strict=True):
        y = act(y @ core.T + x @ rw.T + rb)
    return (y @ last.T + x @ last_res_w.T + last_res_b)[:, 0]


def test_lpn_potential_matches_the_official_network_without_its_affine_output_term():
    rng = np.random.default_rng(4)
    D, H, layers = 3, 6, 2
    x = rng.standard_normal((5, D))
    first = rng.standard_normal((H, D))
    cores = [np.exp(rng.normal(-1, 0.1, (H, H))) for _ in range(layers)]  # official init_weights
    res_w = [rng.standard_normal((H, D)) for _ in range(layers)]
    res_b = [rng.standard_normal(H) for _ in range(layers)]
    last = np.exp(rng.normal(-1, 0.1, (1, H)))
    official = _official_scalar(x, first, cores, res_w, res_b, last, np.zeros((1, D)), np.zeros(1), 1.0)
    A = np.stack([first, *res_w])
    b = np.stack([np.zeros(H), *res_b])
    ours = lpn_potential(x, A, b, np.stack(cores), last[0])
    np.testing.assert_allclose(ours, official, rtol=1e-12)
