"""Winner-take-all column-row sampling, WTA-CRS (Winner-Take-All Column Row Sampling for Memory
Efficient Adaptation of Language Model, Liu et al.)."""

from __future__ import annotations

import math

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntArray,
    IntScalar,
    Paper,
    RealScalar,
    known_deviation,
    op,
    row_norm,
)

__all__ = ["PAPER", "wta_crs_deterministic_size", "wta_crs_matmul", "wta_crs_probabilities"]

PAPER = Paper(
    "Winner-Take-All Column Row Sampling for Memory Efficient Adaptation of Language Model",
    arxiv="2305.15265",
    year=2023,
    code="zirui-ray-liu/WTACRS",
)

#: the official threshold of the "long tail" rule (``topk_selection_4D``, eps=1e-3): when the
#: deterministic set holds more than 1 − 1e-3 of the probability, the sampled part is dropped
LONGTAIL_EPS = 1e-3


def _host(value):
    return np.asarray(value.get() if hasattr(value, "get") else value)


# -- wta_crs_probabilities -------------------------------------------------------------------------
@op(
    inputs={"x": FloatArray("M", "n"), "z": FloatArray("n", "N"), "eps": RealScalar(0, low_open=True)},
    outputs=("p",),
)
def wta_crs_probabilities(x, z, *, eps=1e-8):
    r"""WTA-CRS's column-row probabilities: each term of ``X Z = Σ_i X_{:,i} Z_{i,:}`` weighted
    by the product of its column's and row's norms.

    Column-row sampling estimates the product ``Y = X Z`` (n terms in the contracted
    dimension) from a few terms; the variance is smallest when term i is drawn with
    probability proportional to ``‖X_{:,i}‖·‖Z_{i,:}‖``.

    Forward::

        a_i = ‖X_{:,i}‖₂,  b_i = ‖Z_{i,:}‖₂         (float64)
        p_i = (a_i b_i + ε)/(Σ_j a_j b_j + ε)          ε = 1e-8

    The ε of the official code keeps every p_i positive; it makes ``Σ p = (S + nε)/(S + ε)``
    slightly above 1 (S = Σ a b), a bias of O(nε/S) in the estimator. When every a_i is 0
    (its first iteration, before any gradient norm exists) the official code uses b_i alone;
    pass ``x = np.ones((1, n))`` for that. Not differentiated.

    Args:
        x: X (M, n), float32 or float64 (in training: the output gradient, whose row norms
            come from the previous iteration).
        z: Z (n, N), same dtype (in training: the activations, one row per token).
        eps: ε > 0 (default 1e-8, the official value).

    Returns:
        p: (n,) the probabilities, in the input dtype.

    Reference: Liu et al., *Winner-Take-All Column Row Sampling for Memory Efficient
    Adaptation of Language Model*, NeurIPS 2023, arXiv:2305.15265 (column-row sampling);
    official code zirui-ray-liu/WTACRS, ``seq2seq/approxlinear/functional.py``
    (``subsample_4D_B_by_norm``).

    >>> import numpy as np, refimpl
    >>> x, z = np.array([[3.0, 0.0], [4.0, 1.0]]), np.array([[1.0], [5.0]])   # a = (5, 1), b = (1, 5)
    >>> refimpl.other.wta_crs_probabilities(x, z, eps=1e-300)                 # 5/10 each
    array([0.5, 0.5])
    """
    column_norms = row_norm(x.T.astype(np.float64))[:, 0]
    row_norms = row_norm(z.astype(np.float64))[:, 0]
    products = column_norms * row_norms
    p = (products + eps) / (products.sum() + eps)
    return p.astype(x.dtype), None


# -- wta_crs_deterministic_size --------------------------------------------------------------------
def _budget(n: int, ratio: float, minimal_k: int) -> int:
    """k = min(max(⌊n·ratio⌋, minimal_k), n)."""
    return min(max(math.floor(n * ratio), minimal_k), n)


