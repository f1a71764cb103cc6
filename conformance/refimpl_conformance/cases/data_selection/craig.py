"""Conformance cases for the CRAIG-style coreset ops (Data-Efficient Augmentation).

All five ops are non-differentiable: they are compared on outputs, integer outputs (selected
indices, cluster assignments, budgets) exactly. The greedy and the weights compute in float64
whatever the input dtype, so a float32 run sees the same float64 arithmetic on the rounded
inputs as the reference; what may differ between backends is the summation order of a gain
(~1e-16 relative), which could flip a selection only at a near tie. The random samples are
continuous draws (no near ties, checked over thousands of seeds); the exact ties are the edge
cases, built from duplicated points or exactly equal gains, where every backend must pick the
lowest index.
"""

from __future__ import annotations

import numpy as np

import refimpl

from ..._cases import ErrorCase, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "TIES": "exactly equal gains (duplicated points, or far-apart points whose gains are all exactly 1): "
    "the lowest index wins, in plain and lazy greedy alike",
    "WHOLE_CLASS": "k_c = |V_c|: the whole class is selected (submodlib refuses this budget)",
    "EMPTY_CLASS": "a class with no points (budget 0) or a budget of 0: nothing selected for it",
    "UNDERFLOW": "far-apart proxies: exp(−D/d) underflows to 0, every gain is exactly 1",
    "NEGATIVE_SIMILARITY": "a precomputed similarity with negative entries: gains are floored at 0",
    "ZERO_SIZE": "a selected duplicate of an earlier selected point represents nobody: weight 1 (the fix)",
    "IGNORED": "CRAIG's kernel gives s = 0 to the farthest pair: that point is ignored (cluster −1)",
    "SATURATED": "logits ±1e4: a softmax without the max shift overflows",
}


# -- craig_gradient_proxy ---------------------------------------------------------------------------
def _proxy_random(rng, n, K, E):
    z = rng.standard_normal((n, K)) * float(rng.choice([0.5, 3.0, 20.0]))
    y = rng.integers(0, K, size=n)
    if rng.random() < 0.5:
        return Sample("random", (z, y), {"h": rng.standard_normal((n, E)), "use_linear": True})
    return Sample("random", (z, y))


def _proxy_edges():
    rng = np.random.default_rng(3)
    return [
        Sample(
            "logits ±1e4",
            (np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]]), np.array([0, 1])),
            flags=("SATURATED",),
            comment="p saturates to one-hot: g = 0 for the first row, e_2 − e_1 for the second",
        ),
        Sample("one class", (np.array([[0.3], [-2.0]]), np.array([0, 0])), comment="p = 1, g = 0"),
        Sample(
            "use_linear with E = 1",
            (rng.standard_normal((4, 3)), np.array([0, 2, 1, 2])),
            {"h": rng.standard_normal((4, 1)), "use_linear": True},
        ),
    ]


def _proxy_errors():
    z, y = np.zeros((3, 4)), np.array([0, 1, 3])
    return [
        ErrorCase("use_linear without h", (z, y), {"use_linear": True}, match=r"'h'.*use_linear=True"),
        ErrorCase("h without use_linear", (z, y), {"h": np.zeros((3, 2))}, match=r"'h'.*None unless"),
    ]


register(
    OpCases(
        "craig_gradient_proxy",
        dims={"n": (1, 12), "K": (1, 6), "E": (1, 4)},
        random=_proxy_random,
        edges=_proxy_edges,
        errors=_proxy_errors,
        notes=NOTES,
    )
)


# -- facility_location_similarity -------------------------------------------------------------------
def _similarity_random(rng, n, d):
    g = rng.standard_normal((n, d)) * float(rng.choice([0.1, 1.0, 5.0]))
    kernel = str(rng.choice(["submodlib_euclidean", "craig_max_minus_distance"]))
    return Sample("random", (g,), {"kernel": kernel, "block_size": int(rng.integers(1, n + 2))})


def _similarity_edges():
    return [
        Sample("3-4-5 pair", (np.array([[0.0, 0.0], [3.0, 4.0]]),), comment="s_01 = exp(−5/2)"),
        Sample(
            "identical points, CRAIG kernel",
            (np.ones((3, 2)),),
            {"kernel": "craig_max_minus_distance"},
            comment="max D = 0: the similarity is all zeros",
        ),
        Sample("far-apart points", (np.arange(4.0)[:, None] * 1e3,), flags=("UNDERFLOW",)),
    ]


def _similarity_errors():
    return []


register(
    OpCases(
        "facility_location_similarity",
        dims={"n": (1, 12), "d": (1, 5)},
        random=_similarity_random,
        edges=_similarity_edges,
        errors=_similarity_errors,
        notes=NOTES,
    )
)


