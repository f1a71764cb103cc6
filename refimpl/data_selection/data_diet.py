"""EL2N, GraNd and margin data-pruning scores, and pruning by score (Deep Learning on a Data Diet)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    InputError,
    IntArray,
    IntScalar,
    OneOf,
    Paper,
    known_deviation,
    op,
    row_norm,
)

__all__ = [
    "PAPER",
    "SCORE_OPS",
    "el2n_score",
    "grand_score_last_layer",
    "margin_score",
    "score_based_pruning",
    "score_in_batches",
]

EXPORTS = ("score_in_batches",)  # a helper exported by refimpl.data_selection beside the ops

PAPER = Paper(
    "Deep Learning on a Data Diet: Finding Important Examples Early in Training",
    arxiv="2107.07075",
    year=2021,
    code="mansheej/data_diet",
)

SCORE_OPS = ("el2n_score", "grand_score_last_layer", "margin_score")
"""The per-example scores: every one takes logits (R, n, K) and labels (n,) first and returns (n,)."""


def _probabilities_and_errors(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``p = softmax(z)`` and the error ``e = p − onehot(y)`` over the last axis.

    ``e_y = −Σ_{k≠y} p_k`` rather than ``p_y − 1``: when the label dominates, ``p_y`` rounds
    to 1 and ``p_y − 1`` keeps none of the digits of the (tiny) error, the sum keeps them all.
    """
    shifted = z - z.max(axis=-1, keepdims=True)  # subtract the row max: exp cannot overflow
    exponentials = np.exp(shifted)
    p = exponentials / exponentials.sum(axis=-1, keepdims=True)
    is_label = np.arange(z.shape[-1]) == y[:, None]  # (n, K), broadcast over the runs
    e = np.where(is_label, 0, p)
    e_label = -e.sum(axis=-1)  # −(1 − p_y), summed from the other classes
    e = np.where(is_label, e_label[..., None], e)
    return p, e.astype(z.dtype, copy=False)


# -- EL2N ---------------------------------------------------------------------------------------
@op(
    inputs={"z": FloatArray("R", "n", "K"), "y": IntArray("n", low=0, high="K"), "ord": OneOf(2, 1)},
    outputs=("scores",),
    differentiable=("z",),
)
def el2n_score(z, y, *, ord=2):
    r"""EL2N: the norm of the softmax error, averaged over independently trained runs.

    An example whose prediction is still far from its one-hot label early in training is
    hard (or mislabeled); one the network already fits is easy and can be pruned. The paper
    trains R networks from different initializations for a few epochs and averages the
    error norm over them; pruning keeps the highest scores.

    Forward, per run r and example i (K classes, label y_i)::

        p_ri  = softmax(z_ri)                                (row max subtracted first)
        e_ri  = p_ri − onehot(y_i),  e_ri[y_i] = −Σ_{k≠y_i} p_rik   (no 1 − p cancellation)
        EL2N_i = (1/R) Σ_r ‖e_ri‖_ord                        ord = 2 (EL2N) or 1

    ``‖e‖₂`` is computed scaled where its square would underflow (``row_norm``), so an
    almost-saturated example keeps a small positive score. 0 ≤ EL2N ≤ √2 (ord 2), ≤ 2 (ord 1).

    Backward. With ``s = ∂‖e‖/∂e`` (``e/‖e‖₂`` for ord 2, ``sign(e)`` for ord 1; 0 where
    ``e = 0`` exactly, as a float32 softmax saturates) and the softmax Jacobian
    ``∂p_k/∂z_j = p_k(δ_kj − p_j)``::

        ∂‖e‖/∂z_j = Σ_k s_k p_k (δ_kj − p_j) = p_j (s_j − ⟨s, p⟩)
        z̄_rij     = (ḡ_i / R) · p_rij (s_rij − ⟨s_ri, p_ri⟩)

    where ``ḡ`` is the cotangent of the scores; for ord 2, ``s = (p − Y)/‖p − Y‖``.

    Args:
        z: logits of R runs (R, n, K), float32 or float64 (R = 1: a single network).
        y: labels (n,), integers in [0, K).
        ord: 2 (default, EL2N) or 1 (the official ``l1_error`` score).

    Returns:
        scores: (n,), dtype of z.

    Reference: Paul, Ganguli, Dziugaite, *Deep Learning on a Data Diet: Finding Important
    Examples Early in Training*, NeurIPS 2021, arXiv:2107.07075; official code
    mansheej/data_diet (``data_diet/scores.py``, ``get_lord_error_fn``; the mean over runs in
    ``scripts/get_mean_score.py``).

    >>> import numpy as np, refimpl
    >>> z = np.log(np.array([[[1.0, 3.0]]]))  # one run, p = [1/4, 3/4], label 0: e = [−3/4, 3/4]
    >>> refimpl.data_selection.el2n_score(z, np.array([0])).round(6)  # (3/4)·√2
    array([1.06066])
    """
    p, e = _probabilities_and_errors(z, y)
    norms = row_norm(e)[..., 0] if ord == 2 else np.abs(e).sum(axis=-1)
    scores = norms.mean(axis=0)
    return scores.astype(z.dtype, copy=False), (p, e, norms, ord)