@op(
    inputs={
        "p": FloatArray("n"),
        "ratio": RealScalar(0, 1, low_open=True),
        "minimal_k": IntScalar(1),
    },
    outputs=("k", "num_deterministic"),
)
def wta_crs_deterministic_size(p, *, ratio, minimal_k=10):
    r"""WTA-CRS's budget k and its adaptive split into |C| deterministic (winner-take-all)
    terms and k − |C| sampled ones.

    Keeping the terms of largest probability exactly and sampling the rest removes the
    variance of the heavy head. The split minimizes the estimator's variance bound: with the
    c largest probabilities kept, ``(1 − Σ_{top c} p)/(k − c)`` is the residual mass per
    remaining sample.

    Forward::

        k  = min(max(⌊n·ratio⌋, minimal_k), n)
        s_c = (1 − Σ_{top c} p)/(k − c)         c = 1 .. k − 1 (float64, p sorted descending)
        c* = argmin_c s_c                        (the smallest c on a tie)
        |C| = c*  if s_{c*} ≤ 1/k,  else 0

    c = k (a division by zero) is never chosen: ``s_k`` counts as +∞, also where
    ``1 − Σ_{top k} p`` is 0 or (through the ε of the probabilities) slightly negative, where
    the official code gets NaN or −∞ and takes every term deterministic (recorded as a known
    deviation). When k = n the product is computed exactly (|C| = k = n). Not differentiated.

    Args:
        p: the probabilities (n,) of ``wta_crs_probabilities``, float32 or float64.
        ratio: the sampling ratio in (0, 1] (required: set per experiment, e.g. 0.3).
        minimal_k: the least budget (default 10, the official ``minimal_k``).

    Returns:
        k: the budget, a 0-d int64 array.
        num_deterministic: |C|, a 0-d int64 array (0 ≤ |C| < k, or k = n).

    Reference: Liu et al., arXiv:2305.15265 (the deterministic-size rule); official
    code zirui-ray-liu/WTACRS, ``seq2seq/approxlinear/functional.py`` (``k_adaptive_4D``;
    k from ``subsample_4D_B_by_norm``), ``seq2seq/approxlinear/config.py`` (``minimal_k = 10``).

    >>> import numpy as np, refimpl
    >>> p = np.array([0.5, 0.3, 0.1, 0.05, 0.05])
    >>> k, c = refimpl.other.wta_crs_deterministic_size(p, ratio=0.6, minimal_k=1)
    >>> int(k), int(c)        # k = 3; s_1 = 0.5/2, s_2 = 0.2/1: |C| = 2 (0.2 ≤ 1/3)
    (3, 2)
    """
    n = p.shape[0]
    k = _budget(n, ratio, minimal_k)
    if k == n:  # the official code computes the product exactly
        return (np.asarray(k, dtype=np.int64), np.asarray(k, dtype=np.int64)), None
    top = np.sort(np.asarray(p, dtype=np.float64))[::-1][: k - 1]  # c = 1 .. k − 1
    if top.size == 0:  # k = 1: only c = k, never chosen
        return (np.asarray(k, dtype=np.int64), np.asarray(0, dtype=np.int64)), None
    c = np.arange(1, k)
    score = (1 - np.cumsum(top)) / (k - c)
    best = int(np.argmin(score))
    chosen = best + 1 if score[best] <= 1 / k else 0
    return (np.asarray(k, dtype=np.int64), np.asarray(chosen, dtype=np.int64)), None


# -- wta_crs_matmul -------------------------------------------------------------------------------
def _deterministic_set(p: np.ndarray, count: int) -> np.ndarray:
    """The indices of the ``count`` largest p (ties: the lowest index first)."""
    return np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")[:count]


def _check_matmul(arguments) -> None:
    p, sampled, count = _host(arguments["p"]), _host(arguments["sampled"]), arguments["num_deterministic"]
    n = p.shape[0]
    if count > n:
        raise ArgumentError("num_deterministic", f"at most n = {n} (the terms of the product)", str(count))
    if np.any(p < 0):
        raise ArgumentError("p", "probabilities p ≥ 0", f"{float(p.min())!r} at index {int(np.argmin(p))}")
    if sampled.size:
        kept = _deterministic_set(p, count)
        inside = np.isin(sampled, kept)
        if np.any(inside):
            j = int(np.argmax(inside))
            raise ArgumentError(
                "sampled",
                f"indices outside the deterministic set C (the {count} largest p)",
                f"index {int(sampled[j])} (entry {j}) is in C",
            )
        if not np.all(p[sampled] > 0):
            j = int(np.argmax(~(p[sampled] > 0)))
            raise ArgumentError(
                "sampled",
                "indices with p > 0 (a sampled term is weighted by 1/p)",
                f"index {int(sampled[j])} (entry {j}) has p = 0",
            )


