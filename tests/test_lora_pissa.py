"""LoRA layer and PiSSA initialization: hand-computed gradients, invariants, Eckart–Young."""

import numpy as np
import pytest

import refimpl
from refimpl.adapters import lora_linear, pissa_init

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _matrix_with_spectrum(singular_values, shape, seed=0):
    """A (out, in) matrix with the given singular values and random singular vectors."""
    rng = np.random.default_rng(seed)
    k = len(singular_values)
    left, _ = np.linalg.qr(rng.standard_normal((shape[0], k)))
    right, _ = np.linalg.qr(rng.standard_normal((shape[1], k)))
    return left * np.asarray(singular_values) @ right.T


def _layer(seed=0, batch=(5,), sizes=(6, 4, 3)):
    in_features, out_features, rank = sizes
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*batch, in_features))
    W = rng.standard_normal((out_features, in_features))
    A = rng.standard_normal((rank, in_features))
    B = rng.standard_normal((out_features, rank))
    bias = rng.standard_normal(out_features)
    return x, W, A, B, bias


# -- lora_linear ------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_bias", [False, True])
def test_lora_linear_with_zero_B_equals_the_base_layer(backend, with_bias):
    x, W, A, B, bias = _layer(1, batch=(2, 3))
    base = x @ W.T + (bias if with_bias else 0.0)
    call = _backend(backend).get("lora_linear")
    y = call(x, W, A, np.zeros_like(B), bias if with_bias else None, scale=4.0)
    np.testing.assert_allclose(y, base, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lora_linear_output_and_gradients_match_a_hand_computation(backend):
    # x (2 rows, in = 2), W (2, 2), r = 1, s = 0.5; worked by hand:
    #   h = x Aᵀ = [1, -1];  y = x Wᵀ + s·h Bᵀ = [[5, 11] + [1, 0.5], [2, 4] + [-1, -0.5]]
    #   G B = [1, 4];  Ā = s·(G B)ᵀ x = 0.5·(1·[1, 2] + 4·[0, 1]) = [0.5, 3]
    #   B̄ = s·Gᵀ h = 0.5·([1, -1]·1 + [2, 0]·(-1)) = [-0.5, -0.5]ᵀ
    #   x̄ = G W + s·(G B) A = [[-2, -2] + [1.5, -0.5], [2, 4] + [6, -2]]
    x = np.array([[1.0, 2.0], [0.0, 1.0]])
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    A = np.array([[3.0, -1.0]])
    B = np.array([[2.0], [1.0]])
    G = np.array([[1.0, -1.0], [2.0, 0.0]])
    y, pullback = refimpl.vjp("lora_linear", x, W, A, B, scale=0.5, backend=_backend(backend))
    np.testing.assert_allclose(y, [[6.0, 11.5], [1.0, 3.5]], rtol=1e-15)
    g_x, g_A, g_B = pullback(G)
    np.testing.assert_allclose(g_A, [[0.5, 3.0]], rtol=1e-15)
    np.testing.assert_allclose(g_B, [[-0.5], [-0.5]], rtol=1e-15)
    np.testing.assert_allclose(g_x, [[-0.5, -2.5], [8.0, 2.0]], rtol=1e-15)


def test_lora_linear_frozen_weight_and_bias_get_no_gradient():
    op = refimpl.get("lora_linear")
    assert op.differentiable == ("x", "A", "B")
    x, W, A, B, bias = _layer(2)
    y, pullback = refimpl.vjp(op, x, W, A, B, bias, scale=1.0)
    cotangents = pullback(np.ones_like(y))
    # one cotangent per trainable input (x, A, B), none for W or the bias
    assert [g.shape for g in cotangents] == [x.shape, A.shape, B.shape]


def test_lora_linear_gradients_sum_over_all_batch_dimensions():
    x, W, A, B, bias = _layer(3, batch=(2, 3))
    G = np.random.default_rng(4).standard_normal((2, 3, W.shape[0]))
    _, pullback = refimpl.vjp(lora_linear, x, W, A, B, bias, scale=1.5)
    g_x, g_A, g_B = pullback(G)
    _, flat_pullback = refimpl.vjp(lora_linear, x.reshape(6, -1), W, A, B, bias, scale=1.5)
    flat_g_x, flat_g_A, flat_g_B = flat_pullback(G.reshape(6, -1))
    np.testing.assert_allclose(g_x, flat_g_x.reshape(x.shape), rtol=1e-14)
    np.testing.assert_allclose(g_A, flat_g_A, rtol=1e-14)
    np.testing.assert_allclose(g_B, flat_g_B, rtol=1e-14)


def test_lora_linear_equals_the_merged_layer():
    # the branch through the bottleneck is the dense update s·B A applied to x
    x, W, A, B, bias = _layer(5)
    merged = x @ (W + 0.75 * B @ A).T + bias
    np.testing.assert_allclose(lora_linear(x, W, A, B, bias, scale=0.75), merged, rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lora_linear_float32_stays_float32_and_close_to_float64(backend):
    x, W, A, B, bias = _layer(6, batch=(7,), sizes=(33, 17, 4))
    args32 = [a.astype(np.float32) for a in (x, W, A, B, bias)]
    G = np.random.default_rng(7).standard_normal((7, 17))
    y32, pullback32 = refimpl.vjp("lora_linear", *args32, scale=0.5, backend=_backend(backend))
    grads32 = pullback32(G.astype(np.float32))
    assert y32.dtype == np.float32 and all(g.dtype == np.float32 for g in grads32)
    y64, pullback64 = refimpl.vjp("lora_linear", *(a.astype(np.float64) for a in args32), scale=0.5)
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-5)
    for g32, g64 in zip(grads32, pullback64(G), strict=True):
        np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-4)