# -- facility_location_greedy -----------------------------------------------------------------------
def _labelled_points(rng, n, d, C):
    g = rng.standard_normal((n, d)) * float(rng.choice([0.3, 1.0, 4.0]))
    y = rng.integers(0, C, size=n)
    counts = np.bincount(y, minlength=C)
    budgets = np.array([rng.integers(0, count + 1) for count in counts])
    return g, y, budgets


def _greedy_random(rng, n, d, C):
    g, y, budgets = _labelled_points(rng, n, d, C)
    kernel = str(rng.choice(["submodlib_euclidean", "craig_max_minus_distance", "precomputed"]))
    if kernel == "precomputed":
        g = refimpl.data_selection.facility_location_similarity(g)
    kwargs = {"kernel": kernel, "lazy": bool(rng.random() < 0.5), "block_size": int(rng.integers(1, n + 2))}
    if rng.random() < 0.25:  # ties do occur: gains of 0 once a class is covered (k_c near |V_c|)
        kwargs["tie_break"] = "highest"
    return Sample("random", (g, y, budgets), kwargs)


def _greedy_edges():
    rng = np.random.default_rng(7)
    duplicated = np.repeat(rng.standard_normal((3, 2)), 2, axis=0)[[0, 2, 4, 1, 3, 5]]  # rows i and i+3 equal
    negative = rng.standard_normal((6, 6))
    return [
        Sample(
            "duplicated points, lazy",
            (duplicated, np.zeros(6, dtype=np.int64), np.array([5])),
            flags=("TIES",),
            comment="each duplicate pair has equal gains: the lower index is taken first",
        ),
        Sample(
            "duplicated points, plain",
            (duplicated, np.zeros(6, dtype=np.int64), np.array([5])),
            {"lazy": False, "block_size": 2},
            flags=("TIES",),
        ),
        Sample(
            "duplicated points, highest index first (submodlib's tie rule)",
            (duplicated, np.zeros(6, dtype=np.int64), np.array([5])),
            {"tie_break": "highest"},
            flags=("TIES", "OFFICIAL_VARIANT"),
            comment="each duplicate pair has equal gains: the higher index is taken first",
        ),
        Sample(
            "far-apart points: every gain is 1",
            (np.arange(5.0)[::-1, None] * 1e3, np.zeros(5, dtype=np.int64), np.array([3])),
            flags=("TIES", "UNDERFLOW"),
            comment="exp(−1000) = 0: the selection is 0, 1, 2",
        ),
        Sample(
            "whole class and an empty budget",
            (rng.standard_normal((7, 3)), np.array([0, 1, 0, 1, 0, 1, 1]), np.array([3, 0])),
            flags=("WHOLE_CLASS", "EMPTY_CLASS"),
        ),
        Sample(
            "a class with no points",
            (rng.standard_normal((4, 2)), np.array([0, 2, 2, 0]), np.array([1, 0, 2])),
            {"kernel": "craig_max_minus_distance"},
            flags=("EMPTY_CLASS", "WHOLE_CLASS"),
        ),
        Sample(
            "precomputed similarity with negative entries",
            (negative, np.zeros(6, dtype=np.int64), np.array([4])),
            {"kernel": "precomputed", "lazy": False},
            flags=("NEGATIVE_SIMILARITY",),
        ),
        Sample(
            "single point",
            (np.array([[0.5, -1.0]]), np.array([0]), np.array([1])),
            flags=("WHOLE_CLASS",),
        ),
    ]


def _greedy_errors():
    g, y = np.zeros((4, 2)), np.array([0, 0, 1, 1])
    return [
        ErrorCase(
            "budget above the class size", (g, y, np.array([3, 1])), match=r"'budgets'.*k_0 = 3 > \|V_0\| = 2"
        ),
        ErrorCase(
            "non-square precomputed similarity",
            (g, y, np.array([1, 1])),
            {"kernel": "precomputed"},
            match=r"'g'.*square",
        ),
        ErrorCase(
            "NaN proxy", (np.array([[0.0], [np.nan]]), np.array([0, 0]), np.array([1])), match=r"'g'.*finite"
        ),
    ]


register(
    OpCases(
        "facility_location_greedy",
        dims={"n": (1, 30), "d": (1, 5), "C": (1, 3)},
        random=_greedy_random,
        edges=_greedy_edges,
        errors=_greedy_errors,
        notes=NOTES,
    )
)


