"""CRAIG-style augmentation coresets: gradient proxies, facility location, cluster weights
(Data-Efficient Augmentation for Training Neural Networks)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntArray,
    IntScalar,
    OneOf,
    Paper,
    array_namespace,
    known_deviation,
    op,
)

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "GREEDY_KERNELS",
    "KERNELS",
    "PAPER",
    "class_budget_split",
    "coreset_cluster_weights",
    "craig_gradient_proxy",
    "facility_location_greedy",
    "facility_gains",
    "facility_location_similarity",
    "similarity_block",
]

PAPER = Paper(
    "Data-Efficient Augmentation for Training Neural Networks",
    arxiv="2210.08363",
    year=2022,
    code="tianyu139/data-efficient-augmentation",
)

KERNELS = ("submodlib_euclidean", "craig_max_minus_distance")
"""Similarity kernels computed from proxies g (d features each):

* ``"submodlib_euclidean"`` — ``s_ij = exp(−‖g_i − g_j‖₂/d)``: what the official code runs
  (submodlib's dense "euclidean" kernel, C++ ``euclidean_similarity`` with ``gamma = 1/d``);
* ``"craig_max_minus_distance"`` — ``s_ij = max(D) − D_ij``, ``D_ij = ‖g_i − g_j‖₂``, the max
  taken over all pairs of the points the kernel is built on (one class in the greedy): CRAIG's.
"""
GREEDY_KERNELS = (*KERNELS, "precomputed")
DEFAULT_BLOCK_SIZE = 1024
TIE_BREAKS = ("lowest", "highest")  # which of bitwise-equal gains the greedy picks
"""Rows of similarity held at a time. Peak extra memory of the greedy and the weights is about
``3·block_size·n_c·8`` bytes (n_c the largest class), never ``n²`` (nor ``n_c²`` unless
``block_size >= n_c``, when one block is the whole class matrix and is computed once)."""


# -- similarity, in row blocks -------------------------------------------------------------------
def _squared_distances(rows: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``‖r_a − p_b‖²`` for every pair, (len(rows), len(points)), float64, computed DIRECTLY.

    Not from the expansion ``‖r‖² + ‖p‖² − 2⟨r, p⟩``: that subtracts two large numbers, can
    go slightly negative and leaves ``~√eps·‖g‖`` of error in the distance of nearby points
    (and a non-zero self-distance). Here each entry is the sum of squared differences over
    the features in feature order, one feature at a time, so every entry is computed by the
    same operations whatever the block it falls in (blocked == dense bit for bit), a point's
    distance to itself is exactly 0, and the temporaries are two (rows, points) arrays —
    never a (rows, points, d) one. Same computation as submodlib's C++ ``euclidean_distance``.
    """
    total = np.zeros((rows.shape[0], points.shape[0]))
    difference = np.empty_like(total)
    for k in range(rows.shape[1]):
        np.subtract(rows[:, k, None], points[None, :, k], out=difference)
        np.multiply(difference, difference, out=difference)
        total += difference
    return total


def _max_distance(g: np.ndarray, block_size: int) -> float:
    """``max_ij ‖g_i − g_j‖₂`` over all pairs, in row blocks (CRAIG's kernel needs it first)."""
    largest = 0.0
    for start in range(0, g.shape[0], block_size):
        largest = max(largest, float(_squared_distances(g[start : start + block_size], g).max()))
    return float(np.sqrt(largest))  # sqrt is monotone and correctly rounded: = max of the roots


def similarity_block(
    rows: np.ndarray, points: np.ndarray, kernel: str, max_distance: float = 0.0
) -> np.ndarray:
    """``s(rows_a, points_b)`` for one block, float64; ``max_distance`` only for CRAIG's kernel."""
    squared = _squared_distances(rows, points)
    np.sqrt(squared, out=squared)  # D, exactly 0 on the diagonal
    if kernel == "submodlib_euclidean":
        # exp(−D/d) ∈ (0, 1], = 1 exactly at D = 0 (submodlib also writes 1 on the diagonal)
        np.divide(squared, -float(rows.shape[1]), out=squared)
        return np.exp(squared, out=squared)
    return np.subtract(max_distance, squared, out=squared)  # max(D) − D ∈ [0, max D]


def _facility_rows(g: np.ndarray, kernel: str, block_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """``rows(facilities)`` → (len(facilities), n) array ``T[a, i] = s_{i, facilities[a]}``.

    Facility-major: the similarities of every point i to one candidate facility j sit in one
    contiguous row, so a gain ``Σ_i max(0, s_ij − c_i)`` is a row sum (NumPy sums each row of
    a C-ordered array pairwise, identically whether the row is alone or in a block). When
    ``block_size >= n`` the whole matrix is one block: built once and sliced.
    """
    n = g.shape[0]
    if kernel == "precomputed":
        return lambda facilities: np.ascontiguousarray(g[:, facilities].T, dtype=np.float64)
    points = g.astype(np.float64)
    max_distance = _max_distance(points, block_size) if kernel == "craig_max_minus_distance" else 0.0
    if block_size >= n:
        whole = similarity_block(points, points, kernel, max_distance)  # symmetric kernel
        return lambda facilities: whole[facilities]
    return lambda facilities: similarity_block(points[facilities], points, kernel, max_distance)


# -- ops ----------------------------------------------------------------------------------------
def _check_proxy(arguments: Mapping[str, Any]) -> None:
    h, use_linear = arguments["h"], arguments["use_linear"]
    if use_linear and h is None:
        raise ArgumentError("h", "penultimate features (n, E) when use_linear=True", "None")
    if not use_linear and h is not None:
        raise ArgumentError("h", "None unless use_linear=True (nothing is silently ignored)", "an array")


@op(
    inputs={
        "z": FloatArray("n", "K"),
        "y": IntArray("n", low=0, high="K"),
        "h": FloatArray("n", "E", optional=True),
        "use_linear": Flag(),
    },
    outputs=("g",),
    check=_check_proxy,
)
def craig_gradient_proxy(z, y, *, h=None, use_linear=False):
    r"""Last-layer gradient proxies: what CRAIG clusters instead of full per-example gradients.

    The gradient of the cross-entropy w.r.t. the logits, ``softmax(z_i) − e_{y_i}``, is
    cheap and dominates the variation of the full gradient across examples, so the official
    code selects coresets on it (``grad_predictions`` in ``utils/subset.py``). With
    ``use_linear`` it uses the gradient w.r.t. the last linear layer's weights instead, the
    outer product with the penultimate features h.

    Forward::

        p_i = softmax(z_i)            (row max subtracted first: exp cannot overflow)
        g_i = p_i − e_{y_i}           (K,)                          use_linear=False
        g_i = vec(g_i h_iᵀ),  g_i[k·E + e] = (p_ik − [k = y_i])·h_ie   (K·E,)   use_linear=True

    (class-major flattening, as the official ``repeat_interleave``/``repeat`` pair builds
    it). A score: no VJP (the selection is not differentiated).

    Args:
        z: logits (n, K), float32 or float64.
        y: labels (n,), integers in [0, K).
        h: penultimate features (n, E), same dtype as z; only with ``use_linear=True``.
        use_linear: use the weight-gradient outer product (default False, as the paper's runs).

    Returns:
        g: proxies (n, K) or (n, K·E), dtype of z; rows of the plain proxy sum to 0, and
        ``‖g_i‖₂ ≤ √2``.

    Reference: Liu & Mirzasoleiman, *Data-Efficient Augmentation for Training Neural
    Networks*, NeurIPS 2022, arXiv:2210.08363; official code tianyu139/data-efficient-augmentation.

    >>> import numpy as np, refimpl
    >>> z = np.array([[0.0, np.log(3.0)]])  # p = [1/4, 3/4]
    >>> refimpl.data_selection.craig_gradient_proxy(z, np.array([1])).round(6)
    array([[ 0.25, -0.25]])
    """
    shifted = z - z.max(axis=1, keepdims=True)  # subtract the row max: exp cannot overflow
    e = np.exp(shifted)
    p = e / e.sum(axis=1, keepdims=True)
    g = p.copy()
    g[np.arange(z.shape[0]), y] -= 1
    if use_linear:
        n, K = g.shape
        g = (g[:, :, None] * h[:, None, :]).reshape(n, K * h.shape[1])
    return g, None


@op(
    inputs={"g": FloatArray("n", "d"), "kernel": OneOf(*KERNELS), "block_size": IntScalar(1)},
    outputs=("similarity",),
)
def facility_location_similarity(g, *, kernel="submodlib_euclidean", block_size=DEFAULT_BLOCK_SIZE):
    r"""The dense similarity matrix the facility-location greedy maximizes over, built in row blocks.

    Forward (``D_ij = ‖g_i − g_j‖₂``, computed directly as the root of a sum of squared
    differences — never from ``‖a‖² + ‖b‖² − 2⟨a, b⟩``, so ``D_ii = 0`` exactly and nothing is
    clamped)::

        "submodlib_euclidean":       s_ij = exp(−D_ij / d)      d = number of features
        "craig_max_minus_distance":  s_ij = max_kl D_kl − D_ij

    The first is what the official code runs (submodlib ``FacilityLocationFunction(...,
    mode="dense", metric="euclidean")``; its C++ ``create_square_kernel_dense`` writes 1 on
    the diagonal and ``exp(−D/d)`` elsewhere, in float32); the second is CRAIG's. Both are
    symmetric with the largest entry of each row on the diagonal.

    Rows are computed ``block_size`` at a time; every entry is computed by the same
    operations whatever the block, so the result does not depend on ``block_size``. The
    output itself is n × n: the greedy never builds it (see ``facility_location_greedy``).
    Computed in float64 whatever the input dtype (the greedy's selection is discrete and
    must not depend on rounding), returned in the dtype of g.

    Args:
        g: proxies (n, d), float32 or float64, finite.
        kernel: "submodlib_euclidean" (default, the official run) or "craig_max_minus_distance".
        block_size: rows per block (default 1024); memory of the temporaries ~3·block_size·n·8 bytes.

    Returns:
        similarity: (n, n), dtype of g.

    Reference: arXiv:2210.08363 (official code tianyu139/data-efficient-augmentation, utils/craig.py);
    submodlib (decile-team/submodlib, cpp/utils/helper.cpp).

    >>> import numpy as np, refimpl
    >>> g = np.array([[0.0, 0.0], [3.0, 4.0]])  # D = 5, d = 2
    >>> refimpl.data_selection.facility_location_similarity(g).round(6)
    array([[1.      , 0.082085],
           [0.082085, 1.      ]])
    """
    points = g.astype(np.float64)
    max_distance = _max_distance(points, block_size) if kernel == "craig_max_minus_distance" else 0.0
    n = g.shape[0]
    similarity = np.empty((n, n), dtype=g.dtype)
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        similarity[start:stop] = similarity_block(points[start:stop], points, kernel, max_distance)
    return similarity, None


def _class_members(y: np.ndarray, classes: int) -> list[np.ndarray]:
    """Indices of each class, ascending (so a lower local index is a lower global index)."""
    order = np.argsort(y, kind="stable")
    bounds = np.searchsorted(y[order], np.arange(classes + 1))
    return [order[bounds[c] : bounds[c + 1]] for c in range(classes)]


def _check_greedy(arguments: Mapping[str, Any]) -> None:
    g, y, budgets, kernel = arguments["g"], arguments["y"], arguments["budgets"], arguments["kernel"]
    xp = array_namespace(g)
    if kernel == "precomputed" and g.shape[0] != g.shape[1]:
        raise ArgumentError(
            "g", "a square (n, n) similarity matrix with kernel='precomputed'", f"shape {tuple(g.shape)}"
        )
    counts = xp.bincount(y, minlength=budgets.shape[0])
    over = budgets > counts
    if bool(xp.any(over)):
        c = int(xp.argmax(over))
        raise ArgumentError(
            "budgets",
            "k_c <= |V_c| (the size of class c) for every class",
            f"k_{c} = {int(budgets[c])} > |V_{c}| = {int(counts[c])}",
        )


def _first_max(values: np.ndarray, tie_break: str) -> int:
    """The index of the largest value; equal values go to the lowest index, or the highest."""
    if tie_break == "lowest":
        return int(np.argmax(values))
    return int(values.shape[0] - 1 - np.argmax(values[::-1]))


def facility_gains(block: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """``ΔF(j|S) = Σ_i max(0, s_ij − c_i)`` for each candidate row ``block[a] = s_{·, j_a}``
    (float64, overwritten). A row sum of a C-ordered array: the same bits whether the row is
    alone or in a block of any size, which the lazy, plain and distributed greedies rely on."""
    np.subtract(block, coverage, out=block)
    np.maximum(block, 0.0, out=block)
    return block.sum(axis=1)


def _greedy_one_class(
    rows: Callable[[np.ndarray], np.ndarray],
    n: int,
    budget: int,
    lazy: bool,
    block_size: int,
    tie_break: str = "lowest",
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy facility location on one class: local indices in selection order and their gains."""
    coverage = np.zeros(n)  # c_i = max(0, max_{j∈S} s_ij); F(∅) = 0

    def gains(facilities: np.ndarray) -> np.ndarray:
        return facility_gains(rows(facilities), coverage)  # T[a, i] = s_{i, facilities[a]}

    def all_gains() -> np.ndarray:
        out = np.empty(n)
        for start in range(0, n, block_size):
            facilities = np.arange(start, min(start + block_size, n))
            out[facilities] = gains(facilities)
        return out

    chosen = np.empty(budget, dtype=np.int64)
    chosen_gains = np.empty(budget)
    # lazy: bound[j] >= ΔF(j|S) always (submodularity: gains only shrink as S grows), and
    # fresh_at[j] == step when bound[j] is the exact gain at this step
    bound = all_gains() if lazy else None
    fresh_at = np.zeros(n, dtype=np.int64)
    for step in range(budget):
        if lazy:
            while True:
                j = _first_max(bound, tie_break)  # largest bound, ties: the tie rule
                if fresh_at[j] == step:
                    break  # exact and >= every other bound >= every other gain: the greedy's choice
                bound[j] = gains(np.array([j]))[0]
                fresh_at[j] = step
            gain = bound[j]
            bound[j] = -np.inf
        else:
            current = all_gains()
            current[chosen[:step]] = -np.inf  # selected points are not candidates again
            j = _first_max(current, tie_break)
            gain = current[j]
        chosen[step], chosen_gains[step] = j, gain
        np.maximum(coverage, rows(np.array([j]))[0], out=coverage)
    return chosen, chosen_gains


@op(
    inputs={
        "g": FloatArray("n", "d"),
        "y": IntArray("n", low=0, high="C"),
        "budgets": IntArray("C", low=0),
        "kernel": OneOf(*GREEDY_KERNELS),
        "lazy": Flag(),
        "block_size": IntScalar(1),
        "tie_break": OneOf(*TIE_BREAKS),
    },
    outputs=("indices", "gains"),
    check=_check_greedy,
)
def facility_location_greedy(
    g,
    y,
    budgets,
    *,
    kernel="submodlib_euclidean",
    lazy=True,
    block_size=DEFAULT_BLOCK_SIZE,
    tie_break="lowest",
):
    r"""Per-class greedy maximization of the facility-location function (CRAIG's coreset).

    CRAIG picks, in every class, the points whose gradient proxies best "cover" all the
    others: a weighted sum over the picked points then approximates the full gradient
    (weights from ``coreset_cluster_weights``). Covering is the facility-location function,
    monotone submodular, so the greedy is within ``1 − 1/e`` of the optimum.

    Forward, for every class c (ground set V_c, budget k_c), with similarities s_ij
    (``facility_location_similarity``; i the point covered, j the facility)::

        F(S)      = Σ_{i∈V_c} max(0, max_{j∈S} s_ij)         F(∅) = 0
        ΔF(j|S)   = Σ_{i∈V_c} max(0, s_ij − c_i),  c_i = max(0, max_{j'∈S} s_ij')
        S ← S ∪ {argmax_{j∈V_c∖S} ΔF(j|S)}   k_c times       ties: the lowest index

    (With the two kernels s ≥ 0, so the floor at 0 never acts; it keeps F monotone for a
    precomputed matrix with negative entries.) Lazy greedy (Minoux) keeps an upper bound per
    candidate, valid because gains only shrink as S grows; it re-evaluates the candidate with
    the largest bound (lowest index among equal bounds) until that candidate's bound is exact
    for the current S, then takes it. That candidate then beats every other candidate's bound,
    hence its gain, with the same tie rule: lazy and plain greedy return the same sequence
    (the gains are computed by the same code on the same rows, so bit for bit).

    Memory (the paper's setting is per class: CIFAR-10 has n = 50 000, n_c = 5 000):
    similarities are computed on demand, ``block_size`` candidate rows at a time, each row
    the similarities of one candidate to all of V_c; the state is O(n_c). Peak extra memory
    ≈ 3·block_size·n_c·8 bytes (~60 MB for n_c = 5 000, block_size = 512) — never n × n (20 GB
    in float64 at n = 50 000). When ``block_size >= n_c`` the class matrix is one block, built
    once (n_c²·8 bytes) and reused. Time: lazy greedy builds all rows once, then one row per
    re-evaluation; plain greedy rebuilds every row at every step when the class matrix does
    not fit in one block (O(k_c·n_c²·d): the reference, not the fast path).

    Computed in float64 whatever the input dtype: the selection is discrete and a near tie
    must not flip with the input rounding; the gains are returned in the dtype of g.

    Differences from the official code (``refimpl deviations --op facility_location_greedy``):
    submodlib refuses ``k_c ≥ |V_c|`` (here ``k_c = |V_c|`` selects the whole class) and breaks
    equal gains toward the highest index (``tie_break="highest"`` reproduces it); the
    official kernel is computed in float32.

    Args:
        g: proxies (n, d) (``craig_gradient_proxy``); with ``kernel="precomputed"`` the
            similarity matrix (n, n) itself, ``g[i, j] = s_ij`` (only within-class entries are read).
        y: class of each point (n,), integers in [0, C).
        budgets: k_c per class (C,), ``0 <= k_c <= |V_c|`` (``class_budget_split``).
        kernel: "submodlib_euclidean" (default, the official run), "craig_max_minus_distance"
            (max over the class's pairs), or "precomputed".
        lazy: lazy greedy (default True, the official ``optimizer="LazyGreedy"``) or plain.
        block_size: candidate rows of similarity held at a time (default 1024).
        tie_break: which of bitwise-equal gains wins: "lowest" index (default, the paper's
            rule) or "highest" (submodlib's priority queue, and CRAIG's own heap of
            ``(gain, index)`` tuples; exact ties are common: two mutually nearest points).

    Returns:
        indices: (Σ_c k_c,) int64 indices into the n points, class 0's selection first, each
            class in selection order.
        gains: (Σ_c k_c,) ΔF at the time each point was selected (non-increasing within a
            class; their cumulative sum is F), dtype of g.

    Reference: arXiv:2210.08363 (official code tianyu139/data-efficient-augmentation,
    ``utils/craig.py: faciliy_location_order``); Mirzasoleiman et al., *Coresets for
    Data-efficient Training of Machine Learning Models* (CRAIG), arXiv:1906.01827.

    >>> import numpy as np, refimpl
    >>> g = np.array([[0.0], [0.1], [5.0], [5.2], [9.0]])  # one class, d = 1
    >>> idx, gains = refimpl.data_selection.facility_location_greedy(g, np.zeros(5, dtype=int), np.array([2]))
    >>> idx, gains.round(4)  # 0.1 covers {0, 0.1} best; then 5.2 covers {5, 5.2, 9}
    (array([1, 3]), array([1.9185, 1.8274]))
    """
    budgets = np.asarray(budgets)
    members = _class_members(y, budgets.shape[0])
    chosen, chosen_gains = [], []
    for c, points in enumerate(members):
        k = int(budgets[c])
        if k == 0:
            continue
        class_g = g[np.ix_(points, points)] if kernel == "precomputed" else g[points]
        rows = _facility_rows(class_g, kernel, block_size)
        local, gains = _greedy_one_class(rows, points.shape[0], k, lazy, block_size, tie_break)
        chosen.append(points[local])
        chosen_gains.append(gains)
    indices = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    gains = np.concatenate(chosen_gains) if chosen_gains else np.zeros(0)
    return (indices.astype(np.int64), gains.astype(g.dtype)), None


def _check_weights(arguments: Mapping[str, Any]) -> None:
    g, indices, kernel = arguments["g"], arguments["indices"], arguments["kernel"]
    xp = array_namespace(g)
    if kernel == "precomputed" and g.shape[0] != g.shape[1]:
        raise ArgumentError(
            "g", "a square (n, n) similarity matrix with kernel='precomputed'", f"shape {tuple(g.shape)}"
        )
    if indices.shape[0] and int(xp.unique(indices).shape[0]) != indices.shape[0]:
        raise ArgumentError("indices", "distinct indices (a set, in selection order)", "a repeated index")


@op(
    inputs={
        "g": FloatArray("n", "d"),
        "y": IntArray("n", low=0),
        "indices": IntArray("m", low=0, high="n"),
        "kernel": OneOf(*GREEDY_KERNELS),
        "normalize": Flag(),
        "block_size": IntScalar(1),
    },
    outputs=("weights", "clusters"),
    check=_check_weights,
    allow_empty=("m",),
)
def coreset_cluster_weights(
    g, y, indices, *, kernel="submodlib_euclidean", normalize=True, block_size=DEFAULT_BLOCK_SIZE
):
    r"""Coreset weights: the size of each selected point's cluster (the points it represents).

    Each point is assigned to its most similar selected point of its own class; a selected
    point's weight is the number of points assigned to it, so the weighted coreset gradient
    ``Σ_{j∈S} γ_j ∇ℓ_j`` stands in for the full sum ``Σ_i ∇ℓ_i`` (each ∇ℓ_i replaced by its
    representative's).

    Forward, for every class c with selected points S_c (their order in ``indices``)::

        cluster(i) = argmax_{j∈S_c} s_ij      i ∈ V_c   (ties: the first in selection order)
                     none if max_{j∈S_c} s_ij ≤ 0 or S_c = ∅      (the point is ignored)
        γ_j        = |{i ∈ V_c : cluster(i) = j}|
        γ_j        = 1 where γ_j = 0                        (the zero-size fix)
        γ          ← γ / Σ_{j∈S} γ_j · |S|                  (normalize=True; over all classes)

    Before the fix the sizes of a class sum to |V_c| minus its ignored points. A selected
    point can have an empty cluster only when it ties with a point selected before it (a
    duplicate). With the exp kernel ``s > 0``, so nothing is ignored; with CRAIG's kernel a
    point at the largest class distance from every selected point has ``s = 0`` and is
    ignored, as in the official code. The official code (``faciliy_location_order``, then
    ``get_coreset(normalize_weights=True)``) does exactly this, per class, with ``replace=False``.
    Rows of similarity are computed ``block_size`` points at a time (memory ~3·block_size·|S_c|·8
    bytes), in float64.

    Args:
        g: proxies (n, d) or, with ``kernel="precomputed"``, the similarity (n, n).
        y: class of each point (n,), integers >= 0.
        indices: the selected points (m,), distinct (``facility_location_greedy``'s output).
        kernel: as in ``facility_location_greedy`` (the same one).
        normalize: apply ``γ ← γ/Σγ·|S|`` (default True, the official ``normalize_weights``).
        block_size: points per block (default 1024).

    Returns:
        weights: γ (m,), aligned with ``indices``, dtype of g; sums to m when normalized.
        clusters: (n,) int64, the position in ``indices`` of each point's representative,
            −1 for an ignored point.

    Reference: arXiv:2210.08363 (official code tianyu139/data-efficient-augmentation,
    utils/craig.py and utils/subset.py).

    >>> import numpy as np, refimpl
    >>> g = np.array([[0.0], [0.1], [5.0], [5.2], [9.0]])
    >>> w, clusters = refimpl.data_selection.coreset_cluster_weights(
    ...     g, np.zeros(5, dtype=int), np.array([1, 3]), normalize=False)
    >>> w, clusters
    (array([2., 3.]), array([0, 0, 1, 1, 1]))
    """
    n, m = g.shape[0], indices.shape[0]
    sizes = np.zeros(m)
    clusters = np.full(n, -1, dtype=np.int64)
    selected_class = y[indices]
    for c in np.unique(selected_class):
        points = np.flatnonzero(y == c)
        positions = np.flatnonzero(selected_class == c)  # in selection order
        facilities = indices[positions]
        if kernel == "precomputed":
            matrix = g[np.ix_(points, facilities)].astype(np.float64)  # s_ij, i ∈ V_c, j ∈ S_c
            blocks = (
                (start, matrix[start : start + block_size]) for start in range(0, points.shape[0], block_size)
            )
        else:
            class_g = g[points].astype(np.float64)
            facility_g = g[facilities].astype(np.float64)
            max_distance = _max_distance(class_g, block_size) if kernel == "craig_max_minus_distance" else 0.0
            blocks = (
                (
                    start,
                    similarity_block(class_g[start : start + block_size], facility_g, kernel, max_distance),
                )
                for start in range(0, points.shape[0], block_size)
            )
        for start, block in blocks:  # block[a, b] = s(points[start + a], facilities[b])
            best = block.argmax(axis=1)  # the first maximum: the earliest selected
            covered = block[np.arange(block.shape[0]), best] > 0
            rows = points[start : start + block.shape[0]]
            clusters[rows[covered]] = positions[best[covered]]
            np.add.at(sizes, positions[best[covered]], 1.0)
    sizes[sizes == 0] = 1.0  # the zero-size fix
    if normalize and m:
        sizes = sizes / sizes.sum() * m
    return (sizes.astype(g.dtype), clusters), None


def _check_budget_split(arguments: Mapping[str, Any]) -> None:
    counts, order = arguments["counts"], arguments["decrement_order"]
    budget = arguments["budget"]
    xp = array_namespace(counts)
    total = int(counts.sum())
    if budget > total:
        raise ArgumentError("budget", f"B <= n = Σ counts = {total}", f"B = {budget}")
    seen = xp.zeros(counts.shape[0], dtype=bool)
    seen[order] = True
    if not bool(xp.all(seen)):
        raise ArgumentError("decrement_order", "a permutation of range(C)", "a repeated class")


@op(
    inputs={
        "counts": IntArray("C", low=0),
        "decrement_order": IntArray("C", low=0, high="C"),
        "budget": IntScalar(0),
        "equal_num": Flag(),
    },
    outputs=("budgets",),
    check=_check_budget_split,
)
def class_budget_split(counts, decrement_order, *, budget, equal_num=True):
    r"""Split a coreset budget B over C classes (the per-class k_c of the greedy).

    Forward, with class sizes n_c (``counts = bincount(y, minlength=C)``), N = Σ n_c,
    ``q = ⌈B/C⌉``::

        equal_num=True (the official default in get_coreset):
            k_c   = q                                   every class
            M     = {c : n_c < q}                        minority classes
            extra = Σ_c max(0, q − n_c)
            k_c  += ⌈extra / |M|⌉      for c ∉ M, when M ≠ ∅
            k_c   = min(k_c, n_c)                        (see below)
        equal_num=False:
            k_c   = ⌈n_c·B/N⌉                            (exact integer ceiling)
            then Σ_c k_c − B classes get one less: walking ``decrement_order``, every class
            with k_c > 0 is decremented until the total is B.

    The redistribution rule is pinned from the official ``get_orders_and_weights``
    (utils/craig.py), including its divisor: the deficit is divided by the number of
    *minority* classes and that share added to *every* other class, so the total can exceed
    B (by design or by accident; it is reproduced, not corrected). The official code keeps
    ``k_c = q`` for the minority classes, which submodlib then refuses (budget ≥ class
    size raises); here every budget is capped at its class size, the only choice the greedy
    can run. The proportional branch draws each decremented class uniformly among the
    classes not yet decremented with ``k_c > 0`` (rejection sampling); that is exactly the
    first eligible classes of a uniformly random permutation, which is the explicit input
    here. Its ``ceil(n_c/N·B)`` is in floating point, which can round an exact integer up;
    the integer ceiling here cannot (the decrements then restore the total either way).

    Args:
        counts: n_c (C,), integers >= 0.
        decrement_order: a permutation of range(C) (``rng.permutation(C)``), the random draws
            of the proportional split; validated always, read only with ``equal_num=False``
            (required even then: the shared validation cannot yet take an optional int array).
        budget: B, ``0 <= B <= N`` (required).
        equal_num: equal split with redistribution (default True, the official default).

    Returns:
        budgets: k_c (C,) int64, ``0 <= k_c <= n_c``; Σ k_c = B when ``equal_num=False``.

    Reference: arXiv:2210.08363 (official code tianyu139/data-efficient-augmentation, utils/craig.py).

    >>> import numpy as np, refimpl
    >>> counts, order = np.array([50, 50, 3]), np.array([2, 0, 1])
    >>> refimpl.data_selection.class_budget_split(counts, order, budget=30)  # q = 10, extra = 7
    array([17, 17,  3])
    >>> # ⌈50·30/103⌉ = 15, 15, ⌈3·30/103⌉ = 1: one too many, class 2 comes first in the order
    >>> refimpl.data_selection.class_budget_split(counts, order, budget=30, equal_num=False)
    array([15, 15,  0])
    """
    counts = counts.astype(np.int64)
    classes = counts.shape[0]
    if equal_num:
        per_class = -(-budget // classes)  # ⌈B/C⌉
        budgets = np.full(classes, per_class, dtype=np.int64)
        minority = counts < per_class
        if minority.any():
            extra = int(np.maximum(per_class - counts, 0).sum())
            budgets[~minority] += -(-extra // int(minority.sum()))  # the official divisor: |M|
        return np.minimum(budgets, counts), None
    total = int(counts.sum())
    budgets = -(-(counts * budget) // total)  # ⌈n_c·B/N⌉ >= n_c·B/N, so Σ >= B
    surplus = int(budgets.sum()) - budget
    for c in np.asarray(decrement_order):
        if surplus == 0:
            break
        if budgets[c] > 0:
            budgets[c] -= 1
            surplus -= 1
    return budgets, None


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    facility_location_greedy,
    name="craig-lazy-greedy-index-0",
    source="baharanm/craig, lazy_greedy.py, FacilityLocation.inc (used by lazy_greedy_heap)",
    official="tests `if not ndx`, which is true for index 0: once one point is selected, point 0's "
    "gain is log 2 whatever it covers (the others' gains are normalized to [0, 1]), so it is picked "
    "too early",
    paper="the facility-location gain ΔF(j|S) of every candidate, index 0 included",
    example=Example(
        args=(
            np.array([[20.0], [0.0], [0.1], [0.2], [9.0], [9.1], [9.2]]),
            np.zeros(7, dtype=np.int64),
            np.array([3]),
        ),
        kwargs={"kernel": "craig_max_minus_distance"},
        official={"indices": [4, 0, 2]},
        reference={"indices": [4, 2, 0]},
    ),
)
known_deviation(
    facility_location_greedy,
    name="submodlib-ties-highest-index",
    source="decile-team/submodlib, FacilityLocationFunction.maximize(optimizer='LazyGreedy') "
    "(the official run of tianyu139/data-efficient-augmentation); CRAIG's own heap of (gain, index) "
    "tuples does the same",
    official="breaks bitwise-equal gains toward the highest index (exact ties are common: two mutually "
    "nearest points have equal gains)",
    paper="no tie rule; refimpl takes the lowest index",
    flag={"tie_break": "highest"},
    example=Example(
        args=(np.array([[0.0], [0.0], [5.0], [5.0]]), np.zeros(4, dtype=np.int64), np.array([2])),
        official={"indices": [3, 1]},
        reference={"indices": [0, 2]},
    ),
)
known_deviation(
    coreset_cluster_weights,
    name="craig-cluster-ids-collide",
    source="tianyu139/data-efficient-augmentation, utils/craig.py, faciliy_location_order",
    official="offsets class c's cluster ids by c·k_c, its OWN budget: with per-class budgets that differ "
    "the ids of different classes collide",
    paper="one id per selected point: its position in the selection (class c's ids start at Σ_{c'<c} k_c')",
    example=Example(
        args=(
            np.array([[0.0], [1.0], [10.0], [11.0], [20.0], [21.0]]),
            np.array([0, 0, 1, 1, 2, 2]),
            np.array([0, 1, 2, 4]),
        ),
        official={"clusters": [0, 1, 1, 1, 2, 2]},
        reference={"clusters": [0, 1, 2, 2, 3, 3]},
        note="budgets [2, 1, 1]: class 1's facility gets id 0 + 1·1 = 1, class 0's second facility's id",
    ),
)
known_deviation(
    class_budget_split,
    name="craig-equal-split-above-class-size",
    source="tianyu139/data-efficient-augmentation, utils/craig.py, get_orders_and_weights(equal_num=True)",
    official="gives a minority class the full ⌈B/C⌉ although it has fewer points (and still hands its "
    "deficit to the other classes): a budget above the class size",
    paper="at most the class size per class; refimpl caps each budget at n_c",
    example=Example(
        args=(np.array([50, 50, 3]), np.array([0, 1, 2])),
        kwargs={"budget": 30},
        official={"budgets": [17, 17, 10]},
        reference={"budgets": [17, 17, 3]},
    ),
)
known_deviation(
    class_budget_split,
    name="craig-proportional-split-float-ceiling",
    source="tianyu139/data-efficient-augmentation, utils/craig.py, get_orders_and_weights(equal_num=False)",
    official="computes ⌈n_c/N·B⌉ in floating point: 7/100·100 = 7.000000000000001 rounds up to 8, and the "
    "random decrement that restores the total may then take a point from another class",
    paper="⌈n_c·B/N⌉ in integers (exact), then the decrements",
    example=Example(
        args=(np.array([7, 93]), np.array([1, 0])),
        kwargs={"budget": 100, "equal_num": False},
        official={"budgets": [8, 92]},
        reference={"budgets": [7, 93]},
        note="the decrement order [1, 0] stands for the official np.random.randint draw",
    ),
)
