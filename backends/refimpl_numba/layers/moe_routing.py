"""Top-k MoE routing and the Switch load-balancing loss: Numba kernels, parallel over tokens.

Mirrors ``refimpl/layers/moe_routing.py``. One kernel per token row computes the softmax
(``_vmath`` exponentials, float64 sums), picks the top k by k passes of a strict-``>``
argmax (ties: the lowest index, as the reference's stable sort) and writes the gates q
(renormalized over the selection when asked). The capacity mask is a running count down
the token axis, a NumPy ``cumsum`` (sequential by nature, and cheap beside the combine).
The combine ``y_t = Σ_e K q E_e(x_t)`` and its backward (``Ē = K q ȳ``, ``ā = K⟨ȳ, E⟩``,
``z̄ = q ⊙ (ā − ⟨q, ā⟩)``) are row kernels with float64 accumulators.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.layers.moe_routing import expert_capacity, kept_assignments

from .._jit import parallel_kernel
from .._vmath import vexp


@parallel_kernel(fastmath={"reassoc"})
def _gates_rows(z, k, renormalize, q, selected):
    num_experts = z.shape[1]
    for t in prange(z.shape[0]):
        m = -np.inf
        for e in range(num_experts):
            m = max(m, np.float64(z[t, e]))
        total = 0.0
        for e in range(num_experts):
            ex = np.float64(vexp(z.dtype.type(np.float64(z[t, e]) - m)))  # ≤ 0: no overflow
            q[t, e] = ex
            total += ex
        for e in range(num_experts):
            selected[t, e] = False
        for _ in range(k):  # k passes of argmax over the unselected; strict > keeps the lowest index
            best = -1
            for e in range(num_experts):
                if not selected[t, e] and (best < 0 or z[t, e] > z[t, best]):
                    best = e
            selected[t, best] = True
        if renormalize:
            total = 0.0
            for e in range(num_experts):
                if selected[t, e]:
                    total += q[t, e]
            for e in range(num_experts):
                q[t, e] = q[t, e] / total if selected[t, e] else 0.0
        else:
            for e in range(num_experts):
                q[t, e] = q[t, e] / total


@parallel_kernel(fastmath={"reassoc"})
def _combine_rows(outputs, q, kept, y):
    num_experts, width = outputs.shape[1], outputs.shape[2]
    for t in prange(outputs.shape[0]):
        acc = np.zeros(width)  # float64 row accumulator; the inner loop is contiguous in j
        for e in range(num_experts):
            if kept[t, e]:
                gate = q[t, e]
                for j in range(width):
                    acc[j] += gate * np.float64(outputs[t, e, j])
        for j in range(width):
            y[t, j] = acc[j]


@parallel_kernel(fastmath={"reassoc"})
def _routing_backward_rows(outputs, q, kept, g_y, g_z, g_outputs):
    num_experts, width = outputs.shape[1], outputs.shape[2]
    for t in prange(outputs.shape[0]):
        dot = 0.0
        for e in range(num_experts):
            a = 0.0
            if kept[t, e]:
                gate = q[t, e]
                for j in range(width):
                    g = np.float64(g_y[t, j])
                    a += g * np.float64(outputs[t, e, j])
                    g_outputs[t, e, j] = gate * g
            else:
                for j in range(width):
                    g_outputs[t, e, j] = 0.0
            g_z[t, e] = a  # ā, replaced below by q ⊙ (ā − ⟨q, ā⟩)
            dot += a * q[t, e]
        for e in range(num_experts):
            g_z[t, e] = q[t, e] * (np.float64(g_z[t, e]) - dot)


def topk_moe_routing_forward(
    z, expert_outputs, *, k, capacity_factor=None, renormalize=False, capacity_quirk=False
):
    logits = np.ascontiguousarray(z)
    outputs = np.ascontiguousarray(expert_outputs)
    num_tokens, num_experts = logits.shape
    q = np.empty((num_tokens, num_experts), dtype=np.float64)
    selected = np.empty((num_tokens, num_experts), dtype=np.bool_)
    _gates_rows(logits, int(k), bool(renormalize), q, selected)
    capacity = (
        None if capacity_factor is None else expert_capacity(num_tokens, num_experts, k, capacity_factor)
    )
    kept = kept_assignments(selected, capacity, capacity_quirk)
    y = np.empty((num_tokens, outputs.shape[2]), dtype=z.dtype)
    _combine_rows(outputs, q, kept, y)
    return y, (outputs, q, kept)


def topk_moe_routing_backward(residuals, g_y):
    outputs, q, kept = residuals
    g_z = np.empty(q.shape, dtype=outputs.dtype)
    g_outputs = np.empty(outputs.shape, dtype=outputs.dtype)
    _routing_backward_rows(outputs, q, kept, np.ascontiguousarray(g_y), g_z, g_outputs)
    return g_z, g_outputs


@parallel_kernel(fastmath={"reassoc"})
def _balance_backward_rows(p, f, scale, g_z):
    num_experts = p.shape[1]
    for t in prange(p.shape[0]):
        dot = 0.0
        for e in range(num_experts):
            dot += p[t, e] * f[e]
        for e in range(num_experts):
            g_z[t, e] = scale * p[t, e] * (f[e] - dot)


def switch_load_balancing_loss_forward(z, *, k=1, weight=1.0):
    logits = np.ascontiguousarray(z)
    num_tokens, num_experts = logits.shape
    p = np.empty((num_tokens, num_experts), dtype=np.float64)
    selected = np.empty((num_tokens, num_experts), dtype=np.bool_)
    _gates_rows(logits, int(k), False, p, selected)
    f = selected.mean(axis=0) / k
    scale = weight * num_experts
    loss = z.dtype.type(scale * float(f @ p.mean(axis=0)))
    return loss, (p, f, scale / num_tokens, z.dtype)


def switch_load_balancing_loss_backward(residuals, g_loss):
    p, f, scale_per_token, dtype = residuals
    g_z = np.empty(p.shape, dtype=dtype)
    _balance_backward_rows(p, f, float(scale_per_token * float(g_loss)), g_z)
    return (g_z,)


IMPLS = {
    "topk_moe_routing": Impl(topk_moe_routing_forward, topk_moe_routing_backward),
    "switch_load_balancing_loss": Impl(
        switch_load_balancing_loss_forward, switch_load_balancing_loss_backward
    ),
}
