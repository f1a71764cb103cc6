"""Robust weight signatures: Numba kernels for the signature and the patch.

Mirrors ``refimpl/merging/rws.py``. The signature takes three parallel passes over the
flattened tensor: the largest |Δ| and |a| (``Δ = θ_c − θ_pre``, ``a = θ_clean − θ_pre`` in
float64), the float64 inner products ``⟨Δ̂, â⟩`` and ``‖â‖²`` of the vectors scaled by the
powers of two above those maxima (exact; pieces of at most ``PIECE`` elements summed in
parallel, then in order), and the elementwise ``2^p·(Δ̂ − c·â)``. The patch is one
elementwise pass ``θ_clean + Σ_c β_c RWS_c`` in float64, rounded once; its backward
``β̄_c = ⟨θ̄, RWS_c⟩`` is model soups' ``column_dots`` (parallel float64 pieces).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.merging.rws import _power_of_two_at_least

from .._jit import parallel_kernel
from .model_soups import column_dots

PIECE = 1 << 14  # elements per parallel piece of a reduction


@parallel_kernel()
def _piece_maxima(robust, clean, pre, partial):
    n = robust.shape[0]
    for piece in prange(partial.shape[0]):
        delta_max, clean_max = 0.0, 0.0
        for j in range(piece * PIECE, min((piece + 1) * PIECE, n)):
            base = np.float64(pre[j])
            delta_max = max(delta_max, abs(np.float64(robust[j]) - base))
            clean_max = max(clean_max, abs(np.float64(clean[j]) - base))
        partial[piece, 0] = delta_max
        partial[piece, 1] = clean_max


@parallel_kernel()
def _piece_products(robust, clean, pre, inverse_delta_scale, inverse_clean_scale, partial):
    n = robust.shape[0]
    for piece in prange(partial.shape[0]):
        cross, squares = 0.0, 0.0
        for j in range(piece * PIECE, min((piece + 1) * PIECE, n)):
            base = np.float64(pre[j])
            delta_hat = (np.float64(robust[j]) - base) * inverse_delta_scale
            clean_hat = (np.float64(clean[j]) - base) * inverse_clean_scale
            cross += delta_hat * clean_hat
            squares += clean_hat * clean_hat
        partial[piece, 0] = cross
        partial[piece, 1] = squares


@parallel_kernel()
def _remove_component(
    robust, clean, pre, inverse_delta_scale, inverse_clean_scale, coefficient, delta_scale, out
):
    for j in prange(robust.shape[0]):
        base = np.float64(pre[j])
        delta_hat = (np.float64(robust[j]) - base) * inverse_delta_scale
        clean_hat = (np.float64(clean[j]) - base) * inverse_clean_scale
        out[j] = delta_scale * (delta_hat - coefficient * clean_hat)


def robust_weight_signature_forward(theta_robust, theta_clean, theta_pre):
    robust, clean, pre = (np.ascontiguousarray(t).reshape(-1) for t in (theta_robust, theta_clean, theta_pre))
    pieces = max(1, -(-robust.shape[0] // PIECE))
    partial = np.empty((pieces, 2), dtype=np.float64)
    _piece_maxima(robust, clean, pre, partial)
    delta_max, clean_max = (float(v) for v in partial.max(axis=0))
    out = np.empty(robust.shape[0], dtype=theta_robust.dtype)
    if clean_max == 0.0 or delta_max == 0.0:  # nothing to remove, or nothing to project: RWS = Δ
        _remove_component(robust, clean, pre, 1.0, 0.0, 0.0, 1.0, out)
        return out.reshape(theta_robust.shape), None
    delta_scale, clean_scale = _power_of_two_at_least(delta_max), _power_of_two_at_least(clean_max)
    _piece_products(robust, clean, pre, 1.0 / delta_scale, 1.0 / clean_scale, partial)
    cross, squares = partial.sum(axis=0)  # the pieces in order
    coefficient = cross / squares  # ⟨Δ̂, â⟩/‖â‖²
    _remove_component(robust, clean, pre, 1.0 / delta_scale, 1.0 / clean_scale, coefficient, delta_scale, out)
    return out.reshape(theta_robust.shape), None


@parallel_kernel()
def _patch(clean, signatures, beta, theta):
    n, count = signatures.shape
    for j in prange(n):
        combination = 0.0
        for c in range(count):  # Σ_c β_c RWS_c in float64, c = 1, 2, …
            combination += beta[c] * np.float64(signatures[j, c])
        theta[j] = np.float64(clean[j]) + combination


def rws_patch_forward(theta_clean, signatures, alpha, *, official_squared_alpha=False):
    beta = alpha * alpha if official_squared_alpha else alpha
    count = signatures.shape[-1]
    rows = np.ascontiguousarray(signatures).reshape(-1, count)
    theta = np.empty(rows.shape[0], dtype=theta_clean.dtype)
    _patch(np.ascontiguousarray(theta_clean).reshape(-1), rows, np.asarray(beta, dtype=np.float64), theta)
    return theta.reshape(theta_clean.shape), (rows, alpha, official_squared_alpha)


def rws_patch_backward(residuals, g_theta):
    rows, alpha, official_squared_alpha = residuals
    g_beta = column_dots(np.ascontiguousarray(g_theta).reshape(-1), rows)  # ⟨θ̄, RWS_c⟩, float64
    g_alpha = 2 * alpha * g_beta if official_squared_alpha else g_beta
    return (np.asarray(g_alpha).astype(alpha.dtype),)


IMPLS = {
    "robust_weight_signature": Impl(robust_weight_signature_forward),
    "rws_patch": Impl(rws_patch_forward, rws_patch_backward),
}
