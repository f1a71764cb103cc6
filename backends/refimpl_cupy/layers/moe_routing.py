"""Top-k MoE routing and the Switch load-balancing loss on CuPy.

Mirrors ``refimpl/layers/moe_routing.py``. The top k are taken by k rounds of ``argmax``
over the still-unselected logits (``argmax`` returns the first maximum: ties go to the
lowest index, as the reference's stable sort); the capacity mask is the reference's running
count (``cumsum`` down the token axis). The gates, the combine (a batched matrix product)
and the backward ``z̄ = q ⊙ (ā − ⟨q, ā⟩)`` are fused elementwise kernels and reductions.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, softmax
from refimpl.layers.moe_routing import expert_capacity, kept_assignments

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def masked_gates(q, kept):
        return xp.where(kept, q, 0)

    @fuse
    def softmax_grad(q, g_q, dot):
        return q * (g_q - dot)

    return SimpleNamespace(masked_gates=masked_gates, softmax_grad=softmax_grad)


kernels_for = kernel_set(_kernels)


def _top_k(z, k):
    xp = xp_of(z)
    rows = xp.arange(z.shape[0])
    selected = xp.zeros(z.shape, dtype=bool)
    scores = z.copy()
    for _ in range(k):
        best = xp.argmax(scores, axis=-1)  # the first maximum: the lowest index on ties
        selected[rows, best] = True
        scores[rows, best] = -xp.inf
    return selected


def topk_moe_routing_forward(
    z, expert_outputs, *, k, capacity_factor=None, renormalize=False, capacity_quirk=False
):
    xp = xp_of(z)
    kern = kernels_for(z)
    num_tokens, num_experts = z.shape
    p = softmax(z)
    selected = _top_k(z, k)
    capacity = (
        None if capacity_factor is None else expert_capacity(num_tokens, num_experts, k, capacity_factor)
    )
    kept = kept_assignments(selected, capacity, capacity_quirk)
    if renormalize:
        masked = kern.masked_gates(p, selected)
        q = masked / masked.sum(axis=-1, keepdims=True)
    else:
        q = p
    combine = kern.masked_gates(q, kept)
    y = xp.matmul(combine[:, None, :], expert_outputs)[:, 0, :]
    return y.astype(z.dtype, copy=False), (expert_outputs, q, kept, combine)


def topk_moe_routing_backward(residuals, g_y):
    expert_outputs, q, kept, combine = residuals
    xp = xp_of(q)
    kern = kernels_for(q)
    g_outputs = combine[:, :, None] * g_y[:, None, :]
    g_q = kern.masked_gates(xp.matmul(expert_outputs, g_y[:, :, None])[:, :, 0], kept)
    dot = (g_q * q).sum(axis=-1, keepdims=True)
    return kern.softmax_grad(q, g_q, dot).astype(q.dtype, copy=False), g_outputs.astype(q.dtype, copy=False)


def switch_load_balancing_loss_forward(z, *, k=1, weight=1.0):
    num_tokens, num_experts = z.shape
    p = softmax(z)
    f = (_top_k(z, k).sum(axis=0) / (num_tokens * k)).astype(z.dtype)
    scale = weight * num_experts
    loss = (z.dtype.type(scale) * (f * p.mean(axis=0)).sum()).astype(z.dtype)
    return loss, (p, f, scale / num_tokens)


def switch_load_balancing_loss_backward(residuals, g_loss):
    p, f, scale_per_token = residuals
    kern = kernels_for(p)
    g_p = (p.dtype.type(scale_per_token) * g_loss.astype(p.dtype)) * f
    dot = (p * g_p).sum(axis=-1, keepdims=True)
    return (kern.softmax_grad(p, g_p, dot).astype(p.dtype, copy=False),)


IMPLS = {
    "topk_moe_routing": Impl(topk_moe_routing_forward, topk_moe_routing_backward),
    "switch_load_balancing_loss": Impl(
        switch_load_balancing_loss_forward, switch_load_balancing_loss_backward
    ),
}
