"""Conformance cases for `quantile_sort`, `isotonic_regression_pav` and `cqr_calibration`."""

from __future__ import annotations

import numpy as np

from ..._cases import OpCases, Sample, register

NOTES = {
    "SORTED": "already nondecreasing: sorting and PAV return the input (identity VJP)",
    "REVERSED": "strictly decreasing: one block, every output the (weighted) mean",
    "TIES": "equal values: the stable sort keeps their order; PAV's blocks with equal means stay "
    "apart (a kink: finite differences are one-sided there)",
    "ONE": "a single value (L = 1 / n = 1)",
    "WEIGHTED": "weights: block means are weighted, and so is the VJP (w_i Σ ḡ / Σ w)",
    "DUPLICATE_X": "equal x: one fitted value for the tied points (merged first, as scikit-learn)",
    "INFINITE_Q": "⌈(n + 1)(1 − α)⌉ > n: Q = +∞, the intervals become the whole line",
    "NEGATIVE_Q": "targets well inside their intervals: Q < 0, the intervals shrink",
}


def _batch_shape(rng, B, last):  # noqa: N803
    shapes = [(last,), (B, last), (B, 2, last)]
    return shapes[int(rng.integers(0, len(shapes)))]


# -- quantile_sort -----------------------------------------------------------------------------
def _sort_random(rng, B, L):  # noqa: N803
    shape = _batch_shape(rng, B, L)
    base = np.sort(rng.standard_normal(shape), axis=-1)
    crossed = base + float(rng.choice([0.1, 1.0])) * rng.standard_normal(shape)  # some crossings
    return Sample("random", (crossed,))


def _sort_edges():
    return [
        Sample("known value", (np.array([[0.5, 0.2, 0.9]]),), comment="(0.2, 0.5, 0.9)"),
        Sample("already sorted", (np.array([-1.0, 0.0, 0.5, 2.0]),), flags=("SORTED",)),
        Sample("reversed", (np.array([[3.0, 2.0, 1.0, -4.0], [0.3, 0.2, 0.1, 0.0]]),), flags=("REVERSED",)),
        Sample("ties", (np.array([0.5, 0.1, 0.5, 0.1]),), flags=("TIES",), fd=False),
        Sample("L = 1", (np.array([[0.3], [-2.0]]),), flags=("ONE",)),
    ]


register(
    OpCases(
        "quantile_sort",
        dims={"B": (1, 4), "L": (1, 7)},
        random=_sort_random,
        edges=_sort_edges,
        notes=NOTES,
        defaults={},
    )
)


# -- isotonic_regression_pav ---------------------------------------------------------------------
def _pav_random(rng, B, n):  # noqa: N803
    shape = _batch_shape(rng, B, n)
    y = np.cumsum(rng.standard_normal(shape) * 0.3, axis=-1) + rng.standard_normal(shape)
    weights = None if rng.integers(0, 2) else rng.uniform(0.2, 3.0, size=shape)
    x = None
    if rng.integers(0, 3) == 0:  # abscissae with repeated values
        x = rng.integers(0, max(n // 2, 1) + 1, size=shape).astype(np.float64)
    return Sample("random", (y, weights, x))


def _pav_edges():
    rng = np.random.default_rng(76)
    y = rng.standard_normal((3, 6))
    return [
        Sample("known value: 1, 3, 2, 4", (np.array([1.0, 3.0, 2.0, 4.0]),), comment="1, 2.5, 2.5, 4"),
        Sample("already nondecreasing", (np.array([-2.0, -1.0, 0.5, 3.0]),), flags=("SORTED",)),
        Sample("strictly decreasing", (np.array([[4.0, 3.0, 1.0, -2.0]]),), flags=("REVERSED",)),
        Sample(
            "weighted, decreasing",
            (np.array([3.0, 1.0]), np.array([1.0, 3.0])),
            flags=("REVERSED", "WEIGHTED"),
            comment="(3·1 + 1·3)/4 = 1.5 for both",
        ),
        Sample("equal values", (np.array([2.0, 2.0, 1.0, 1.0, 3.0]),), flags=("TIES",), fd=False),
        Sample(
            "duplicate x",
            (y, rng.uniform(0.5, 2.0, size=(3, 6)), np.array([[0.0, 1.0, 1.0, 2.0, 2.0, 2.0]] * 3)),
            flags=("DUPLICATE_X", "WEIGHTED"),
        ),
        Sample(
            "x in reverse order",
            (y, None, np.array([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]] * 3)),
            flags=("DUPLICATE_X",),
            comment="the fit is nondecreasing in x, i.e. nonincreasing in the given order",
        ),
        Sample("n = 1", (np.array([[0.7], [-1.0]]),), flags=("ONE",)),
    ]


register(
    OpCases(
        "isotonic_regression_pav",
        dims={"B": (1, 3), "n": (1, 8)},
        random=_pav_random,
        edges=_pav_edges,
        notes=NOTES,
        defaults={"weights": None, "x": None},
    )
)


# -- cqr_calibration -----------------------------------------------------------------------------
def _cqr_random(rng, n, m):
    center = rng.standard_normal(n)
    width = rng.uniform(0.5, 2.0, size=n)
    y = center + rng.standard_normal(n) * float(rng.choice([0.5, 1.0, 2.0]))
    test_center = rng.standard_normal(m)
    test_width = rng.uniform(0.5, 2.0, size=m)
    kwargs = {"alpha": float(rng.choice([0.05, 0.1, 0.2, 0.5, rng.uniform(0.01, 0.99)]))}
    return Sample(
        "random",
        (
            center - width / 2,
            center + width / 2,
            y,
            test_center - test_width / 2,
            test_center + test_width / 2,
        ),
        kwargs,
    )


def _cqr_edges():
    rng = np.random.default_rng(19)
    lower, upper = -np.ones(9), np.ones(9)
    return [
        Sample(
            "known value: E = −0.5, 1, 1.5, 0.2; α = 0.4",
            (np.zeros(4), np.ones(4), np.array([0.5, 2.0, -1.5, 1.2]), np.array([0.0]), np.array([1.0])),
            {"alpha": 0.4},
            comment="k = 3: Q = 1, interval [−1, 2]",
        ),
        Sample(
            "k > n: Q = +∞",
            (lower[:3], upper[:3], rng.standard_normal(3), np.array([0.0, 1.0]), np.array([1.0, 3.0])),
            {"alpha": 0.1},
            flags=("INFINITE_Q",),
            comment="⌈4·0.9⌉ = 4 > 3",
        ),
        Sample(
            "targets inside: Q < 0",
            (lower, upper, rng.uniform(-0.2, 0.2, size=9), np.array([-2.0]), np.array([2.0])),
            {"alpha": 0.2},
            flags=("NEGATIVE_Q",),
        ),
    ]


register(
    OpCases(
        "cqr_calibration",
        dims={"n": (1, 12), "m": (1, 4)},
        random=_cqr_random,
        edges=_cqr_edges,
        notes=NOTES,
        defaults={},
    )
)
