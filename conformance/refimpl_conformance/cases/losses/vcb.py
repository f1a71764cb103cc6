"""Conformance cases for `vcb_class_weights`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "GLOBAL_ONLY": "epoch 0: ω = 0, every vertex gets the global weights (the vertex counts are ignored)",
    "LAST_EPOCH": "epoch E − 1: ω = ω_max exactly",
    "LATE_EPOCH": "epoch past E − 1: the last epoch's table (the official fallback), not ω > ω_max",
    "FLOOR": "a class a vertex never shows: ñ = 0 before the floor m, an infinite weight without it",
    "ZERO_ROW": "a vertex with no counts: share 0 (the 1e-6 denominator clamp), not 0/0 = nan",
    "UNIFORM": "β = 0: β^ñ = 0, weights 1/2 for every vertex",
    "CANCELLATION": "β = 1 − 1e-9: 1 − β^ñ must not cancel (float32 rounds β to 1)",
    "HUGE_COUNTS": "counts of 1e12: only their ratios matter",
}


def _counts(rng, V, N):
    """Per-vertex and global counts of N binary contact labels per vertex."""
    contact_rate = 10 ** rng.uniform(-3, -0.1, size=V)  # contact is the rare class at most vertices
    contacts = rng.binomial(N, contact_rate).astype(np.float64)
    vertex_counts = np.stack([N - contacts, contacts], axis=1)
    return vertex_counts, vertex_counts.sum(axis=0)


def _random(rng, V):
    vertex_counts, global_counts = _counts(rng, V, int(rng.integers(1, 5000)))
    total_epochs = int(rng.integers(2, 15))
    return Sample(
        "random",
        (vertex_counts, global_counts),
        {
            "epoch": int(rng.integers(0, total_epochs + 2)),
            "total_epochs": total_epochs,
            "beta": float(rng.choice([0.9999, 0.999, 0.99, 0.9])),
            "total_samples": float(rng.choice([1000.0, 200.0, 5000.0])),
            "vertex_weight_max": float(rng.uniform(0, 1)),
            "min_samples": float(rng.choice([20.0, 5.0, 50.0])),
        },
    )


def _edges():
    rng = np.random.default_rng(67)
    vertex_counts, global_counts = _counts(rng, 6, 2000)
    never = np.array([[2000.0, 0.0], [0.0, 2000.0], [1990.0, 10.0]])
    counts = (vertex_counts, global_counts)
    return [
        Sample("epoch 0", counts, {"epoch": 0, "total_epochs": 10}, flags=("GLOBAL_ONLY",)),
        Sample("epoch E − 1", counts, {"epoch": 9, "total_epochs": 10}, flags=("LAST_EPOCH",)),
        Sample("epoch past E − 1", counts, {"epoch": 25, "total_epochs": 10}, flags=("LATE_EPOCH",)),
        Sample(
            "a class never seen at a vertex, ω_max = 1",
            (never, never.sum(axis=0)),
            {"epoch": 1, "total_epochs": 2, "vertex_weight_max": 1.0},
            flags=("FLOOR",),
            comment="row 0: ñ = [1000, 0] → floor [1000, 20] → ×1000/1020",
        ),
        Sample(
            "a vertex with no counts",
            (np.array([[0.0, 0.0], [900.0, 100.0]]), np.array([900.0, 100.0])),
            {"epoch": 4, "total_epochs": 5},
            flags=("ZERO_ROW",),
            comment="row 0 falls back to the global distribution [900, 100]",
        ),
        Sample("β = 0", counts, {"epoch": 3, "total_epochs": 4, "beta": 0.0}, flags=("UNIFORM",)),
        Sample(
            "β = 1 − 1e-9",
            counts,
            {"epoch": 3, "total_epochs": 4, "beta": 1 - 1e-9},
            flags=("CANCELLATION",),
        ),
        Sample(
            "counts 1e12",
            (vertex_counts * 5e8, global_counts * 5e8),
            {"epoch": 2, "total_epochs": 4},
            flags=("HUGE_COUNTS",),
        ),
        Sample(
            "778 MANO vertices, the official configuration (E = 10)",
            _counts(np.random.default_rng(778), 778, 40000),
            {"epoch": 6, "total_epochs": 10},
        ),
    ]


def _errors():
    counts = np.array([[10.0, 2.0], [5.0, 0.0]])
    return [
        ErrorCase(
            "negative vertex count",
            (np.array([[10.0, -1.0]]), np.array([10.0, 1.0])),
            {"epoch": 0, "total_epochs": 2},
            match=r"'vertex_counts'.*>= 0",
        ),
        ErrorCase(
            "negative global count",
            (counts, np.array([15.0, -2.0])),
            {"epoch": 0, "total_epochs": 2},
            match=r"'global_counts'.*>= 0",
        ),
        ErrorCase(
            "global counts both 0",
            (counts, np.zeros(2)),
            {"epoch": 0, "total_epochs": 2},
            match=r"'global_counts'.*at least one counted label",
        ),
    ]


def _known():
    small = {"beta": 0.5, "vertex_weight_max": 1.0}
    return [
        Known(
            "ω = 1: the vertex's own counts [3, 1]",
            (np.array([[3.0, 1.0]]), np.array([1.0, 1.0])),
            {"epoch": 1, "total_epochs": 2, "total_samples": 4.0, "min_samples": 1.0, **small},
            values={"weights": [[4 / 11, 7 / 11]]},
            source="by hand: u = [(1/2)/(7/8), (1/2)/(1/2)] = [4/7, 1], w = u/Σu",
            rtol=1e-14,
        ),
        Known(
            "ω = 0 (epoch 0): the global counts [1, 3] for every vertex",
            (np.array([[3.0, 1.0], [0.0, 8.0]]), np.array([1.0, 3.0])),
            {"epoch": 0, "total_epochs": 5, "total_samples": 4.0, "min_samples": 1.0, **small},
            values={"weights": [[7 / 11, 4 / 11], [7 / 11, 4 / 11]]},
            source="by hand: ñ = [1, 3], u = [1, 4/7], w = u/Σu",
            rtol=1e-14,
        ),
        Known(
            "floor and renormalization: ñ = [6, 0] → [6, 3] → [4, 2]",
            (np.array([[6.0, 0.0]]), np.array([1.0, 1.0])),
            {"epoch": 3, "total_epochs": 4, "total_samples": 6.0, "min_samples": 3.0, **small},
            values={"weights": [[4 / 9, 5 / 9]]},
            source="by hand: u = [(1/2)/(15/16), (1/2)/(3/4)] = [8/15, 2/3], w = u/Σu",
            rtol=1e-14,
        ),
        Known(
            "ω = 0.15 (epoch 1 of E = 3, ω_max = 0.3)",
            (np.array([[0.0, 10.0]]), np.array([1.0, 0.0])),
            {"epoch": 1, "total_epochs": 3, "beta": 0.5, "total_samples": 20.0, "min_samples": 1.0},
            # share [0, 20] and [20, 0]; ñ = 0.15·[0, 20] + 0.85·[20, 0] = [17, 3];
            # u_c = (1/2)/(1 − 2^−ñ_c), w_0 = (1 − 2^−3)/((1 − 2^−3) + (1 − 2^−17))
            values={
                "weights": [
                    [
                        (1 - 2.0**-3) / ((1 - 2.0**-3) + (1 - 2.0**-17)),
                        (1 - 2.0**-17) / ((1 - 2.0**-3) + (1 - 2.0**-17)),
                    ]
                ]
            },
            source="by hand, from the blend ñ = ω·n^v + (1 − ω)·n^g",
            rtol=1e-14,
        ),
    ]


register(
    OpCases(
        "vcb_class_weights",
        dims={"V": (1, 12)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        known=_known,
        defaults={"beta": 0.9999, "total_samples": 1000.0, "vertex_weight_max": 0.3, "min_samples": 20.0},
    )
)
