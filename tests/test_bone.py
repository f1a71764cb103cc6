"""Bone block-affine adapter, its unmerge, and MiSS: PEFT's layout, hand values, invariants."""

import numpy as np
import pytest

import refimpl
from refimpl.adapters import bone_block_affine, bone_unmerge, miss_shared_block

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _bone(seed=0, out_features=6, in_features=9, rank=3, batch=(4,)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*batch, in_features))
    W = rng.standard_normal((out_features, in_features))
    B = rng.standard_normal((out_features // rank, rank, rank)) / rank
    bias = rng.standard_normal(out_features)
    return x, W, B, bias


# -- PEFT's formulas, re-derived from huggingface/peft src/peft/tuners/miss/layer.py -------------
def _peft_bat_delta(W, B):
    """MissLinear.get_delta_weight: W.reshape(out/r, r, in/r, r).permute(2, 0, 1, 3) @ B + B,
    then .permute(1, 2, 0, 3).reshape(W.shape)."""
    out_features, in_features = W.shape
    r = B.shape[-1]
    blocks = W.reshape(out_features // r, r, in_features // r, r).transpose(2, 0, 1, 3)
    return (blocks @ B + B).transpose(1, 2, 0, 3).reshape(out_features, in_features)


def _peft_bat_unmerge(W_merged, B):
    """MissLinear.get_delta_weight(reverse=True): (W' − B) @ inverse(I + B), permuted back."""
    out_features, in_features = W_merged.shape
    r = B.shape[-1]
    blocks = W_merged.reshape(out_features // r, r, in_features // r, r).transpose(2, 0, 1, 3)
    W = (blocks - B) @ np.linalg.inv(np.eye(r) + B)
    return W.transpose(1, 2, 0, 3).reshape(out_features, in_features)


def _peft_miss_forward(x, W, B, bias):
    """MissLinear.forward: F.linear(x, W, b) + sum(F.pad(x).reshape(..., in/r, r), -2) @ B."""
    r = B.shape[0]
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, -x.shape[-1] % r)])
    folded = padded.reshape(*x.shape[:-1], -1, r).sum(axis=-2)
    return x @ W.T + bias + folded @ B


def _peft_miss_merged(W, B):
    """MissLinear.get_delta_weight_miss (the full merged weight), both of its branches."""
    out_features, in_features = W.shape
    r = B.shape[0]
    W = W.copy()
    if in_features % r:
        n_blocks = in_features // r
        aligned = n_blocks * r
        if n_blocks:  # r > in: PEFT's reshape(-1, 0, r) raises here (its forward pads and works)
            W_aligned = W[:, :aligned].reshape(-1, n_blocks, r).transpose(1, 2, 0)
            W[:, :aligned] = (W_aligned + B).transpose(2, 0, 1).reshape(out_features, aligned)
        W[:, aligned:] = W[:, aligned:] + B.T[:, : in_features % r]
        return W
    blocks = W.reshape(-1, in_features // r, r).transpose(1, 2, 0)
    return (blocks + B).transpose(2, 0, 1).reshape(out_features, in_features)


# -- bone_block_affine ----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_bias", [False, True])
def test_bone_with_zero_B_is_the_base_layer(backend, with_bias):
    x, W, B, bias = _bone(1, batch=(2, 3))
    call = _backend(backend).get("bone_block_affine")
    y = call(x, W, np.zeros_like(B), bias if with_bias else None)
    np.testing.assert_allclose(y, x @ W.T + (bias if with_bias else 0.0), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(6, 9, 3), (12, 4, 2), (128, 192, 64)])
def test_bone_layout_matches_peft_reshape_permute_on_non_square_weights(backend, shape):
    out_features, in_features, rank = shape
    x, W, B, bias = _bone(2, out_features, in_features, rank)
    expected = x @ (W + _peft_bat_delta(W, B)).T + bias
    y = _backend(backend).get("bone_block_affine")(x, W, B, bias)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_bone_layout_tells_row_blocks_from_column_blocks():
    # a B_a that differs per row-block, on a W whose blocks differ: swapping the block axes
    # (or transposing B_a) changes the output, so the PEFT comparison above is not vacuous
    x, W, B, bias = _bone(3, 4, 6, 2)
    y = bone_block_affine(x, W, B, bias)
    swapped = x @ (W + _peft_bat_delta(W, B.transpose(0, 2, 1))).T + bias
    assert np.abs(y - swapped).max() > 1e-2


def test_bone_output_and_gradients_match_a_hand_computation():
    # r = 1: every entry is a block, W'[o, i] = W[o, i](1 + b_o) + b_o.
    #   W = [[1, 2], [3, 4]], b = (0.5, -1): W' = [[2, 3.5], [-1, -1]]
    #   x = [1, -1]: y = [2 − 3.5, −1 + 1] = [-1.5, 0]
    #   g = [2, 1]: x̄ = g W' = [4 − 1, 7 − 1] = [3, 6]
    #   G = g xᵀ = [[2, -2], [1, -1]]; b̄_o = Σ_i (W[o, i] + 1) G[o, i]
    #   b̄_0 = 2·2 + 3·(−2) = −2;  b̄_1 = 4·1 + 5·(−1) = −1
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    B = np.array([[[0.5]], [[-1.0]]])
    for backend in BACKENDS:
        y, pullback = refimpl.vjp("bone_block_affine", np.array([1.0, -1.0]), W, B, backend=_backend(backend))
        np.testing.assert_allclose(y, [-1.5, 0.0], rtol=1e-15, atol=1e-15)
        g_x, g_B = pullback(np.array([2.0, 1.0]))
        np.testing.assert_allclose(g_x, [3.0, 6.0], rtol=1e-15)
        np.testing.assert_allclose(g_B, [[[-2.0]], [[-1.0]]], rtol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bone_backward_is_the_blockwise_formula(backend):
    # ∂L/∂B_a = Σ_j (W_{a,j}ᵀ G_{a,j} + G_{a,j}), G = Σ_t g_t x_tᵀ, written with explicit blocks
    x, W, B, bias = _bone(4, 6, 8, 2, batch=(2, 5))
    rng = np.random.default_rng(5)
    y, pullback = refimpl.vjp("bone_block_affine", x, W, B, bias, backend=_backend(backend))
    g = rng.standard_normal(y.shape)
    g_x, g_B = pullback(g)
    G = g.reshape(-1, 6).T @ x.reshape(-1, 8)
    expected = np.zeros_like(B)
    for a in range(3):
        for j in range(4):
            W_aj, G_aj = W[2 * a : 2 * a + 2, 2 * j : 2 * j + 2], G[2 * a : 2 * a + 2, 2 * j : 2 * j + 2]
            expected[a] += W_aj.T @ G_aj + G_aj
    np.testing.assert_allclose(g_B, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g_x, g @ (W + _peft_bat_delta(W, B)), rtol=1e-12, atol=1e-12)


def test_bone_weight_and_bias_are_frozen():
    assert bone_block_affine.differentiable == ("x", "B")
    assert miss_shared_block.differentiable == ("x", "B")


def test_bone_refuses_weights_that_do_not_split_into_blocks():
    with pytest.raises(refimpl.InputError, match=r"in % r = 0"):
        bone_block_affine(np.ones((2, 5)), np.ones((4, 5)), np.zeros((2, 2, 2)))
    with pytest.raises(refimpl.InputError, match=r"\(out/r, r, r\) = \(2, 2, 2\)"):
        bone_block_affine(np.ones((2, 4)), np.ones((4, 4)), np.zeros((1, 2, 2)))


# -- bone_unmerge ---------------------------------------------------------------------------------
def _merged_through_the_layer(W, B):
    """W' read off the layer itself: with x = I (in × in), y = I W'ᵀ = W'ᵀ."""
    return bone_block_affine(np.eye(W.shape[1]), W, B).T


@pytest.mark.parametrize("shape", [(6, 9, 3), (4, 10, 2), (3, 3, 1), (64, 128, 64)])
def test_unmerge_of_merge_is_the_original_weight(shape):
    out_features, in_features, rank = shape
    _, W, B, _ = _bone(6, out_features, in_features, rank)
    W_merged = _merged_through_the_layer(W, B)
    np.testing.assert_allclose(W_merged, W + _peft_bat_delta(W, B), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(bone_unmerge(W_merged, B), W, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        bone_unmerge(W_merged, B), _peft_bat_unmerge(W_merged, B), rtol=1e-10, atol=1e-10
    )


def test_unmerge_in_float32_recovers_the_weight_to_float32_accuracy():
    _, W, B, _ = _bone(7, 8, 12, 4)
    W_merged = _merged_through_the_layer(W, B).astype(np.float32)
    W_back = bone_unmerge(W_merged, B.astype(np.float32))
    assert W_back.dtype == np.float32
    np.testing.assert_allclose(W_back, W, rtol=0, atol=1e-5)


def test_unmerge_refuses_a_singular_I_plus_B():
    W = np.ones((4, 4))
    B = np.zeros((2, 2, 2))
    B[1] = [[0.0, 1.0], [0.0, -1.0]]  # I + B_1 = [[1, 1], [0, 0]]: rank 1
    with pytest.raises(refimpl.InputError, match=r"'B'.*I \+ B_1 singular"):
        bone_unmerge(W, B)
    with pytest.raises(refimpl.InputError, match=r"I \+ B_0 singular"):
        bone_unmerge(W, -np.stack([np.eye(2), np.eye(2)]))
    # singular to working precision, not only exactly: I + B_0 = diag(1, 1e-17)
    nearly = np.zeros((2, 2, 2))
    nearly[0] = np.diag([0.0, 1e-17 - 1.0])
    with pytest.raises(refimpl.InputError, match=r"I \+ B_0 singular"):
        bone_unmerge(W, nearly)
    # ill-conditioned but invertible is accepted: I + B_0 = diag(1, 1e-6)
    invertible = np.zeros((2, 2, 2))
    invertible[0] = np.diag([0.0, 1e-6 - 1.0])
    W_back = bone_unmerge(_merged_through_the_layer(W, invertible), invertible)
    np.testing.assert_allclose(W_back, W, rtol=1e-8)


# -- miss_shared_block ----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(5, 7, 3), (5, 8, 4), (3, 2, 5), (4, 6, 1)])
def test_miss_matches_peft_forward_and_merged_weight(backend, shape):
    out_features, in_features, rank = shape
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 3, in_features))
    W = rng.standard_normal((out_features, in_features))
    B = rng.standard_normal((rank, out_features))
    bias = rng.standard_normal(out_features)
    y = _backend(backend).get("miss_shared_block")(x, W, B, bias)
    np.testing.assert_allclose(y, _peft_miss_forward(x, W, B, bias), rtol=1e-12, atol=1e-12)
    # the folded evaluation equals the layer with PEFT's merged weight W + ΔW
    np.testing.assert_allclose(y, x @ _peft_miss_merged(W, B).T + bias, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_miss_with_zero_B_is_the_base_layer(backend):
    rng = np.random.default_rng(9)
    x, W, bias = rng.standard_normal((4, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    y = _backend(backend).get("miss_shared_block")(x, W, np.zeros((4, 3)), bias)
    np.testing.assert_allclose(y, x @ W.T + bias, rtol=1e-14, atol=1e-14)


def test_miss_gradients_match_a_hand_computation():
    # in = 3, r = 2: x = [1, 2, 3] padded to [1, 2, 3, 0], s = [4, 2]
    #   W = [[1, 0, 0], [0, 0, 1]], B = [[1, 0], [0, -1]]: y = [1, 3] + s B = [1 + 4, 3 − 2] = [5, 1]
    #   g = [1, 2]: B̄ = outer(s, g) = [[4, 8], [2, 4]]
    #   s̄ = g Bᵀ = [1, −2], tiled over in = 3: [1, −2, 1];  g W = [1, 0, 2];  x̄ = [2, −2, 3]
    W = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    B = np.array([[1.0, 0.0], [0.0, -1.0]])
    for backend in BACKENDS:
        y, pullback = refimpl.vjp(
            "miss_shared_block", np.array([1.0, 2.0, 3.0]), W, B, backend=_backend(backend)
        )
        np.testing.assert_allclose(y, [5.0, 1.0], rtol=1e-15)
        g_x, g_B = pullback(np.array([1.0, 2.0]))
        np.testing.assert_allclose(g_x, [2.0, -2.0, 3.0], rtol=1e-15)
        np.testing.assert_allclose(g_B, [[4.0, 8.0], [2.0, 4.0]], rtol=1e-15)
