"""Conformance cases for `coteaching_small_loss_selection`.

The outputs are indices, compared exactly: the ranking is a stable sort with a stated tie rule
(lowest index first), so exact ties are part of the random samples and of the edge cases, and
every implementation must break them the same way. The losses are drawn as float32 values, so
the ranking is the same in both dtypes.
"""

from __future__ import annotations

import numpy as np

from ..._cases import Known, OpCases, Sample, register

NOTES = {
    "TIES": "equal losses: ascending loss, equal losses by lowest index first (a stable argsort)",
    "TIES_AT_CUT": "ties straddle the cut: the lower indices of the tied group are kept",
    "KEEP_ALL": "τ_e = 0: every example, in stable ascending-loss order",
    "KEEP_NONE": "τ_e = 1 (or ⌊(1 − τ_e)·B⌋ = 0): two empty int64 arrays",
    "COUNT_ROUNDING": "the count is int((1 − τ_e)·B) in float64: (1 − 0.8)·5 keeps 0, (1 − 0.2)·5 keeps 4 "
    "(an exact-rational floor keeps 3)",
    "NEG_ZERO": "−0.0 and 0.0 are equal losses: kept in index order (a sort by bit pattern puts −0.0 first)",
    "LARGE_LOSSES": "losses ~1e4 with spacings of 1/64: a ranking of nearly equal values",
    "INDEPENDENT": "each network ranks its own losses: equal inputs give equal selections",
}


def _losses(rng, B):
    losses = rng.gamma(1.5, 1.0, size=B) * float(rng.choice([0.1, 1.0, 10.0]))
    if rng.random() < 0.5:  # round to a coarse grid: ties
        losses = np.round(losses * 4) / 4
    return losses.astype(np.float32).astype(np.float64)  # float32 values: the same ranking in both dtypes


def _random(rng, B):
    tau = float(rng.choice([0.0, 0.1, 0.2, 0.3, 0.5, rng.uniform(0, 1)]))
    return Sample("random", (_losses(rng, B), _losses(rng, B)), {"forget_rate": tau})


