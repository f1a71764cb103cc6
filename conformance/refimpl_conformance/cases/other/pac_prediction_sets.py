"""Conformance cases for `pac_threshold_calibration`."""

from __future__ import annotations

import numpy as np

from ..._cases import Known, OpCases, Sample, register

NOTES = {
    "TRIVIAL": "(1 − ε)^n > δ: no k qualifies, τ̂ = −inf (the set of every label), k* = −1",
    "TIES": "repeated scores: τ̂ is the tied value, the misses (τ_i < τ̂) stay at most k*",
    "UNSORTED": "scores in random order: τ̂ is an order statistic, not an index of the input",
    "LARGE_N": "n = 5000: the binomial CDF underflows in linear space at small k; log space does not",
}


def _random(rng, n):
    scores = rng.standard_normal(n) * float(rng.choice([1.0, 1e3])) + float(rng.choice([0.0, 5.0]))
    kwargs = {"epsilon": float(rng.choice([0.05, 0.1, 0.3])), "delta": float(rng.choice([0.01, 0.05, 0.2]))}
    return Sample("random", (scores,), kwargs)


def _edges():
    rng = np.random.default_rng(5)
    return [
        Sample(
            "n = 10, ε = 0.1: trivial",
            (np.arange(10.0),),
            {"epsilon": 0.1, "delta": 0.05},
            flags=("TRIVIAL",),
        ),
        Sample(
            "ties",
            (np.array([0.3, 0.1, 0.1, 0.1, 0.7, 0.1] * 10),),
            {"epsilon": 0.3, "delta": 0.1},
            flags=("TIES",),
        ),
        Sample(
            "unsorted",
            (rng.permutation(200).astype(float),),
            {"epsilon": 0.1, "delta": 0.05},
            flags=("UNSORTED",),
        ),
        Sample(
            "n = 5000",
            (rng.uniform(size=5000),),
            {"epsilon": 0.01, "delta": 0.001},
            flags=("LARGE_N",),
            dtypes=("float64",),
            comment="float32 has only 2^24 distinct values in [0, 1): ties change nothing, "
            "but keep the draw exact",
        ),
        Sample("one example", (np.array([2.5]),), {"epsilon": 0.99, "delta": 0.5}),
    ]


def _known():
    return [
        Known(
            "n = 100, ε = 0.1, δ = 0.05",
            (np.arange(100.0),),
            {"epsilon": 0.1, "delta": 0.05},
            values={"tau": 4.0, "k": 4},
            source="by hand: BinomCDF(4; 100, 0.1) = 0.0237 <= 0.05 < BinomCDF(5) = 0.0576",
        ),
        Known(
            "n = 1, ε = 0.99, δ = 0.5",
            (np.array([2.5]),),
            {"epsilon": 0.99, "delta": 0.5},
            values={"tau": 2.5, "k": 0},
            source="by hand: (1 − ε)^1 = 0.01 <= 0.5, CDF(1) = 1",
        ),
    ]


register(
    OpCases(
        "pac_threshold_calibration",
        dims={"n": (1, 60)},
        random=_random,
        edges=_edges,
        known=_known,
        notes=NOTES,
    )
)
