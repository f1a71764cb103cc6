"""Fourier neural operator layer and the irfft2 adjoint: NumPy's FFTs plus a Numba per-mode
complex contraction, parallel over the kept modes; the Tucker spectral weight through BLAS.

Mirrors ``refimpl/layers/spectral_conv.py``. The FFTs are ``np.fft`` (pocketfft; Numba has
no FFT), the mode gather/scatter and the adjoint column weights are the reference's helpers.
The contraction ``ŷ[k, b, o] = Σ_i x̂[k, b, i] w[k, i, o]`` runs with the kept modes as the
leading axis (one independent small complex matrix product per mode), accumulating in
complex128; its backward computes ``w̄`` and ``x̂̄`` in one pass over the modes.

``tucker_spectral_weight`` is four mode products forward and seven projections plus five
contractions backward, all complex GEMMs (NumPy's ``tensordot`` → BLAS zgemm/cgemm, in the
input's precision), with no elementwise work worth a kernel: the (Re, Im) pairs are read and
written as zero-copy complex views of the same memory (``float64[..., 2]`` ↔ ``complex128``)
instead of the reference's stack/split copies. The contraction schedule is the reference's
(``mode_product``, ``tucker_weight_backward``).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.layers.spectral_conv import (
    as_complex,
    as_pairs,
    irfft2_adjoint_spectrum,
    keep_modes,
    mode_product,
    place_modes,
    rfft2_adjoint_field,
    tucker_weight_backward,
)

from .._jit import parallel_kernel


@parallel_kernel()
def _contract_modes(x_modes, w_modes, y_modes):
    modes, batch, channels_in = x_modes.shape
    channels_out = w_modes.shape[2]
    for k in prange(modes):
        for b in range(batch):
            for o in range(channels_out):
                total = 0j
                for i in range(channels_in):
                    total += np.complex128(x_modes[k, b, i]) * np.complex128(w_modes[k, i, o])
                y_modes[k, b, o] = total


@parallel_kernel()
def _contract_modes_backward(x_modes, w_modes, g_y_modes, g_x_modes, g_w_modes):
    modes, batch, channels_in = x_modes.shape
    channels_out = w_modes.shape[2]
    for k in prange(modes):
        for i in range(channels_in):
            for o in range(channels_out):
                total = 0j
                for b in range(batch):
                    total += np.conj(np.complex128(x_modes[k, b, i])) * np.complex128(g_y_modes[k, b, o])
                g_w_modes[k, i, o] = total
        for b in range(batch):
            for i in range(channels_in):
                total = 0j
                for o in range(channels_out):
                    total += np.complex128(g_y_modes[k, b, o]) * np.conj(np.complex128(w_modes[k, i, o]))
                g_x_modes[k, b, i] = total


def _modes_first(a):
    """(P, Q, 2·m1, m2) → (2·m1·m2, P, Q), contiguous."""
    p, q = a.shape[:2]
    return np.ascontiguousarray(a.reshape(p, q, -1).transpose(2, 0, 1))


def _modes_last(a, m1x2, m2):
    """(2·m1·m2, P, Q) → (P, Q, 2·m1, m2)."""
    return a.transpose(1, 2, 0).reshape(a.shape[1], a.shape[2], m1x2, m2)


def spectral_conv2d_forward(x, weight, *, norm="backward"):
    height, width = x.shape[-2:]
    m1x2, m2 = weight.shape[2], weight.shape[3]
    complex_dtype = np.result_type(x.dtype, np.complex64)
    w_modes = _modes_first(as_complex(weight).astype(complex_dtype, copy=False))
    x_modes = _modes_first(
        keep_modes(np.fft.rfft2(x, norm=norm), m1x2 // 2, m2).astype(complex_dtype, copy=False)
    )
    y_modes = np.empty((x_modes.shape[0], x.shape[0], weight.shape[1]), dtype=complex_dtype)
    _contract_modes(x_modes, w_modes, y_modes)
    y_hat = place_modes(_modes_last(y_modes, m1x2, m2), height, width // 2 + 1)
    y = np.fft.irfft2(y_hat, s=(height, width), norm=norm)
    return y.astype(x.dtype, copy=False), (x_modes, w_modes, (height, width, m1x2, m2), norm, x.dtype)


def spectral_conv2d_backward(residuals, g_y):
    x_modes, w_modes, (height, width, m1x2, m2), norm, dtype = residuals
    g_y_hat = keep_modes(irfft2_adjoint_spectrum(g_y, norm), m1x2 // 2, m2)
    g_y_modes = _modes_first(g_y_hat.astype(x_modes.dtype, copy=False))
    g_x_modes = np.empty_like(x_modes)
    g_w_modes = np.empty_like(w_modes)
    _contract_modes_backward(x_modes, w_modes, g_y_modes, g_x_modes, g_w_modes)
    g_x_hat = place_modes(_modes_last(g_x_modes, m1x2, m2), height, width // 2 + 1)
    g_x = rfft2_adjoint_field(g_x_hat, (height, width), norm)
    return g_x.astype(dtype, copy=False), as_pairs(_modes_last(g_w_modes, m1x2, m2), dtype)


def irfft2_adjoint_forward(v, *, norm="backward"):
    """Two FFT passes and a column scaling: NumPy's FFT is the whole cost (no kernel)."""
    return as_pairs(irfft2_adjoint_spectrum(v, norm), v.dtype), (v.shape[-2:], norm, v.dtype)


def irfft2_adjoint_backward(residuals, g_u):
    shape, norm, dtype = residuals
    return (np.fft.irfft2(as_complex(g_u), s=shape, norm=norm).astype(dtype, copy=False),)


def _complex_view(pairs):
    """(…, 2) real pairs → (…) complex sharing their memory (copied only if not contiguous)."""
    complex_dtype = np.result_type(pairs.dtype, np.complex64)
    return np.ascontiguousarray(pairs).view(complex_dtype)[..., 0]


def _pairs_view(z, dtype):
    """(…) complex → (…, 2) real pairs of ``dtype``, sharing memory when z is contiguous."""
    z = np.ascontiguousarray(z, dtype=np.result_type(dtype, np.complex64))
    return z.view(dtype).reshape(*z.shape, 2)


def tucker_spectral_weight_forward(core, u_in, u_out, u_kx, u_ky):
    g = _complex_view(core)
    factors = [_complex_view(u) for u in (u_in, u_out, u_kx, u_ky)]
    w = g
    for mode in (3, 2, 1, 0):  # ((G ×4 U_ky) ×3 U_kx) ×2 U_out ×1 U_in, one GEMM each
        w = mode_product(w, factors[mode], mode)
    return _pairs_view(w, core.dtype), (g, factors, core.dtype)


def tucker_spectral_weight_backward(residuals, g_weight):
    g, factors, dtype = residuals
    g_core, g_factors = tucker_weight_backward(_complex_view(g_weight.astype(dtype, copy=False)), g, factors)
    return (_pairs_view(g_core, dtype), *(_pairs_view(u, dtype) for u in g_factors))


IMPLS = {
    "spectral_conv2d": Impl(spectral_conv2d_forward, spectral_conv2d_backward),
    "irfft2_adjoint": Impl(irfft2_adjoint_forward, irfft2_adjoint_backward),
    "tucker_spectral_weight": Impl(tucker_spectral_weight_forward, tucker_spectral_weight_backward),
}
