"""Conformance cases for `pairwise_loopy_bp` and `cardinality_factor_messages` (LLP-BP)."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "TREE": "a tree: the BP fixed point gives the exact marginals",
    "LOOPY": "a graph with cycles: damping 0.5, flooding schedule (the official PGMax run)",
    "OFFICIAL_POTENTIALS": "the official expansion: θ_i = −λ_bag(1 − 2k_b) − λ_sim Σ s_ij, "
    "ψ(1,1) = 2λ_sim s_ij on kNN edges, −2λ_bag inside bags (λ = 10)",
    "STRONG": "log-potentials ±40: messages saturate; logsumexp must subtract its max",
    "NO_EDGES": "all-zero pairwise tables (edges that couple nothing): the marginals are σ(θ_i)",
    "DUPLICATE_EDGES": "an edge listed twice: its tables add",
    "EARLY_STOP": "tol > 0: the run stops once the largest message change is below it",
    "NO_ITERATIONS": "max_iter = 0: the marginals of the unary terms alone",
}


def _graph(rng, n, loopy):
    parents = [int(rng.integers(0, i)) for i in range(1, n)]
    edges = [[p, i] for i, p in zip(range(1, n), parents, strict=True)]  # a random tree
    if loopy and n >= 3:
        for _ in range(int(rng.integers(1, n))):
            a, b = rng.choice(n, size=2, replace=False)
            edges.append([int(a), int(b)])
    return np.array(edges, dtype=np.int64).reshape(-1, 2)


def compare_as(outputs, arguments):
    """Every output but the per-iteration message changes (their length is ``iterations``, which
    is compared): a change is the difference of two nearly equal messages, so its rounding is
    eps·|m| absolute, not relative to the change itself, and late in a run (changes ~1e-8) no two
    dtypes agree on it. The tests check the record's values in float64."""
    marginals, labels, changes, iterations, converged = outputs
    return {"marginals": marginals, "labels": labels, "iterations": iterations, "converged": converged}


def _clear_of_half(marginals, margin=1e-3):
    return bool(np.all(np.abs(marginals - 0.5) > margin))


def _random_bp(rng, n):
    import refimpl

    for _ in range(100):
        edges = _graph(rng, n, loopy=bool(rng.integers(2)))
        unary = rng.standard_normal(n) * float(rng.choice([0.5, 2.0]))
        pairwise = rng.standard_normal((edges.shape[0], 2, 2)) * float(rng.choice([0.3, 1.0]))
        kwargs = {
            "max_iter": int(rng.choice([5, 20, 100])),
            "damping": float(rng.choice([0.0, 0.5, 0.8])),
            "tol": float(rng.choice([0.0, 1e-8])),
        }
        marginals = refimpl.solvers.pairwise_loopy_bp(unary, edges, pairwise, **kwargs)[0]
        if _clear_of_half(marginals):
            if kwargs["tol"] > 0:  # where a tolerance stop lands differs by a step in float32
                return Sample("random", (unary, edges, pairwise), kwargs, dtypes=("float64",))
            return Sample("random", (unary, edges, pairwise), kwargs)
    raise RuntimeError("no sample with marginals clear of 0.5")