# -- coreset_cluster_weights ------------------------------------------------------------------------
def _weights_random(rng, n, d, C):
    g, y, budgets = _labelled_points(rng, n, d, C)
    kernel = str(rng.choice(["submodlib_euclidean", "craig_max_minus_distance", "precomputed"]))
    if kernel == "precomputed":
        g = refimpl.data_selection.facility_location_similarity(g)
    indices, _ = refimpl.data_selection.facility_location_greedy(g, y, budgets, kernel=kernel)
    kwargs = {
        "kernel": kernel,
        "normalize": bool(rng.random() < 0.7),
        "block_size": int(rng.integers(1, n + 2)),
    }
    return Sample("random", (g, y, indices), kwargs)


def _weights_edges():
    rng = np.random.default_rng(9)
    points = rng.standard_normal((5, 2))
    return [
        Sample(
            "a selected duplicate represents nobody",
            (np.vstack([points, points[1:2]]), np.zeros(6, dtype=np.int64), np.array([1, 5, 3])),
            {"normalize": False},
            flags=("ZERO_SIZE",),
            comment="5 duplicates 1, selected after it: its cluster is empty, its weight 1",
        ),
        Sample(
            "CRAIG kernel ignores the farthest point",
            (np.array([[0.0], [1.0], [10.0]]), np.zeros(3, dtype=np.int64), np.array([0])),
            {"kernel": "craig_max_minus_distance", "normalize": False},
            flags=("IGNORED",),
            comment="s(10, 0) = max D − D = 0: point 2 has cluster −1; γ = [2]",
        ),
        Sample(
            "a class without selected points",
            (points, np.array([0, 1, 0, 1, 0]), np.array([2])),
            flags=("EMPTY_CLASS",),
            comment="class 1's points are ignored",
        ),
        Sample("nothing selected", (points, np.zeros(5, dtype=np.int64), np.zeros(0, dtype=np.int64))),
    ]


def _weights_errors():
    g, y = np.zeros((4, 2)), np.array([0, 0, 1, 1])
    return [
        ErrorCase("repeated index", (g, y, np.array([1, 1])), match=r"'indices'.*distinct"),
        ErrorCase(
            "non-square precomputed", (g, y, np.array([0])), {"kernel": "precomputed"}, match=r"'g'.*square"
        ),
    ]


register(
    OpCases(
        "coreset_cluster_weights",
        dims={"n": (1, 30), "d": (1, 5), "C": (1, 3)},
        random=_weights_random,
        edges=_weights_edges,
        errors=_weights_errors,
        notes=NOTES,
    )
)


# -- class_budget_split ------------------------------------------------------------------------------
def _split_random(rng, C, size):
    counts = rng.integers(0, size + 1, size=C)
    counts[rng.integers(0, C)] += 1  # N >= 1
    budget = int(rng.integers(0, counts.sum() + 1))
    return Sample(
        "random", (counts, rng.permutation(C)), {"budget": budget, "equal_num": bool(rng.random() < 0.5)}
    )


def _split_edges():
    counts = np.array([500, 500, 30, 500])
    return [
        Sample(
            "one minority class (official divisor)",
            (counts, np.arange(4)),
            {"budget": 200},
            comment="q = 50, extra = 20, |M| = 1: the others get 70 each, class 2 keeps 30",
        ),
        Sample("B = 0", (counts, np.arange(4)), {"budget": 0}),
        Sample("B = N, proportional", (counts, np.array([3, 1, 0, 2])), {"budget": 1530, "equal_num": False}),
        Sample(
            "proportional with decrements",
            (np.array([3, 3, 3]), np.array([2, 0, 1])),
            {"budget": 4, "equal_num": False},
            comment="⌈3·4/9⌉ = 2 each: two too many, classes 2 and 0 lose one",
        ),
        Sample(
            "an empty class", (np.array([0, 10, 10]), np.array([0, 1, 2])), {"budget": 6, "equal_num": False}
        ),
    ]


def _split_errors():
    counts = np.array([3, 4])
    return [
        ErrorCase("budget above N", (counts, np.arange(2)), {"budget": 8}, match=r"'budget'.*B <= n"),
        ErrorCase(
            "not a permutation",
            (counts, np.array([1, 1])),
            {"budget": 2},
            match=r"'decrement_order'.*permutation",
        ),
    ]