@el2n_score.defvjp
def el2n_score_backward(residuals, g_scores):
    p, e, norms, ord = residuals
    runs = p.shape[0]
    if ord == 2:
        safe = np.where(norms > 0, norms, 1)[..., None]
        s = np.where(norms[..., None] > 0, e / safe, 0)  # e/‖e‖, 0 at e = 0
    else:
        s = np.sign(e)
    weight = (g_scores.astype(p.dtype, copy=False) / runs)[None, :, None]
    g_z = weight * p * (s - (s * p).sum(axis=-1, keepdims=True))
    return (g_z.astype(p.dtype, copy=False),)


# -- GraNd (last layer) ------------------------------------------------------------------------------
@op(
    inputs={
        "z": FloatArray("R", "n", "K"),
        "y": IntArray("n", low=0, high="K"),
        "h": FloatArray("R", "n", "H"),
        "bias": Flag(),
    },
    outputs=("scores",),
)
def grand_score_last_layer(z, y, h, *, bias=True):
    r"""GraNd of a linear softmax head: the per-example gradient norm, in closed form.

    GraNd scores an example by the norm of its loss gradient ``‖∇_w CE(f_w(x), y)‖₂``,
    averaged over R networks (at or near initialization in the paper). Restricted to the
    last linear layer ``z = W h + c`` the gradient is an outer product, so its norm needs no
    per-example backward pass: only the logits and the penultimate features.

    Forward, per run r and example i::

        e_ri   = softmax(z_ri) − onehot(y_i)       (as in el2n_score, no 1 − p cancellation)
        ∇_W CE = e_ri h_riᵀ,  ∇_c CE = e_ri
        ‖∇CE‖  = ‖e_ri‖₂ · ‖h_ri‖₂                  bias=False
        ‖∇CE‖  = ‖e_ri‖₂ · sqrt(‖h_ri‖₂² + 1)        bias=True   (hypot: no overflow)
        GraNd_i = (1/R) Σ_r ‖∇CE‖

    (the Frobenius norm of a rank-one matrix ``e hᵀ`` is ``‖e‖‖h‖``). Full-network GraNd
    needs per-example gradients of every layer; this op is the last-layer term. A score: no
    VJP (the selection is not differentiated).

    Args:
        z: logits of R runs (R, n, K), float32 or float64.
        y: labels (n,), integers in [0, K).
        h: penultimate features of the same runs (R, n, H), dtype of z.
        bias: the head has a bias (default True: the official models end in flax
            ``nn.Dense``, whose ``use_bias`` defaults to True).

    Returns:
        scores: (n,), dtype of z.

    Reference: arXiv:2107.07075 (GraNd, section 2); official code mansheej/data_diet
    (``data_diet/scores.py``, ``get_grad_norm_fn``, the full-network norm; the head in
    ``data_diet/models.py``).

    >>> import numpy as np, refimpl
    >>> z = np.log(np.array([[[1.0, 3.0]]]))  # ‖e‖ = (3/4)·√2
    >>> h = np.array([[[3.0, 4.0]]])           # ‖h‖ = 5, sqrt(‖h‖² + 1) = √26
    >>> refimpl.data_selection.grand_score_last_layer(z, np.array([0]), h, bias=False).round(6)
    array([5.303301])
    """
    _, e = _probabilities_and_errors(z, y)
    error_norm = row_norm(e)[..., 0]
    feature_norm = row_norm(h)[..., 0]
    if bias:
        feature_norm = np.hypot(feature_norm, 1)  # sqrt(‖h‖² + 1) without squaring ‖h‖
    scores = (error_norm * feature_norm).mean(axis=0)
    return scores.astype(z.dtype, copy=False), None


