"""VAR multi-scale residual quantization: PyTorch's area and bicubic resizes, the hand adjoints,
the official φ sharing rule, plain VQ at K = 1, exact reconstruction, and the official
``f_to_idxBl_or_fhat`` / ``VectorQuantizer2.forward`` (VAR models/quant.py) transcribed in PyTorch."""

import numpy as np
import pytest
import torch

import refimpl
from refimpl.quantization_sparsity.residual_vq import nearest_codewords
from refimpl.quantization_sparsity.var_quantize import (
    area_matrix,
    bicubic_matrix,
    conv3x3,
    conv3x3_input_adjoint,
    phi_positions,
    resize,
    resize_adjoint,
)

qs = refimpl.quantization_sparsity
functional = torch.nn.functional


@pytest.mark.parametrize(
    ("size_in", "size_out"), [(1, 16), (2, 16), (3, 16), (13, 16), (5, 7), (4, 4), (7, 3)]
)
def test_bicubic_matches_torch_interpolate(size_in, size_out):
    x = np.random.default_rng(size_in * 31 + size_out).standard_normal((2, 3, size_in, size_in))
    expected = functional.interpolate(torch.from_numpy(x), size=(size_out, size_out), mode="bicubic")
    np.testing.assert_allclose(
        resize(x, bicubic_matrix(size_in, size_out)), expected.numpy(), rtol=1e-13, atol=1e-14
    )


def test_bicubic_clamps_taps_to_the_border_and_keeps_constants():
    # 2 → 4: x = (j + ½)/2 − ½ = −0.25, 0.25, 0.75, 1.25; the tap at −2.. clamps to pixel 0
    matrix = bicubic_matrix(2, 4)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-15)  # Keys' weights sum to 1
    # first row: t = 0.75 from base −1: taps −2, −1, 0, 1 → weights on pixel 0 are the first three
    a = -0.75
    near = lambda d: (a + 2) * d**3 - (a + 3) * d**2 + 1  # noqa: E731
    far = lambda d: a * d**3 - 5 * a * d**2 + 8 * a * d - 4 * a  # noqa: E731
    np.testing.assert_allclose(matrix[0], [far(1.75) + near(0.75) + near(0.25), far(1.25)], rtol=1e-15)


@pytest.mark.parametrize("size_out", [1, 2, 3, 5, 6, 10, 13])
def test_area_matches_torch_interpolate(size_out):
    x = np.random.default_rng(size_out).standard_normal((1, 2, 16, 16))
    expected = functional.interpolate(torch.from_numpy(x), size=(size_out, size_out), mode="area")
    np.testing.assert_allclose(resize(x, area_matrix(16, size_out)), expected.numpy(), rtol=1e-13, atol=1e-15)


def test_area_13_of_16_has_overlapping_windows():
    matrix = area_matrix(16, 13)
    # window i = [⌊16i/13⌋, ⌈16(i+1)/13⌉): i = 0 → [0, 2), i = 1 → [1, 3)
    np.testing.assert_array_equal(matrix[0, :3], [0.5, 0.5, 0.0])
    np.testing.assert_array_equal(matrix[1, :4], [0.0, 0.5, 0.5, 0.0])