def term_weights(p, sampled, count, official_longtail, official_first_iteration):
    """α (n,), float64: 1 on C, plus (1 − P_C)/(s·p_i) for each draw of i (the draws summed).

    The estimator's term weights, computed on the host for every backend (NumPy or CuPy
    inputs): O(n) bookkeeping beside the O(M·|S|·N) product."""
    p, sampled = _host(p), _host(sampled)
    n = p.shape[0]
    p64 = np.asarray(p, dtype=np.float64)
    kept = _deterministic_set(p64, count)
    alpha = np.zeros(n)
    alpha[kept] = 1.0
    s = sampled.shape[0]
    if s:
        mass = p64[kept].sum()  # P_C
        residual = 1.0 - mass
        if official_first_iteration:
            weights = np.full(s, residual)  # the official first step: no 1/(s·p_i)
        else:
            weights = residual / (s * p64[sampled])
        if official_longtail and mass > 1 - LONGTAIL_EPS:  # P_C > 1 − 1e-3: drop the sampled part
            weights = np.zeros(s)
        np.add.at(alpha, sampled, weights)  # an index drawn twice counts twice
    return alpha


@op(
    inputs={
        "x": FloatArray("M", "n"),
        "z": FloatArray("n", "N"),
        "p": FloatArray("n"),
        "sampled": IntArray("s", low=0, high="n"),
        "num_deterministic": IntScalar(0),
        "official_longtail": Flag(),
        "official_first_iteration": Flag(),
    },
    outputs=("y",),
    differentiable=("x", "z"),
    check=_check_matmul,
    allow_empty=("s",),
)
def wta_crs_matmul(
    x, z, p, sampled, *, num_deterministic, official_longtail=False, official_first_iteration=False
):
    r"""WTA-CRS estimate of the product ``X Z``: the |C| heaviest terms exactly, the rest
    by an unbiased sample of s terms drawn with replacement.

    ``Y = X Z = Σ_i X_{:,i} Z_{i,:}`` has n rank-one terms. Column-row sampling keeps k of
    them, rescaled so that the estimate is unbiased; WTA-CRS keeps the |C| terms of largest
    probability deterministically ("winner take all") and samples only among the others,
    which lowers the variance when p is heavy-tailed. In training it replaces the activation
    stored for the weight gradient (``∇W = Gᵀ X``) by its k sampled rows.

    Forward, with C the indices of the |C| largest p (ties: the lowest index first),
    ``P_C = Σ_{c∈C} p_c`` and the s = len(sampled) indices ``i_1..i_s ∉ C`` drawn with
    replacement from ``q_i = p_i/Σ_{j∉C} p_j`` (given: the caller draws them)::

        Ŷ = Σ_{c∈C} X_{:,c} Z_{c,:} + (1/s) Σ_{j=1..s} (1 − P_C)/p_{i_j} · X_{:,i_j} Z_{i_j,:}
          = X diag(α) Z,   α_c = 1 (c ∈ C),  α_i = (1 − P_C)·#{j: i_j = i}/(s·p_i) (i ∉ C)

    When Σ p = 1, ``1 − P_C = Σ_{j∉C} p_j`` and each sampled term has expectation
    ``Σ_{i∉C} X_{:,i} Z_{i,:}``: the estimate is unbiased for any C (with the ε of
    ``wta_crs_probabilities``, Σ p exceeds 1 by O(nε/S), a tiny bias). With s = 0 only the
    deterministic part remains.

    Official variants (flags): ``official_longtail=True`` drops the sampled part when
    ``P_C > 1 − 1e-3`` (biased; the official "long tail" rule); ``official_first_iteration=True``
    weights the sampled terms by ``(1 − P_C)`` alone, without ``1/(s·p_i)``, as the official
    code does before any gradient norm exists (biased).

    Backward. Given the indices, Ŷ = X diag(α) Z is linear in X and in Z (α does not depend
    on them: no gradient through the sampling or through p)::

        X̄ = Ȳ Zᵀ diag(α)         (X̄_{:,i} = α_i·Ȳ Z_{i,:}ᵀ)
        Z̄ = diag(α) Xᵀ Ȳ         (Z̄_{i,:} = α_i·X_{:,i}ᵀ Ȳ)

    so the columns of X and rows of Z that were not kept get zero cotangents.

    Args:
        x: X (M, n), float32 or float64.
        z: Z (n, N), same dtype.
        p: the probabilities (n,) (``wta_crs_probabilities``), p ≥ 0, same dtype.
        sampled: the drawn indices (s,), integers in [0, n), none in C and each with p > 0
            (s may be 0).
        num_deterministic: |C| (``wta_crs_deterministic_size``), 0 ≤ |C| ≤ n (required).
        official_longtail: reproduce the official long-tail rule (default False).
        official_first_iteration: reproduce the official first-iteration weights (default False).

    Returns:
        y: Ŷ (M, N), in the input dtype.

    Reference: Liu et al., *Winner-Take-All Column Row Sampling for Memory Efficient
    Adaptation of Language Model*, NeurIPS 2023, arXiv:2305.15265 (the WTA-CRS estimator
    and its unbiasedness); official code zirui-ray-liu/WTACRS,
    ``seq2seq/approxlinear/functional.py`` (``topk_selection_4D``, ``sample_with_replacement_4D``).

    >>> import numpy as np, refimpl
    >>> x, z = np.array([[1.0, 2.0, 3.0]]), np.array([[1.0], [1.0], [1.0]])
    >>> p = np.array([0.5, 0.25, 0.25])      # C = {0}; 1 − P_C = 0.5; index 2 drawn once
    >>> refimpl.other.wta_crs_matmul(x, z, p, np.array([2]), num_deterministic=1)   # 1 + 0.5/0.25·3
    array([[7.]])
    """
    alpha = term_weights(p, sampled, num_deterministic, official_longtail, official_first_iteration)
    alpha = alpha.astype(x.dtype)
    y = (x * alpha) @ z
    return y, (x, z, alpha)


