"""Expert Merging: Numba kernels for the merge, the coefficient regularizer and the hidden-state MSE.

Mirrors ``refimpl/merging/expert_merging.py``. The merge is one pass over the flattened
parameter, parallel over elements; each element finds its chunk arithmetically (``torch.chunk``
chunks of ``⌈n/C⌉``, or the even split whose first ``n mod C`` chunks are one larger) and adds
``Σ_k α_{k,c} τ_{k,j}`` in the reference's order (the expert sum first, in the input dtype, then
θ₀). Its backward ``ᾱ_{k,c} = ⟨θ̄|_c, τ_{k,c}⟩`` cuts every chunk into pieces of at most
``PIECE`` elements, sums the pieces in parallel (float64) and adds the pieces of each chunk
in order. The MSE is a parallel float64 sum of squares over pieces; its backward is one
elementwise pass writing both cotangents. α and α(1 − α) come from the reference's
``sigmoid_and_slope`` (K·C values).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl, sigmoid_and_slope
from refimpl.merging.expert_merging import chunk_bounds

from .._jit import parallel_kernel

PIECE = 1 << 14  # elements per parallel piece of a reduction


@njit(cache=True, inline="always")
def _chunk_of(j, n, num_chunks, official):
    if official:
        size = -(-n // num_chunks)  # ⌈n/C⌉
        return j // size
    small, larger = n // num_chunks, n % num_chunks
    edge = larger * (small + 1)  # the first n mod C chunks hold ⌊n/C⌋ + 1 elements
    if j < edge:
        return j // (small + 1)
    return larger + (j - edge) // small


@parallel_kernel()
def _merge(base, tau, alpha, official, theta):
    n, num_experts = tau.shape
    num_chunks = alpha.shape[1]
    for j in prange(n):
        c = _chunk_of(j, n, num_chunks, official)
        # 0 in the input dtype (α is finite; θ₀ need not be): the sum is accumulated like the reference
        combined = alpha[0, c] - alpha[0, c]
        for k in range(num_experts):
            combined = combined + alpha[k, c] * tau[j, k]
        theta[j] = base[j] + combined


@parallel_kernel()
def _piece_dots(g, tau, starts, stops, partial):
    num_experts = tau.shape[1]
    for p in prange(starts.shape[0]):
        for k in range(num_experts):
            total = 0.0
            for j in range(starts[p], stops[p]):
                total += g[j] * tau[j, k]
            partial[p, k] = total


def _pieces(bounds):
    """Pieces of at most PIECE elements inside each chunk: ``(starts, stops, chunk of each)``."""
    starts, stops, owners = [], [], []
    for c in range(bounds.shape[0] - 1):
        for start in range(int(bounds[c]), int(bounds[c + 1]), PIECE):
            starts.append(start)
            stops.append(min(start + PIECE, int(bounds[c + 1])))
            owners.append(c)
    as_array = lambda values: np.array(values, dtype=np.int64)  # noqa: E731
    return as_array(starts), as_array(stops), as_array(owners)


def expert_merging_forward(theta_base, task_vectors, a, *, official_chunking=True):
    n = theta_base.size
    num_experts, num_chunks = a.shape
    alpha, slope = sigmoid_and_slope(a)
    base = np.ascontiguousarray(theta_base).reshape(n)
    tau = np.ascontiguousarray(task_vectors).reshape(n, num_experts)
    theta = np.empty(n, dtype=theta_base.dtype)
    _merge(base, tau, np.ascontiguousarray(alpha), bool(official_chunking), theta)
    bounds = chunk_bounds(n, num_chunks, official_chunking)
    return theta.reshape(theta_base.shape), (tau, slope, bounds)


def expert_merging_backward(residuals, g_theta):
    tau, slope, bounds = residuals
    num_experts, num_chunks = slope.shape
    starts, stops, owners = _pieces(bounds)
    partial = np.empty((starts.shape[0], num_experts), dtype=np.float64)
    _piece_dots(np.ascontiguousarray(g_theta).reshape(-1), tau, starts, stops, partial)
    g_alpha = np.zeros((num_chunks, num_experts), dtype=np.float64)
    np.add.at(g_alpha, owners, partial)  # pieces of a chunk in order; empty chunks stay 0
    return ((g_alpha.T * slope).astype(slope.dtype),)


# -- the coefficient regularizer (K·Σ C values: plain NumPy on the reference's pieces) -----------
def expert_merging_coefficient_regularizer_forward(a, *, weight=0.1, num_experts, target=0.1):
    alpha, slope = sigmoid_and_slope(a)
    per_expert = a.size // num_experts  # N/K
    deviation = alpha.astype(np.float64) - target
    loss = weight * np.abs(deviation).sum() / per_expert
    return np.asarray(loss, dtype=a.dtype), (np.sign(deviation), slope, weight / per_expert)


def expert_merging_coefficient_regularizer_backward(residuals, g_loss):
    sign, slope, scale = residuals
    return ((float(g_loss) * scale * sign * slope).astype(slope.dtype),)


# -- the hidden-state MSE ------------------------------------------------------------------------
@parallel_kernel()
def _piece_squares(h_merged, h_expert, partial):
    n = h_merged.shape[0]
    for p in prange(partial.shape[0]):
        total = 0.0
        for j in range(p * PIECE, min((p + 1) * PIECE, n)):
            d = np.float64(h_merged[j]) - np.float64(h_expert[j])
            total += d * d
        partial[p] = total


@parallel_kernel()
def _mse_backward(h_merged, h_expert, scale, g_merged, g_expert):
    for j in prange(h_merged.shape[0]):
        value = scale * (np.float64(h_merged[j]) - np.float64(h_expert[j]))
        g_merged[j] = value
        g_expert[j] = -value


def hidden_state_mse_forward(h_merged, h_expert):
    merged = np.ascontiguousarray(h_merged).reshape(-1)
    expert = np.ascontiguousarray(h_expert).reshape(-1)
    partial = np.empty(-(-merged.shape[0] // PIECE), dtype=np.float64)
    _piece_squares(merged, expert, partial)
    loss = partial.sum() / merged.shape[0]
    return np.asarray(loss, dtype=h_merged.dtype), (merged, expert, h_merged.shape)


def hidden_state_mse_backward(residuals, g_loss):
    merged, expert, shape = residuals
    g_merged = np.empty_like(merged)
    g_expert = np.empty_like(merged)
    _mse_backward(merged, expert, 2.0 * float(g_loss) / merged.shape[0], g_merged, g_expert)
    return g_merged.reshape(shape), g_expert.reshape(shape)


IMPLS = {
    "expert_merging": Impl(expert_merging_forward, expert_merging_backward),
    "expert_merging_coefficient_regularizer": Impl(
        expert_merging_coefficient_regularizer_forward, expert_merging_coefficient_regularizer_backward
    ),
    "hidden_state_mse": Impl(hidden_state_mse_forward, hidden_state_mse_backward),
}
