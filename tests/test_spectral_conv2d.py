"""spectral_conv2d: hand values, the official two-block layout, the adjoint identities, the
complex-weight gradient convention and discretization invariance."""

import numpy as np
import pytest

import refimpl
from refimpl.layers import spectral_conv2d

NORMS = ("backward", "ortho", "forward")


def _inputs(seed, B=2, I=3, O=2, H=6, W=7, m1=2, m2=3):  # noqa: E741
    rng = np.random.default_rng(seed)
    return rng.standard_normal((B, I, H, W)), rng.standard_normal((I, O, 2 * m1, m2, 2))


def _official_legacy_spectral_conv2d(x, weight, norm):
    """NumPy transcription of neuralop/layers/legacy_spectral_convolution.py,
    SpectralConv2d.forward (no bias): two weights, one per corner block."""
    m1, m2 = weight.shape[2] // 2, weight.shape[3]
    w = weight[..., 0] + 1j * weight[..., 1]
    weight_upper, weight_lower = w[:, :, :m1], w[:, :, m1:]
    batch, _, height, width = x.shape
    x_ft = np.fft.rfft2(x, norm=norm)
    out_fft = np.zeros((batch, w.shape[1], height, width // 2 + 1), dtype=complex)
    out_fft[:, :, :m1, :m2] = np.einsum("bixy,ioxy->boxy", x_ft[:, :, :m1, :m2], weight_upper)
    out_fft[:, :, -m1:, :m2] = np.einsum("bixy,ioxy->boxy", x_ft[:, :, -m1:, :m2], weight_lower)
    return np.fft.irfft2(out_fft, s=(height, width), norm=norm)


@pytest.mark.parametrize("norm", NORMS)
def test_spectral_conv2d_matches_the_official_two_block_layer(norm):
    x, weight = _inputs(0)
    np.testing.assert_allclose(
        spectral_conv2d(x, weight, norm=norm), _official_legacy_spectral_conv2d(x, weight, norm), atol=1e-12
    )


def test_spectral_conv2d_multiplies_one_fourier_mode_by_its_complex_weight():
    # x = cos θ, θ = 2π(p h/H + q w/W): the kept column q < W/2 holds only the (p, q) term, so
    # the weight a + ib at that mode gives Re((a + ib) e^{iθ}) = a cos θ − b sin θ.
    height, width, p, q, a, b = 8, 8, 1, 2, 0.7, -1.3
    hh, ww = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    theta = 2 * np.pi * (p * hh / height + q * ww / width)
    weight = np.zeros((1, 1, 4, 3, 2))
    weight[0, 0, p, q] = (a, b)
    y = spectral_conv2d(np.cos(theta)[None, None], weight)
    np.testing.assert_allclose(y[0, 0], a * np.cos(theta) - b * np.sin(theta), atol=1e-13)


@pytest.mark.parametrize("norm", NORMS)
def test_spectral_conv2d_adjoint_identity_in_x_and_in_the_weight(norm):
    # the layer is linear in x (weight fixed) and in the weight (x fixed): its VJP is the
    # adjoint, <A x, g> = <x, Aᵀ g> and <A(w), g> = <w, A_xᵀ g> over the real pairs
    x, weight = _inputs(1)
    g = np.random.default_rng(2).standard_normal((2, 2, 6, 7))
    y, pullback = refimpl.vjp(spectral_conv2d, x, weight, norm=norm)
    g_x, g_weight = pullback(g)
    np.testing.assert_allclose(np.sum(y * g), np.sum(x * g_x), rtol=1e-12)
    np.testing.assert_allclose(np.sum(y * g), np.sum(weight * g_weight), rtol=1e-12)


def test_spectral_conv2d_weight_gradient_is_d_re_plus_i_d_im_by_finite_differences():
    x, weight = _inputs(3, B=2, I=2, O=2, H=4, W=6, m1=1, m2=4)
    g = np.random.default_rng(4).standard_normal((2, 2, 4, 6))
    _, pullback = refimpl.vjp(spectral_conv2d, x, weight)
    _, g_weight = pullback(g)
    step = 1e-6
    for index in [(0, 1, 0, 1), (1, 0, 1, 2), (0, 0, 0, 0), (1, 1, 1, 3)]:
        for part in (0, 1):  # 0: real part, 1: imaginary part, perturbed separately
            plus, minus = weight.copy(), weight.copy()
            plus[(*index, part)] += step
            minus[(*index, part)] -= step
            fd = np.sum((spectral_conv2d(x, plus) - spectral_conv2d(x, minus)) * g) / (2 * step)
            np.testing.assert_allclose(g_weight[(*index, part)], fd, rtol=1e-6, atol=1e-8)
    # the DC mode (row 0, column 0) and the Nyquist column 3 (W = 6) are self-conjugate in
    # the column direction and row 0: the irfft2 drops their imaginary part, gradient 0
    np.testing.assert_array_equal(g_weight[:, :, 0, 0, 1], 0.0)
    np.testing.assert_allclose(g_weight[:, :, 0, 3, 1], 0.0, atol=1e-14)


def test_spectral_conv2d_weight_gradient_is_conj_x_hat_times_output_cotangent_spectrum():
    # w̄[i, o, k] = Σ_b conj(x̂[b, i, k])·ŷ̄[b, o, k], ŷ̄ = c ⊙ rfft2(ȳ)/(HW) (backward norm)
    x, weight = _inputs(5, H=5, W=7, m1=2, m2=3)
    g = np.random.default_rng(6).standard_normal((2, 2, 5, 7))
    _, pullback = refimpl.vjp(spectral_conv2d, x, weight)
    _, g_weight = pullback(g)
    rows = [0, 1, 3, 4]
    c = np.array([1.0, 2.0, 2.0, 2.0])  # W = 7 odd: no Nyquist column
    x_hat = np.fft.rfft2(x)[:, :, rows, :3]
    g_hat = (np.fft.rfft2(g) / 35 * c)[:, :, rows, :3]
    expected = np.einsum("bikl,bokl->iokl", np.conj(x_hat), g_hat)
    np.testing.assert_allclose(g_weight[..., 0] + 1j * g_weight[..., 1], expected, atol=1e-12)


def test_spectral_conv2d_is_discretization_invariant_for_band_limited_inputs():
    # a trigonometric polynomial inside the kept modes, sampled on 8 x 10 and on 16 x 20: the
    # same weights give the same function, read on the coarse grid's points
    rng = np.random.default_rng(7)
    weight = rng.standard_normal((1, 2, 4, 3, 2))

    def field(height, width):
        hh, ww = np.meshgrid(np.arange(height) / height, np.arange(width) / width, indexing="ij")
        return (1.0 + np.cos(2 * np.pi * (hh + 2 * ww)) - 0.5 * np.sin(2 * np.pi * (2 * hh - ww)))[None, None]

    coarse = spectral_conv2d(field(8, 10), weight)
    fine = spectral_conv2d(field(16, 20), weight)
    np.testing.assert_allclose(fine[:, :, ::2, ::2], coarse, atol=1e-12)


def test_spectral_conv2d_refuses_overlapping_row_blocks():
    x, _ = _inputs(8, H=4)
    with pytest.raises(refimpl.InputError, match="2·m1 <= H"):
        spectral_conv2d(x, np.ones((3, 1, 6, 2, 2)))


def test_spectral_conv2d_float32_stays_float32_and_close_to_float64():
    x, weight = _inputs(9)
    y32 = spectral_conv2d(x.astype(np.float32), weight.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, spectral_conv2d(x, weight), atol=1e-5)
