"""Conformance cases for `layer_adaptive_pruning_dp` (outputs compared exactly; the tests check the
dynamic program against brute force)."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, OpCases, Sample, register

NOTES = {
    "TIES": "equal summed distortions: the smallest total, then the lowest index in the last layer",
    "PADDED": "menus of different lengths padded with δ = +inf",
    "TARGET_ZERO": "T = 0: every layer takes its least distortion (pruning nothing is not forced)",
    "TARGET_MAX": "T = Σ_l max S_l: every layer pruned to its largest level",
    "ONE_LAYER": "L = 1: the least δ among levels ≥ T (additivity is exact)",
}


def _menus(rng, L, K):
    """Increasing pruning levels from 0 on a grid of step 1..3, with distortions growing in the
    level (as measured distortions do), at a drawn scale."""
    steps = rng.integers(1, 4, size=(L, K))
    steps[:, 0] = 0
    levels = np.cumsum(steps, axis=1)
    growth = rng.exponential(1.0, size=(L, K))
    growth[:, 0] = 0.0
    distortion = np.cumsum(growth, axis=1) * float(rng.choice([1e-4, 1.0, 1e3]))
    return distortion, levels


def _random(rng, L, K):
    distortion, levels = _menus(rng, L, K)
    if rng.random() < 0.3:  # not monotone: measured distortions can be noisy
        distortion = distortion + rng.standard_normal(distortion.shape) * distortion.std()
    target = int(rng.integers(0, levels[:, -1].sum() + 1))
    return Sample("random", (distortion, levels), {"target": target})


def _edges():
    rng = np.random.default_rng(87)
    distortion, levels = _menus(rng, 4, 5)
    return [
        Sample(
            "known value: a tie broken in the last layer",
            (np.array([[0.0, 1.0, 5.0], [0.0, 2.0, 3.0]]), np.array([[0, 1, 2], [0, 1, 2]])),
            {"target": 2},
            flags=("TIES",),
            comment="(1, 1) and (0, 2) both cost 3: the last layer's lowest index, 1",
        ),
        Sample(
            "padded menus",
            (
                np.array([[0.0, 0.5, np.inf, np.inf], [0.0, 0.2, 0.3, 2.0]]),
                np.array([[0, 4, 0, 0], [0, 1, 2, 6]]),
            ),
            {"target": 5},
            flags=("PADDED",),
            comment="(1, 1) prunes 5 at 0.7; (0, 3) prunes 6 at 2.0",
        ),
        Sample("target 0", (distortion, levels), {"target": 0}, flags=("TARGET_ZERO",)),
        Sample(
            "target at the maximum",
            (distortion, levels),
            {"target": int(levels[:, -1].sum())},
            flags=("TARGET_MAX",),
        ),
        Sample(
            "one layer",
            (np.array([[0.0, 0.3, 0.2, 0.9]]), np.array([[0, 2, 3, 5]])),
            {"target": 1},
            flags=("ONE_LAYER",),
            comment="levels ≥ 1: 0.3, 0.2, 0.9 → the level 3 (index 2)",
        ),
        Sample(
            "equal menus, equal distortions",
            (np.ones((3, 3)) * np.array([0.0, 1.0, 2.0]), np.tile(np.array([0, 2, 4]), (3, 1))),
            {"target": 6},
            flags=("TIES",),
        ),
    ]


def _errors():
    distortion, levels = np.array([[0.0, 1.0], [0.0, 2.0]]), np.array([[0, 2], [0, 3]])
    return [
        ErrorCase("target beyond every level", (distortion, levels), {"target": 6}, match="at most .* = 5"),
        ErrorCase(
            "a layer without a level",
            (np.array([[0.0, 1.0], [np.inf, np.inf]]), levels),
            {"target": 1},
            match="none in layer 1",
        ),
    ]


register(
    OpCases(
        "layer_adaptive_pruning_dp",
        dims={"L": (1, 5), "K": (1, 5)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        defaults={},
    )
)
