"""ConTraCon convolutional re-weighting: a direct loop, the padding convention, the conv2d VJP."""

import numpy as np
import pytest

import refimpl
from refimpl.adapters import contracon_conv_weight

BACKENDS = ["numpy", "numba", "cupy[host]"]


def _backend(name):
    if name == "cupy[host]":
        import refimpl_cupy

        return refimpl_cupy.host_backend()
    return refimpl.backend(name)


def _direct_loop(W, K, c, s, official):
    """The official Mtx_fc forward written as plain loops: per head h (rows split contiguously),
    torch conv2d semantics (cross-correlation, zero padding (k − 1)/2), + c_h + sigmoid(s_h)·W_h."""
    heads, k = K.shape[0], K.shape[1]
    p = (k - 1) // 2
    rows = W.shape[0] // heads
    out = np.zeros_like(W)
    for h in range(heads):
        block = W[h * rows : (h + 1) * rows]
        for i in range(rows):
            for j in range(W.shape[1]):
                total = 0.0
                for a in range(k):
                    for b in range(k):
                        r, col = i + a - p, j + b - p
                        if 0 <= r < rows and 0 <= col < W.shape[1]:
                            total += K[h, a, b] * block[r, col]
                if official:
                    total += c[h] + block[i, j] / (1 + np.exp(-s[h]))
                out[h * rows + i, j] = total
    return out


def _inputs(seed, heads=3, rows=4, cols=5, k=3):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((heads * rows, cols)),
        rng.standard_normal((heads, k, k)),
        rng.standard_normal(heads),
        rng.standard_normal(heads),
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("official", [False, True])
@pytest.mark.parametrize("shape", [(3, 4, 5, 3), (1, 2, 3, 7), (4, 6, 6, 5), (2, 3, 8, 1)])
def test_contracon_conv_weight_matches_a_direct_loop(backend, official, shape):
    W, K, c, s = _inputs(sum(shape), *shape)
    y, _ = refimpl.vjp("contracon_conv_weight", W, K, c, s, official=official, backend=_backend(backend))
    np.testing.assert_allclose(y, _direct_loop(W, K, c, s, official), rtol=1e-12, atol=1e-12)


def test_contracon_conv_weight_is_cross_correlation_with_zero_padding():
    W = np.arange(1.0, 7.0).reshape(2, 3)  # [[1, 2, 3], [4, 5, 6]]
    zeros = np.zeros(1)
    centred = np.zeros((1, 3, 3))
    centred[0, 1, 1] = 1.0
    np.testing.assert_array_equal(contracon_conv_weight(W, centred, zeros, zeros), W)
    # K[1, 2] = 1 reads the RIGHT neighbour (no flip); the last column reads the zero padding
    right = np.zeros((1, 3, 3))
    right[0, 1, 2] = 1.0
    np.testing.assert_array_equal(
        contracon_conv_weight(W, right, zeros, zeros), [[2.0, 3.0, 0.0], [5.0, 6.0, 0.0]]
    )
    # K[0, 1] = 1 reads the row ABOVE: the first row reads the padding
    above = np.zeros((1, 3, 3))
    above[0, 0, 1] = 1.0
    np.testing.assert_array_equal(
        contracon_conv_weight(W, above, zeros, zeros), [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]
    )


def test_contracon_conv_weight_pads_each_head_block_separately():
    # two heads of one row each: a vertical tap never reads the other head's row
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    above = np.zeros((2, 3, 3))
    above[:, 0, 1] = 1.0
    np.testing.assert_array_equal(contracon_conv_weight(W, above, np.zeros(2), np.zeros(2)), np.zeros((2, 2)))
    # the same kernel on one head of two rows does read it
    np.testing.assert_array_equal(
        contracon_conv_weight(W, above[:1], np.zeros(1), np.zeros(1)), [[0, 0], [1, 2]]
    )


def test_contracon_conv_weight_official_adds_bias_and_sigmoid_skip():
    W, K, c, s = _inputs(3)
    plain = contracon_conv_weight(W, K, c, s)
    official = contracon_conv_weight(W, K, c, s, official=True)
    gate = 1 / (1 + np.exp(-s))
    expected = plain.reshape(3, 4, 5) + c[:, None, None] + gate[:, None, None] * W.reshape(3, 4, 5)
    np.testing.assert_allclose(official, expected.reshape(W.shape), rtol=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
def test_contracon_conv_weight_vjp_is_the_adjoint_of_the_bilinear_map(backend):
    # W ⋆ K is linear in W and in K: ⟨W ⋆ K, G⟩ = ⟨W, W̄⟩ = ⟨K, K̄⟩ for the plain form
    W, K, c, s = _inputs(5, heads=2, rows=5, cols=7, k=5)
    G = np.random.default_rng(6).standard_normal(W.shape)
    y, pullback = refimpl.vjp("contracon_conv_weight", W, K, c, s, backend=_backend(backend))
    g_W, g_K, g_c, g_s = pullback(G)
    value = np.sum(y * G)
    assert np.isclose(np.sum(W * g_W), value, rtol=1e-12)
    assert np.isclose(np.sum(K * g_K), value, rtol=1e-12)
    np.testing.assert_array_equal(g_c, 0.0)  # official=False: c and s do not enter
    np.testing.assert_array_equal(g_s, 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_contracon_conv_weight_official_vjp_matches_finite_differences(backend):
    W, K, c, s = _inputs(8, heads=2, rows=3, cols=4, k=3)
    G = np.random.default_rng(9).standard_normal(W.shape)
    _, pullback = refimpl.vjp("contracon_conv_weight", W, K, c, s, official=True, backend=_backend(backend))
    grads = pullback(G)
    args = [W, K, c, s]
    step = 1e-6
    for index, grad in enumerate(grads):
        for position in np.ndindex(args[index].shape):
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[index][position] += step
            minus[index][position] -= step
            difference = np.sum((_direct_loop(*plus, True) - _direct_loop(*minus, True)) * G) / (2 * step)
            assert np.isclose(grad[position], difference, rtol=1e-7, atol=1e-8), (index, position)


def test_contracon_conv_weight_matches_torch_grouped_conv2d():
    torch = pytest.importorskip("torch")
    W, K, c, s = _inputs(11, heads=4, rows=8, cols=16, k=15)
    blocks = torch.from_numpy(W).reshape(1, 4, 8, 16)
    conv = torch.nn.functional.conv2d(
        blocks, torch.from_numpy(K).unsqueeze(1), torch.from_numpy(c), padding=7, groups=4
    )
    expected = (
        (conv + torch.sigmoid(torch.from_numpy(s)).reshape(1, 4, 1, 1) * blocks).reshape(W.shape).numpy()
    )
    np.testing.assert_allclose(
        contracon_conv_weight(W, K, c, s, official=True), expected, rtol=1e-12, atol=1e-12
    )


def test_contracon_conv_weight_refuses_even_kernels_and_indivisible_heads():
    W = np.ones((4, 5))
    with pytest.raises(refimpl.InputError, match="odd"):
        contracon_conv_weight(W, np.ones((1, 4, 4)), np.zeros(1), np.zeros(1))
    with pytest.raises(refimpl.InputError, match="divisible"):
        contracon_conv_weight(W, np.ones((3, 3, 3)), np.zeros(3), np.zeros(3))
