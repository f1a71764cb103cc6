"""Loopy belief propagation on binary pairwise models and counting-factor messages (Learning from Label
Proportions: Bootstrapping Supervised Learners via Belief Propagation, Havaldar et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntArray, IntScalar, Paper, RealScalar, op

__all__ = ["PAPER", "cardinality_factor_messages", "pairwise_loopy_bp"]

PAPER = Paper(
    "Learning from Label Proportions: Bootstrapping Supervised Learners via Belief Propagation",
    arxiv="2310.08056",
    year=2024,
    code="google-deepmind/llp_bp",
)


def _host(array):
    return np.asarray(array.get() if hasattr(array, "get") else array)


def _check_edges(arguments) -> None:
    edges = _host(arguments["edges"])
    loops = edges[:, 0] == edges[:, 1]
    if loops.any():
        e = int(np.argmax(loops))
        raise ArgumentError(
            "edges",
            "pairs of two different nodes (no self-loops)",
            f"edge {e} = ({edges[e, 0]}, {edges[e, 0]})",
        )


def _log_normalize(log_values):
    """Subtract the logsumexp over the last axis (2 states): messages are defined up to a constant."""
    top = log_values.max(axis=-1, keepdims=True)
    return log_values - (top + np.log(np.exp(log_values - top).sum(axis=-1, keepdims=True)))


@op(
    inputs={
        "unary": FloatArray("n"),
        "edges": IntArray("E", 2, low=0, high="n"),
        "pairwise": FloatArray("E", 2, 2),
        "max_iter": IntScalar(0),
        "damping": RealScalar(0, 1, high_open=True),
        "tol": RealScalar(0),
    },
    outputs=("marginals", "labels", "changes", "iterations", "converged"),
    check=_check_edges,
)
def pairwise_loopy_bp(unary, edges, pairwise, *, max_iter=100, damping=0.5, tol=0.0):
    r"""Sum-product loopy belief propagation on a binary pairwise model, flooding schedule, damped.

    LLP-BP turns bag-level label proportions into instance pseudo-labels: binary labels y_i get
    a Gibbs distribution that rewards agreeing with similar instances (kNN graph edges) and
    penalizes bags whose positive count deviates from the known one; the BP marginals
    ``P(y_i = 1)`` become soft pseudo-labels. This op runs BP on any binary pairwise model

        log p(y) = Σ_i θ_i y_i + Σ_e ψ_e(y_{s_e}, y_{t_e}) + const,   y ∈ {0, 1}ⁿ

    given by the unary log-potentials θ (for y_i = 1; 0 for y_i = 0) and one 2 × 2 log-potential
    table per edge. The official model expands both squares of its energy into exactly this
    form: ``θ_i = −λ_bag(1 − 2k_{b(i)}) − λ_sim Σ_{j∈N(i)} s_ij`` and ``ψ(1, 1) = 2λ_sim s_ij`` on graph
    edges, ``−2λ_bag`` on every pair inside a bag (summed when both apply), 0 for the other states.

    Iteration (log space; messages ``m_{i→j}(y_j)`` start at 0; ``N(i)`` the edges at i)::

        cavity_{i\j}(y_i) = θ_i y_i + Σ_{k→i, k≠j} m_{k→i}(y_i)
        new_{i→j}(y_j)    = log Σ_{y_i} exp(ψ_ij(y_i, y_j) + cavity_{i\j}(y_i))   − its logsumexp
        m_{i→j}           ← damping · m_{i→j} + (1 − damping) · new_{i→j}    (all edges at once)
        change_t          = max |m_{i→j} − previous|
        stop after max_iter iterations, or once change_t ≤ tol when tol > 0
        belief_i(y)       = θ_i y + Σ_k m_{k→i}(y),   P(y_i = 1) = σ(belief_i(1) − belief_i(0))

    The messages are normalized (logsumexp 0); damping in log space commutes with that up to
    a constant, which cancels in the marginals. Unary potentials enter as evidence (undamped),
    as PGMax's evidence does. On a tree the undamped fixed point gives the exact marginals; the
    damped iteration converges to the same fixed point. A pair listed more than once (either
    orientation) is one factor with the sum of its tables, as the official model sums the graph
    and bag terms of a pair; BP on two parallel factors would pass messages around a 2-cycle.

    Official schedule (PGMax ``infer.BP`` with ``temperature=1.0``, as called by
    ``combined_run_map_bp``): parallel (flooding) updates, 100 iterations, damping 0.5 — the
    defaults here (``tol=0``: run all iterations, as the official code). Pseudo-labels: 1 where
    ``P(y_i = 1) > 0.5`` (a tie gives 0).

    Reference-only: a message-passing solver over a sparse graph (no fast backend); not
    differentiable.

    Args:
        unary: θ (n,), log-potential of y_i = 1 (0 for y_i = 0), float32 or float64.
        edges: (E, 2) node pairs (s, t), s ≠ t.
        pairwise: (E, 2, 2) log-potentials ``ψ_e[y_s, y_t]``, same dtype as ``unary``.
        max_iter: iterations (official 100).
        damping: in [0, 1) (official 0.5).
        tol: stop once the largest message change is ≤ tol (0: never stop early, the official run).

    Returns:
        marginals: P(y_i = 1) (n,). labels: (n,) int64 in {0, 1}. changes: (iterations,) the
        largest message change of each iteration. iterations: int64 0-d. converged: bool 0-d,
        whether the run stopped on ``change ≤ tol`` (always False with tol = 0: no stopping test).

    Reference: Havaldar, Sharma, Sinha, Anand, Rangwala, *Learning from Label Proportions:
    Bootstrapping Supervised Learners via Belief Propagation*, ICLR 2024, arXiv:2310.08056;
    official code google-deepmind/llp_bp (``network.py`` ``combined_run_map_bp``, BP via PGMax).

    >>> import numpy as np, refimpl
    >>> table = np.array([[[0.0, 0.0], [0.0, np.log(3.0)]]])     # ψ(1, 1) = log 3
    >>> p, labels, *_ = refimpl.solvers.pairwise_loopy_bp(np.zeros(2), np.array([[0, 1]]), table)
    >>> p.round(6), labels            # weights 1, 1, 1, 3: P(y = 1) = 4/6 (exact: a tree)
    (array([0.666667, 0.666667]), array([1, 1]))
    """
    dtype = unary.dtype
    n = unary.shape[0]
    # one factor per node pair: (t, s) is (s, t) with the table transposed, and a pair listed
    # more than once gets the sum of its tables (two parallel factors would be a 2-cycle in BP)
    flip = edges[:, 0] > edges[:, 1]
    oriented = np.where(flip[:, None], edges[:, ::-1], edges)
    oriented_tables = np.where(flip[:, None, None], pairwise.transpose(0, 2, 1), pairwise)
    pairs, slot = np.unique(oriented, axis=0, return_inverse=True)
    merged = np.zeros((pairs.shape[0], 2, 2), dtype=dtype)
    np.add.at(merged, slot.reshape(-1), oriented_tables)
    edges, pairwise, num_edges = pairs, merged, pairs.shape[0]
    # directed messages: d < E runs s → t with table ψ[y_s, y_t]; d ≥ E runs t → s with ψᵀ
    sources = np.concatenate([edges[:, 0], edges[:, 1]])
    targets = np.concatenate([edges[:, 1], edges[:, 0]])
    tables = np.concatenate([pairwise, pairwise.transpose(0, 2, 1)])  # [d, y_source, y_target]
    reverse = np.concatenate([np.arange(num_edges, 2 * num_edges), np.arange(num_edges)])
    theta = np.stack([np.zeros(n, dtype=dtype), unary], axis=1)  # (n, 2): θ_i y for y = 0, 1
    messages = np.zeros((2 * num_edges, 2), dtype=dtype)
    changes = []
    converged = False
    while len(changes) < max_iter:
        incoming = np.zeros((n, 2), dtype=dtype)
        np.add.at(incoming, targets, messages)
        cavity = theta[sources] + incoming[sources] - messages[reverse]  # (2E, 2) over y_source
        # shift the cavity by its max first: a large θ (1e30) cancels exactly, not after ψ is added
        cavity = cavity - cavity.max(axis=1, keepdims=True)
        scores = tables + cavity[:, :, None]  # [d, y_source, y_target]
        top = scores.max(axis=1)
        new = top + np.log(np.exp(scores - top[:, None, :]).sum(axis=1))  # logsumexp over y_source
        updated = dtype.type(damping) * messages + dtype.type(1 - damping) * _log_normalize(new)
        change = float(np.abs(updated - messages).max()) if num_edges else 0.0
        messages = updated
        changes.append(change)
        if tol > 0 and change <= tol:
            converged = True
            break
    incoming = np.zeros((n, 2), dtype=dtype)
    np.add.at(incoming, targets, messages)
    belief = theta + incoming
    logit = belief[:, 1] - belief[:, 0]
    # σ(logit) without overflow
    e = np.exp(-np.abs(logit))
    marginals = np.where(logit >= 0, 1 / (1 + e), e / (1 + e)).astype(dtype)
    labels = (marginals > 0.5).astype(np.int64)
    outputs = (
        marginals,
        labels,
        np.asarray(changes, dtype=dtype),
        np.asarray(len(changes), dtype=np.int64),
        np.asarray(converged),
    )
    return outputs, None


def _check_counts(arguments) -> None:
    phi, incoming = arguments["log_potential"], arguments["incoming"]
    if phi.shape[1] != incoming.shape[1] + 1:
        raise ArgumentError(
            "log_potential",
            f"one log-potential per count 0..K, i.e. K + 1 = {incoming.shape[1] + 1} columns",
            f"{phi.shape[1]} columns",
        )


@op(
    inputs={"log_potential": FloatArray("B", "K1"), "incoming": FloatArray("B", "K", 2)},
    outputs=("messages",),
    check=_check_counts,
)
def cardinality_factor_messages(log_potential, incoming):
    r"""Messages of a counting (cardinality) factor to its variables, by a dynamic program over counts.

    A bag term of LLP that depends on the labels only through the bag's positive count,
    ``φ_b(Σ_{i∈b} y_i)`` (e.g. ``−λ_bag (c − k_b)²``), is one higher-order factor over the bag's K
    binary variables. Its sum-product message to variable i sums over the 2^{K−1} states of the
    others; since only their count matters, a dynamic program over counts does it exactly in
    polynomial time. (The official LLP-BP code instead expands the square into pairwise factors
    inside loopy BP; the two give different fixed points — see ``pairwise_loopy_bp``.)

    Per bag, with incoming log-messages ``μ_j(y_j)`` from the variables and ``w_j = μ_j − logsumexp μ_j``::

        P_k(c) = log Σ over y_1..y_k with Σ y = c of exp Σ_j w_j(y_j)    (prefix, k = 0..K)
        S_k(c) = the same over y_k..y_K                                  (suffix)
        P_k(c) = logaddexp(P_{k−1}(c) + w_k(0), P_{k−1}(c − 1) + w_k(1))
        O_i(c) = log Σ_{a+b=c} exp(P_{i−1}(a) + S_{i+1}(b))              (the others' count)
        m_i(y) = log Σ_c exp(O_i(c) + φ(c + y))     then normalized (logsumexp over y = 0)

    in log space throughout (logaddexp: no underflow of 2^{−K}-small probabilities), O(K²) per
    variable. Unnormalized incoming messages are accepted (normalized first: a constant per
    message changes nothing after the final normalization).

    Reference-only: a small exact DP per bag (bags of 8 in the official setup); not
    differentiable (used inside BP).

    Args:
        log_potential: φ (B, K + 1), the log-potential of each count c = 0..K per bag (finite;
            a forbidden count is a large negative value), float32 or float64.
        incoming: μ (B, K, 2), incoming log-messages from the bag's variables, same dtype.

    Returns:
        messages: (B, K, 2), ``m_i(y)``, normalized to logsumexp 0 over y.

    Reference: Havaldar et al., arXiv:2310.08056, the bag potential φ_b(Σ y) of the LLP Gibbs
    distribution (official code google-deepmind/llp_bp uses its pairwise expansion instead).

    >>> import numpy as np, refimpl
    >>> phi = np.log(np.array([[1.0, 4.0, 1.0]]))          # K = 2, count 1 favoured 4:1
    >>> m = refimpl.solvers.cardinality_factor_messages(phi, np.zeros((1, 2, 2)))
    >>> np.exp(m).round(6)        # y_1 = 0: other y ∈ {0,1} → φ(0) + φ(1) = 5; y_1 = 1: 4 + 1 = 5
    array([[[0.5, 0.5],
            [0.5, 0.5]]])
    """
    dtype = incoming.dtype
    batch, size, _ = incoming.shape
    w = _log_normalize(incoming)
    minus_inf = dtype.type(-np.inf)
    # prefix[k] = log count distribution of y_1..y_k (k = 0..K), suffix[k] of y_{k+1}..y_K
    prefix = np.full((size + 1, batch, size + 1), minus_inf, dtype=dtype)
    suffix = np.full((size + 1, batch, size + 1), minus_inf, dtype=dtype)
    prefix[0, :, 0] = 0
    suffix[size, :, 0] = 0
    with np.errstate(invalid="ignore"):  # −inf + finite stays −inf; logaddexp(−inf, −inf) = −inf
        for k in range(1, size + 1):
            shifted = np.concatenate(
                [np.full((batch, 1), minus_inf, dtype=dtype), prefix[k - 1][:, :-1]], axis=1
            )
            prefix[k] = np.logaddexp(prefix[k - 1] + w[:, k - 1, 0:1], shifted + w[:, k - 1, 1:2])
        for k in range(size - 1, -1, -1):
            shifted = np.concatenate(
                [np.full((batch, 1), minus_inf, dtype=dtype), suffix[k + 1][:, :-1]], axis=1
            )
            suffix[k] = np.logaddexp(suffix[k + 1] + w[:, k, 0:1], shifted + w[:, k, 1:2])
        messages = np.empty_like(incoming)
        counts = np.arange(size + 1)
        for i in range(size):
            # others' count: (log) convolution of prefix[i] (y_1..y_i) and suffix[i + 1] (y_{i+2}..)
            pair = prefix[i][:, :, None] + suffix[i + 1][:, None, :]  # [b, a, c]
            total = counts[:, None] + counts[None, :]
            others = np.full((batch, size + 1), minus_inf, dtype=dtype)
            for c in range(size):  # the others number K − 1: counts 0..K − 1
                mask = total == c
                values = pair[:, mask]
                top = values.max(axis=1)
                safe = np.where(np.isfinite(top), top, 0)
                others[:, c] = safe + np.log(np.exp(values - safe[:, None]).sum(axis=1))
            for y in (0, 1):
                scores = others[:, :size] + log_potential[:, y : size + y]
                top = scores.max(axis=1)
                messages[:, i, y] = top + np.log(np.exp(scores - top[:, None]).sum(axis=1))
    return _log_normalize(messages), None