def _official(features, bag_size=4, k=2, sim_lambda=10.0, bag_lambda=10.0, bag_counts=None):
    """The official potentials of a small LLP problem (kNN by cosine, s = exp(−‖x_i − x_j‖))."""
    n = features.shape[0]
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    distance = 1 - unit @ unit.T
    np.fill_diagonal(distance, np.inf)
    pairs = {tuple(sorted((i, int(j)))) for i in range(n) for j in np.argsort(distance[i])[:k]}
    bags = np.arange(n) // bag_size
    edges, tables = [], []
    unary = -bag_lambda * (1 - 2 * bag_counts[bags])
    for i, j in sorted(pairs):
        s = np.exp(-np.linalg.norm(features[i] - features[j]))
        unary[i] -= sim_lambda * s
        unary[j] -= sim_lambda * s
        edges.append([i, j])
        tables.append([[0.0, 0.0], [0.0, 2 * sim_lambda * s]])
    for b in range(n // bag_size):
        members = range(b * bag_size, (b + 1) * bag_size)
        for i in members:
            for j in members:
                if i < j:
                    edges.append([i, j])
                    tables.append([[0.0, 0.0], [0.0, -2 * bag_lambda]])
    return unary, np.array(edges), np.array(tables)


def _edges_bp():
    rng = np.random.default_rng(11)
    chain = np.array([[0, 1], [1, 2], [2, 3]])
    chain_tables = np.array([[[1.0, -0.5], [-0.5, 1.0]], [[0.2, 0.0], [0.0, 0.9]], [[-0.3, 0.4], [0.8, 0.0]]])
    cycle = np.array([[0, 1], [1, 2], [2, 3], [3, 0]])
    cycle_tables = 0.4 * np.array([[[1.0, 0.0], [0.0, 1.0]]] * 4)
    unary, edges, tables = _official(rng.standard_normal((8, 3)), bag_counts=np.array([1.0, 3.0]))
    return [
        Sample(
            "chain of 4 (a tree)", (np.array([0.3, -0.2, 0.5, -1.0]), chain, chain_tables), flags=("TREE",)
        ),
        Sample(
            "4-cycle, weak coupling",
            (np.array([0.5, -0.3, 0.2, -0.1]), cycle, cycle_tables),
            flags=("LOOPY",),
        ),
        Sample(
            "official potentials: 8 instances, bags of 4",
            (unary, edges, tables),
            {"max_iter": 30},
            flags=("OFFICIAL_POTENTIALS", "LOOPY"),
            dtypes=("float64",),
            comment="λ = 10: float32 rounds the large log-potentials' messages differently in 30 iterations",
        ),
        Sample(
            "saturated potentials",
            (
                np.array([40.0, -40.0, 0.0]),
                np.array([[0, 1], [1, 2]]),
                40 * np.array([[[1.0, -1.0], [-1.0, 1.0]]] * 2),
            ),
            flags=("STRONG", "TREE"),
        ),
        Sample(
            "zero pairwise tables",
            (np.array([0.0, 2.0, -1.0]), np.array([[0, 1], [1, 2]]), np.zeros((2, 2, 2))),
            flags=("NO_EDGES",),
        ),
        Sample(
            "duplicate edge",
            (
                np.array([0.3, -0.4]),
                np.array([[0, 1], [1, 0]]),
                np.array([[[0.0, 0.0], [0.0, 0.7]], [[0.0, 0.0], [0.0, 0.7]]]),
            ),
            flags=("DUPLICATE_EDGES", "TREE"),
        ),
        Sample(
            "tol 1e-6",
            (np.array([0.3, -0.2, 0.5, -1.0]), chain, chain_tables),
            {"tol": 1e-6, "max_iter": 500},
            flags=("EARLY_STOP",),
            dtypes=("float64",),
            comment="the stopping iteration depends on rounding at 1e-6 in float32",
        ),
        Sample(
            "max_iter = 0",
            (np.array([0.3, -0.2]), np.array([[0, 1]]), np.ones((1, 2, 2))),
            {"max_iter": 0},
            flags=("NO_ITERATIONS",),
        ),
    ]


def _errors_bp():
    return [
        ErrorCase(
            "self-loop",
            (np.zeros(3), np.array([[0, 1], [2, 2]]), np.zeros((2, 2, 2))),
            match="edge 1 = \\(2, 2\\)",
        ),
        ErrorCase(
            "damping 1",
            (np.zeros(2), np.array([[0, 1]]), np.zeros((1, 2, 2))),
            {"damping": 1.0},
            match="'damping'",
        ),
    ]


def _known_bp():
    return [
        Known(
            "documented example",
            (np.zeros(2), np.array([[0, 1]]), np.array([[[0.0, 0.0], [0.0, np.log(3.0)]]])),
            values={"marginals": [4 / 6, 4 / 6], "labels": [1, 1]},
            source="by hand: weights 1, 1, 1, 3 over (0,0), (0,1), (1,0), (1,1)",
            rtol=1e-12,
        ),
        Known(
            "zero pairwise table",
            (np.array([0.0, np.log(3.0)]), np.array([[0, 1]]), np.zeros((1, 2, 2))),
            {"max_iter": 3},
            values={"marginals": [0.5, 0.75], "labels": [0, 1]},
            source="by hand: σ(θ); σ(0) = 0.5 gives label 0 (strict threshold)",
            rtol=1e-14,
        ),
    ]


register(
    OpCases(
        "pairwise_loopy_bp",
        dims={"n": (2, 7)},
        random=_random_bp,
        edges=_edges_bp,
        errors=_errors_bp,
        known=_known_bp,
        notes=NOTES,
        defaults={"max_iter": 100, "damping": 0.5, "tol": 0.0},
        compare_as=compare_as,
    )
)


CARD_NOTES = {
    "ONE_VARIABLE": "K = 1: the others' count is 0, m(y) = φ(y)",
    "FORBIDDEN_COUNTS": "φ = −1e4 outside the known count: the messages force the remaining labels",
    "CONFIDENT_INCOMING": "incoming log-odds ±50: the count distribution has 2^{-K}-tiny mass (log space)",
    "UNNORMALIZED": "incoming messages with arbitrary offsets: normalized first",
}


def _random_card(rng, B, K):
    phi = rng.standard_normal((B, K + 1)) * float(rng.choice([0.5, 3.0]))
    incoming = rng.standard_normal((B, K, 2)) * float(rng.choice([0.5, 3.0]))
    return Sample("random", (phi, incoming))


def _edges_card():
    rng = np.random.default_rng(12)
    known_count = -1e4 * (np.arange(9) != 3).astype(float)[None, :]  # exactly 3 positives of 8
    return [
        Sample("K = 1", (np.array([[0.2, -0.7]]), np.array([[[0.3, 1.0]]])), flags=("ONE_VARIABLE",)),
        Sample(
            "count forced to 3 of 8, official bag size",
            (-10.0 * (np.arange(9) - 3.0)[None, :] ** 2, rng.standard_normal((1, 8, 2))),
            comment="φ(c) = −λ_bag(c − k_b)² with λ_bag = 10, k_b = 3",
        ),
        Sample(
            "forbidden counts", (known_count, rng.standard_normal((1, 8, 2))), flags=("FORBIDDEN_COUNTS",)
        ),
        Sample(
            "confident incoming",
            (rng.standard_normal((2, 7)), 50 * rng.choice([-1.0, 1.0], size=(2, 6, 2))),
            flags=("CONFIDENT_INCOMING",),
        ),
        Sample(
            "unnormalized incoming",
            (rng.standard_normal((1, 4)), rng.standard_normal((1, 3, 2)) + 1e3),
            flags=("UNNORMALIZED",),
            dtypes=("float64",),
            comment="an offset 1e3 leaves float32 3 digits of the O(1) messages",
        ),
    ]


def _errors_card():
    return [
        ErrorCase("K + 1 mismatch", (np.zeros((1, 3)), np.zeros((1, 3, 2))), match="K \\+ 1 = 4 columns"),
    ]


def _known_card():
    return [
        Known(
            "documented example",
            (np.log(np.array([[1.0, 4.0, 1.0]])), np.zeros((1, 2, 2))),
            values={"messages": np.log(np.full((1, 2, 2), 0.5))},
            source="by hand: y_1 = 0 → φ(0) + φ(1) = 5, y_1 = 1 → φ(1) + φ(2) = 5",
            rtol=1e-12,
        ),
        Known(
            "K = 1",
            (np.log(np.array([[1.0, 3.0]])), np.zeros((1, 1, 2))),
            values={"messages": np.log(np.array([[[0.25, 0.75]]]))},
            source="by hand: m(y) ∝ φ(y)",
            rtol=1e-12,
        ),
    ]


register(
    OpCases(
        "cardinality_factor_messages",
        dims={"B": (1, 3), "K": (1, 6)},
        random=_random_card,
        edges=_edges_card,
        errors=_errors_card,
        known=_known_card,
        notes=CARD_NOTES,
    )
)
