"""Conformance cases for `temperature_sampling_probs`, `scalarization_weights` and
`cooldown_temperature_schedule`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "POWER_OVERFLOW": "n_i^{1/τ} overflows (1e9^{50} = 1e450): a softmax of log n/τ does not",
    "EMPTY_DOMAIN": "n_i = 0: probability and weight exactly 0 (log 0 = −inf must not give nan)",
    "NATURAL": "τ = 1: p = q and every scalarization weight is 1",
    "ONE_DOMAIN": "D = 1: p = 1, w = 1",
    "FLAT": "τ = 1e6: p uniform over the non-empty domains",
    "HUGE_COUNTS": "counts 1e12: N = Σn loses nothing in log space",
}


def _counts(rng, D):
    counts = np.floor(10 ** rng.uniform(0, float(rng.choice([2.0, 5.0, 8.0])), size=D))
    counts[rng.random(D) < 0.15] = 0.0  # some empty domains
    counts[rng.integers(D)] = max(counts.max(), 1.0)  # at least one non-empty
    return counts


def _random(rng, D):
    return Sample("random", (_counts(rng, D),), {"tau": float(10 ** rng.uniform(-0.5, 1.5))})


def _edges():
    skewed = np.array([1e9, 3e6, 2e4, 150.0, 7.0])
    return [
        Sample("τ = 0.02, counts up to 1e9", (skewed,), {"tau": 0.02}, flags=("POWER_OVERFLOW",)),
        Sample("τ = 5, skewed counts", (skewed,), {"tau": 5.0}),
        Sample(
            "empty domains", (np.array([0.0, 120.0, 0.0, 3.0, 45.0]),), {"tau": 3.0}, flags=("EMPTY_DOMAIN",)
        ),
        Sample("τ = 1", (np.array([5.0, 1.0, 994.0, 0.0]),), {"tau": 1.0}, flags=("NATURAL",)),
        Sample("one domain", (np.array([42.0]),), {"tau": 2.0}, flags=("ONE_DOMAIN",)),
        Sample("τ = 1e6", (np.array([1e6, 10.0, 1.0, 0.0]),), {"tau": 1e6}, flags=("FLAT",)),
        Sample("counts 1e12", (np.array([1e12, 4e11, 1.0]),), {"tau": 2.5}, flags=("HUGE_COUNTS",)),
        Sample("fractional sizes (token shares)", (np.array([0.5, 0.25, 0.125, 0.125]),), {"tau": 1.7}),
    ]


def _errors():
    counts = np.array([10.0, 5.0, 1.0])
    return [
        ErrorCase("negative count", (np.array([10.0, -1.0]),), {"tau": 1.0}, match=r"'counts'.*>= 0"),
        ErrorCase("all domains empty", (np.zeros(3),), {"tau": 1.0}, match=r"'counts'.*at least one"),
        ErrorCase("τ = 0", (counts,), {"tau": 0.0}, match=r"'tau'.*> 0"),
    ]


for _name in ("temperature_sampling_probs", "scalarization_weights"):
    register(
        OpCases(
            _name,
            dims={"D": (1, 12)},
            random=_random,
            edges=_edges,
            errors=_errors,
            notes=NOTES,
            bench=Bench(sizes={"D": 1024}),
        )
    )


# -- the Cooldown schedule ----------------------------------------------------------------
SCHEDULE_NOTES = {
    "SWITCH_BOUNDARY": "t = switch − 1 keeps the old τ, t = switch takes the new one (side='right')",
    "ONE_STAGE": "S = 1: a constant temperature",
    "AFTER_LAST": "steps beyond the last switch point stay in the last stage",
}


def _schedule_random(rng, N, S):
    starts = np.concatenate([[0], np.sort(rng.choice(np.arange(1, 1000), size=S - 1, replace=False))])
    taus = np.sort(10 ** rng.uniform(0, 1.5, size=S))[::-1].copy()
    steps = rng.integers(0, 1200, size=N)
    return Sample("random", (steps, taus, starts))


def _schedule_edges():
    return [
        Sample(
            "around the switch points",
            (
                np.array([0, 99, 100, 101, 299, 300, 10**6]),
                np.array([5.0, 2.0, 1.0]),
                np.array([0, 100, 300]),
            ),
            flags=("SWITCH_BOUNDARY", "AFTER_LAST"),
            comment="[5, 5, 2, 2, 2, 1, 1]",
        ),
        Sample("one stage", (np.array([0, 7, 70000]), np.array([3.3]), np.array([0])), flags=("ONE_STAGE",)),
        Sample(
            "int32 steps, fractional τ",
            (np.array([4, 5, 6], dtype=np.int32), np.array([1.4, 1.05]), np.array([0, 5], dtype=np.int32)),
        ),
    ]


def _schedule_errors():
    steps = np.array([0, 10])
    return [
        ErrorCase(
            "first stage not at 0",
            (steps, np.array([5.0, 1.0]), np.array([1, 10])),
            match=r"'switch_steps'.*start at step 0",
        ),
        ErrorCase(
            "switch points not increasing",
            (steps, np.array([5.0, 2.0, 1.0]), np.array([0, 10, 10])),
            match=r"'switch_steps'.*strictly increasing",
        ),
        ErrorCase("τ = 0", (steps, np.array([5.0, 0.0]), np.array([0, 10])), match=r"'taus'.*> 0"),
    ]


register(
    OpCases(
        "cooldown_temperature_schedule",
        dims={"N": (1, 20), "S": (1, 4)},
        random=_schedule_random,
        edges=_schedule_edges,
        errors=_schedule_errors,
        notes=SCHEDULE_NOTES,
        bench=Bench(sizes={"N": 8192, "S": 4}),
    )
)