def _edges():
    rng = np.random.default_rng(10)
    ramp = np.linspace(0, 0.3, 5)  # the official schedule with nGradual = 5, τ = 0.3
    losses = rng.gamma(1.5, 1.0, size=12).astype(np.float32).astype(np.float64)
    return [
        Sample(
            "ties, τ_e = 0.4",
            (np.array([0.5, 0.1, 0.5, 0.1, 0.9]), np.array([2.0, 0.3, 0.1, 1.0, 0.2])),
            {"forget_rate": 0.4},
            flags=("TIES",),
            comment="[1, 3, 0] and [2, 4, 1]",
        ),
        Sample(
            "all losses equal, τ_e = 0.5",
            (np.full(8, 0.7), np.full(8, 0.7)),
            {"forget_rate": 0.5},
            flags=("TIES_AT_CUT",),
            comment="[0, 1, 2, 3] for both",
        ),
        Sample(
            "a tied group across the cut",
            (np.array([3.0, 1.0, 2.0, 1.0, 2.0, 2.0]), np.array([2.0, 2.0, 0.0, 2.0, 5.0, 2.0])),
            {"forget_rate": 0.5},
            flags=("TIES_AT_CUT",),
            comment="[1, 3, 2] and [2, 0, 1]",
        ),
        Sample("τ_e = 0", (losses, losses[::-1].copy()), {"forget_rate": 0.0}, flags=("KEEP_ALL",)),
        Sample("τ_e = 1", (losses, losses), {"forget_rate": 1.0}, flags=("KEEP_NONE",)),
        Sample(
            "(1 − 0.8)·5 rounds below 1",
            (np.array([0.4, 0.2, 0.3, 0.1, 0.5]), np.array([0.1, 0.2, 0.3, 0.4, 0.5])),
            {"forget_rate": 0.8},
            flags=("COUNT_ROUNDING", "KEEP_NONE"),
            comment="int(0.9999999999999998) = 0: nothing kept",
        ),
        Sample(
            "(1 − 0.2)·5 rounds to 4",
            (np.array([0.4, 0.2, 0.3, 0.1, 0.5]), np.array([0.1, 0.2, 0.3, 0.4, 0.5])),
            {"forget_rate": 0.2},
            flags=("COUNT_ROUNDING",),
            comment="[3, 1, 2, 0] and [0, 1, 2, 3]",
        ),
        Sample(
            "(1 − 0.8)·10 rounds below 2",
            (losses[:10], losses[:10]),
            {"forget_rate": 0.8},
            flags=("COUNT_ROUNDING", "INDEPENDENT"),
            comment="int(1.9999999999999996) = 1",
        ),
        Sample(
            "one example, τ_e = 0.3",
            (np.array([1.5]), np.array([0.2])),
            {"forget_rate": 0.3},
            flags=("KEEP_NONE",),
            comment="int(0.7) = 0",
        ),
        Sample("one example, τ_e = 0", (np.array([1.5]), np.array([0.2])), {"forget_rate": 0.0}),
        Sample(
            "−0.0 and 0.0",
            (np.array([0.0, -0.0, 1.0, -0.0]), np.array([-0.0, 0.0, 0.0, 2.0])),
            {"forget_rate": 0.5},
            flags=("NEG_ZERO",),
            comment="[0, 1] and [0, 1]",
        ),
        Sample(
            "losses ~1e4",
            (1e4 + np.array([3, 1, 2, 1, 0, 5, 4, 0]) / 64, 1e4 - np.array([3, 1, 2, 1, 0, 5, 4, 0]) / 64),
            {"forget_rate": 0.25},
            flags=("LARGE_LOSSES", "TIES"),
            comment="[4, 7, 1, 3, 2, 0] and [5, 6, 0, 2, 1, 3]",
        ),
        Sample(
            "negative losses (log-likelihood scale)",
            (-losses[:6], losses[:6] - 1.0),
            {"forget_rate": 1 / 3},
        ),
        *[_ramp_sample(epoch, float(tau), losses) for epoch, tau in enumerate(ramp[1:], start=1)],
    ]


def _ramp_sample(epoch, tau, losses):
    name = f"ramp epoch {epoch}: τ_e = {tau:.3f}"
    return Sample(name, (losses, losses[::-1].copy()), {"forget_rate": tau}, comment="B = 12")


def _known():
    return [
        Known(
            "ties, τ_e = 0.4: R = int(0.6·5) = 3",
            (np.array([0.5, 0.1, 0.5, 0.1, 0.9]), np.array([2.0, 0.3, 0.1, 1.0, 0.2])),
            {"forget_rate": 0.4},
            values={"indices_1": [1, 3, 0], "indices_2": [2, 4, 1]},
            source="by hand: stable ascending order, ties by lowest index",
            rtol=0.0,
        ),
        Known(
            "τ_e = 0: the full stable argsort",
            (np.array([2.0, 1.0, 2.0, 0.0]), np.array([0.0, 0.0, 0.0, 0.0])),
            {"forget_rate": 0.0},
            values={"indices_1": [3, 1, 0, 2], "indices_2": [0, 1, 2, 3]},
            source="by hand",
            rtol=0.0,
        ),
        Known(
            "(1 − 0.8)·5 = 0.9999999999999998: none kept",
            (np.array([0.4, 0.2, 0.3, 0.1, 0.5]), np.array([0.1, 0.2, 0.3, 0.4, 0.5])),
            {"forget_rate": 0.8},
            values={"indices_1": np.zeros(0), "indices_2": np.zeros(0)},
            source="the official int((1 − forgetRate)·len(idx1)), evaluated in float64",
            rtol=0.0,
        ),
    ]


register(
    OpCases(
        "coteaching_small_loss_selection",
        dims={"B": (1, 16)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        known=_known,
        defaults={},
    )
)
