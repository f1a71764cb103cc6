"""Fourier neural operator layer and the irfft2 adjoint on CuPy: ``cupy.fft`` plus the per-mode
complex contraction as one batched ``matmul`` over the kept modes; the Tucker spectral weight
as complex ``tensordot``s (cuBLAS).

Mirrors ``refimpl/layers/spectral_conv.py`` (its array-generic helpers run on CuPy arrays:
mode gather/scatter and the adjoint column weights). With the modes as the batch axis,
``ŷ[k] = x̂[k] @ w[k]``, ``w̄[k] = x̂[k]ᴴ @ ŷ̄[k]`` and ``x̂̄[k] = ŷ̄[k] @ w[k]ᴴ`` are batched
complex GEMMs (cuBLAS on the GPU). The conjugation and the complex ↔ pair conversions are
fused elementwise kernels built with ``kernel_set``, so the module runs on NumPy inputs as
``cupy[host]``.

``tucker_spectral_weight`` runs the reference's contraction schedule (``mode_product``,
``tucker_weight_backward``, array-generic) on CuPy arrays: every step is a complex GEMM.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl
from refimpl.layers.spectral_conv import (
    irfft2_adjoint_spectrum,
    keep_modes,
    mode_product,
    place_modes,
    rfft2_adjoint_field,
    tucker_weight_backward,
)

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def to_complex(real, imag):
        return real + 1j * imag

    @fuse
    def conj(z):
        return xp.conj(z)

    return SimpleNamespace(to_complex=to_complex, conj=conj)


kernels_for = kernel_set(_kernels)


def _pairs(z, dtype, xp):
    return xp.stack([z.real, z.imag], axis=-1).astype(dtype, copy=False)


def _modes_first(a, xp):
    p, q = a.shape[:2]
    return xp.ascontiguousarray(a.reshape(p, q, -1).transpose(2, 0, 1))


def _modes_last(a, m1x2, m2):
    return a.transpose(1, 2, 0).reshape(a.shape[1], a.shape[2], m1x2, m2)


def spectral_conv2d_forward(x, weight, *, norm="backward"):
    xp, k = xp_of(x), kernels_for(x)
    height, width = x.shape[-2:]
    m1x2, m2 = weight.shape[2], weight.shape[3]
    complex_dtype = xp.result_type(x.dtype, xp.complex64)
    w = k.to_complex(weight[..., 0], weight[..., 1]).astype(complex_dtype, copy=False)
    w_modes = _modes_first(w, xp)
    x_hat = xp.fft.rfft2(x, norm=norm).astype(complex_dtype, copy=False)
    x_modes = _modes_first(keep_modes(x_hat, m1x2 // 2, m2, xp), xp)
    y_modes = xp.matmul(x_modes, w_modes)  # (K, B, I) @ (K, I, O)
    y_hat = place_modes(_modes_last(y_modes, m1x2, m2), height, width // 2 + 1, xp)
    y = xp.fft.irfft2(y_hat, s=(height, width), norm=norm)
    return y.astype(x.dtype, copy=False), (x_modes, w_modes, (height, width, m1x2, m2), norm, x.dtype)


def spectral_conv2d_backward(residuals, g_y):
    x_modes, w_modes, (height, width, m1x2, m2), norm, dtype = residuals
    xp, k = xp_of(g_y), kernels_for(g_y)
    g_y_hat = keep_modes(irfft2_adjoint_spectrum(g_y, norm, xp), m1x2 // 2, m2, xp)
    g_y_modes = _modes_first(g_y_hat.astype(x_modes.dtype, copy=False), xp)
    g_w_modes = xp.matmul(k.conj(x_modes).transpose(0, 2, 1), g_y_modes)  # x̂ᴴ ŷ̄ per mode
    g_x_modes = xp.matmul(g_y_modes, k.conj(w_modes).transpose(0, 2, 1))  # ŷ̄ wᴴ per mode
    g_x_hat = place_modes(_modes_last(g_x_modes, m1x2, m2), height, width // 2 + 1, xp)
    g_x = rfft2_adjoint_field(g_x_hat, (height, width), norm, xp)
    return g_x.astype(dtype, copy=False), _pairs(_modes_last(g_w_modes, m1x2, m2), dtype, xp)


def irfft2_adjoint_forward(v, *, norm="backward"):
    xp = xp_of(v)
    return _pairs(irfft2_adjoint_spectrum(v, norm, xp), v.dtype, xp), (v.shape[-2:], norm, v.dtype)


def irfft2_adjoint_backward(residuals, g_u):
    shape, norm, dtype = residuals
    xp, k = xp_of(g_u), kernels_for(g_u)
    u = k.to_complex(g_u[..., 0], g_u[..., 1])
    return (xp.fft.irfft2(u, s=shape, norm=norm).astype(dtype, copy=False),)


def tucker_spectral_weight_forward(core, u_in, u_out, u_kx, u_ky):
    xp, k = xp_of(core), kernels_for(core)
    g = k.to_complex(core[..., 0], core[..., 1])
    factors = [k.to_complex(u[..., 0], u[..., 1]) for u in (u_in, u_out, u_kx, u_ky)]
    w = g
    for mode in (3, 2, 1, 0):  # ((G ×4 U_ky) ×3 U_kx) ×2 U_out ×1 U_in
        w = mode_product(w, factors[mode], mode, xp)
    return _pairs(w, core.dtype, xp), (g, factors, core.dtype)


def tucker_spectral_weight_backward(residuals, g_weight):
    g, factors, dtype = residuals
    xp, k = xp_of(g_weight), kernels_for(g_weight)
    g_w = k.to_complex(g_weight[..., 0], g_weight[..., 1]).astype(g.dtype, copy=False)
    g_core, g_factors = tucker_weight_backward(g_w, g, factors, xp)
    return (_pairs(g_core, dtype, xp), *(_pairs(u, dtype, xp) for u in g_factors))


IMPLS = {
    "spectral_conv2d": Impl(spectral_conv2d_forward, spectral_conv2d_backward),
    "irfft2_adjoint": Impl(irfft2_adjoint_forward, irfft2_adjoint_backward),
    "tucker_spectral_weight": Impl(tucker_spectral_weight_forward, tucker_spectral_weight_backward),
}
