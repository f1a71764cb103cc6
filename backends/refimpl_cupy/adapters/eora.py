"""EoRA on CuPy: float64 ``eigh`` of C and the whitened SVD on cuSOLVER, the factors fused.

Mirrors ``refimpl/adapters/eora.py``: eigenvalues of C in float64 with negative ones set to 0
(or, as officially, to the smallest positive one), ``Q' = Q Λ^{½}`` cast to the input dtype,
``ΔW Q' = U Σ Vᵀ`` by ``xp.linalg.svd``, the sign rule on the kept columns of U, ``B = U_r Σ_r^{½}`` and
``A = Σ_r^{-½} U_rᵀ ΔW`` (no inverse of Q', so an exactly zero eigenvalue stays harmless;
an empty component σ = 0 gives zero factors). The per-component factors are one fused kernel.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def signed_roots(pivot_entries, singular_values):
        # (sign·√σ, sign/√σ), the latter 0 for an empty component σ = 0
        sign = xp.sign(pivot_entries)
        root = xp.sqrt(singular_values)
        safe = xp.where(root > 0, root, 1)
        return sign * root, xp.where(root > 0, sign / safe, 0)

    return SimpleNamespace(signed_roots=signed_roots)


kernels_for = kernel_set(_kernels)


def eora_compensation_forward(W, W_c, C, r, *, negative_eigenvalues="zero"):
    xp = xp_of(W)
    r = int(r)
    eigenvalues, Q = xp.linalg.eigh(C.astype(xp.float64))
    negative = eigenvalues < 0
    if bool(xp.any(negative)):
        if negative_eigenvalues == "zero":  # C is a Gram matrix: its negative eigenvalues are zeros
            replacement = 0.0
        else:  # the official rule
            replacement = xp.min(xp.where(eigenvalues > 0, eigenvalues, xp.inf))
        eigenvalues = xp.where(negative, replacement, eigenvalues)
    Q_prime = (Q * xp.sqrt(eigenvalues)).astype(W.dtype)
    delta = W - W_c
    U, S, _ = xp.linalg.svd(xp.matmul(delta, Q_prime), full_matrices=False)
    U_r, S_r = U[:, :r], S[:r]
    pivot = xp.argmax(xp.abs(U_r), axis=0)  # argmax returns the first maximum on ties
    root, inverse_root = kernels_for(W).signed_roots(U_r[pivot, xp.arange(r)], S_r)
    B = U_r * root
    A = xp.matmul(inverse_root[:, None] * U_r.T, delta)
    W_eff = W_c + xp.matmul(B, A)
    return (A, B, W_eff), None


IMPLS = {"eora_compensation": Impl(eora_compensation_forward)}
