"""Conformance cases for `weight_aligning` and `wa_weight_clipping`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, OpCases, Sample, register

NOTES = {
    "ALIGNED": "the new rows already have the old mean norm: γ = 1 (a second alignment)",
    "CLAMP": "official=True with γ > 1: clamped to 1 (ℓ1 norms)",
    "ZERO_OLD": "old rows all zero: γ = 0, the new rows become 0",
    "LARGE": "entries ~1e20: ‖w‖₂² overflows float32, the norms are computed scaled",
    "ONE_NEW": "a single new class",
    "NEGATIVE": "a negative zero and negative entries: max(W, 0)",
}


def _aligning_random(rng, K, D):  # noqa: N803
    num_old = int(rng.integers(1, K))
    weight = rng.standard_normal((K, D)) * float(rng.choice([0.1, 1.0, 5.0]))
    weight[num_old:] *= float(rng.choice([0.5, 1.5, 3.0]))  # new classes longer (or shorter)
    return Sample("random", (weight,), {"num_old": num_old, "official": bool(rng.integers(0, 2))})


def _aligning_edges():
    rng = np.random.default_rng(83)
    weight = rng.standard_normal((6, 4))
    aligned = weight.copy()
    old = np.linalg.norm(weight[:4], axis=1).mean()
    new = np.linalg.norm(weight[4:], axis=1).mean()
    aligned[4:] *= old / new
    return [
        Sample(
            "known value: old norm 5, new norm 10",
            (np.array([[3.0, 4.0], [0.0, 10.0]]),),
            {"num_old": 1},
            comment="γ = 0.5",
        ),
        Sample("already aligned", (aligned,), {"num_old": 4}, flags=("ALIGNED",)),
        Sample(
            "official: γ clamped to 1",
            (np.array([[3.0, 4.0], [0.0, 1.0]]),),
            {"num_old": 1, "official": True},
            flags=("CLAMP",),
        ),
        Sample(
            "zero old rows",
            (np.concatenate([np.zeros((2, 4)), weight[:3]]),),
            {"num_old": 2},
            flags=("ZERO_OLD",),
        ),
        Sample("entries ~1e20", (weight * 1e20,), {"num_old": 3}, flags=("LARGE",)),
        Sample("one new class", (weight,), {"num_old": 5, "official": True}, flags=("ONE_NEW",)),
    ]


def _aligning_errors():
    weight = np.array([[1.0, 2.0], [0.0, 0.0], [0.0, 0.0]])
    return [
        ErrorCase("num_old = K", (weight,), {"num_old": 3}, match="at least one new class"),
        ErrorCase("all new rows zero", (weight,), {"num_old": 1}, match="all zero"),
    ]


register(
    OpCases(
        "weight_aligning",
        dims={"K": (2, 7), "D": (1, 6)},
        random=_aligning_random,
        edges=_aligning_edges,
        errors=_aligning_errors,
        notes=NOTES,
        defaults={"official": False},
    )
)


def _clipping_random(rng, K, D):  # noqa: N803
    return Sample("random", (rng.standard_normal((K, D)),))


def _clipping_edges():
    return [
        Sample(
            "known value",
            (np.array([[0.5, -1.0], [-0.2, 2.0]]),),
            comment="[[0.5, 0], [0, 2]]",
        ),
        Sample(
            "negative zero and negatives", (np.array([-0.0, 0.0, -3.0, 1e-30, -1e-30]),), flags=("NEGATIVE",)
        ),
        Sample("a 3-d weight", (np.linspace(-1.0, 1.0, 24).reshape(2, 3, 4),)),
    ]


register(
    OpCases(
        "wa_weight_clipping",
        dims={"K": (1, 6), "D": (1, 6)},
        random=_clipping_random,
        edges=_clipping_edges,
        notes=NOTES,
        defaults={},
    )
)
