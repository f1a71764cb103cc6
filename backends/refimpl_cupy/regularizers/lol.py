"""LoL on CuPy: the comparative hinge, both ranking losses and the FLOPS/L1 terms.

Mirrors ``refimpl/regularizers/lol.py``. The comparative term builds the (Q, n, n) pair
margins with broadcasting (n is 2 or 3 in the paper) and one fused hinge kernel; its
backward recomputes the activity from L instead of storing the mask. The ranking losses take
``S = q Cᵀ`` and the cotangent products from cuBLAS (``@``); the positive masks are scattered
on the device, the labels are device argmins, and the masked softmax cross-entropy is a max
shift, a fused exp and a row sum. The query-ranking backward scatters rows that share a
passage with ``xp.add.at`` (``cupyx.scatter_add`` semantics on the device). FLOPS/L1 are
column and total sums of ``|q|``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl
from refimpl.regularizers.lol import PADDING

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def hinge_sum(margins, upper, zero):
        # zero: a 0 of the input dtype (a bare literal could promote float32 inside a fused kernel)
        return xp.sum(xp.where(upper, xp.maximum(margins, zero), zero))

    @fuse
    def shifted_exp(logits, keep, row_max, zero):
        # masked entries give exactly 0; the row max is subtracted: exp cannot overflow
        return xp.where(keep, xp.exp(logits - row_max), zero)

    @fuse
    def flops_grad(signs, mean_magnitude, g_flops, g_l1, n_queries):
        return (2 * mean_magnitude * g_flops + g_l1) * signs / n_queries

    return SimpleNamespace(hinge_sum=hinge_sum, shifted_exp=shifted_exp, flops_grad=flops_grad)


kernels_for = kernel_set(_kernels)


# -- the comparative term ---------------------------------------------------------------------
def _margins_and_pairs(L, margin):
    xp = xp_of(L)
    n = L.shape[1]
    margins = (L[:, :, None] - L[:, None, :]) + L.dtype.type(margin)  # D[q, i, j] = L_i − L_j + m
    upper = xp.triu(xp.ones((n, n), dtype=bool), k=1)  # the pairs i < j
    return margins, upper


def lol_comparative_regularization_forward(L, *, margin=0.0, tie_active=False):
    xp = xp_of(L)
    n_queries, n = L.shape
    pairs = n_queries * n * (n - 1) // 2
    if pairs == 0:  # one revision per query: no pair to compare
        return xp.zeros((), dtype=L.dtype), (L, margin, tie_active, 1)
    margins, upper = _margins_and_pairs(L, margin)
    total = kernels_for(L).hinge_sum(margins, upper, L.dtype.type(0))
    return xp.asarray(total / L.dtype.type(pairs), dtype=L.dtype), (L, margin, tie_active, pairs)


def lol_comparative_regularization_backward(residuals, g_lol):
    L, margin, tie_active, pairs = residuals
    xp = xp_of(L)
    if L.shape[1] < 2:
        return (xp.zeros_like(L),)
    margins, upper = _margins_and_pairs(L, margin)
    active = upper & ((margins >= 0) if tie_active else (margins > 0))
    counts = active.astype(L.dtype)
    per_entry = counts.sum(axis=2) - counts.sum(axis=1)  # as the "more feedback" side minus the "less"
    scale = xp.asarray(g_lol, dtype=L.dtype) / L.dtype.type(pairs)
    return ((scale * per_entry).astype(L.dtype, copy=False),)


# -- shared pieces -----------------------------------------------------------------------------
def _positive_mask(positives, n_passages):
    """Boolean (Q, P) mask from padded positive indices; ``-1`` slots are ignored (device scatter)."""
    xp = xp_of(positives)
    mask = xp.zeros((positives.shape[0], n_passages), dtype=bool)
    rows = xp.broadcast_to(xp.arange(positives.shape[0])[:, None], positives.shape)
    valid = positives != PADDING
    mask[rows[valid], positives[valid]] = True
    return mask


def _masked_softmax_cross_entropy(k, xp, logits, keep, labels):
    """Row-wise ``logsumexp(logits[keep]) − logits[label]`` and the softmax over the kept entries."""
    rows = xp.arange(logits.shape[0])
    minus_inf = logits.dtype.type(-xp.inf)  # of the input dtype: a float32 row max stays float32
    row_max = xp.where(keep, logits, minus_inf).max(axis=1, keepdims=True)  # finite: the label is kept
    e = k.shifted_exp(logits, keep, row_max, logits.dtype.type(0))
    total = e.sum(axis=1)
    loss = xp.log(total) + row_max[:, 0] - logits[rows, labels]
    return loss, e / total[:, None]


# -- passage ranking ---------------------------------------------------------------------------
def lol_passage_ranking_loss_forward(queries, corpus, positives):
    xp = xp_of(queries)
    k = kernels_for(queries)
    scores = queries @ corpus.T  # S (Q, P)
    is_positive = _positive_mask(positives, corpus.shape[0])
    labels = xp.where(is_positive, scores, xp.inf).argmin(axis=1)  # first minimum: lowest index
    rows = xp.arange(scores.shape[0])
    keep = ~is_positive
    keep[rows, labels] = True  # mask the other positives, keep the label
    pr, probabilities = _masked_softmax_cross_entropy(k, xp, scores, keep, labels)
    return pr.astype(queries.dtype, copy=False), (queries, corpus, probabilities, labels)


def lol_passage_ranking_loss_backward(residuals, g_pr):
    queries, corpus, probabilities, labels = residuals
    xp = xp_of(queries)
    d_scores = probabilities.copy()
    d_scores[xp.arange(labels.shape[0]), labels] -= 1
    g_scores = g_pr[:, None] * d_scores  # S̄
    return g_scores @ corpus, g_scores.T @ queries


# -- query ranking -----------------------------------------------------------------------------
def lol_query_ranking_loss_forward(queries, corpus, positives, *, n_revisions):
    xp = xp_of(queries)
    k = kernels_for(queries)
    scores = queries @ corpus.T  # S (Q, P)
    n_queries = queries.shape[0]
    originals = positives[::n_revisions]
    group_rows, slots = xp.nonzero(originals != PADDING)  # row-major, as the reference
    labels = group_rows * n_revisions  # the original query of each row
    passages = originals[group_rows, slots]
    is_positive = _positive_mask(positives, corpus.shape[0])
    owners = is_positive[:, passages].T  # (R, Q): query j lists passage p_r as positive
    shared = is_positive.sum(axis=0)[passages] > n_revisions  # more owners than one group
    group = xp.arange(n_queries) // n_revisions
    masked = owners & (group[None, :] != group[labels][:, None]) & shared[:, None]
    logits = scores[:, passages].T  # (R, Q)
    losses, probabilities = _masked_softmax_cross_entropy(k, xp, logits, ~masked, labels)
    qr = losses.mean()
    return xp.asarray(qr, dtype=queries.dtype), (queries, corpus, probabilities, labels, passages)


def lol_query_ranking_loss_backward(residuals, g_qr):
    queries, corpus, probabilities, labels, passages = residuals
    xp = xp_of(queries)
    n_rows = labels.shape[0]
    d_logits = probabilities.copy()
    d_logits[xp.arange(n_rows), labels] -= 1
    g_logits = (xp.asarray(g_qr, dtype=queries.dtype) / queries.dtype.type(n_rows)) * d_logits  # (R, Q)
    g_scores_t = xp.zeros((corpus.shape[0], queries.shape[0]), dtype=queries.dtype)  # S̄ᵀ (P, Q)
    xp.add.at(g_scores_t, passages, g_logits)  # rows sharing a passage add up
    return g_scores_t.T @ corpus, g_scores_t @ queries


# -- sparsity ----------------------------------------------------------------------------------
def flops_regularizer_forward(queries):
    xp = xp_of(queries)
    n_queries = queries.dtype.type(queries.shape[0])
    magnitudes = abs(queries)
    mean_magnitude = magnitudes.sum(axis=0) / n_queries  # a_j
    flops = (mean_magnitude * mean_magnitude).sum()
    l1 = magnitudes.sum() / n_queries
    outputs = (xp.asarray(flops, dtype=queries.dtype), xp.asarray(l1, dtype=queries.dtype))
    return outputs, (xp.sign(queries), mean_magnitude)


def flops_regularizer_backward(residuals, cotangents):
    signs, mean_magnitude = residuals
    xp = xp_of(signs)
    g_flops, g_l1 = cotangents
    dtype = signs.dtype
    g_flops = xp.zeros((), dtype=dtype) if g_flops is None else xp.asarray(g_flops, dtype=dtype)
    g_l1 = xp.zeros((), dtype=dtype) if g_l1 is None else xp.asarray(g_l1, dtype=dtype)
    n_queries = dtype.type(signs.shape[0])
    g_queries = kernels_for(signs).flops_grad(signs, mean_magnitude, g_flops, g_l1, n_queries)
    return (g_queries.astype(dtype, copy=False),)


IMPLS = {
    "lol_comparative_regularization": Impl(
        lol_comparative_regularization_forward, lol_comparative_regularization_backward
    ),
    "lol_passage_ranking_loss": Impl(lol_passage_ranking_loss_forward, lol_passage_ranking_loss_backward),
    "lol_query_ranking_loss": Impl(lol_query_ranking_loss_forward, lol_query_ranking_loss_backward),
    "flops_regularizer": Impl(flops_regularizer_forward, flops_regularizer_backward),
}
