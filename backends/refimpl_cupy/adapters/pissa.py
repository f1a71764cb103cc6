"""PiSSA initialization on CuPy: cuSOLVER SVD, fused factor scaling, cuBLAS residual.

Mirrors ``refimpl/adapters/pissa.py``, sign rule included: the largest-magnitude entry of
each kept left singular vector is made positive (the first such entry on a tie), flipping
the matching right vector with it. ``xp.linalg.svd`` runs in the input dtype (cuSOLVER's
``gesvd`` on a GPU, LAPACK on the host), like the reference. The per-vector factor
``sign·√(S_r/s)`` is one fused kernel and ``W_res = W − s·(B A)`` another, after one matmul.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def signed_root(pivot_entries, singular_values, scale):
        # sign of the largest |v_i| entry times √S'_i, S'_i = S_i/s
        return xp.sign(pivot_entries) * xp.sqrt(singular_values / scale)

    @fuse
    def subtract_scaled(W, principal, scale):
        return W - scale * principal

    return SimpleNamespace(signed_root=signed_root, subtract_scaled=subtract_scaled)


kernels_for = kernel_set(_kernels)


def pissa_init_forward(W, r, *, scale=1.0):
    xp = xp_of(W)
    k = kernels_for(W)
    scale = float(scale)
    r = int(r)
    V, S, Uh = xp.linalg.svd(W, full_matrices=False)
    V_r, S_r, Uh_r = V[:, :r], S[:r], Uh[:r]
    columns = xp.arange(r)
    pivot = xp.argmax(xp.abs(V_r), axis=0)  # argmax returns the first maximum on ties
    factor = k.signed_root(V_r[pivot, columns], S_r, scale)
    A = factor[:, None] * Uh_r
    B = V_r * factor
    W_res = k.subtract_scaled(W, xp.matmul(B, A), scale)
    return (A, B, W_res), None


IMPLS = {"pissa_init": Impl(pissa_init_forward)}
