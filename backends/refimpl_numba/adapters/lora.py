"""The LoRA-style linear layer: NumPy's BLAS for the products, a fused Numba epilogue.

Mirrors ``refimpl/adapters/lora.py``. Almost all the work is two dense products,
``x Wᵀ`` (forward) and ``G W`` (backward), ~90% of the time at the benchmark size; they,
and the thin products ``x Aᵀ``, ``G B``, ``Gᵀ H``, ``H̄ᵀ X``, ``H̄ A``, are NumPy matmuls
in the wrapper (NumPy's multithreaded OpenBLAS). What Numba fuses is the forward's
rank-r update of the (T, out) output, one pass per row and no temporary::

    y = x Wᵀ                                  (BLAS)
    y[t] += Σ_k h[t, k]·(s·Bᵀ)[k] + b         (@njit, in place)

instead of the reference's ``x Wᵀ + s·(h Bᵀ) + b`` (three (T, out) temporaries).
``h = x Aᵀ`` is computed once and kept as the residual; ``G B`` is computed once and
shared by x̄ and Ā; the backward accumulates ``x̄ = G W`` then ``x̄ += h̄ A`` in place.

Measured (x (4096, 1024), W (1024, 1024), r = 16, float32, forward + backward, 2 cores,
best of 25; the machine was shared, so differences of a few ms are noise-level):

* this module ≈ 102–105 ms; the NumPy reference ≈ 108–111 ms;
* the same loops with ``np.dot`` inside ``@njit`` ≈ 112 ms: Numba's ``np.dot`` calls
  SciPy's BLAS, a second OpenBLAS with its own thread pool, and was slower here;
* the epilogue with ``parallel=True`` ≈ 103–108 ms: faster alone (1.7 vs ~4.5 ms) but
  slower in the pipeline, most likely because the idle OpenMP workers compete with the
  BLAS threads of the next product on two cores; so the kernel is serial;
* the same fused loop for ``x̄ += h̄ A`` lost to BLAS plus an in-place add (~2 ms).

Accumulation is in the input dtype, inner loop over the output features (contiguous,
vectorized without fastmath).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.authoring import Impl


@njit(cache=True)
def _add_low_rank_rows(out, coefficients, basis):
    """``out[t, :] += Σ_k coefficients[t, k]·basis[k, :]`` for every row t, in place."""
    rows, width = out.shape
    rank = coefficients.shape[1]
    for t in range(rows):
        for k in range(rank):
            c = coefficients[t, k]
            for j in range(width):
                out[t, j] += c * basis[k, j]


@njit(cache=True)
def _add_low_rank_rows_and_bias(out, coefficients, basis, bias):
    """``out[t, :] += Σ_k coefficients[t, k]·basis[k, :] + bias`` for every row t, in place."""
    rows, width = out.shape
    rank = coefficients.shape[1]
    for t in range(rows):
        for k in range(rank):
            c = coefficients[t, k]
            for j in range(width):
                out[t, j] += c * basis[k, j]
        for j in range(width):
            out[t, j] += bias[j]


def lora_linear_forward(x, W, A, B, bias=None, *, scale):
    scale = float(scale)
    x_rows = np.ascontiguousarray(x).reshape(-1, W.shape[1])
    h = x_rows @ A.T  # (T, r), the residual
    y = x_rows @ W.T  # a fresh C-contiguous (T, out) array, updated in place below
    scaled_B_t = np.ascontiguousarray((scale * B).T)  # (r, out): s·Bᵀ, the rows of the update
    if bias is None:
        _add_low_rank_rows(y, h, scaled_B_t)
    else:
        _add_low_rank_rows_and_bias(y, h, scaled_B_t, bias)
    return y.reshape(*x.shape[:-1], W.shape[0]), (x_rows, W, A, B, h, scale, x.shape)


def lora_linear_backward(residuals, g_y):
    x_rows, W, A, B, h, scale, x_shape = residuals
    g_rows = np.ascontiguousarray(g_y).reshape(-1, W.shape[0])
    g_h = scale * (g_rows @ B)  # h̄ = s·G B, (T, r), shared by x̄ and Ā
    g_x = g_rows @ W
    g_x += g_h @ A  # BLAS plus an in-place add beat the fused loop here (see above)
    g_A = g_h.T @ x_rows
    g_B = scale * (g_rows.T @ h)
    return g_x.reshape(x_shape), g_A, g_B


IMPLS = {"lora_linear": Impl(lora_linear_forward, lora_linear_backward)}
