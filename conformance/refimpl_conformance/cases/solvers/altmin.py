"""Conformance cases for `altmin_row_update`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "FEW_OBSERVED": "a row with fewer than k observations: λ = 0 gives the minimum-norm solution",
    "EMPTY_ROW": "a row with no observation: u_i = 0",
    "DUPLICATES": "Ω sampled with replacement: multiplicity 2 weighs an entry twice",
    "UNOBSERVED_PLACEHOLDER": "huge values where W = 0 must never be read",
    "RIDGE": "λ > 0: the ridge solution",
}


def _random(rng, n, m, k):
    V = rng.standard_normal((m, k))
    M = rng.standard_normal((n, k)) @ V.T + 0.1 * rng.standard_normal((n, m))
    W = (rng.random((n, m)) < 0.7).astype(float) * rng.choice([1.0, 2.0], size=(n, m), p=[0.8, 0.2])
    W[:, :k] = 1.0  # every row has at least k observations: a unique solution in both dtypes
    return Sample("random", (M, W, V), {"lam": float(rng.choice([0.0, 0.0, 0.1, 1.0]))})


def _edges():
    rng = np.random.default_rng(21)
    V = rng.standard_normal((6, 3))
    M = rng.standard_normal((4, 3)) @ V.T
    few = np.ones((4, 6))
    few[1, 1:] = 0.0  # row 1: one observation for k = 3
    empty = np.ones((4, 6))
    empty[2] = 0.0
    placeholder = M.copy()
    mask = (rng.random((4, 6)) < 0.6).astype(float)
    mask[:, :3] = 1.0
    placeholder[mask == 0] = 1e30
    return [
        Sample("one observation, k = 3", (M, few, V), flags=("FEW_OBSERVED",)),
        Sample("empty row", (M, empty, V), flags=("EMPTY_ROW",)),
        Sample(
            "duplicate entries",
            (M + 0.1 * rng.standard_normal(M.shape), 1.0 + (mask > 0), V),
            flags=("DUPLICATES",),
        ),
        Sample("1e30 where unobserved", (placeholder, mask, V), flags=("UNOBSERVED_PLACEHOLDER",)),
        Sample("ridge", (M, mask, V), {"lam": 2.5}, flags=("RIDGE",)),
    ]


def _errors():
    return [
        ErrorCase(
            "negative weight",
            (np.ones((2, 2)), np.array([[1.0, -1.0], [1.0, 1.0]]), np.ones((2, 1))),
            match=r"'W'.*>= 0",
        ),
    ]


def _known():
    return [
        Known(
            "documented example",
            (np.array([[2.0, 4.0, 9.0]]), np.array([[1.0, 1.0, 0.0]]), np.array([[1.0], [2.0], [3.0]])),
            values={"U": [[2.0]], "objective": 0.0},
            source="by hand: u = (2·1 + 4·2)/(1 + 4)",
            atol=1e-15,
        ),
        Known(
            "weights and ridge",
            (np.array([[1.0, 3.0]]), np.array([[2.0, 1.0]]), np.array([[1.0], [1.0]])),
            {"lam": 1.0},
            values={"U": [[1.25]], "objective": 2 * 0.25**2 + 1.75**2 + 1.25**2},
            source="by hand: u = (2·1 + 1·3)/(2 + 1 + 1) = 5/4",
        ),
    ]


register(
    OpCases(
        "altmin_row_update",
        dims={"n": (1, 5), "m": (3, 8), "k": (1, 3)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={"lam": 0.0},
    )
)
