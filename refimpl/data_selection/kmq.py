"""kMQ's iterative refinement: per-cluster weights from reward gaps, and the next round's draws
(Diversify and Conquer: Diversity-Centric Data Selection with Iterative Refinement)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..authoring import (
    ArgumentError,
    BoolArray,
    Example,
    Flag,
    FloatArray,
    IntArray,
    IntScalar,
    Paper,
    RealScalar,
    known_deviation,
    op,
)

__all__ = ["PAPER", "draw_size", "kmq_cluster_weights", "kmq_draw_allocation"]

PAPER = Paper(
    "Diversify and Conquer: Diversity-Centric Data Selection with Iterative Refinement",
    arxiv="2409.11378",
    year=2024,
    code="for-ai/iterative-data-selection",
)


def _check_uniform(name: str, values: np.ndarray) -> None:
    if values.size and bool(np.any((values < 0) | (values >= 1))):
        raise ArgumentError(name, "uniform draws in [0, 1)", f"values in [{values.min()}, {values.max()}]")


# -- per-cluster weights --------------------------------------------------------------------------
def _check_weights(arguments: Mapping[str, Any]) -> None:
    clusters, k = arguments["clusters"], arguments["k"]
    if int(clusters.max()) >= k:
        raise ArgumentError(
            "clusters", f"cluster labels in [0, k) = [0, {k})", f"label {int(clusters.max())}"
        )


@op(
    inputs={
        "r_gold": FloatArray("M"),
        "r_gen": FloatArray("M"),
        "clusters": IntArray("M", low=0),
        "k": IntScalar(1),
        "empty_score": RealScalar(optional=True),
    },
    outputs=("scores", "weights", "counts"),
    check=_check_weights,
)
def kmq_cluster_weights(r_gold, r_gen, clusters, *, k=64, empty_score=None):
    r"""kMQ's cluster weights: a softmax over clusters of the mean reward gap of their samples.

    After training on the current subset, the model answers every selected instruction; a
    reward model scores the gold response and the model's own. Where the gold answer is much
    better than the model's (a large gap), the cluster is still hard to learn, so the next
    round draws more from it: a cluster's weight is the softmax of its mean gap.

    Forward. With ``d_i = r_gold,i − r_gen,i`` for the M selected samples and ``n_c`` the
    number of them in cluster c::

        s_c = (1/n_c) Σ_{i: c_i = c} d_i              (summed in sample order; n_c ≥ 1)
        w_c = exp(s_c − s_max) / Σ_{c'∈P} exp(s_c' − s_max)     c ∈ P,   s_max = max_{c∈P} s_c

    P is the set of clusters with at least one selected sample. The max shift cannot
    overflow; the official ``np.exp(reward_diff)`` (unshifted) overflows once a gap exceeds
    709.8 and gives NaN weights (recorded deviation ``kmq-unshifted-softmax-overflow``);
    otherwise both agree to rounding. A cluster with no selected sample has no score: by
    default (``empty_score=None``) it is excluded, weight 0 and reported score 0 (the
    official ``groupby('cluster')`` drops it; its ``np.random.choice(K, p=...)`` then raises,
    since p has fewer than K entries). With ``empty_score=v`` such clusters enter the softmax
    with score v. A one-off statistic of the selected subset: no VJP; reference-only.

    Args:
        r_gold: reward-model scores of the gold responses (M,), float32 or float64.
        r_gen: reward-model scores of the model's generations (M,), same dtype.
        clusters: cluster label of each selected sample (M,), integers in [0, k).
        k: number of k-means clusters (default 64: ``KMeansIter(K=64)`` in
            ``selection/methods/kmeansiter.py``, the paper's iterative setting).
        empty_score: the score of a cluster with no selected sample, or None (default) to
            exclude it (weight 0).

    Returns:
        scores: s (k,), dtype of the rewards (0 for an excluded cluster).
        weights: w (k,), dtype of the rewards, summing to 1.
        counts: n_c (k,) int64, the selected samples per cluster.

    Reference: *Diversify and Conquer: Diversity-Centric Data Selection with Iterative
    Refinement*, arXiv:2409.11378, Sec. 3 (iterative refinement); official code
    for-ai/iterative-data-selection, ``selection/iter.py``, ``select_new_iter``
    (``reward_diff = human_reward − generated_reward``, ``groupby('cluster').mean()``,
    ``exp`` normalized by its sum).

    >>> import numpy as np, refimpl
    >>> scores, weights, counts = refimpl.data_selection.kmq_cluster_weights(
    ...     np.array([1.0, 3.0, 2.0]), np.array([1.0, 1.0, 2.0]), np.array([0, 0, 2]), k=3)
    >>> scores  # cluster 0: mean(0, 2) = 1; cluster 1: empty; cluster 2: 0
    array([1., 0., 0.])
    >>> weights.round(6)  # e/(e + 1), 0, 1/(e + 1)
    array([0.731059, 0.      , 0.268941])
    """
    gap = r_gold.astype(np.float64) - r_gen.astype(np.float64)
    counts = np.bincount(clusters, minlength=k).astype(np.int64)
    sums = np.bincount(clusters, weights=gap, minlength=k)  # sequential, in sample order
    present = counts > 0
    scores = np.zeros(k)
    scores[present] = sums[present] / counts[present]
    included = present.copy()
    if empty_score is not None:
        scores[~present] = float(empty_score)
        included[:] = True
    shifted = scores - scores[included].max()  # subtract the max: exp cannot overflow
    exps = np.where(included, np.exp(np.where(included, shifted, 0.0)), 0.0)
    weights = exps / exps.sum()
    dtype = r_gold.dtype
    return (scores.astype(dtype), weights.astype(dtype), counts), None


known_deviation(
    kmq_cluster_weights,
    name="kmq-unshifted-softmax-overflow",
    source="for-ai/iterative-data-selection, selection/iter.py, select_new_iter "
    "(`np.exp(merged_df['reward_diff'])` divided by its sum)",
    official="exponentiates the mean reward gaps without subtracting their max: a gap above 709.8 "
    "overflows to inf and the weights become inf/inf = NaN (np.random.choice then refuses them)",
    paper="w = softmax(s), finite for every finite s; refimpl subtracts max s first (same values otherwise)",
    example=Example(
        args=(np.array([800.0, 0.0]), np.array([0.0, 0.0]), np.array([0, 1])),
        kwargs={"k": 2},
        official={"weights": [float("nan"), 0.0]},
        reference={"weights": [1.0, 0.0]},
        note="s = [800, 0]: exp(800) = inf in float64",
    ),
)


# -- the next round's draws -----------------------------------------------------------------------
def draw_size(n: int, portion: float, k: int, rounds: int, official_size: bool = True) -> int:
    """The number of categorical draws of one refinement round.

    ``official_size=True``: ``int(N·portion/K/rounds)``, the official ``size = (len(dataset) *
    portion) / K / round`` evaluated in the same order; ``False``: ``int(N·portion/rounds)``,
    ``budget/rounds`` (the paper's per-round share of the budget ``N·portion``).
    """
    budget = n * float(portion)
    return int(budget / k / rounds) if official_size else int(budget / rounds)


def _check_draws(arguments: Mapping[str, Any]) -> None:
    w = arguments["w"]
    if bool(np.any(w < 0)) or not float(np.sum(w, dtype=np.float64)) > 0:
        raise ArgumentError("w", "non-negative cluster weights with a positive sum", f"weights {w}")
    _check_uniform("u", arguments["u"])
    _check_uniform("keys", arguments["keys"])
    size = draw_size(
        arguments["clusters"].shape[0], arguments["portion"], w.shape[0], arguments["rounds"],
        arguments["official_size"],
    )  # fmt: skip
    if arguments["u"].shape[0] < size:
        raise ArgumentError(
            "u",
            f"at least one uniform draw per categorical draw: S = draw_size(N, portion, K, rounds, "
            f"official_size) = {size}",
            f"{arguments['u'].shape[0]} draws",
        )


@op(
    inputs={
        "w": FloatArray("K"),
        "clusters": IntArray("N", low=0, high="K"),
        "seen": BoolArray("N"),
        "u": FloatArray("U"),
        "keys": FloatArray("N"),
        "portion": RealScalar(0, 1, low_open=True),
        "rounds": IntScalar(1),
        "official_size": Flag(),
    },
    outputs=("drawn", "indices"),
    check=_check_draws,
    allow_empty=("U",),
)
def kmq_draw_allocation(w, clusters, seen, u, keys, *, portion, rounds=4, official_size=True):
    r"""kMQ's next-round selection: draw clusters from Categorical(w), take that many new points.

    Each refinement round spends part of the budget where the model is weakest: ``S``
    cluster indices are drawn with replacement from the weights of ``kmq_cluster_weights``,
    and each cluster then contributes as many not-yet-selected points as it was drawn,
    capped by how many it has left, the points chosen uniformly at random.

    Forward. The randomness is explicit: ``u`` (a stream of uniform draws in [0, 1), of
    which the first S are consumed, as a generator would) for the categorical draws and
    ``keys`` (one uniform key per sample) for the points::

        S        = int(N·portion/K/rounds)    (official_size=True; False: int(N·portion/rounds))
        F        = cumsum(w) / Σ w                       (float64; F_{K−1} = 1 exactly)
        j_s      = min{c : F_c > u_s}                    (inverse CDF: searchsorted(F, u, 'right'))
        drawn_c  = #{s : j_s = c}
        A_c      = {i : clusters_i = c, not seen_i}      (the unseen points of cluster c)
        take_c   = min(drawn_c, |A_c|)
        picked_c = the take_c points of A_c with the smallest keys (ties: the lower index)

    ``indices`` concatenates ``picked_0, picked_1, ...`` (cluster order, each in ascending key
    order: a uniformly random subset, as the official ``np.random.choice(..., replace=False)``).
    The inverse CDF is NumPy's own ``RandomState.choice(K, S, p=w)`` (cumsum, divide by the
    last entry, ``searchsorted(..., side='right')``), so with ``u`` = the generator's
    ``random_sample(S)`` (or more) the draws are the official ones; a zero-weight cluster is
    never drawn.

    ``S`` follows the official code: ``size = N·portion/K/round`` is the TOTAL number of new
    draws per round — K times fewer than the round-0 allocation ``int(N·portion/rounds/K)``
    PER cluster; the paper presumably means ``budget/rounds`` per round (not pinned):
    ``official_size=False`` draws that many (recorded deviation ``kmq-draw-size-per-round``).
    Bookkeeping of a budget: no VJP; reference-only.

    Args:
        w: cluster weights (K,), non-negative with a positive sum (normalized here).
        clusters: the k-means cluster of every sample of the pool (N,), in [0, K) (the
            official k-means is faiss' with niter 300, nredo 5: an input here).
        seen: (N,) bool, True for the samples selected in earlier rounds.
        u: (U,) uniform draws in [0, 1), U ≥ S = ``draw_size(N, portion, K, rounds,
            official_size)``; the first S are used (may be empty when S = 0).
        keys: (N,) uniform draws in [0, 1), one per sample, same dtype as w and u.
        portion: the selection budget as a fraction of the pool, 0 < portion ≤ 1 (budget
            ``N·portion``; no default: an experiment's choice).
        rounds: number of refinement rounds (default 4: ``KMeansIter(rounds=4)``).
        official_size: S as in the official code (default True) or ``budget/rounds``.

    Returns:
        drawn: (K,) int64, the number of categorical draws of each cluster.
        indices: (Σ_c take_c,) int64, the new samples, cluster by cluster (the official code
        prepends the earlier selection; here only the new ones are returned).

    Reference: *Diversify and Conquer*, arXiv:2409.11378, Sec. 3; official code
    for-ai/iterative-data-selection, ``selection/iter.py``, ``select_new_iter``
    (``np.random.choice(K, size=int(size), p=exp_reward_diff, replace=True)``, ``Counter``,
    per cluster ``np.random.choice(indices, size=min(count, available), replace=False)``).

    >>> import numpy as np, refimpl
    >>> w = np.array([0.5, 0.0, 0.5])
    >>> clusters = np.array([0, 0, 1, 2, 2, 0])
    >>> seen = np.array([False, True, False, False, False, False])
    >>> keys = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2])
    >>> drawn, indices = refimpl.data_selection.kmq_draw_allocation(
    ...     w, clusters, seen, np.array([0.1, 0.4, 0.2]), keys, portion=1.0, rounds=2,
    ...     official_size=False)  # S = int(6/2) = 3 draws: F = [0.5, 0.5, 1]
    >>> drawn
    array([3, 0, 0])
    >>> indices  # cluster 0 has 2 unseen points (0, 5): capped, in key order
    array([5, 0])
    """
    count_k = w.shape[0]
    cdf = np.cumsum(w.astype(np.float64))
    cdf /= cdf[-1]
    size = draw_size(clusters.shape[0], portion, count_k, rounds, official_size)
    draws = np.searchsorted(cdf, u[:size].astype(np.float64), side="right")  # the first S draws
    drawn = np.bincount(draws, minlength=count_k).astype(np.int64)
    picked = []
    for c in range(count_k):
        available = np.flatnonzero((clusters == c) & ~seen)  # ascending indices
        take = min(int(drawn[c]), available.shape[0])
        order = np.argsort(keys[available], kind="stable")[:take]  # ties: the lower index
        picked.append(available[order])
    indices = np.concatenate(picked).astype(np.int64) if picked else np.empty(0, dtype=np.int64)
    return (drawn, indices), None


known_deviation(
    kmq_draw_allocation,
    name="kmq-draw-size-per-round",
    source="for-ai/iterative-data-selection, selection/iter.py, select_new_iter "
    "(`size = (len(dataset) * portion) / K / round`, then `np.random.choice(K, size=int(size), ...)`)",
    official="draws int(N·portion/K/rounds) cluster indices IN TOTAL per refinement round: K times fewer "
    "than round 0, which takes int(N·portion/rounds/K) PER cluster (kmeansiter.py)",
    paper="each round spends its share of the budget, budget/rounds = N·portion/rounds draws "
    "(the intent as read; not pinned by the text)",
    example=Example(
        args=(
            np.array([0.5, 0.5]),
            np.array([0, 0, 0, 0, 1, 1, 1, 1]),
            np.zeros(8, dtype=bool),
            np.array([0.25, 0.75, 0.25, 0.75]),
            np.linspace(0.0, 0.7, 8),
        ),
        kwargs={"portion": 1.0, "rounds": 2, "official_size": False},
        official={"drawn": [1, 1]},
        reference={"drawn": [2, 2]},
        note="N = 8, portion 1, K = 2, rounds 2: the official S = int(8/2/2) = 2 draws (it consumes the "
        "first two uniforms), budget/rounds = 4 draws with official_size=False",
    ),
    flag={"official_size": True},
)
