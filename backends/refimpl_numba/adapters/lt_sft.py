"""LT-SFT's L1 regularizer: Numba kernels.

Mirrors ``refimpl/adapters/lt_sft.py``. The forward ``λ·Σ|θ − θ₀|/N_params`` sums pieces of
at most ``PIECE`` elements in parallel (float64 accumulators) and adds the pieces in order;
the backward ``θ̄ = R̄·λ·sign(θ − θ₀)/N_params`` is one parallel elementwise pass (sign 0 at
θ = θ₀). The mask selection stays in the reference (a construction done once).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel

PIECE = 1 << 14  # elements per parallel piece of the reduction


@parallel_kernel(fastmath={"reassoc"})
def _piece_abs_sums(theta, theta0, partial):
    n = theta.shape[0]
    for piece in prange(partial.shape[0]):
        total = 0.0
        for j in range(piece * PIECE, min((piece + 1) * PIECE, n)):
            total += abs(np.float64(theta[j] - theta0[j]))  # the difference in the dtype, as the reference
        partial[piece] = total


@parallel_kernel()
def _signed_scale(theta, theta0, scale, g_theta):
    for j in prange(theta.shape[0]):
        difference = theta[j] - theta0[j]
        g_theta[j] = scale * (np.float64(difference > 0) - np.float64(difference < 0))  # sign, 0 at 0


def lt_sft_l1_regularizer_forward(theta, theta0, *, l1_reg=0.0, num_params=None):
    count = theta.size if num_params is None else num_params
    flat = np.ascontiguousarray(theta).reshape(-1)
    flat0 = np.ascontiguousarray(theta0).reshape(-1)
    partial = np.empty(max(-(-flat.size // PIECE), 1), dtype=np.float64)
    _piece_abs_sums(flat, flat0, partial)
    penalty = np.asarray(l1_reg * partial.sum() / count, dtype=theta.dtype)
    return penalty, (flat, flat0, theta.shape, l1_reg / count)


def lt_sft_l1_regularizer_backward(residuals, g_penalty):
    flat, flat0, shape, scale = residuals
    g_theta = np.empty(flat.shape, dtype=flat.dtype)
    _signed_scale(flat, flat0, np.float64(float(g_penalty) * scale), g_theta)
    return (g_theta.reshape(shape),)


IMPLS = {"lt_sft_l1_regularizer": Impl(lt_sft_l1_regularizer_forward, lt_sft_l1_regularizer_backward)}
