"""Conformance cases for kMQ's iterative refinement: `kmq_cluster_weights`, `kmq_draw_allocation`.

Both are reference-only bookkeeping compared on outputs (counts and indices exactly). The
randomness of the draws is explicit: uniform draws for the categorical, one uniform key per
sample for the points taken from each cluster.
"""

from __future__ import annotations

import numpy as np

from refimpl.data_selection.kmq import draw_size

from ..._cases import ErrorCase, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "EMPTY_CLUSTER": "a cluster with no selected sample: excluded (weight 0) unless empty_score is given",
    "LARGE_GAP": "gaps of ±800: the unshifted official exp overflows; the max shift keeps the weights finite",
    "EQUAL_SCORES": "equal mean gaps: uniform weights over the present clusters",
    "ZERO_WEIGHT": "a zero-weight cluster is never drawn (inverse CDF, searchsorted side='right')",
    "EXHAUSTED": "a cluster drawn more often than it has unseen points: capped at what is left",
    "NO_DRAWS": "S = int(N·portion/K/rounds) = 0: nothing drawn, no indices",
    "LONG_STREAM": "more uniforms than draws: the first S are used, as a generator consumes them",
    "TIED_KEYS": "equal keys: the lower index first (stable sort)",
}


# -- kmq_cluster_weights ----------------------------------------------------------------------------
def _weights_random(rng, M, K):
    scale = float(rng.choice([0.1, 1.0, 10.0]))
    r_gold = rng.standard_normal(M) * scale
    r_gen = rng.standard_normal(M) * scale
    clusters = rng.integers(0, K, size=M)
    kwargs = {"k": K}
    if rng.random() < 0.3:
        kwargs["empty_score"] = float(rng.choice([-1.0, 0.0, 2.5]))
    return Sample("random", (r_gold, r_gen, clusters), kwargs)


def _weights_edges():
    return [
        Sample(
            "known value (the doctest)",
            (np.array([1.0, 3.0, 2.0]), np.array([1.0, 1.0, 2.0]), np.array([0, 0, 2])),
            {"k": 3},
            flags=("EMPTY_CLUSTER",),
            comment="s = [1, ·, 0]: w = [e/(e + 1), 0, 1/(e + 1)]",
        ),
        Sample(
            "empty cluster with a score",
            (np.array([1.0, 3.0, 2.0]), np.array([1.0, 1.0, 2.0]), np.array([0, 0, 2])),
            {"k": 3, "empty_score": 0.0},
            flags=("EMPTY_CLUSTER",),
            comment="s = [1, 0, 0]: w = [e, 1, 1]/(e + 2)",
        ),
        Sample(
            "equal gaps",
            (np.array([2.0, 1.0, 5.0, 0.5]), np.array([1.0, 0.0, 4.0, -0.5]), np.array([0, 1, 2, 3])),
            {"k": 4},
            flags=("EQUAL_SCORES",),
            comment="every s_c = 1: w = 1/4",
        ),
        Sample(
            "gaps of ±800",
            (np.array([800.0, 0.0, 0.0]), np.array([0.0, 0.0, 800.0]), np.array([0, 1, 2])),
            {"k": 3},
            flags=("LARGE_GAP",),
            dtypes=("float64",),
            comment="w = [1, e^-800, 0] ≈ [1, 0, 0]",
        ),
        Sample("one cluster", (np.array([0.3, -0.2]), np.array([0.1, 0.4]), np.array([0, 0])), {"k": 1}),
        Sample(
            "default k = 64",
            (np.array([1.0, 0.0]), np.array([0.0, 0.0]), np.array([0, 63])),
            {},
            flags=("EMPTY_CLUSTER",),
        ),
    ]


def _weights_errors():
    return [
        ErrorCase(
            "label not below k",
            (np.array([1.0, 2.0]), np.array([0.0, 0.0]), np.array([0, 3])),
            {"k": 3},
            match=r"'clusters'.*\[0, 3\)",
        )
    ]


register(
    OpCases(
        "kmq_cluster_weights",
        dims={"M": (1, 12), "K": (1, 6)},
        random=_weights_random,
        edges=_weights_edges,
        errors=_weights_errors,
        defaults={"k": 64, "empty_score": None},
        notes=NOTES,
    )
)


# -- kmq_draw_allocation ------------------------------------------------------------------------------
def _draws_random(rng, K, N):
    w = rng.random(K)
    if K > 1 and rng.random() < 0.3:
        w[rng.integers(0, K)] = 0.0
    w = w + (w.sum() == 0)  # a positive sum
    w = w / w.sum()
    clusters = rng.integers(0, K, size=N)
    seen = rng.random(N) < float(rng.choice([0.0, 0.3, 0.7]))
    keys = rng.random(N)
    if rng.random() < 0.3:
        keys = np.floor(keys * 3) / 3  # exact ties
    official_size = bool(rng.random() < 0.5)
    portion = float(rng.choice([0.25, 0.5, 1.0]))
    rounds = int(rng.integers(1, 4))
    size = draw_size(N, portion, K, rounds, official_size)
    kwargs = {"portion": portion, "rounds": rounds, "official_size": official_size}
    extra = int(rng.integers(0, 3))  # a longer stream: only the first S draws are used
    return Sample("random", (w, clusters, seen, rng.random(size + extra), keys), kwargs)


