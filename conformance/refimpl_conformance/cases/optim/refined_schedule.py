"""Conformance cases for `linear_decay_schedule` and `refined_schedule`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, OpCases, Sample, register

NOTES = {
    "LAST_STEP": "t = T: η_T = 0 (the paper counts t = 1..T); t = 0 gives η",
    "CONSTANT": "constant norms: the refined schedule is exactly linear decay, (T − t)/(T − 1)",
    "RISING_END": "norms rising near the end: the schedule anneals faster than linear decay",
    "LARGE_START": "large early norms (the usual case): the schedule ramps up first, a warm-up by itself",
    "SMALL_START": "small early norms: w = Ĝ^(−2) is large there, so are the first steps (no warm-up)",
    "MEDIAN_PADDING": "a spike at the end: the official filter mirrors the end (NumPy 'reflect') and "
    "repeats the start (SciPy 'nearest'); another padding moves the last values",
    "RESAMPLE": "num_points given: a short run is interpolated up before filtering, a long one filtered "
    "at full length and thinned after; the width rule uses num_points, not T",
    "ZERO_NORM": "a zero norm: refused with eps = 0 (infinite weight); eps > 0 guards it",
    "L1": "norm='l1': weights ‖g‖₁^(−1) (Adam), not the square",
}
FLOAT64_ONLY = ("float64",)  # integer steps in, float64 learning rates out: no float32 variant


# -- linear decay ----------------------------------------------------------------------------
def _linear_random(rng, N):
    total = int(rng.choice([1, 10, 1000, int(rng.integers(1, 10**6))]))
    steps = rng.integers(0, total + 1, size=N)
    kwargs = {"total_steps": total, "lr": float(rng.choice([1.0, 0.1, 3e-4, rng.uniform(0, 2)]))}
    return Sample("random", (steps,), kwargs, dtypes=FLOAT64_ONLY)


def _linear_edges():
    return [
        Sample(
            "first and last step",
            (np.array([0, 1, 50, 99, 100]),),
            {"total_steps": 100, "lr": 0.5},
            flags=("LAST_STEP",),
            dtypes=FLOAT64_ONLY,
            comment="[0.5, 0.495, 0.25, 0.005, 0]",
        ),
        Sample("T = 1", (np.array([0, 1]),), {"total_steps": 1, "lr": 2.0}, dtypes=FLOAT64_ONLY),
        Sample("lr = 0", (np.array([3, 0]),), {"total_steps": 4, "lr": 0.0}, dtypes=FLOAT64_ONLY),
    ]


def _linear_errors():
    return [
        ErrorCase("step past T", (np.array([0, 5]),), {"total_steps": 4, "lr": 1.0}, match=r"\[0, 4\]"),
    ]


register(
    OpCases(
        "linear_decay_schedule",
        dims={"N": (1, 8)},
        random=_linear_random,
        edges=_linear_edges,
        errors=_linear_errors,
        notes=NOTES,
        defaults={},
    )
)


# -- refinement ------------------------------------------------------------------------------
def _norm_sequence(rng, T):
    """Positive norms shaped like a training run's: decaying, rising, bumpy or noisy."""
    t = np.linspace(0, 1, T)
    shape = int(rng.integers(0, 4))
    if shape == 0:
        base = 1 + 4 * np.exp(-8 * t)  # large early, settling
    elif shape == 1:
        base = 0.5 + t**3 * 3  # rising at the end
    elif shape == 2:
        base = 0.2 + np.minimum(t * 10, 1.0)  # small at the start
    else:
        base = np.ones(T)
    noisy = base * np.exp(0.3 * rng.standard_normal(T))
    return noisy * float(10 ** rng.uniform(-3, 3))


def _refined_random(rng, T):
    norms = _norm_sequence(rng, T)
    kwargs = {
        "width": rng.choice([None, 1, 3, 5, 2 * int(rng.integers(0, T)) + 1]),
        "num_points": rng.choice([None, None, int(rng.integers(2, 2 * T + 2))]),
        "norm": str(rng.choice(["l2", "l1"])),
        "eps": float(rng.choice([0.0, 0.0, 1e-3])),
    }
    kwargs = {k: (int(v) if v is not None and k in ("width", "num_points") else v) for k, v in kwargs.items()}
    return Sample("random", (norms,), kwargs)


def _refined_edges():
    rng = np.random.default_rng(41)
    spike = np.ones(12)
    spike[-1] = 5.0
    spike[-3] = 0.2
    run = 1 + 4 * np.exp(-8 * np.linspace(0, 1, 30)) + 0.1 * rng.standard_normal(30)
    return [
        Sample(
            "constant norms: linear decay",
            (np.full(6, 2.5),),
            flags=("CONSTANT",),
            comment="[1, .8, .6, .4, .2, 0]",
        ),
        Sample(
            "known value: G = [1, 2, 2]",
            (np.array([1.0, 2.0, 2.0]),),
            {"width": 1},
            comment="w = [1, 1/4, 1/4], η ∝ [1/2, 1/16, 0]: [1, 0.125, 0]",
        ),
        Sample("rising at the end", (np.linspace(1.0, 4.0, 20) ** 3,), {"width": 3}, flags=("RISING_END",)),
        Sample("large at the start", (np.maximum(np.linspace(6.0, 0.5, 20), 1.0),), flags=("LARGE_START",)),
        Sample("small at the start", (np.minimum(np.linspace(0.05, 3.0, 20), 1.0),), flags=("SMALL_START",)),
        Sample("spike at the end, width 5", (spike,), {"width": 5}, flags=("MEDIAN_PADDING",)),
        Sample("width wider than the run", (run[:7],), {"width": 11}, flags=("MEDIAN_PADDING",)),
        Sample("short run stretched to 50 points", (run,), {"num_points": 50}, flags=("RESAMPLE",)),
        Sample("long run thinned to 12 points", (run,), {"num_points": 12}, flags=("RESAMPLE",)),
        Sample("official width, 30 steps", (run,), flags=("RESAMPLE",), comment="width 2⌊3/2⌋ + 1 = 3"),
        Sample("ℓ1 norms", (run,), {"norm": "l1", "width": 5}, flags=("L1",)),
        Sample(
            "zero norm with eps",
            (np.array([1.0, 0.0, 0.0, 2.0, 1.5]),),
            {"width": 1, "eps": 1e-2},
            flags=("ZERO_NORM",),
        ),
        Sample("T = 2", (np.array([3.0, 1.0]),), {"width": 1}, comment="η = [w1·w2, 0]: [1, 0]"),
    ]


def _refined_errors():
    return [
        ErrorCase("one norm", (np.array([1.0]),), match="T >= 2"),
        ErrorCase("even width", (np.ones(6),), {"width": 4}, match="odd"),
        ErrorCase("negative norm", (np.array([1.0, -0.5, 2.0]),), match="norms >= 0"),
        ErrorCase("zero norm without eps", (np.array([1.0, 0.0, 2.0]),), match="pass eps > 0"),
    ]


register(
    OpCases(
        "refined_schedule",
        dims={"T": (2, 40)},
        random=_refined_random,
        edges=_refined_edges,
        errors=_refined_errors,
        notes=NOTES,
        defaults={"width": None, "num_points": None, "norm": "l2", "eps": 0.0},
    )
)
