"""CorDA on CuPy: the covariance as one cuBLAS Gram product, the damping loop and the SVD on cuSOLVER.

Mirrors ``refimpl/adapters/corda.py``, sign rule included. ``corda_covariance`` scales every
sample by its own divisor (and zeroes padding rows) in one fused kernel, then forms
``X̃ᵀ X̃`` of the stacked rows in one matrix product. ``corda_init`` runs CorDA's damping loop
with ``xp.linalg.inv`` (one device-to-host read of ``‖C_λ C_λ⁻¹ − I‖_F`` per step; a singular
``C_λ`` gives a non-finite error on the GPU, a LinAlgError on the host: both fail the check),
then ``xp.linalg.svd`` of ``W C_λ`` in the input dtype, like the reference.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl, InputError

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def scaled_rows(X, scales, valid):
        # X̃ = X / c_s on the valid rows, 0 on the padding
        return xp.where(valid, X / scales, 0)

    @fuse
    def signed_root(pivot_entries, singular_values, scale):
        # sign of the largest |u_i| entry times √Σ'_i, Σ' = Σ/s
        return xp.sign(pivot_entries) * xp.sqrt(singular_values / scale)

    @fuse
    def subtract_scaled(W, principal, scale):
        return W - scale * principal

    return SimpleNamespace(scaled_rows=scaled_rows, signed_root=signed_root, subtract_scaled=subtract_scaled)


kernels_for = kernel_set(_kernels)


def corda_covariance_forward(X, lengths=None, *, sample_scaling, official_divisor=None):
    xp = xp_of(X)
    N, T, I = X.shape
    if lengths is None:
        valid = xp.ones((N, T, 1), dtype=bool)
    else:
        valid = (xp.arange(T)[None, :] < lengths[:, None])[:, :, None]
    if sample_scaling == "abs_of_max":
        scales = xp.abs(xp.max(xp.where(valid, X, -xp.inf), axis=(1, 2)))
    elif sample_scaling == "max_abs":
        scales = xp.max(xp.where(valid, xp.abs(X), 0), axis=(1, 2))
    else:
        scales = xp.ones(N, dtype=X.dtype)
    X_tilde = kernels_for(X).scaled_rows(X, scales.astype(X.dtype)[:, None, None], valid)
    stacked = X_tilde.astype(X.dtype, copy=False).reshape(N * T, I)
    divisor = float(N if official_divisor is None else official_divisor)
    C = xp.matmul(stacked.T, stacked) / divisor
    return C, None


def _damped_inverse(xp, C, damping, inverse_tolerance):
    identity = xp.eye(C.shape[0], dtype=C.dtype)
    diagonal_mean = xp.mean(xp.diagonal(C))
    lam = float(damping)
    while True:
        shift = lam * diagonal_mean
        if not bool(xp.isfinite(shift)):
            raise InputError(
                "corda_init: argument 'C': expected a covariance whose damped inverse converges, got "
                f"‖C_λ C_λ⁻¹ − I‖_F >= {inverse_tolerance:g} for every λ up to overflow"
            )
        C_damped = C + shift * identity
        try:
            C_inverse = xp.linalg.inv(C_damped)
            inverse_error = float(xp.linalg.norm(xp.matmul(C_damped, C_inverse) - identity))
        except np.linalg.LinAlgError:
            inverse_error = np.inf
        if inverse_error < inverse_tolerance:
            return C_damped, C_inverse
        lam *= 2.0


def corda_init_forward(W, C, r, *, mode, scale=1.0, damping=0.01, inverse_tolerance=0.05):
    xp = xp_of(W)
    k = kernels_for(W)
    scale, r = float(scale), int(r)
    C_damped, C_inverse = _damped_inverse(xp, C, damping, inverse_tolerance)
    U, S, Vh = xp.linalg.svd(xp.matmul(W, C_damped), full_matrices=False)
    count = S.shape[0]
    kept = slice(0, r) if mode == "ipm" else slice(count - r, count)
    U_kept, S_kept = U[:, kept], S[kept]
    V_hat_T = xp.matmul(Vh[kept], C_inverse)  # V̂ᵀ = Vᵀ C_λ⁻¹
    pivot = xp.argmax(xp.abs(U_kept), axis=0)  # argmax returns the first maximum on ties
    factor = k.signed_root(U_kept[pivot, xp.arange(r)], S_kept, scale)
    A = factor[:, None] * V_hat_T
    B = U_kept * factor
    W_res = k.subtract_scaled(W, xp.matmul(B, A), scale)
    return (A, B, W_res), None


IMPLS = {
    "corda_covariance": Impl(corda_covariance_forward),
    "corda_init": Impl(corda_init_forward),
}