def _draws_edges():
    w = np.array([0.5, 0.0, 0.5])
    clusters = np.array([0, 0, 1, 2, 2, 0])
    seen = np.array([False, True, False, False, False, False])
    keys = np.array([0.9, 0.1, 0.5, 0.3, 0.7, 0.2])
    off = {"portion": 1.0, "rounds": 2, "official_size": False}
    return [
        Sample(
            "known value (the doctest)",
            (w, clusters, seen, np.array([0.1, 0.4, 0.2]), keys),
            off,
            flags=("ZERO_WEIGHT", "EXHAUSTED"),
            comment="three draws of cluster 0, which has two unseen points: [5, 0]",
        ),
        Sample(
            "draws in both clusters, tied keys",
            (w, clusters, seen, np.array([0.5, 0.99, 0.0]), np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5])),
            off,
            flags=("TIED_KEYS", "ZERO_WEIGHT"),
            comment="u = 0.5 → cluster 2 (F = [0.5, 0.5, 1], side 'right'); 0.99 → 2; 0 → 0: [0, 3, 4]",
        ),
        Sample(
            "official size: no draw",
            (w, clusters, seen, np.empty(0), keys),
            {"portion": 1.0},
            flags=("NO_DRAWS",),
            comment="int(6·1/3/4) = 0",
        ),
        Sample(
            "a longer stream of draws",
            (w, clusters, seen, np.array([0.1, 0.4, 0.2, 0.9, 0.9]), keys),
            off,
            flags=("LONG_STREAM",),
            comment="the same as the doctest: 0.9, 0.9 are not used",
        ),
        Sample(
            "every point seen",
            (
                np.array([1.0, 1.0]),
                np.array([0, 1, 0, 1]),
                np.ones(4, dtype=bool),
                np.array([0.2, 0.7]),
                np.full(4, 0.5),
            ),
            {"portion": 1.0, "rounds": 2, "official_size": False},
            flags=("EXHAUSTED",),
        ),
        Sample(
            "unnormalized weights",
            (
                np.array([2.0, 6.0]),
                np.array([0, 1, 1, 0, 1, 1, 0, 1]),
                np.zeros(8, dtype=bool),
                np.array([0.2, 0.3]),
                np.linspace(0.0, 0.7, 8),
            ),
            {"portion": 1.0, "rounds": 2},
            comment="F = [0.25, 1]: u = 0.2 → 0, 0.3 → 1",
        ),
    ]


def _draws_errors():
    clusters, seen, keys = np.array([0, 1]), np.zeros(2, dtype=bool), np.array([0.1, 0.2])
    return [
        ErrorCase(
            "negative weight",
            (np.array([1.0, -0.5]), clusters, seen, np.array([0.5]), keys),
            {"portion": 1.0, "rounds": 1, "official_size": False},
            match=r"'w'.*non-negative",
        ),
        ErrorCase(
            "zero weights",
            (np.zeros(2), clusters, seen, np.array([0.5]), keys),
            {"portion": 1.0, "rounds": 2, "official_size": False},
            match=r"'w'.*positive sum",
        ),
        ErrorCase(
            "a draw of 1",
            (np.array([0.5, 0.5]), clusters, seen, np.array([1.0]), keys),
            {"portion": 1.0, "rounds": 2, "official_size": False},
            match=r"'u'.*\[0, 1\)",
        ),
        ErrorCase(
            "a negative key",
            (np.array([0.5, 0.5]), clusters, seen, np.array([0.5]), np.array([-0.1, 0.2])),
            {"portion": 1.0, "rounds": 2, "official_size": False},
            match=r"'keys'.*\[0, 1\)",
        ),
        ErrorCase(
            "too few draws",
            (np.array([0.5, 0.5]), clusters, seen, np.array([0.5]), keys),
            {"portion": 1.0, "rounds": 1, "official_size": False},
            match=r"'u'.*S = .* = 2",
        ),
    ]


register(
    OpCases(
        "kmq_draw_allocation",
        dims={"K": (1, 5), "N": (1, 20)},
        random=_draws_random,
        edges=_draws_edges,
        errors=_draws_errors,
        defaults={"rounds": 4, "official_size": True},
        notes=NOTES,
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
@transcribes("kmq-unshifted-softmax-overflow", outputs=("weights",))
def _official_cluster_weights(r_gold, r_gen, clusters, *, k, empty_score, dtype):
    """for-ai/iterative-data-selection, selection/iter.py, select_new_iter: the mean reward gap
    per present cluster (groupby drops the empty ones), then ``exp`` divided by its sum, unshifted."""
    gap = np.asarray(r_gold, dtype=np.float64) - np.asarray(r_gen, dtype=np.float64)
    present = np.unique(clusters)
    means = np.array([gap[clusters == c].mean() for c in present])
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(means)
        shares = e / e.sum()
    weights = np.zeros(k)
    weights[present] = shares
    return {"weights": weights}
