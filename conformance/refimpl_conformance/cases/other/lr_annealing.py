"""Conformance cases for `lr_annealing_areas` and `lr_annealing_loss_curve`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "CONSTANT": "a constant rate: S_2 = 0 exactly",
    "STEP_DECAY": "one drop Δ at step k: S_2 is the geometric sum Δ(1 − λ^{s−k+1})/(1 − λ)",
    "RISING": "a rising rate: negative m and S_2",
    "WARMUP": "warm-up counted at η_max (as_max) versus the actual ramp",
    "NO_MOMENTUM": "λ = 0: m_i = Δ_i, S_2(s) = η_0 − η_s",
    "ZERO_START": "η_0 = 0: S_1(0) = 0 (the loss curve refuses it)",
}


def _schedule(rng, N):
    peak = float(10 ** rng.uniform(-4, -2))
    steps = np.arange(N)
    kind = str(rng.choice(["cosine", "step", "wsd"]))
    if kind == "cosine":
        lrs = peak * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * steps / N)))
    elif kind == "step":
        lrs = np.where(steps < N // 2, peak, peak * 0.3)
    else:  # warmup-stable-decay
        lrs = np.where(steps < 2 * N // 3, peak, peak * np.linspace(1, 0.05, N)[steps])
    return lrs


def _random(rng, N):
    lrs = _schedule(rng, N)
    warmup_steps = int(rng.integers(0, max(N // 3, 1)))
    lrs[:warmup_steps] *= np.linspace(0.1, 1, warmup_steps + 1)[:-1]
    kwargs = {
        "decay_factor": float(rng.choice([0.999, 0.99, 0.9])),
        "warmup_steps": warmup_steps,
        "warmup": str(rng.choice(["as_max", "actual"])),
    }
    return Sample("random", (lrs,), kwargs)


def _edges():
    return [
        Sample("constant rate", (np.full(6, 3e-4),), flags=("CONSTANT",)),
        Sample(
            "step decay",
            (np.array([1.0, 1.0, 1.0, 0.25, 0.25, 0.25, 0.25]),),
            {"decay_factor": 0.9},
            flags=("STEP_DECAY",),
        ),
        Sample("rising rate", (np.array([0.1, 0.2, 0.4, 0.8]),), flags=("RISING",)),
        Sample(
            "warm-up as η_max",
            (np.array([0.25, 0.5, 1.0, 1.0, 0.5]),),
            {"warmup_steps": 2},
            flags=("WARMUP",),
        ),
        Sample(
            "warm-up actual",
            (np.array([0.25, 0.5, 1.0, 1.0, 0.5]),),
            {"warmup_steps": 2, "warmup": "actual"},
            flags=("WARMUP", "RISING"),
        ),
        Sample("λ = 0", (np.array([1.0, 0.5, 0.75, 0.125]),), {"decay_factor": 0.0}, flags=("NO_MOMENTUM",)),
        Sample("η_0 = 0", (np.array([0.0, 1.0, 1.0]),), flags=("ZERO_START", "RISING")),
        Sample("one step", (np.array([0.5]),), {"warmup_steps": 1}),
    ]


def _errors():
    return [
        ErrorCase("negative rate", (np.array([1.0, -0.1]),), match=r"'lrs'.*>= 0"),
        ErrorCase(
            "warm-up longer than the schedule", (np.ones(3),), {"warmup_steps": 4}, match=r"'warmup_steps'"
        ),
    ]


def _known():
    return [
        Known(
            "λ = ½, rates (2, 2, 1, 1)",
            (np.array([2.0, 2.0, 1.0, 1.0]),),
            {"decay_factor": 0.5},
            values={"S1": [2.0, 4.0, 5.0, 6.0], "S2": [0.0, 0.0, 1.0, 1.5]},
            source="by hand: m = (0, 0, 1, ½)",
            rtol=1e-15,
        )
    ]


register(
    OpCases(
        "lr_annealing_areas",
        dims={"N": (1, 40)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={"decay_factor": 0.999, "warmup_steps": 0, "warmup": "as_max"},
    )
)


# -- the loss curve --------------------------------------------------------------------------
CURVE_NOTES = {
    "ALPHA_ZERO": "α = 0: S_1^{−α} = 1, ᾱ = −A Σ L̄ ln S_1 still nonzero",
    "S1_BELOW_ONE": "S_1 < 1: ln S_1 < 0, the power exceeds 1",
    "FITTED": "the paper's fitted magnitudes (L_0 ≈ 2.8, A ≈ 0.4, α ≈ 0.5, C ≈ 1e3·η scale)",
}


def _params(rng):
    return tuple(
        np.array(v)
        for v in (rng.uniform(1.5, 3.5), rng.uniform(0.1, 2.0), rng.uniform(0.1, 1.0), rng.uniform(0.0, 5.0))
    )


def _curve_random(rng, N):
    import refimpl

    # S_1, S_2 of a realistic schedule (areas of order the step count), from the op itself
    s1, s2 = refimpl.other.lr_annealing_areas(_schedule(rng, N) / 1e-3)
    return Sample("random", (s1, s2, *_params(rng)))


def _curve_edges():
    s1 = np.array([0.5, 1.0, 2.0, 8.0])
    s2 = np.array([0.0, 0.0, 0.3, 1.2])
    return [
        Sample(
            "α = 0",
            (s1, s2, np.array(2.0), np.array(1.0), np.array(0.0), np.array(0.5)),
            flags=("ALPHA_ZERO",),
        ),
        Sample(
            "S_1 < 1",
            (s1 * 0.01, s2, np.array(2.0), np.array(0.3), np.array(0.8), np.array(1.0)),
            flags=("S1_BELOW_ONE",),
        ),
        Sample(
            "fitted magnitudes",
            (
                np.array([10.0, 100.0, 1000.0, 5000.0]),
                np.array([0.0, 0.0, 0.01, 0.2]),
                np.array(2.8),
                np.array(0.4),
                np.array(0.5),
                np.array(3.0),
            ),
            flags=("FITTED",),
        ),
        Sample(
            "one step",
            (np.array([3.0]), np.array([0.0]), np.array(1.0), np.array(1.0), np.array(1.0), np.array(1.0)),
        ),
    ]


def _curve_errors():
    p = tuple(np.array(v) for v in (2.0, 1.0, 0.5, 0.1))
    return [
        ErrorCase("S_1 = 0", (np.array([0.0, 1.0]), np.zeros(2), *p), match=r"'S1'.*> 0"),
    ]


def _curve_known():
    p = tuple(np.array(v) for v in (2.0, 1.0, 0.5, 0.1))
    return [
        Known(
            "hand value",
            (np.array([1.0, 4.0]), np.array([0.0, 2.0]), *p),
            values={"loss": [3.0, 2.3]},
            source="by hand: 2 + 1·1 − 0, 2 + 4^{−½} − 0.2",
            rtol=1e-15,
        )
    ]


register(
    OpCases(
        "lr_annealing_loss_curve",
        dims={"N": (1, 12)},
        random=_curve_random,
        edges=_curve_edges,
        errors=_curve_errors,
        known=_curve_known,
        notes=CURVE_NOTES,
    )
)
