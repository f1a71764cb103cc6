"""DSEE adapted linear layer: hand-computed values and gradients, the support, the scale on both branches."""

import numpy as np
import pytest

import refimpl
from refimpl.adapters import dsee_linear, lora_linear

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _layer(seed=0, rows=5, sizes=(6, 4, 3), density=0.3):
    in_features, out_features, rank = sizes
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((rows, in_features)),
        rng.standard_normal((out_features, in_features)),
        rng.standard_normal((rank, in_features)),
        rng.standard_normal((out_features, rank)),
        rng.standard_normal((out_features, in_features)),
        rng.random((out_features, in_features)) < density,
        rng.standard_normal(out_features),
    )


def _official_forward(x, W, A, B, S, mask, bias, scale):
    """BertSelfAttention (DSEE): query(h) + lora_b(lora_a(h))·s + query_lora_s(h)·s, with the pruned
    weight = weight_orig·weight_mask."""
    return x @ W.T + bias + (x @ A.T) @ B.T * scale + x @ (S * mask).T * scale


@pytest.mark.parametrize("backend", BACKENDS)
def test_dsee_linear_hand_computed_values_and_gradients(backend):
    # y = x + 2·(x Aᵀ Bᵀ + x (S⊙Ω)ᵀ) = [1, 2] + 2·([0, 1] + [3, 0]) = [7, 4]
    # G = [1, -1]: G B = [-1], Ā = 2·(G B)ᵀ x = [[-2, -4]], B̄ = 2·Gᵀ(x Aᵀ) = [[2], [-2]]
    # S̄ = 2·(Gᵀ x) ⊙ Ω = [[2, 0], [0, 0]]; x̄ = G W_eff + 2·(G B) A = [7, -1] + [-2, 0]
    x, W = np.array([[1.0, 2.0]]), np.eye(2)
    A, B = np.array([[1.0, 0.0]]), np.array([[0.0], [1.0]])
    S, mask = np.array([[3.0, 5.0], [0.0, 0.0]]), np.array([[True, False], [False, False]])
    y, pullback = refimpl.vjp("dsee_linear", x, W, A, B, S, mask, scale=2.0, backend=_backend(backend))
    np.testing.assert_allclose(y, [[7.0, 4.0]], rtol=1e-15)
    g_x, g_A, g_B, g_S = pullback(np.array([[1.0, -1.0]]))
    np.testing.assert_allclose(g_A, [[-2.0, -4.0]], rtol=1e-15)
    np.testing.assert_allclose(g_B, [[2.0], [-2.0]], rtol=1e-15)
    np.testing.assert_allclose(g_S, [[2.0, 0.0], [0.0, 0.0]], rtol=1e-15)
    np.testing.assert_allclose(g_x, [[5.0, -1.0]], rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dsee_linear_matches_the_official_forward_with_both_branches_scaled(backend):
    x, W, A, B, S, mask, bias = _layer(1)
    y, _ = refimpl.vjp("dsee_linear", x, W, A, B, S, mask, bias, scale=8.0, backend=_backend(backend))
    np.testing.assert_allclose(y, _official_forward(x, W, A, B, S, mask, bias, 8.0), rtol=1e-13)
    # a sparse branch left unscaled would differ by 7·x (S⊙Ω)ᵀ
    assert not np.allclose(y, _official_forward(x, W, A, B, S, mask, bias, 8.0) - 7 * x @ (S * mask).T)


def test_dsee_linear_at_init_is_lora_but_the_sparse_gradient_is_not_zero():
    x, W, A, B, S, mask, bias = _layer(2)
    zero = np.zeros_like(S)
    y, pullback = refimpl.vjp("dsee_linear", x, W, A, B, zero, mask, bias, scale=4.0)
    np.testing.assert_allclose(y, lora_linear(x, W, A, B, bias, scale=4.0), rtol=1e-14)
    G = np.random.default_rng(3).standard_normal(y.shape)
    g_S = pullback(G)[3]
    np.testing.assert_allclose(g_S, 4.0 * (G.T @ x) * mask, rtol=1e-14)
    assert np.count_nonzero(g_S) == np.count_nonzero(mask)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dsee_linear_ignores_s_off_the_support_and_its_gradient_stays_on_it(backend):
    x, W, A, B, S, mask, bias = _layer(4)
    S_off = S + np.where(mask, 0.0, 100.0)  # change S only off Ω
    run = _backend(backend)
    y, pullback = refimpl.vjp("dsee_linear", x, W, A, B, S, mask, bias, scale=2.0, backend=run)
    y_off, _ = refimpl.vjp("dsee_linear", x, W, A, B, S_off, mask, bias, scale=2.0, backend=run)
    np.testing.assert_allclose(y_off, y, rtol=1e-12, atol=1e-12)
    g_S = pullback(np.ones_like(y))[3]
    assert np.all(g_S[~mask] == 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dsee_linear_vjp_matches_finite_differences(backend):
    x, W, A, B, S, mask, bias = _layer(5, rows=3, sizes=(4, 3, 2), density=0.5)
    G = np.random.default_rng(6).standard_normal((3, 3))
    _, pullback = refimpl.vjp("dsee_linear", x, W, A, B, S, mask, bias, scale=1.5, backend=_backend(backend))
    grads = pullback(G)
    args = {"x": x, "A": A, "B": B, "S": S}
    step = 1e-6
    for (name, value), grad in zip(args.items(), grads, strict=True):
        for position in np.ndindex(value.shape):
            plus, minus = dict(args), dict(args)
            plus[name] = value.copy()
            minus[name] = value.copy()
            plus[name][position] += step
            minus[name][position] -= step
            f_plus = _official_forward(plus["x"], W, plus["A"], plus["B"], plus["S"], mask, bias, 1.5)
            f_minus = _official_forward(minus["x"], W, minus["A"], minus["B"], minus["S"], mask, bias, 1.5)
            difference = np.sum((f_plus - f_minus) * G) / (2 * step)
            assert np.isclose(grad[position], difference, rtol=1e-7, atol=1e-8), (name, position)


def test_dsee_linear_equals_the_merged_weight():
    # merging for inference: W' = W + s·(B A + S ⊙ Ω), y = x W'ᵀ + b
    x, W, A, B, S, mask, bias = _layer(7, rows=6)
    merged = W + 3.0 * (B @ A + S * mask)
    np.testing.assert_allclose(
        dsee_linear(x, W, A, B, S, mask, bias, scale=3.0), x @ merged.T + bias, rtol=1e-13
    )


def test_dsee_linear_batch_dimensions_are_rows():
    x, W, A, B, S, mask, bias = _layer(8, rows=6)
    batched = dsee_linear(x.reshape(2, 3, -1), W, A, B, S, mask, bias, scale=0.5)
    np.testing.assert_allclose(
        batched.reshape(6, -1), dsee_linear(x, W, A, B, S, mask, bias, scale=0.5), rtol=1e-15
    )
