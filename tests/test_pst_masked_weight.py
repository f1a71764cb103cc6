"""PST masked weight: magnitude pruning at the official init, the pruned count and tie rule,
and the STE backward against the official SparseBinarizer transcribed in PyTorch."""

import math

import numpy as np
import pytest
import torch

import refimpl

qs = refimpl.quantization_sparsity


def _draw(seed, m=6, n=7, r=3, rm=2):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((m, n)),
        rng.standard_normal((m, r)),
        rng.standard_normal((r, n)) * 0.3,
        rng.standard_normal((m, rm)),
        rng.standard_normal((rm, n)) * 0.3,
        rng.standard_normal(m) * 0.3,
        rng.standard_normal(n) * 0.3,
    )


def test_official_init_is_magnitude_pruning_of_w():
    w, u, _, a, _, _, _ = _draw(0)
    zeros = (np.zeros((3, 7)), a, np.zeros((2, 7)), np.zeros(6), np.zeros(7))
    w_eff = qs.pst_masked_weight(w, u, *zeros, sparsity=0.5)
    kept = np.abs(w) > np.sort(np.abs(w), axis=None)[20]  # ⌊0.5·42⌋ = 21 pruned
    np.testing.assert_array_equal(w_eff, np.where(kept, w, 0.0))


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.3, 0.55, 1.0])
def test_pruned_count_is_the_floor_of_s_mn(sparsity):
    args = _draw(1)
    w_eff = qs.pst_masked_weight(*args, sparsity=sparsity)
    assert np.count_nonzero(w_eff == 0) == math.floor(sparsity * 42)


def test_ties_prune_the_lower_flat_index_first():
    w = np.array([[1.0, -1.0, 2.0], [-1.0, 1.0, -2.0]])
    z = (np.zeros((2, 1)), np.zeros((1, 3)), np.zeros((2, 1)), np.zeros((1, 3)), np.zeros(2), np.zeros(3))
    w_eff = qs.pst_masked_weight(w, *z, sparsity=0.5)
    np.testing.assert_array_equal(w_eff, [[0.0, 0.0, 2.0], [0.0, 1.0, -2.0]])


def test_importance_uses_the_updated_weight():
    # W = 1, U V = −1 at entry 0: W̃ = 0 there, so it is pruned though |W| is the largest
    w = np.array([[3.0, 1.0, 2.0]])
    u, v = np.array([[1.0]]), np.array([[-3.0, 0.0, 0.0]])
    z = (np.zeros((1, 1)), np.zeros((1, 3)), np.zeros(1), np.zeros(3))
    np.testing.assert_array_equal(qs.pst_masked_weight(w, u, v, *z, sparsity=0.34), [[0.0, 1.0, 2.0]])


class _SparseBinarizer(torch.autograd.Function):
    """yuchaoli/PST pst/sparse.py SparseBinarizer, transcribed: mask the ⌊s·numel⌋ smallest
    scores, identity backward."""

    @staticmethod
    def forward(ctx, scores, sparsity):
        mask = torch.ones_like(scores)
        order = torch.sort(scores.flatten(), stable=True).indices
        mask.view(-1)[order[: int(sparsity * scores.numel())]] = 0
        return mask

    @staticmethod
    def backward(ctx, g):
        return g, None


def test_ste_backward_matches_the_official_binarizer_with_autograd():
    args = _draw(2)
    beta, alpha1, alpha2, sparsity = 0.7, 1.3, 0.4, 0.45
    leaves = [torch.tensor(x, requires_grad=True) for x in args[1:]]
    u, v, a, b, r, c = leaves
    w_tilde = torch.tensor(args[0]) + beta * (u @ v)
    scores = w_tilde.abs() + alpha1 * (a @ b) + alpha2 * (r[:, None] + c[None, :])
    w_eff = w_tilde * _SparseBinarizer.apply(scores, sparsity)
    g = np.random.default_rng(3).standard_normal(w_eff.shape)
    w_eff.backward(torch.tensor(g))
    out, pullback = refimpl.vjp(
        "pst_masked_weight", *args, sparsity=sparsity, beta=beta, alpha1=alpha1, alpha2=alpha2
    )
    np.testing.assert_allclose(out, w_eff.detach().numpy(), rtol=1e-15)
    for ours, leaf in zip(pullback(g), leaves, strict=True):
        np.testing.assert_allclose(ours, leaf.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_gradient_reaches_the_importance_even_when_everything_is_pruned():
    args = _draw(4)
    out, pullback = refimpl.vjp("pst_masked_weight", *args, sparsity=1.0)
    np.testing.assert_array_equal(out, 0.0)
    g = np.ones_like(out)
    g_u, g_v, g_a, g_b, g_r, g_c = pullback(g)
    w_tilde = args[0] + args[1] @ args[2]
    np.testing.assert_allclose(g_r, w_tilde.sum(axis=1), rtol=1e-13)  # S̄ = G ⊙ W̃, row sums
    np.testing.assert_allclose(g_u, (np.abs(w_tilde)) @ args[2].T, rtol=1e-12)  # sign(W̃)⊙W̃ = |W̃|