@pytest.mark.parametrize(("size_in", "size_out"), [(1, 6), (3, 16), (13, 16), (4, 9)])
def test_bicubic_adjoint_is_the_transpose(size_in, size_out):
    rng = np.random.default_rng(size_in + size_out)
    x, y = rng.standard_normal((2, 3, size_in, size_in)), rng.standard_normal((2, 3, size_out, size_out))
    matrix = bicubic_matrix(size_in, size_out)
    lhs = np.sum(resize(x, matrix) * y)
    rhs = np.sum(x * resize_adjoint(y, matrix))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-13)
    # the adjoint equals torch's bicubic backward
    tx = torch.from_numpy(x).requires_grad_(True)
    functional.interpolate(tx, size=(size_out, size_out), mode="bicubic").backward(torch.from_numpy(y))
    np.testing.assert_allclose(resize_adjoint(y, matrix), tx.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_conv_and_its_adjoint_match_torch():
    rng = np.random.default_rng(3)
    h, s = rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((2, 3, 5, 5))
    weight, bias = rng.standard_normal((3, 3, 3, 3)), rng.standard_normal(3)
    expected = functional.conv2d(
        torch.from_numpy(h), torch.from_numpy(weight), torch.from_numpy(bias), padding=1
    )
    np.testing.assert_allclose(conv3x3(h, weight, bias), expected.numpy(), rtol=1e-13, atol=1e-13)
    lhs = np.sum((conv3x3(h, weight, np.zeros(3))) * s)
    np.testing.assert_allclose(lhs, np.sum(h * conv3x3_input_adjoint(s, weight)), rtol=1e-13)


def test_phi_sharing_follows_the_official_ticks():
    # PhiPartiallyShared, K = 10, P = 4: ticks 1/12, 13/36, 23/36, 11/12; scale 2 sits at 2/9,
    # halfway between the first two ticks in exact arithmetic (rounding picks the second)
    assert phi_positions(10, 4) == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    assert phi_positions(10, 10) == list(range(10))  # PhiNonShared: one φ per scale
    assert phi_positions(10, 1) == [0] * 10  # PhiShared
    assert phi_positions(1, 4) == [0]


def test_one_scale_with_identity_phi_is_plain_vq():
    rng = np.random.default_rng(4)
    f, codebook = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((7, 3))
    weights, biases = rng.standard_normal((1, 3, 3, 3, 3)), rng.standard_normal((1, 3))
    indices, f_hat, f_hats = qs.multiscale_residual_quantize(
        f, codebook, weights, biases, patch_nums=np.array([4]), quant_resi=0.0
    )
    rows = f.transpose(0, 2, 3, 1).reshape(-1, 3)
    expected = nearest_codewords(rows, codebook)
    np.testing.assert_array_equal(indices.ravel(), expected)
    np.testing.assert_array_equal(f_hat, codebook[expected].reshape(2, 4, 4, 3).transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(f_hats[0], f_hat)


def test_codebook_holding_f_reconstructs_exactly():
    f = np.array([[[[0.5, -0.5], [-1.5, 1.5]]]])  # mean 0: scale 1 picks the zero code
    codebook = np.array([[0.0], [0.5], [-0.5], [1.5], [-1.5]])
    indices, f_hat, _ = qs.multiscale_residual_quantize(
        f, codebook, np.zeros((1, 1, 1, 3, 3)), np.zeros((1, 1)), patch_nums=np.array([1, 2]), quant_resi=0.0
    )
    np.testing.assert_array_equal(indices, [[0, 1, 2, 4, 3]])
    np.testing.assert_array_equal(f_hat, f)


def _official(f, codebook, weights, biases, patch_nums, rho, cotangent_hat, cotangent_hats):
    """VAR f_to_idxBl_or_fhat with Phi / PhiPartiallyShared (quant.py), float64, and the
    straight-through output of VectorQuantizer2.forward; autograd for the gradients."""
    tf = torch.tensor(f, requires_grad=True)
    te, tw, tb = (torch.tensor(a, requires_grad=True) for a in (codebook, weights, biases))
    B, C, H, W = tf.shape  # noqa: N806
    f_no_grad = tf.detach()
    f_rest = f_no_grad.clone()
    f_hat = torch.zeros_like(f_rest)
    SN = len(patch_nums)  # noqa: N806
    K = tw.shape[0]  # noqa: N806
    ticks = np.linspace(1 / 3 / K, 1 - 1 / 3 / K, K) if K == 4 else np.linspace(1 / 2 / K, 1 - 1 / 2 / K, K)
    idx_bl, f_hats = [], []
    for si, pn in enumerate(patch_nums):
        z_NC = (  # noqa: N806
            functional.interpolate(f_rest, size=(pn, pn), mode="area").permute(0, 2, 3, 1).reshape(-1, C)
            if si != SN - 1
            else f_rest.permute(0, 2, 3, 1).reshape(-1, C)
        )
        d_no_grad = torch.sum(z_NC.square(), dim=1, keepdim=True) + torch.sum(
            te.data.square(), dim=1, keepdim=False
        )
        d_no_grad.addmm_(z_NC, te.data.T, alpha=-2, beta=1)
        idx_N = torch.argmin(d_no_grad, dim=1)  # noqa: N806
        idx_Bhw = idx_N.view(B, pn, pn)  # noqa: N806
        h = functional.embedding(idx_Bhw, te).permute(0, 3, 1, 2)
        h = functional.interpolate(h, size=(H, W), mode="bicubic") if si != SN - 1 else h
        q = int(np.argmin(np.abs(ticks - si / (SN - 1))))
        h = h.mul(1 - rho) + functional.conv2d(h, tw[q], tb[q], padding=1).mul(rho)
        f_hat = f_hat + h
        f_rest = f_rest - h.detach()
        idx_bl.append(idx_N.reshape(B, pn * pn))
        f_hats.append(f_hat)
    f_hat_st = (f_hat.data - f_no_grad) + tf
    stacked = torch.stack(f_hats)
    torch.autograd.backward([f_hat_st, stacked], [torch.tensor(cotangent_hat), torch.tensor(cotangent_hats)])
    grads = [t.grad.numpy() for t in (tf, te, tw, tb)]
    return torch.cat(idx_bl, 1).numpy(), f_hat_st.detach().numpy(), stacked.detach().numpy(), grads


@pytest.mark.parametrize(("convs", "rho"), [(4, 0.5), (1, 0.25), (3, 1.0)])
def test_matches_the_official_quantizer_with_autograd(convs, rho):
    rng = np.random.default_rng(convs)
    patch_nums = [1, 2, 3, 5, 6, 8]
    f = rng.standard_normal((2, 4, 8, 8))
    codebook = rng.standard_normal((32, 4)) * 0.7
    weights, biases = rng.standard_normal((convs, 4, 4, 3, 3)) * 0.2, rng.standard_normal((convs, 4)) * 0.1
    g_hat = rng.standard_normal(f.shape)
    g_hats = rng.standard_normal((len(patch_nums), *f.shape))
    expected = _official(f, codebook, weights, biases, patch_nums, rho, g_hat, g_hats)
    outputs, pullback = refimpl.vjp(
        "multiscale_residual_quantize",
        f,
        codebook,
        weights,
        biases,
        patch_nums=np.array(patch_nums),
        quant_resi=rho,
    )
    np.testing.assert_array_equal(outputs[0], expected[0])
    np.testing.assert_allclose(outputs[1], expected[1], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(outputs[2], expected[2], rtol=1e-12, atol=1e-12)
    grads = pullback((None, g_hat, g_hats))
    for name, got, want in zip(
        ("f", "codebook", "phi_weights", "phi_biases"), grads, expected[3], strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11, err_msg=name)
    np.testing.assert_array_equal(grads[0], g_hat)  # straight through: f̄ = f̂̄_ST exactly


def test_partial_reconstruction_plus_residual_is_f_and_residual_shrinks_on_average():
    rng = np.random.default_rng(9)
    f = rng.standard_normal((2, 3, 16, 16))
    codebook = rng.standard_normal((512, 3))
    weights, biases = np.zeros((4, 3, 3, 3, 3)), np.zeros((4, 3))
    _, f_hat, f_hats = qs.multiscale_residual_quantize(f, codebook, weights, biases, quant_resi=0.0)
    errors = [np.mean((f - partial) ** 2) for partial in f_hats]
    assert errors[-1] < 0.1 * errors[0]  # the last scale quantizes every position
    assert np.array_equal(f_hat, f_hats[-1])


def test_cosine_search_differs_from_distance():
    f = np.array([[[[3.0]], [[0.2]]]])
    codebook = np.array([[2.9, 0.5], [0.3, 0.0]])
    zero = (np.zeros((1, 2, 2, 3, 3)), np.zeros((1, 2)))
    by_distance = qs.multiscale_residual_quantize(f, codebook, *zero, patch_nums=np.array([1]))[0]
    by_cosine = qs.multiscale_residual_quantize(
        f, codebook, *zero, patch_nums=np.array([1]), using_znorm=True
    )[0]
    assert by_distance.tolist() == [[0]] and by_cosine.tolist() == [[1]]
