"""Conformance cases for `mc_step_advantages`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "TIE": "equal advantages: i* is the first of them (np.argmin), not the last",
    "FLOAT_TIE": "count changes of 2/10 at different levels (0.3−0.1, 0.5−0.3): a float difference "
    "of Q̂ values breaks the tie, integer count differences do not",
    "FIRST_STEP": "V̂_1 = v_0, not Q̂_0 = 0 or Q̂_1: the first step's advantage uses the given value",
    "ONE_STEP": "L = 1: Â = Q̂_1 − v_0, i* = 0",
    "ONE_ROLLOUT": "M = 1: Q̂ ∈ {0, 1}, advantages ∈ {−1, 0, 1}",
    "ALL_EQUAL": "every step keeps the success rate: Â = 0 after step 1",
}
FLOAT64_ONLY = ("float64",)  # boolean outcomes in, float64 estimates out: no float32 variant


def _random(rng, L, M):
    # a success probability that drifts step by step, with a possible drop (the critical step)
    p = np.clip(rng.uniform(0.2, 0.9) + np.cumsum(rng.normal(0.0, 0.15, size=L)), 0.0, 1.0)
    outcomes = rng.random((L, M)) < p[:, None]
    v_0 = float(rng.choice([0.0, 1.0, rng.uniform(0, 1), rng.integers(0, M + 1) / M]))
    return Sample("random", (outcomes,), {"v_0": v_0}, dtypes=FLOAT64_ONLY)


def _edges():
    return [
        Sample(
            "tie between steps 2 and 4",
            (np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=bool),),
            {"v_0": 1.0},
            flags=("TIE",),
            dtypes=FLOAT64_ONLY,
            comment="Â = [0, −0.5, 0.5, −0.5]: i* = 1",
        ),
        Sample(
            "tie 0.3 − 0.1 vs 0.5 − 0.3 (M = 10)",
            (
                np.array(
                    [
                        [True] * 5 + [False] * 5,
                        [True] * 3 + [False] * 7,
                        [True] * 3 + [False] * 7,
                        [True] * 1 + [False] * 9,
                    ]
                ),
            ),
            {"v_0": 0.5},
            flags=("TIE", "FLOAT_TIE"),
            dtypes=FLOAT64_ONLY,
            comment="Q̂ = [0.5, 0.3, 0.3, 0.1]: Â = [0, −0.2, 0, −0.2], i* = 1",
        ),
        Sample(
            "first step is the worst",
            (np.array([[0, 0, 1], [0, 1, 1], [0, 0, 1]], dtype=bool),),
            {"v_0": 1.0},
            flags=("FIRST_STEP",),
            dtypes=FLOAT64_ONLY,
        ),
        Sample(
            "one step",
            (np.array([[1, 0, 0, 1, 1]], dtype=bool),),
            {"v_0": 0.2},
            flags=("ONE_STEP",),
            dtypes=FLOAT64_ONLY,
        ),
        Sample(
            "one rollout per step",
            (np.array([[1], [1], [0], [1], [0]], dtype=bool),),
            {"v_0": 0.0},
            flags=("ONE_ROLLOUT",),
            dtypes=FLOAT64_ONLY,
        ),
        Sample(
            "all steps keep the rate",
            (np.ones((4, 6), dtype=bool),),
            {"v_0": 1.0},
            flags=("ALL_EQUAL",),
            dtypes=FLOAT64_ONLY,
            comment="Â = 0 everywhere: i* = 0 (first of a four-way tie)",
        ),
        Sample(
            "all rollouts fail",
            (np.zeros((3, 7), dtype=bool),),
            {"v_0": 0.4},
            dtypes=FLOAT64_ONLY,
            comment="Â = [−0.4, 0, 0]: i* = 0",
        ),
    ]


def _errors():
    return [
        ErrorCase("no steps", (np.zeros((0, 4), dtype=bool),), {"v_0": 0.5}, match=r"'outcomes'.*L >= 1"),
        ErrorCase("no rollouts", (np.zeros((3, 0), dtype=bool),), {"v_0": 0.5}, match=r"'outcomes'.*M >= 1"),
    ]


def _known():
    return [
        Known(
            "hand computation",
            (np.array([[1, 1, 0, 1], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=bool),),
            {"v_0": 0.5},
            values={
                "q": np.array([0.75, 0.5, 0.0]),
                "v": np.array([0.5, 0.75, 0.5]),
                "advantages": np.array([0.25, -0.25, -0.5]),
                "critical_step": np.int64(2),
            },
            source="by hand: Q̂ = c/M = [3, 2, 0]/4, V̂ = [v_0, Q̂_1, Q̂_2], Â = Q̂ − V̂",
        ),
        Known(
            "first index on a tie",
            (np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=bool),),
            {"v_0": 1.0},
            values={"advantages": np.array([0.0, -0.5, 0.5, -0.5]), "critical_step": np.int64(1)},
            source="by hand: Q̂ = [1, 0.5, 1, 0.5], argmin's first index",
        ),
    ]


register(
    OpCases(
        "mc_step_advantages",
        dims={"L": (1, 10), "M": (1, 16)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        known=_known,
        defaults={},
    )
)
