"""Conformance cases for `gradient_noise`."""

from __future__ import annotations

import numpy as np

from ..._cases import OpCases, Sample, register

NOTES = {
    "STEP_BASE": "the first update (step = 0): σ² = η with step_base = 0, η/2^γ with step_base = 1",
    "LATE": "step 10⁶: σ² = η/(1 + t)^γ ≈ η·5e-4, the noise almost gone",
    "NO_NOISE": "ξ = 0: the gradient passes unchanged",
    "NO_DECAY": "γ = 0: σ² = η at every step",
    "EMPTY": "a gradient tensor with no elements: nothing to add, no crash",
}


def _shape(rng, rank, size):
    return tuple(int(d) for d in rng.integers(1, size + 1, size=rank))


def _random(rng, rank, size):
    shape = _shape(rng, rank, size)
    g = np.asarray(rng.standard_normal(shape) * float(10 ** rng.uniform(-3, 1)))
    xi = np.asarray(rng.standard_normal(shape))
    kwargs = {
        "step": int(rng.choice([0, 1, 7, 1000, int(rng.integers(0, 100_000))])),
        "eta": float(rng.choice([0.01, 0.3, 1.0, 10 ** rng.uniform(-4, 0)])),
        "step_base": int(rng.choice([0, 1])),
        "gamma": float(rng.choice([0.55, 0.0, 1.0, rng.uniform(0, 2)])),
    }
    return Sample("random", (g, xi), kwargs)


def _edges():
    rng = np.random.default_rng(33)
    g, xi = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    return [
        Sample(
            "first update, step_base = 0",
            (g, xi),
            {"step": 0, "eta": 0.3, "step_base": 0},
            flags=("STEP_BASE",),
            comment="σ = √0.3",
        ),
        Sample(
            "first update, step_base = 1",
            (g, xi),
            {"step": 0, "eta": 0.3, "step_base": 1},
            flags=("STEP_BASE",),
            comment="σ = √(0.3/2^0.55)",
        ),
        Sample(
            "known value: σ = 1/2",
            (np.array([1.0, -2.0]), np.array([0.5, 1.0])),
            {"step": 3, "eta": 5**0.5 / 4, "step_base": 1, "gamma": 0.5},
            comment="t = 4, σ² = (√5/4)/√5 = 1/4: [1.25, −1.5]",
        ),
        Sample("step 10⁶", (g, xi), {"step": 10**6, "eta": 1.0, "step_base": 1}, flags=("LATE",)),
        Sample("ξ = 0", (g, np.zeros_like(xi)), {"step": 5, "eta": 1.0, "step_base": 0}, flags=("NO_NOISE",)),
        Sample(
            "γ = 0", (g, xi), {"step": 50, "eta": 0.01, "step_base": 0, "gamma": 0.0}, flags=("NO_DECAY",)
        ),
        Sample("scalar gradient", (np.array(0.25), np.array(-1.5)), {"step": 2, "eta": 1.0, "step_base": 1}),
        Sample(
            "empty gradient tensor",
            (np.zeros((0, 2)), np.zeros((0, 2))),
            {"step": 0, "eta": 1.0, "step_base": 0},
            flags=("EMPTY",),
        ),
    ]


register(
    OpCases(
        "gradient_noise",
        dims={"rank": (0, 3), "size": (1, 6)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        defaults={"gamma": 0.55},
    )
)
