"""Set2Set pooling and the order-search loss: NumPy BLAS for the LSTM products, Numba kernels
for the gates and the per-set attention.

Mirrors ``refimpl/layers/set2set.py``. The memories are visited set by set through a stable
argsort of the set index (CSR pointers), so each set's softmax and readout is one
``prange`` iteration and the memory cotangents of different sets never collide. The LSTM's
products ``q*W_ihᵀ``, ``hW_hhᵀ``, ``z̄ᵀq*``, ``z̄W`` go through ``np.dot``; the gate
nonlinearities and the cell update are a row kernel. Exponentials are ``_vmath.exp`` in
float64 (row scalars and accumulators are float64).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from refimpl.authoring import Impl

from .._jit import parallel_kernel
from .._vmath import exp


@njit(cache=True, inline="always")
def _sigmoid(u):
    e = exp(-abs(u))
    return 1.0 / (1.0 + e) if u >= 0 else e / (1.0 + e)


@parallel_kernel()
def _lstm_cell(z, c_prev, gates, c_next, tanh_c, h_next):
    """``gates = [σ(i), σ(f), tanh(g), σ(o)]``, ``c = f c + i g``, ``h = o tanh c``, per set."""
    d = c_prev.shape[1]
    for s in prange(z.shape[0]):
        for j in range(d):
            i = _sigmoid(np.float64(z[s, j]))
            f = _sigmoid(np.float64(z[s, d + j]))
            g = math.tanh(np.float64(z[s, 2 * d + j]))
            o = _sigmoid(np.float64(z[s, 3 * d + j]))
            c = f * np.float64(c_prev[s, j]) + i * g
            t = math.tanh(c)
            gates[s, j], gates[s, d + j], gates[s, 2 * d + j], gates[s, 3 * d + j] = i, f, g, o
            c_next[s, j] = c
            tanh_c[s, j] = t
            h_next[s, j] = o * t


@parallel_kernel()
def _attend(memories, order, ptr, q, a, r):
    """Per set: ``e_n = ⟨m_n, q⟩``, ``a = softmax(e)`` (max-shifted), ``r = Σ a_n m_n``."""
    d = memories.shape[1]
    for s in prange(ptr.shape[0] - 1):
        for j in range(d):
            r[s, j] = 0.0
        start, stop = ptr[s], ptr[s + 1]
        if stop == start:
            continue
        shift = -math.inf
        for k in range(start, stop):
            n = order[k]
            e = 0.0
            for j in range(d):
                e += np.float64(memories[n, j]) * np.float64(q[s, j])
            a[k] = e
            shift = max(shift, e)
        total = 0.0
        for k in range(start, stop):
            w = exp(a[k] - shift)  # ≤ 1: cannot overflow
            a[k] = w
            total += w
        for k in range(start, stop):
            a[k] /= total
            n = order[k]
            for j in range(d):
                r[s, j] += a[k] * memories[n, j]


@parallel_kernel()
def _attend_backward(memories, order, ptr, q, a, g_r, g_memories, g_q):
    """``ā_n = ⟨r̄, m_n⟩``, ``ē = a(ā − Σ a ā)``, ``m̄_n += a_n r̄ + ē_n q``, ``q̄ = Σ ē_n m_n``."""
    d = memories.shape[1]
    for s in prange(ptr.shape[0] - 1):
        for j in range(d):
            g_q[s, j] = 0.0
        start, stop = ptr[s], ptr[s + 1]
        weighted = 0.0
        for k in range(start, stop):
            n = order[k]
            g_a = 0.0
            for j in range(d):
                g_a += np.float64(memories[n, j]) * np.float64(g_r[s, j])
            weighted += a[k] * g_a
        for k in range(start, stop):
            n = order[k]
            g_a = 0.0
            for j in range(d):
                g_a += np.float64(memories[n, j]) * np.float64(g_r[s, j])
            g_e = a[k] * (g_a - weighted)
            for j in range(d):
                g_memories[n, j] += a[k] * np.float64(g_r[s, j]) + g_e * np.float64(q[s, j])
                g_q[s, j] += g_e * memories[n, j]


@parallel_kernel()
def _lstm_cell_backward(g_h_t, g_c, gates, c_prev, tanh_c, g_z, g_c_prev):
    """``c̄_t = h̄ o (1 − tanh²c) + c̄``; ``z̄ = [c̄ g i(1−i), c̄ c_{t−1} f(1−f), c̄ i (1−g²), h̄ tanh c o(1−o)]``."""
    d = g_c.shape[1]
    for s in prange(g_h_t.shape[0]):
        for j in range(d):
            i, f, g, o = gates[s, j], gates[s, d + j], gates[s, 2 * d + j], gates[s, 3 * d + j]
            t = np.float64(tanh_c[s, j])
            g_h = np.float64(g_h_t[s, j])
            g_c_t = g_h * o * (1.0 - t * t) + np.float64(g_c[s, j])
            g_z[s, j] = g_c_t * g * i * (1.0 - i)
            g_z[s, d + j] = g_c_t * np.float64(c_prev[s, j]) * f * (1.0 - f)
            g_z[s, 2 * d + j] = g_c_t * i * (1.0 - g * g)
            g_z[s, 3 * d + j] = g_h * t * o * (1.0 - o)
            g_c_prev[s, j] = g_c_t * f


def set2set_pooling_forward(memories, set_index, w_ih, w_hh, b_ih, b_hh, *, num_sets, processing_steps):
    num_sets = int(num_sets)
    dtype = memories.dtype
    n, d = memories.shape
    memories = np.ascontiguousarray(memories)
    order = np.argsort(set_index, kind="stable").astype(np.int64)
    ptr = np.zeros(num_sets + 1, dtype=np.int64)
    np.cumsum(np.bincount(set_index, minlength=num_sets), out=ptr[1:])
    bias = (b_ih + b_hh).astype(dtype)
    q_star = np.zeros((num_sets, 2 * d), dtype=dtype)
    h = np.zeros((num_sets, d), dtype=dtype)
    c = np.zeros((num_sets, d), dtype=dtype)
    steps = []
    for _ in range(int(processing_steps)):
        z = np.dot(q_star, w_ih.T) + np.dot(h, w_hh.T) + bias
        gates = np.empty((num_sets, 4 * d))
        c_next, tanh_c, h_next = (np.empty((num_sets, d), dtype=dtype) for _ in range(3))
        _lstm_cell(z, c, gates, c_next, tanh_c, h_next)
        a = np.empty(n)
        r = np.empty((num_sets, d))  # float64 readout accumulator
        _attend(memories, order, ptr, h_next, a, r)
        steps.append((q_star, h, c, gates, tanh_c, h_next, a))
        q_star = np.concatenate([h_next, r.astype(dtype)], axis=1)
        h, c = h_next, c_next
    return q_star, (memories, order, ptr, w_ih, w_hh, steps)


def set2set_pooling_backward(residuals, g_q_star):
    memories, order, ptr, w_ih, w_hh, steps = residuals
    dtype = memories.dtype
    num_sets, d = ptr.shape[0] - 1, memories.shape[1]
    g_memories = np.zeros(memories.shape)
    g_w_ih, g_w_hh = np.zeros(w_ih.shape, dtype=dtype), np.zeros(w_hh.shape, dtype=dtype)
    g_h = np.zeros((num_sets, d), dtype=dtype)
    g_c = np.zeros((num_sets, d))
    g_q_attention = np.empty((num_sets, d))
    g_z = np.empty((num_sets, 4 * d), dtype=dtype)
    g_bias = np.zeros(4 * d)
    for q_star_prev, h_prev, c_prev, gates, tanh_c, q, a in reversed(steps):
        g_r = np.ascontiguousarray(g_q_star[:, d:])
        _attend_backward(memories, order, ptr, q, a, g_r, g_memories, g_q_attention)
        g_h_t = g_q_star[:, :d] + g_q_attention + g_h
        g_c_prev = np.empty((num_sets, d))
        _lstm_cell_backward(g_h_t, g_c, gates, c_prev, tanh_c, g_z, g_c_prev)
        g_w_ih += np.dot(g_z.T, q_star_prev)
        g_w_hh += np.dot(g_z.T, h_prev)
        g_bias += g_z.sum(axis=0, dtype=np.float64)
        g_q_star = np.dot(g_z, w_ih)
        g_h = np.dot(g_z, w_hh)
        g_c = g_c_prev
    g_bias = g_bias.astype(dtype)
    return g_memories.astype(dtype), g_w_ih, g_w_hh, g_bias, g_bias.copy()


@parallel_kernel(fastmath={"reassoc", "nnan", "nsz"})  # inputs are finite (validated): max vectorizes
def _best_order(log_likelihoods, best, loss):
    k_count = log_likelihoods.shape[1]
    for b in prange(log_likelihoods.shape[0]):
        value = log_likelihoods[b, 0]
        for k in range(1, k_count):  # a branch-free max: vectorizes
            value = max(value, log_likelihoods[b, k])
        k_best = 0
        while log_likelihoods[b, k_best] != value:  # the first of tied maxima wins
            k_best += 1
        best[b] = k_best
        loss[b] = -value


@parallel_kernel()
def _scatter_best(best, g_loss, g_log_likelihoods):
    for b in prange(g_log_likelihoods.shape[0]):  # the rest stays 0 (np.zeros: calloc'd pages)
        g_log_likelihoods[b, best[b]] = -g_loss[b]


def order_search_loss_forward(log_likelihoods):
    work = np.ascontiguousarray(log_likelihoods)
    best = np.empty(work.shape[0], dtype=np.int64)
    loss = np.empty(work.shape[0], dtype=work.dtype)
    _best_order(work, best, loss)
    return loss, (best, work.shape, work.dtype)


def order_search_loss_backward(residuals, g_loss):
    best, shape, dtype = residuals
    g_log_likelihoods = np.zeros(shape, dtype=dtype)
    _scatter_best(best, np.ascontiguousarray(g_loss, dtype=dtype), g_log_likelihoods)
    return (g_log_likelihoods,)


IMPLS = {
    "set2set_pooling": Impl(set2set_pooling_forward, set2set_pooling_backward),
    "order_search_loss": Impl(order_search_loss_forward, order_search_loss_backward),
}