# -- pissa_init -------------------------------------------------------------------------
SPECTRUM = [5.0, 3.0, 2.0, 1.0, 0.5]


@pytest.mark.parametrize("scale", [1.0, 2.0, 0.25])
def test_pissa_residual_plus_scaled_factors_reconstructs_W(scale):
    W = _matrix_with_spectrum(SPECTRUM, (7, 6), seed=8)
    A, B, W_res = pissa_init(W, 3, scale=scale)
    np.testing.assert_allclose(W_res + scale * B @ A, W, rtol=0, atol=1e-14)


def test_lora_linear_after_pissa_init_equals_the_original_layer():
    rng = np.random.default_rng(9)
    W = rng.standard_normal((5, 8))
    x = rng.standard_normal((4, 8))
    A, B, W_res = pissa_init(W, 2, scale=2.0)
    np.testing.assert_allclose(lora_linear(x, W_res, A, B, scale=2.0), x @ W.T, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("rank", [1, 2, 3, 4])
def test_pissa_residual_spectral_norm_is_the_next_singular_value(rank):
    W = _matrix_with_spectrum(SPECTRUM, (6, 8), seed=10)
    _, _, W_res = pissa_init(W, rank)
    np.testing.assert_allclose(np.linalg.norm(W_res, 2), SPECTRUM[rank], rtol=1e-13)
    # and the Frobenius norm holds the whole tail
    np.testing.assert_allclose(np.linalg.norm(W_res), np.sqrt(np.sum(np.square(SPECTRUM[rank:]))), rtol=1e-13)


@pytest.mark.parametrize("rank_of_W, shape", [(2, (5, 4)), (3, (3, 6)), (5, (5, 5))])
def test_pissa_residual_is_zero_when_r_equals_the_rank_of_W(rank_of_W, shape):
    W = _matrix_with_spectrum([3.0, 2.0, 1.5, 1.0, 0.5][:rank_of_W], shape, seed=11)
    _, _, W_res = pissa_init(W, rank_of_W)
    assert np.linalg.norm(W_res, 2) < 1e-14


def test_pissa_principal_part_is_the_best_rank_r_approximation():
    # Eckart–Young: s·B A is the truncated SVD, and no other rank-r matrix is closer to W
    rng = np.random.default_rng(12)
    W = rng.standard_normal((7, 5))
    scale, rank = 0.5, 2
    A, B, _ = pissa_init(W, rank, scale=scale)
    principal = scale * B @ A
    left, values, right = np.linalg.svd(W)
    truncated = left[:, :rank] * values[:rank] @ right[:rank]
    np.testing.assert_allclose(principal, truncated, rtol=0, atol=1e-13)
    assert np.linalg.matrix_rank(principal) == rank
    best = np.linalg.norm(W - principal)
    for _ in range(20):  # rank-r perturbations of the optimum, and random rank-r matrices
        nearby = (B + 0.05 * rng.standard_normal(B.shape)) @ (A + 0.05 * rng.standard_normal(A.shape))
        other = rng.standard_normal((7, rank)) @ rng.standard_normal((rank, 5))
        assert best < np.linalg.norm(W - scale * nearby)
        assert best < np.linalg.norm(W - other)


def test_pissa_factors_share_the_singular_values_evenly():
    W = _matrix_with_spectrum(SPECTRUM, (6, 7), seed=13)
    scale = 2.0
    A, B, _ = pissa_init(W, 3, scale=scale)
    expected = np.sqrt(np.array(SPECTRUM[:3]) / scale)  # √(σ_i/s)
    np.testing.assert_allclose(np.linalg.norm(A, axis=1), expected, rtol=1e-13)
    np.testing.assert_allclose(np.linalg.norm(B, axis=0), expected, rtol=1e-13)
    np.testing.assert_allclose(A @ A.T, np.diag(expected**2), atol=1e-13)  # rows orthogonal


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pissa_sign_rule_makes_the_largest_entry_of_each_B_column_positive(backend, dtype):
    W = _matrix_with_spectrum(SPECTRUM, (6, 5), seed=14).astype(dtype)
    A, B, W_res = _backend(backend).get("pissa_init")(W, 3, scale=0.5)
    assert A.dtype == B.dtype == W_res.dtype == dtype
    largest = B[np.argmax(np.abs(B), axis=0), np.arange(3)]
    assert np.all(largest > 0)
    # the same rule everywhere: a well-separated spectrum gives the reference's factors
    ref_A, ref_B, _ = pissa_init(W.astype(np.float64), 3, scale=0.5)
    atol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(A, ref_A, atol=atol)
    np.testing.assert_allclose(B, ref_B, atol=atol)


def test_pissa_with_a_repeated_singular_value_still_reconstructs_W():
    Q, _ = np.linalg.qr(np.random.default_rng(15).standard_normal((6, 3)))
    W = 2.0 * Q.T  # orthonormal rows times 2: every singular value is 2
    A, B, W_res = pissa_init(W, 3, scale=1.0)
    np.testing.assert_allclose(B @ A, W, atol=1e-14)
    np.testing.assert_allclose(W_res, 0.0, atol=1e-14)


# -- bad input --------------------------------------------------------------------------
_x, _W, _A, _B = np.zeros((3, 4)), np.zeros((2, 4)), np.zeros((3, 4)), np.zeros((2, 3))


@pytest.mark.parametrize(
    "op, args, kwargs, argument",
    [
        ("pissa_init", (np.zeros((3, 5)), 0), {}, "r"),
        ("pissa_init", (np.zeros((3, 5)), 4), {}, "r"),
        ("pissa_init", (np.zeros((3, 5)), 2.0), {}, "r"),
        ("pissa_init", (np.zeros((3, 5)), 2), {"scale": 0.0}, "scale"),
        ("lora_linear", (_x, _W, np.zeros((2, 4)), _B), {"scale": 1.0}, "B"),  # A of another rank
        ("lora_linear", (_x, np.zeros((2, 5)), _A, _B), {"scale": 1.0}, "W"),  # in-dims differ
        ("lora_linear", (_x, _W, np.zeros((3, 5)), _B), {"scale": 1.0}, "A"),  # in-dims differ
    ],
)
def test_bad_input_raises_input_error_naming_the_op_and_argument(op, args, kwargs, argument):
    with pytest.raises(refimpl.InputError, match=rf"^{op}: argument '{argument}'"):
        refimpl.get(op)(*args, **kwargs)


def test_pissa_rank_above_min_dimension_says_the_limit():
    with pytest.raises(refimpl.InputError, match=r"min\(out, in\) = 3.*got r = 4"):
        pissa_init(np.zeros((3, 5)), 4)


def test_lora_linear_without_scale_raises_input_error_naming_scale():
    with pytest.raises(refimpl.InputError, match=r"^lora_linear: .*'scale'"):
        lora_linear(_x, _W, _A, _B)