@wta_crs_matmul.defvjp
def wta_crs_matmul_backward(residuals, g_y):
    x, z, alpha = residuals
    g_x = (g_y @ z.T) * alpha  # X̄ = Ȳ Zᵀ diag(α)
    g_z = alpha[:, None] * (x.T @ g_y)  # Z̄ = diag(α) Xᵀ Ȳ
    return g_x, g_z


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    wta_crs_matmul,
    name="wta-crs-longtail-drops-samples",
    source="zirui-ray-liu/WTACRS, seq2seq/approxlinear/functional.py (topk_selection_4D: longtail = "
    "top_k_prob > 1 − 1e-3; sample_with_replacement_4D: weights × (1 − longtail))",
    official="when the deterministic set holds more than 1 − 1e-3 of the probability, the sampled "
    "terms get weight 0 (biased)",
    paper="the sampled terms keep the weight (1 − P_C)/(s·p_i) whatever P_C (unbiased)",
    example=Example(
        args=(
            np.array([[1.0, 2.0, 3.0]]),
            np.array([[1.0], [1.0], [1.0]]),
            np.array([0.9995, 0.0003, 0.0002]),
            np.array([2]),
        ),
        kwargs={"num_deterministic": 1},
        official={"y": [[1.0]]},
        reference={"y": [[8.5]]},
    ),
    flag={"official_longtail": True},
)

known_deviation(
    wta_crs_matmul,
    name="wta-crs-first-iteration-weights",
    source="zirui-ray-liu/WTACRS, seq2seq/approxlinear/functional.py (sample_with_replacement_4D, "
    "a_sum == 0: before any gradient norm exists)",
    official="the sampled terms are weighted by (1 − P_C) only, without 1/(s·p_i) (biased)",
    paper="the sampled terms are weighted by (1 − P_C)/(s·p_i)",
    example=Example(
        args=(
            np.array([[1.0, 2.0, 3.0]]),
            np.array([[1.0], [1.0], [1.0]]),
            np.array([0.5, 0.25, 0.25]),
            np.array([2]),
        ),
        kwargs={"num_deterministic": 1},
        official={"y": [[2.5]]},
        reference={"y": [[7.0]]},
    ),
    flag={"official_first_iteration": True},
)

known_deviation(
    wta_crs_deterministic_size,
    name="wta-crs-adaptive-size-at-c-equals-k",
    source="zirui-ray-liu/WTACRS, seq2seq/approxlinear/functional.py (k_adaptive_4D: the score at "
    "c = k divides by k − c = 0)",
    official="when 1 − Σ_{top k} p is 0 (0/0 = NaN, which torch.min propagates) or negative (−∞, "
    "possible through the ε of the probabilities), c = k is chosen: every term deterministic",
    paper="c ranges over 1 .. k − 1 (c = k, the division by zero, is never chosen)",
    example=Example(
        args=(np.array([0.5, 0.5, 0.0, 0.0]),),
        kwargs={"ratio": 0.5, "minimal_k": 1},
        official={"num_deterministic": 2},
        reference={"num_deterministic": 1},
    ),
    convention=True,
)
