"""Set2Set pooling and the order-search loss on CuPy: batched matmuls over padded sets, fused
gate kernels.

Mirrors ``refimpl/layers/set2set.py``. The ragged sets are laid out once as a padded
(S, L, d) block (L the largest set; a mask marks the real slots), so the attention scores
``e = M q`` and the readout ``r = aᵀM`` are batched matrix products (``xp.matmul``) and the
per-set softmax is a masked row softmax. The LSTM products go through ``xp.matmul``; the gate
nonlinearities, the cell update and their backward are fused kernels.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def sigmoid(u):
        e = xp.exp(-abs(u))
        return xp.where(u >= 0, 1 / (1 + e), e / (1 + e))

    @fuse
    def cell(i, f, g, o, c_prev):
        c = f * c_prev + i * g
        t = xp.tanh(c)
        return c, t, o * t

    @fuse
    def cell_backward(g_h, g_c, i, f, g, o, c_prev, t):
        g_c_t = g_h * o * (1 - t * t) + g_c
        return (
            g_c_t * g * i * (1 - i),
            g_c_t * c_prev * f * (1 - f),
            g_c_t * i * (1 - g * g),
            g_h * t * o * (1 - o),
            g_c_t * f,
        )

    @fuse
    def masked_exp(e, shift, mask):
        return xp.where(mask, xp.exp(xp.where(mask, e - shift, 0)), 0)

    return SimpleNamespace(sigmoid=sigmoid, cell=cell, cell_backward=cell_backward, masked_exp=masked_exp)


kernels_for = kernel_set(_kernels)


def _padded_sets(xp, set_index, num_sets):
    """``slots`` (S, L): the memory in each slot of each set (0 where empty), ``mask`` (S, L)."""
    order = xp.argsort(set_index, kind="stable")
    counts = xp.bincount(set_index, minlength=num_sets)
    starts = xp.cumsum(counts) - counts
    longest = max(int(counts.max()), 1)
    sorted_sets = set_index[order]
    position = xp.arange(set_index.shape[0]) - starts[sorted_sets]
    slots = xp.zeros((num_sets, longest), dtype=xp.int64)
    mask = xp.zeros((num_sets, longest), dtype=bool)
    slots[sorted_sets, position] = order
    mask[sorted_sets, position] = True
    return slots, mask


def set2set_pooling_forward(memories, set_index, w_ih, w_hh, b_ih, b_hh, *, num_sets, processing_steps):
    xp = xp_of(memories)
    k = kernels_for(memories)
    num_sets = int(num_sets)
    dtype = memories.dtype
    d = memories.shape[1]
    slots, mask = _padded_sets(xp, set_index, num_sets)
    padded = memories[slots]  # (S, L, d); masked slots hold memory 0 and get weight 0
    bias = b_ih + b_hh
    q_star = xp.zeros((num_sets, 2 * d), dtype=dtype)
    h = xp.zeros((num_sets, d), dtype=dtype)
    c = xp.zeros((num_sets, d), dtype=dtype)
    steps = []
    for _ in range(int(processing_steps)):
        z = xp.matmul(q_star, w_ih.T) + xp.matmul(h, w_hh.T) + bias
        i, f, o = k.sigmoid(z[:, :d]), k.sigmoid(z[:, d : 2 * d]), k.sigmoid(z[:, 3 * d :])
        g = xp.tanh(z[:, 2 * d : 3 * d])
        c_next, tanh_c, h_next = k.cell(i, f, g, o, c)
        e = xp.matmul(padded, h_next[:, :, None])[:, :, 0]
        shift = xp.where(mask, e, -xp.inf).max(axis=1, keepdims=True)
        shift = xp.where(xp.isfinite(shift), shift, 0)  # an empty set: no entries, no shift
        w = k.masked_exp(e, shift, mask)
        total = w.sum(axis=1, keepdims=True)
        a = w / xp.where(total > 0, total, 1)
        r = xp.matmul(a[:, None, :], padded)[:, 0, :]
        steps.append((q_star, h, c, i, f, g, o, tanh_c, h_next, a))
        q_star = xp.concatenate([h_next, r], axis=1).astype(dtype)
        h, c = h_next, c_next
    return q_star, (memories, slots, mask, padded, w_ih, w_hh, steps)


def set2set_pooling_backward(residuals, g_q_star):
    memories, slots, mask, padded, w_ih, w_hh, steps = residuals
    xp = xp_of(memories)
    k = kernels_for(memories)
    dtype = memories.dtype
    num_sets, d = slots.shape[0], memories.shape[1]
    g_padded = xp.zeros(padded.shape, dtype=dtype)
    g_w_ih, g_w_hh = xp.zeros_like(w_ih), xp.zeros_like(w_hh)
    g_bias = xp.zeros(4 * d, dtype=dtype)
    g_h = xp.zeros((num_sets, d), dtype=dtype)
    g_c = xp.zeros((num_sets, d), dtype=dtype)
    for q_star_prev, h_prev, c_prev, i, f, g, o, tanh_c, q, a in reversed(steps):
        g_q, g_r = g_q_star[:, :d], g_q_star[:, d:]
        g_a = xp.matmul(padded, g_r[:, :, None])[:, :, 0]
        g_e = a * (g_a - (a * g_a).sum(axis=1, keepdims=True))
        g_padded += a[:, :, None] * g_r[:, None, :] + g_e[:, :, None] * q[:, None, :]
        g_q_attention = xp.matmul(g_e[:, None, :], padded)[:, 0, :]
        g_z_i, g_z_f, g_z_g, g_z_o, g_c = k.cell_backward(
            g_q + g_q_attention + g_h, g_c, i, f, g, o, c_prev, tanh_c
        )
        g_z = xp.concatenate([g_z_i, g_z_f, g_z_g, g_z_o], axis=1)
        g_w_ih += xp.matmul(g_z.T, q_star_prev)
        g_w_hh += xp.matmul(g_z.T, h_prev)
        g_bias += g_z.sum(axis=0)
        g_q_star = xp.matmul(g_z, w_ih)
        g_h = xp.matmul(g_z, w_hh)
    g_memories = xp.zeros_like(memories)
    g_memories[slots[mask]] = g_padded[mask]  # each memory fills exactly one slot
    return g_memories, g_w_ih, g_w_hh, g_bias, g_bias.copy()


def order_search_loss_forward(log_likelihoods):
    xp = xp_of(log_likelihoods)
    best = xp.argmax(log_likelihoods, axis=1)  # the first of tied maxima
    loss = -xp.take_along_axis(log_likelihoods, best[:, None], axis=1)[:, 0]
    return loss, (best, log_likelihoods.shape, log_likelihoods.dtype)


def order_search_loss_backward(residuals, g_loss):
    best, shape, dtype = residuals
    xp = xp_of(best)
    columns = xp.arange(shape[1])[None, :]
    g_log_likelihoods = xp.where(columns == best[:, None], -g_loss[:, None], 0).astype(dtype)
    return (g_log_likelihoods,)


IMPLS = {
    "set2set_pooling": Impl(set2set_pooling_forward, set2set_pooling_backward),
    "order_search_loss": Impl(order_search_loss_forward, order_search_loss_backward),
}