register(
    OpCases(
        "class_budget_split",
        dims={"C": (1, 6), "size": (0, 40)},
        random=_split_random,
        edges=_split_edges,
        errors=_split_errors,
        notes=NOTES,
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
def _craig_similarity(points: np.ndarray) -> np.ndarray:
    """CRAIG's kernel on one class: max(D) − D, D the Euclidean distances."""
    distances = np.sqrt(np.maximum(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1), 0.0))
    return distances.max() - distances


def _craig_lazy_greedy_one_class(similarity: np.ndarray, budget: int) -> list[int]:
    """baharanm/craig's ``lazy_greedy_heap`` on ``FacilityLocation(D, V)``, as it behaves.

    The objective is normalized, ``log(1 + Σ_i max_j s_ij / Σ_i max s_i·)/log 2``; its gain of a
    candidate ``ndx`` tests ``if not ndx`` once a point is selected, so index 0 always gets
    ``log 2``. The max-heap holds ``(gain, index)`` tuples: equal gains go to the highest index.
    """
    n = similarity.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        f_norm = 1.0 / similarity.max(axis=1).sum()
    norm = 1.0 / np.log(2.0)
    state = {"value": 0.0, "max": np.zeros(n)}

    def increment(selected: list[int], candidate: int) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            if selected:
                if candidate == 0:  # `if not ndx`: true for index 0
                    return float(np.log(2.0))
                covered = np.maximum(state["max"], similarity[:, candidate]).sum()
            else:
                covered = similarity[:, candidate].sum()
            return float(norm * np.log(1 + f_norm * covered) - state["value"])

    def add(selected: list[int], candidate: int) -> None:
        state["max"] = (
            np.maximum(state["max"], similarity[:, candidate]) if selected else similarity[:, candidate]
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            state["value"] = float(norm * np.log(1 + f_norm * state["max"].sum()))
        selected.append(candidate)

    selected: list[int] = []
    heap = [(increment(selected, j), j) for j in range(n)]
    while heap and len(selected) < budget:
        top = max(heap)
        heap.remove(top)
        improvement = increment(selected, top[1])
        if not improvement >= 0:
            continue
        if not heap:
            add(selected, top[1])
            continue
        second = max(heap)
        if improvement >= second[0]:
            add(selected, top[1])
        else:
            heap.append((improvement, top[1]))
    return selected


@transcribes("craig-lazy-greedy-index-0", outputs=("indices",))
def _official_craig_lazy_greedy(g, y, budgets, *, kernel, lazy, block_size, tie_break, dtype):
    """Every class through the official lazy greedy on CRAIG's kernel (whatever ``kernel`` says)."""
    chosen = []
    for c, budget in enumerate(np.asarray(budgets)):
        points = np.flatnonzero(np.asarray(y) == c)
        if budget == 0 or points.size == 0:
            continue
        local = _craig_lazy_greedy_one_class(
            _craig_similarity(np.asarray(g, dtype=np.float64)[points]), int(budget)
        )
        chosen.extend(points[local])
    return {"indices": np.asarray(chosen, dtype=np.int64)}


@transcribes("craig-cluster-ids-collide", outputs=("clusters",))
def _official_cluster_ids(g, y, indices, *, kernel, normalize, block_size, dtype):
    """refimpl's assignment, renumbered as the official code does: class c's ids + c·k_c."""
    _, clusters = refimpl.get("coreset_cluster_weights")(
        g, y, indices, kernel=kernel, normalize=normalize, block_size=block_size
    )
    clusters = clusters.copy()
    indices, y = np.asarray(indices), np.asarray(y)
    start = 0
    for c in range(int(y.max(initial=-1)) + 1):
        budget = int(np.sum(y[indices] == c))
        members = (y == c) & (clusters >= 0)
        clusters[members] = clusters[members] - start + c * budget  # local id, then the official offset
        start += budget
    return {"clusters": clusters}


def _official_budget_split(counts, decrement_order, *, budget, equal_num):
    counts = np.asarray(counts, dtype=np.int64)
    classes = counts.shape[0]
    if equal_num:
        per_class = int(np.ceil(budget / classes))
        budgets = per_class * np.ones(classes, dtype=np.int64)
        minority = counts < np.ceil(budget / classes)
        if minority.sum() > 0:
            extra = sum(max(0, np.ceil(budget / classes) - counts[c]) for c in range(classes))
            budgets[~minority] += int(np.ceil(extra / minority.sum()))
        return budgets
    budgets = np.int64(np.ceil(np.divide(counts, counts.sum()) * budget))  # float ceiling
    surplus = int(budgets.sum()) - budget
    draws = iter(np.asarray(decrement_order))  # stands for np.random.randint(C), without repeats
    for _ in range(surplus):
        j = next(draws)
        while budgets[j] <= 0:
            j = next(draws)
        budgets[j] -= 1
    return budgets


@transcribes("craig-equal-split-above-class-size", outputs=("budgets",))
def _official_equal_split(counts, decrement_order, *, budget, equal_num, dtype):
    return {"budgets": _official_budget_split(counts, decrement_order, budget=budget, equal_num=equal_num)}


@transcribes("craig-proportional-split-float-ceiling", outputs=("budgets",))
def _official_proportional_split(counts, decrement_order, *, budget, equal_num, dtype):
    return {"budgets": _official_budget_split(counts, decrement_order, budget=budget, equal_num=equal_num)}