# -- margin -------------------------------------------------------------------------------------------
def _check_margin(arguments: Mapping[str, Any]) -> None:
    z = arguments["z"]
    if z.shape[-1] < 2:
        raise ArgumentError(
            "z",
            "K >= 2 classes (the margin compares the label with another class)",
            f"shape {tuple(z.shape)}",
        )


@op(
    inputs={"z": FloatArray("R", "n", "K"), "y": IntArray("n", low=0, high="K"), "kind": OneOf("max", "sum")},
    outputs=("scores",),
    check=_check_margin,
)
def margin_score(z, y, *, kind="max"):
    r"""Margin score: how far the most likely wrong class is above the label's probability.

    Forward, per run r and example i (``p = softmax(z)``, row max subtracted first)::

        "max":  m_ri = max_{k≠y_i} p_rik − p_riy_i                 ∈ [−1, 1)
        "sum":  m_ri = Σ_{k≠y_i} (p_rik − p_riy_i) = Σ_{k≠y_i} p_rik − (K − 1) p_riy_i
        score_i = (1/R) Σ_r m_ri

    A high score is a hard (misclassified) example, like a high EL2N. The official code
    scores one network; R runs are averaged as its EL2N and GraNd scores are. A score: no
    VJP.

    Args:
        z: logits of R runs (R, n, K), K ≥ 2, float32 or float64.
        y: labels (n,), integers in [0, K).
        kind: "max" (default, the official ``max_margin``) or "sum" (``sum_margin``).

    Returns:
        scores: (n,), dtype of z.

    Reference: arXiv:2107.07075; official code mansheej/data_diet (``data_diet/scores.py``,
    ``get_margin_error``).

    >>> import numpy as np, refimpl
    >>> z = np.log(np.array([[[1.0, 3.0, 4.0]]]))  # p = [1/8, 3/8, 1/2], label 1
    >>> refimpl.data_selection.margin_score(z, np.array([1])).round(6)  # 1/2 − 3/8
    array([0.125])
    """
    p, _ = _probabilities_and_errors(z, y)
    is_label = np.arange(z.shape[-1]) == y[:, None]
    p_label = np.where(is_label, p, 0).sum(axis=-1)
    others = np.where(is_label, 0, p)
    if kind == "max":
        margins = np.where(is_label, -np.inf, p).max(axis=-1) - p_label
    else:
        margins = others.sum(axis=-1) - (z.shape[-1] - 1) * p_label
    return margins.mean(axis=0).astype(z.dtype, copy=False), None


# -- pruning by score ---------------------------------------------------------------------------------
def _check_pruning(arguments: Mapping[str, Any]) -> None:
    scores, size, offset = arguments["scores"], arguments["size"], arguments["offset"]
    n = scores.shape[0]
    if size + offset > n:
        raise ArgumentError(
            "size",
            f"size + offset <= n = {n} (the kept window must lie inside the ranking)",
            f"{size} + {offset}",
        )


