"""TrAct linear layer: NumPy's BLAS and Cholesky, Numba for the bias and the triangular solves.

Mirrors ``refimpl/optim/tract.py``. The work is three products and one small SPD solve:

* forward ``y = x Wᵀ`` (BLAS) and the bias added in place by a Numba loop
  (the reference's ``x Wᵀ + b`` writes a second (b, m) array);
* backward ``x̄ = G W`` (BLAS), ``b̄ = Σ_rows G`` (NumPy's column sum);
* the weight gradient in float64, as in the reference: the Gram matrix of the smaller side
  (``XᵀX`` for b ≥ n, ``XXᵀ`` for b < n) by NumPy's BLAS, scaled by 1/b with λ added on
  the diagonal, factorized by ``np.linalg.cholesky``, then solved by forward and back
  substitution in Numba, in place on the right-hand side; never an inverse.

Everything goes through NumPy's own BLAS/LAPACK, none through SciPy's: SciPy links a
second OpenBLAS with its own thread pool, and on two shared cores its threads and
NumPy's (still spinning after a product) slowed a 147 × 147 Cholesky from ~0.1 ms alone
to tens of ms inside the pipeline. The substitutions are O(n²·m), serial, vectorized over
the m right-hand sides.

Measured (x (8192, 147), W (64, 147), float32, forward + backward, ``refimpl bench``,
2 shared cores): ~22 ms against ~170 ms for the NumPy reference and ~23 ms for PyTorch
with ``OMP_WAIT_POLICY=passive``; ~400 ms without it, because the op layer's parallel
finiteness check leaves Numba's OpenMP workers spinning while NumPy's BLAS threads run.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.authoring import Impl


@njit(cache=True)
def _add_bias_rows(y, bias):
    """``y[t, :] += bias`` for every row t, in place (serial: a parallel loop's idle workers
    competed with the BLAS threads of the next product, as measured for ``lora_linear``)."""
    for t in range(y.shape[0]):
        for j in range(y.shape[1]):
            y[t, j] += bias[j]


@njit(cache=True)
def _cholesky_solve(lower, rhs):
    """``rhs ← (L Lᵀ)⁻¹ rhs`` in place: forward substitution with L, back substitution with Lᵀ."""
    size, columns = rhs.shape
    for i in range(size):  # L z = r
        for k in range(i):
            entry = lower[i, k]
            for j in range(columns):
                rhs[i, j] -= entry * rhs[k, j]
        pivot = lower[i, i]
        for j in range(columns):
            rhs[i, j] /= pivot
    for i in range(size - 1, -1, -1):  # Lᵀ x = z
        for k in range(i + 1, size):
            entry = lower[k, i]
            for j in range(columns):
                rhs[i, j] -= entry * rhs[k, j]
        pivot = lower[i, i]
        for j in range(columns):
            rhs[i, j] /= pivot


def _solve_ridge(gram, rows, lam, rhs):
    """``(gram/b + λI)⁻¹ rhs``, float64; ``gram`` and ``rhs`` are overwritten."""
    gram /= rows
    gram[np.diag_indices_from(gram)] += lam
    solution = np.ascontiguousarray(rhs)
    _cholesky_solve(np.linalg.cholesky(gram), solution)
    return solution


def tract_linear_forward(x, W, bias, *, lam=0.1):  # noqa: N803 - the reference's W
    x = np.ascontiguousarray(x)
    y = x @ W.T  # a fresh C-contiguous (b, m) array, updated in place
    _add_bias_rows(y, np.ascontiguousarray(bias))
    return y, (x, W, float(lam))


def tract_linear_backward(residuals, g_y):
    x, W, lam = residuals
    g_y = np.ascontiguousarray(g_y)
    rows, features = x.shape
    g_x = g_y @ W
    g_bias = g_y.sum(axis=0)
    x64 = x.astype(np.float64, copy=False)
    g64 = g_y.astype(np.float64, copy=False)
    if rows >= features:  # (n, n): M = XᵀX/b + λI; W̄ = (M⁻¹ XᵀG)ᵀ
        g_W = _solve_ridge(x64.T @ x64, rows, lam, x64.T @ g64).T
    else:  # (b, b): K = XXᵀ/b + λI; W̄ = (K⁻¹ G)ᵀ X
        g_W = _solve_ridge(x64 @ x64.T, rows, lam, g64.copy()).T @ x64
    return g_x, g_W.astype(x.dtype), g_bias


IMPLS = {"tract_linear": Impl(tract_linear_forward, tract_linear_backward)}
