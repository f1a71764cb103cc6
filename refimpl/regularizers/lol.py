"""LoL, the comparative regularization over query-reformulation losses, and the losses feeding it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..authoring import (
    ArgumentError,
    Flag,
    FloatArray,
    IntArray,
    IntScalar,
    Paper,
    RealScalar,
    array_namespace,
    op,
)

__all__ = [
    "PAPER",
    "flops_regularizer",
    "lol_comparative_regularization",
    "lol_passage_ranking_loss",
    "lol_query_ranking_loss",
    "positive_mask",
]

PAPER = Paper(
    "LoL: A Comparative Regularization Loss over Query Reformulation Losses for Pseudo-Relevance Feedback",
    arxiv="2204.11545",
    year=2022,
    code="zycdev/LoL",
)

PADDING = -1  # marks an unused slot in a row of positive passage indices


# -- the comparative term ---------------------------------------------------------------
def _pair_margins(L: np.ndarray, margin: float) -> np.ndarray:
    """``D[q, i, j] = L[q, i] − L[q, j] + m`` for every ordered pair (Q, n, n)."""
    return (L[:, :, None] - L[:, None, :]) + L.dtype.type(margin)


@op(
    inputs={"L": FloatArray("Q", "n"), "margin": RealScalar(0), "tie_active": Flag()},
    outputs=("lol",),
    differentiable=("L",),
)
def lol_comparative_regularization(L, *, margin=0.0, tie_active=False):
    r"""Loss over losses: a revision that saw more feedback must not have a larger loss.

    Pseudo-relevance feedback reformulates a query from its top retrieved passages. LoL
    revises each query several times with decreasing amounts of feedback (column 0 sees the
    most, column n − 1 the least) and asks the reformulation losses to be ordered the same
    way: a pairwise hinge penalizes every pair i < j where the revision with MORE feedback
    (i) has the LARGER loss.

    Forward, with ``P = Q·n(n − 1)/2`` pairs over the whole batch (one mean, not a mean of
    per-row means)::

        D[q, i, j] = L[q, i] − L[q, j] + m                          (i < j)
        LoL(L)     = (1/P) Σ_q Σ_{i<j} max(0, D[q, i, j])

    For n = 1 there is no pair; LoL is defined as 0 with a zero gradient (the official
    code adds the term only when ``n_compare > 0``).

    Backward. ``∂ max(0, D)/∂D`` is 1 on an active pair (D > 0) and 0 otherwise, and
    ``∂D[q, i, j]/∂L[q, i] = 1``, ``∂D[q, i, j]/∂L[q, j] = −1``. With the cotangent ``ḡ`` of
    the scalar and ``a[q, i, j]`` the activity of pair (i, j)::

        L̄[q, k] = (ḡ/P) · ( Σ_{j>k} a[q, k, j]  −  Σ_{i<k} a[q, i, k] )

    Ties (D = 0 exactly, e.g. equal losses with m = 0). The hinge has a kink there; the
    default (the paper's math) takes the subgradient 0, i.e. active means ``D > 0``. The
    official code computes the term with ``torch.nn.functional.margin_ranking_loss``, whose
    clamp passes the gradient where ``D ≥ 0``, so a tie gets ``±ḡ/P``;
    ``tie_active=True`` reproduces that. The forward value is the same either way.

    Column order matters: reversing the columns of L turns every satisfied pair into a
    violated one.

    Args:
        L: reformulation losses (Q, n), float32 or float64; row q holds the n revisions of
            one original query, column 0 = most feedback, column n − 1 = least. In the
            official objective L is ``lol_passage_ranking_loss`` reshaped (Q0, n).
        margin: hinge margin m ≥ 0 (official: 0).
        tie_active: count pairs with D = 0 as active (the official subgradient).

    Returns:
        lol: the scalar LoL(L) (0-d array, dtype of L), ≥ 0.

    Training objective (official run scripts): ``λ_pr·mean(pr) + λ_cr·LoL(pr)`` with
    ``λ_cr = 1`` and n = 1 + n_compare ∈ {2, 3}; the argument parser's defaults are
    ``λ_cr = 0`` and ``n_compare = 0``, so both must be set.

    Reference: Zhu et al., *LoL: A Comparative Regularization Loss over Query Reformulation
    Losses for Pseudo-Relevance Feedback*, SIGIR 2022, arXiv:2204.11545; official code
    zycdev/LoL (``trainer.py``, ``util.pairwise_hinge``).

    >>> import numpy as np, refimpl
    >>> L = np.array([[1.0, 3.0, 2.0]])  # pairs: 1−3 < 0, 1−2 < 0, 3−2 = 1 > 0
    >>> float(refimpl.regularizers.lol_comparative_regularization(L))
    0.3333333333333333
    """
    n_queries, n = L.shape
    pairs = n_queries * n * (n - 1) // 2
    if pairs == 0:  # one revision per query: no pair to compare
        return np.zeros((), dtype=L.dtype), (L, np.zeros((n_queries, n, n), dtype=bool), 1)
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)  # the pairs i < j
    margins = _pair_margins(L, margin)
    hinge = np.where(upper, np.maximum(margins, 0), 0)
    lol = hinge.sum() / L.dtype.type(pairs)
    active = upper & ((margins >= 0) if tie_active else (margins > 0))
    return np.asarray(lol, dtype=L.dtype), (L, active, pairs)


@lol_comparative_regularization.defvjp
def lol_comparative_regularization_backward(residuals, g_lol):
    L, active, pairs = residuals
    counts = active.astype(L.dtype)
    # row k as the "more feedback" side (i = k) minus as the "less feedback" side (j = k)
    per_entry = counts.sum(axis=2) - counts.sum(axis=1)
    g_L = (g_lol / L.dtype.type(pairs)) * per_entry
    return (g_L.astype(L.dtype, copy=False),)


# -- positives, given as padded index rows ------------------------------------------------
def positive_mask(positives: Any, n_passages: int) -> Any:
    """Boolean (Q, P) mask from padded positive indices (Q, K); ``-1`` slots are ignored."""
    xp = array_namespace(positives)
    mask = xp.zeros((positives.shape[0], n_passages), dtype=bool)
    rows, slots = xp.nonzero(positives != PADDING)
    mask[rows, positives[rows, slots]] = True
    return mask


def _check_positives(arguments: Mapping[str, Any]) -> None:
    """Every query has at least one positive, and no passage twice in a row."""
    positives = arguments["positives"]
    xp = array_namespace(positives)
    valid = positives != PADDING
    empty = xp.nonzero(~valid.any(axis=1))[0]
    if empty.size:
        raise ArgumentError(
            "positives",
            "at least one positive passage index per query (−1 only pads; a row of −1 would "
            "leave the softmax label undefined)",
            f"no positive in row {int(empty[0])}",
        )
    ordered = xp.sort(xp.where(valid, positives, PADDING), axis=1)
    repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != PADDING)
    bad = xp.nonzero(repeated.any(axis=1))[0]
    if bad.size:
        raise ArgumentError(
            "positives", "distinct passage indices in each row", f"a repeat in row {int(bad[0])}"
        )


def _check_positives_and_groups(arguments: Mapping[str, Any]) -> None:
    _check_positives(arguments)
    n_queries, n = arguments["queries"].shape[0], arguments["n_revisions"]
    if n_queries % n:
        raise ArgumentError(
            "queries",
            f"Q rows grouped by original query, a multiple of n_revisions = {n}",
            f"Q = {n_queries}",
        )


def _masked_softmax_cross_entropy(logits: np.ndarray, keep: np.ndarray, labels: np.ndarray):
    """Row-wise ``logsumexp(logits[keep]) − logits[label]`` and the softmax over the kept entries.

    Masked entries are set to −∞ before the max shift; every row keeps its label, so the
    row max is finite and ``exp(−∞) = 0`` gives them probability exactly 0.
    """
    rows = np.arange(logits.shape[0])
    masked = np.where(keep, logits, -np.inf)
    row_max = masked.max(axis=1, keepdims=True)  # finite: the label entry is kept
    e = np.exp(masked - row_max)  # subtract the row max: exp cannot overflow
    total = e.sum(axis=1)
    loss = np.log(total) + row_max[:, 0] - logits[rows, labels]
    probabilities = e / total[:, None]
    return loss, probabilities


# -- passage ranking ----------------------------------------------------------------------
@op(
    inputs={
        "queries": FloatArray("Q", "V"),
        "corpus": FloatArray("P", "V"),
        "positives": IntArray("Q", "K", low=PADDING, high="P"),
    },
    outputs=("pr",),
    differentiable=("queries", "corpus"),
    check=_check_positives,
)
def lol_passage_ranking_loss(queries, corpus, positives):
    r"""Per-revision passage-ranking loss: cross-entropy of the hardest positive among all passages.

    Each revised query vector retrieves over the whole (batch) corpus by inner product. The
    label is the query's positive passage it currently scores LOWEST; its other positives
    are removed from the softmax (they are not negatives). The loss of each revision is the
    reformulation loss that LoL compares.

    Forward, with ``S = q Cᵀ`` (Q, P) and ``pos(q)`` the positives of row q::

        y_q      = argmin_{p ∈ pos(q)} S[q, p]        (ties: the lowest passage index)
        keep_q   = all passages except pos(q) \ {y_q}  (those are masked to −∞)
        pr_q     = log Σ_{p ∈ keep_q} exp S[q, p] − S[q, y_q]

    The label is a piecewise-constant function of S (like ``argmin`` in the official
    code), treated as constant when differentiating.

    Backward. The softmax cross-entropy gives, per row, ``∂pr_q/∂S[q, p] = π_q[p] − [p = y_q]``
    with π_q the softmax over the kept entries (0 on masked ones). With cotangents ``ḡ_q``::

        S̄[q, p] = ḡ_q · (π_q[p] − [p = y_q])
        q̄ = S̄ C          (∂S[q, p]/∂q_q = C_p)
        C̄ = S̄ᵀ q         (∂S[q, p]/∂C_p = q_q)

    Args:
        queries: revised query vectors q (Q, V), float32 or float64; rows grouped by original
            query, most feedback first (the layout LoL expects).
        corpus: dense passage matrix C (P, V), same dtype (the official sparse-retrieval
            variant multiplies by a sparse matrix; the values are the same).
        positives: positive passage indices (Q, K), int; each row lists distinct indices in
            [0, P), padded with −1; at least one per row.

    Returns:
        pr: per-revision losses (Q,) (reduction "none"; the objective uses the mean).

    Ties in the lowest-scoring positive go to the lowest passage index; the official code
    takes the first of the tied in its list order (the same when the list is sorted).

    Reference: arXiv:2204.11545; official code zycdev/LoL (``trainer.py``, passage ranking).

    >>> import numpy as np, refimpl
    >>> q = np.array([[1.0, 0.0]])
    >>> C = np.array([[2.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # S = [2, 1, 0]; positives 0 and 1
    >>> refimpl.regularizers.lol_passage_ranking_loss(q, C, np.array([[0, 1]])).round(6)  # label 1, 0 masked
    array([0.313262])
    """
    scores = queries @ corpus.T  # S (Q, P)
    is_positive = positive_mask(positives, corpus.shape[0])
    labels = np.where(is_positive, scores, np.inf).argmin(axis=1)  # first minimum: lowest index
    rows = np.arange(scores.shape[0])
    keep = ~is_positive
    keep[rows, labels] = True  # mask the other positives, keep the label
    pr, probabilities = _masked_softmax_cross_entropy(scores, keep, labels)
    return pr.astype(queries.dtype, copy=False), (queries, corpus, probabilities, labels)


@lol_passage_ranking_loss.defvjp
def lol_passage_ranking_loss_backward(residuals, g_pr):
    queries, corpus, probabilities, labels = residuals
    d_scores = probabilities.copy()
    d_scores[np.arange(labels.shape[0]), labels] -= 1
    g_scores = g_pr[:, None] * d_scores  # S̄
    return g_scores @ corpus, g_scores.T @ queries


# -- query ranking --------------------------------------------------------------------------
def query_ranking_rows(positives: np.ndarray, n_revisions: int) -> tuple[np.ndarray, np.ndarray]:
    """The (label query, passage) pair of every row of the query-ranking loss.

    One row per positive passage of each ORIGINAL query (the first revision of each group,
    rows 0, n, 2n, ...), in row-major order of ``positives``.
    """
    originals = positives[::n_revisions]
    group_rows, slots = np.nonzero(originals != PADDING)
    return group_rows * n_revisions, originals[group_rows, slots]


@op(
    inputs={
        "queries": FloatArray("Q", "V"),
        "corpus": FloatArray("P", "V"),
        "positives": IntArray("Q", "K", low=PADDING, high="P"),
        "n_revisions": IntScalar(1),
    },
    outputs=("qr",),
    differentiable=("queries", "corpus"),
    check=_check_positives_and_groups,
)
def lol_query_ranking_loss(queries, corpus, positives, *, n_revisions):
    r"""Query-ranking loss: each positive passage must pick its own query out of the batch.

    The reverse direction of ``lol_passage_ranking_loss``: for every positive passage of
    every ORIGINAL query (the first revision of each group of n), a cross-entropy over the
    Q revised queries of that passage's similarities, labelled with the original query.
    The other revisions of the same group stay in the softmax as competitors. Queries of
    OTHER groups that share the passage as a positive are masked to −∞ — but, as in the
    official code, only when more than n queries list the passage as positive.

    Forward, with ``S = q Cᵀ`` (Q, P), one row r per (original query g, positive p)::

        s_r        = S[:, p]                            (Q,)
        owners(p)  = {j : p ∈ pos(j)}
        masked_r   = {j ∈ owners(p) : ⌊j/n⌋ ≠ ⌊g/n⌋}   if |owners(p)| > n, else ∅
        qr_r       = log Σ_{j ∉ masked_r} exp s_r[j] − s_r[g]
        qr         = (1/R) Σ_r qr_r                     (R rows)

    The label g is never masked (it is in its own group), so every row keeps an entry.

    Backward. Per row ``∂qr_r/∂s_r[j] = π_r[j] − [j = g]`` (softmax over the kept queries),
    scattered into the column p of S̄ — rows that share a passage add up::

        S̄[:, p_r] += (ḡ/R) · (π_r − e_g)
        q̄ = S̄ C,   C̄ = S̄ᵀ q

    Args:
        queries: revised query vectors q (Q, V), Q = Q0·n, rows grouped by original query
            with the most-feedback revision first.
        corpus: dense passage matrix C (P, V).
        positives: positive passage indices (Q, K), distinct per row, padded with −1, at
            least one per row (only the original queries' rows define the loss rows, all
            rows define owners(p)).
        n_revisions: n = 1 + n_compare ≥ 1, the group size.

    Returns:
        qr: the scalar mean over rows (0-d array).

    The official weight λ_qr defaults to 0 and the released run scripts do not set it.

    Reference: arXiv:2204.11545; official code zycdev/LoL (``trainer.py``, query ranking).

    >>> import numpy as np, refimpl
    >>> q = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> C = np.array([[1.0, 0.0], [0.0, 2.0]])  # passage 0 → query 0, passage 1 → query 1
    >>> qr = refimpl.regularizers.lol_query_ranking_loss(q, C, np.array([[0], [1]]), n_revisions=1)
    >>> round(float(qr), 6)  # mean of log(1 + e^−1) and log(1 + e^−2)
    0.220095
    """
    scores = queries @ corpus.T  # S (Q, P)
    n_queries = queries.shape[0]
    labels, passages = query_ranking_rows(positives, n_revisions)
    is_positive = positive_mask(positives, corpus.shape[0])
    owners = is_positive[:, passages].T  # (R, Q): query j lists passage p_r as positive
    shared = is_positive.sum(axis=0)[passages] > n_revisions  # more owners than one group
    group = np.arange(n_queries) // n_revisions
    masked = owners & (group[None, :] != group[labels][:, None]) & shared[:, None]
    logits = scores[:, passages].T  # (R, Q)
    losses, probabilities = _masked_softmax_cross_entropy(logits, ~masked, labels)
    qr = losses.mean()
    return np.asarray(qr, dtype=queries.dtype), (queries, corpus, probabilities, labels, passages)


@lol_query_ranking_loss.defvjp
def lol_query_ranking_loss_backward(residuals, g_qr):
    queries, corpus, probabilities, labels, passages = residuals
    n_rows = labels.shape[0]
    d_logits = probabilities.copy()
    d_logits[np.arange(n_rows), labels] -= 1
    g_logits = (g_qr / queries.dtype.type(n_rows)) * d_logits  # (R, Q)
    g_scores_t = np.zeros((corpus.shape[0], queries.shape[0]), dtype=queries.dtype)  # S̄ᵀ (P, Q)
    np.add.at(g_scores_t, passages, g_logits)  # rows sharing a passage add up
    return g_scores_t.T @ corpus, g_scores_t @ queries


# -- sparsity ---------------------------------------------------------------------------------
@op(
    inputs={"queries": FloatArray("Q", "V")},
    outputs=("flops", "l1"),
    differentiable=("queries",),
)
def flops_regularizer(queries):
    r"""FLOPS regularizer and the L1 term of the sparse (lexical) query vectors.

    Sparse retrieval costs grow with the number of non-zero query weights. FLOPS penalizes
    the squared mean activation of each vocabulary term over the batch (it pushes whole
    terms to zero), L1 the mean absolute weight of each query.

    Forward, over a batch of Q query vectors of V terms::

        a_j   = (1/Q) Σ_q |q_qj|
        flops = Σ_j a_j²
        l1    = (1/Q) Σ_q Σ_j |q_qj|

    Backward, with ``∂|x|/∂x = sign(x)`` and sign(0) = 0 (PyTorch's subgradient) and the
    cotangents ``ḡ_flops``, ``ḡ_l1``::

        ∂flops/∂q_qj = 2 a_j · sign(q_qj)/Q
        ∂l1/∂q_qj    = sign(q_qj)/Q
        q̄_qj = (2 a_j ḡ_flops + ḡ_l1) · sign(q_qj)/Q

    Official-code note: the training objective adds ``λ_sr(t)·l1`` (``loss_sr``); FLOPS is
    computed alongside (``loss_flops``) and only logged. λ_sr(t) is 0 up to a start step and
    then ``λ_sr·(⌈10·(t − t0)/(T − t0)⌉/10)²`` (not part of this op).

    Args:
        queries: query vectors q (Q, V), float32 or float64.

    Returns:
        flops: the scalar Σ_j a_j² (0-d array).
        l1: the scalar mean L1 norm (0-d array).

    Reference: arXiv:2204.11545; official code zycdev/LoL (``trainer.py``, sparse
    regularization); FLOPS after Paria et al., arXiv:2004.05665.

    >>> import numpy as np, refimpl
    >>> flops, l1 = refimpl.regularizers.flops_regularizer(np.array([[1.0, 0.0], [-3.0, 2.0]]))
    >>> float(flops), float(l1)  # a = [2, 1]
    (5.0, 3.0)
    """
    n_queries = queries.dtype.type(queries.shape[0])
    magnitudes = np.abs(queries)
    mean_magnitude = magnitudes.sum(axis=0) / n_queries  # a_j
    flops = (mean_magnitude * mean_magnitude).sum()
    l1 = magnitudes.sum() / n_queries
    outputs = (np.asarray(flops, dtype=queries.dtype), np.asarray(l1, dtype=queries.dtype))
    return outputs, (np.sign(queries), mean_magnitude)


@flops_regularizer.defvjp
def flops_regularizer_backward(residuals, cotangents):
    signs, mean_magnitude = residuals
    g_flops, g_l1 = cotangents
    n_queries = signs.dtype.type(signs.shape[0])
    g_queries = (2 * mean_magnitude * g_flops + g_l1) * signs / n_queries
    return (g_queries.astype(signs.dtype, copy=False),)