@op(
    inputs={
        "scores": FloatArray("n"),
        "size": IntScalar(0),
        "offset": IntScalar(0),
        "official_offset": Flag(),
    },
    outputs=("indices",),
    check=_check_pruning,
    allow_empty=("n",),
)
def score_based_pruning(scores, *, size, offset=0, official_offset=False):
    r"""Keep the ``size`` highest-scoring examples, after skipping the ``offset`` highest.

    Scores such as EL2N rank examples from easy to hard; training on the hardest ones keeps
    the accuracy at a fraction of the data, except that the very highest are often
    mislabeled, so the paper can skip a top ``offset`` first (its sliding-window
    experiments).

    Forward::

        order   = the indices sorted by descending score, ties by lowest index first (stable)
        kept    = order[offset : offset + size]
        indices = sort(kept)                                   (ascending, as the official code)

    ``official_offset=True`` ranks ASCENDING (ties by lowest index first), as the official
    ``scores.argsort()[offset : offset + size]`` does: the offset counts from the lowest
    scores, and ``offset = 0`` keeps the lowest. That window is the paper's with offset
    ``n − offset − size``.

    ``size`` and ``offset`` are counts: the official code takes counts (``subset_size``,
    ``subset_offset``), and the rounding of a fraction of n is not pinned. Not
    differentiable.

    Args:
        scores: per-example scores (n,), float32 or float64, finite.
        size: how many to keep, 0 ≤ size ≤ n − offset (required).
        offset: how many of the top (default 0) to skip first.
        official_offset: count the offset from the lowest scores (default False).

    Returns:
        indices: the kept example indices (size,), int64, ascending.

    Reference: arXiv:2107.07075 (section 4, Fig. 3's offsets); official code
    mansheej/data_diet (``data_diet/data.py``, ``subset_train_idxs_by_scores`` and
    ``subset_train_idxs_by_offset``).

    >>> import numpy as np, refimpl
    >>> s = np.array([0.3, 0.9, 0.1, 0.9, 0.5])  # descending: 1, 3 (tie: lower index first), 4, 0, 2
    >>> refimpl.data_selection.score_based_pruning(s, size=2, offset=1)
    array([3, 4])
    """
    key = scores if official_offset else -scores  # −s ties stay ties: a stable sort keeps index order
    order = np.argsort(key, kind="stable")
    kept = np.sort(order[offset : offset + size])
    return kept.astype(np.int64, copy=False), None


known_deviation(
    score_based_pruning,
    name="data-diet-offset-from-lowest",
    source="mansheej/data_diet, data_diet/data.py, subset_train_idxs_by_offset "
    "(`scores.argsort()[subset_offset : subset_offset + subset_size]`)",
    official="sorts the scores ascending and counts the offset from the LOWEST score: offset 0 keeps the "
    "easiest examples; equal scores in NumPy's default (unstable) sort order",
    paper="drop the top offset highest scores, keep the next size (ties: lowest index first)",
    flag={"official_offset": True},
    example=Example(
        args=(np.array([0.3, 0.9, 0.1, 0.7, 0.5]),),
        kwargs={"size": 2, "offset": 1},
        official={"indices": [0, 4]},
        reference={"indices": [3, 4]},
        note="ascending 2, 0, 4, 3, 1: skipping one from the bottom keeps 0 and 4; the paper skips 1 (0.9) "
        "and keeps 3 and 4",
    ),
)


# -- the scores of a whole dataset, batch by batch ------------------------------------------------------
def score_in_batches(
    op_name: str, batches: Iterable[tuple[Any, ...]], backend: str | None = None, **kwargs: Any
) -> np.ndarray:
    """Score a dataset batch by batch and return the concatenated scores (n,).

    ``op_name`` is one of ``SCORE_OPS``; every element of ``batches`` is the op's positional
    arrays for a slice of the examples: ``(logits, labels)``, or ``(logits, labels, features)``
    for ``grand_score_last_layer`` (logits (R, b, K), labels (b,), features (R, b, H)).
    ``kwargs`` are the op's options. Every score depends on its own example only, so the
    result equals the one-shot call on the concatenated batches, with one batch in memory at
    a time. ``backend`` names a backend ("numba", "cupy"; default: the reference).

    >>> import numpy as np
    >>> z = np.log(np.array([[[1.0, 3.0], [1.0, 1.0]]]))
    >>> batches = [(z[:, :1], np.array([0])), (z[:, 1:], np.array([1]))]
    >>> score_in_batches("el2n_score", batches).round(6)
    array([1.06066 , 0.707107])
    """
    import refimpl  # the registry: any backend's implementation of the op

    if op_name not in SCORE_OPS:
        raise InputError(f"score_in_batches: op_name must be one of {', '.join(SCORE_OPS)}, got {op_name!r}")
    call = refimpl.get(op_name) if backend is None else refimpl.backend(backend).get(op_name)
    parts = [call(*batch, **kwargs) for batch in batches]
    if not parts:
        raise InputError("score_in_batches: batches is empty (at least one batch is needed)")
    if backend is not None:
        chosen = refimpl.backend(backend)
        parts = [chosen.to_numpy(part) for part in parts]
    return np.concatenate(parts)
