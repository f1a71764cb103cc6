"""Conformance cases for `equity_scaled_metric`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, OpCases, Sample, register

NOTES = {
    "EQUAL_GROUPS": "every group's mean equals M_all: ES-M = M_all exactly",
    "UNGROUPED": "images labelled −1 count for M_all only (the official loop skips them for groups)",
    "OVERALL_GIVEN": "M_all given (a pooled metric), not the mean of the per-image values",
    "STD": "variant='std': the sample standard deviation (ddof = 1), not the population one",
    "ONE_IMAGE_GROUPS": "groups of one image each",
}


def _random(rng, N, G):  # noqa: N803
    groups = np.concatenate([np.arange(G), rng.integers(-1, G, size=N)])  # every group has an image
    rng.shuffle(groups)
    metric = rng.uniform(0.2, 1.0, size=groups.shape[0])
    kwargs = {
        "num_groups": G,
        "alpha": float(rng.choice([1.0, 0.5, 2.0, 0.0])),
        "variant": str(rng.choice(["sum", "sum", "std"])) if G >= 2 else "sum",
    }
    overall = None if rng.integers(0, 3) else np.asarray(float(rng.uniform(0.3, 0.9)))
    return Sample("random", (metric, groups, overall), kwargs)


def _edges():
    return [
        Sample(
            "known value: two groups 0.9 and 0.7",
            (np.array([0.9, 0.7]), np.array([0, 1]), None),
            {"num_groups": 2},
            comment="M_all = 0.8, Δ = 0.2: 0.8/1.2",
        ),
        Sample(
            "equal group means",
            (np.array([0.9, 0.7, 0.8, 0.8]), np.array([0, 0, 1, 1]), None),
            {"num_groups": 2, "variant": "std"},
            flags=("EQUAL_GROUPS", "STD"),
        ),
        Sample(
            "ungrouped images",
            (np.array([0.9, 0.1, 0.6, 0.5, 0.7]), np.array([0, -1, 1, 2, -1]), None),
            {"num_groups": 3},
            flags=("UNGROUPED", "ONE_IMAGE_GROUPS"),
        ),
        Sample(
            "overall given",
            (np.array([0.9, 0.6, 0.8, 0.4]), np.array([0, 1, 2, 1]), np.asarray(0.75)),
            {"num_groups": 3, "alpha": 2.0, "variant": "std"},
            flags=("OVERALL_GIVEN", "STD"),
        ),
        Sample(
            "one group",
            (np.array([0.9, 0.6, 0.8]), np.array([0, 0, -1]), None),
            {"num_groups": 1},
        ),
    ]


def _errors():
    metric = np.array([0.9, 0.7, 0.8])
    return [
        ErrorCase(
            "an empty group",
            (metric, np.array([0, 0, 2]), None),
            {"num_groups": 3},
            match="no image in group 1",
        ),
        ErrorCase(
            "a label at num_groups",
            (metric, np.array([0, 1, 2]), None),
            {"num_groups": 2},
            match="label 2",
        ),
        ErrorCase(
            "std with one group",
            (metric, np.array([0, 0, 0]), None),
            {"num_groups": 1, "variant": "std"},
            match="at least 2 groups",
        ),
    ]


register(
    OpCases(
        "equity_scaled_metric",
        dims={"N": (0, 10), "G": (1, 4)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        defaults={"overall": None, "alpha": 1.0, "variant": "sum"},
    )
)
