"""Conformance cases for `loss_based_sample_weights`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, OpCases, Sample, register

SCORED = ("linupper", "quadratic", "extremes", "identity")
STRATEGIES = (*SCORED, "uniform")

NOTES = {
    "MISSING_STEP": "r = 1e-3: f/r reaches 1000 and a softmax without the max subtraction "
    "overflows (exp(1000) = inf, weights nan)",
    "ALL_EQUAL": "all losses equal: D = 1e-6 guard, ℓ̃ = 0, uniform weights (an unguarded D divides 0 by 0)",
    "ONE_SAMPLE": "n = 1: the weight is exactly 1",
    "LARGE_LOSSES": "losses 1e4 + O(1): the published ℓ̃ = 2δℓ/D − δ(ℓmax + ℓmin)/D cancels "
    "(two terms of ~2e4 for a result in [−δ, δ]); float32 keeps ~1 digit",
    "SPREAD_BELOW_GUARD": "spread 5e-7 < 1e-6: D is the guard, ℓ̃ spans only [−δ/2, δ/2]",
    "IDENTITY": "the official code's 'uniform' strategy: ℓ̃ itself, not uniform weights",
}


def _random(rng, N):
    strategy = str(rng.choice(STRATEGIES))
    losses = rng.gamma(2.0, 1.0, size=N) * float(rng.choice([0.1, 1.0, 5.0])) + float(rng.uniform(0, 10))
    kwargs = {
        "strategy": strategy,
        "r": float(10 ** rng.uniform(-1.3, 1)),
        "delta": float(rng.choice([1.0, 0.5, 2.0])),
    }
    return Sample("random", (losses,), kwargs)


def _edges():
    rng = np.random.default_rng(5)
    spread_losses = 3.0 + rng.uniform(0, 1, size=16)
    samples = [
        Sample(
            f"r = 1e-3, {strategy}",
            (spread_losses,),
            {"strategy": strategy, "r": 1e-3},
            flags=("MISSING_STEP",),
            comment="the weight concentrates on the argmax of f; exp(f/r) alone overflows",
        )
        for strategy in SCORED
    ]
    samples += [
        Sample(
            f"all losses equal, {strategy}",
            (np.full(5, 2.75),),
            {"strategy": strategy, "r": 0.1},
            flags=("ALL_EQUAL",),
            comment="weights exactly 1/5",
        )
        for strategy in SCORED
    ]
    samples += [
        Sample("one sample", (np.array([1.7]),), {"strategy": "extremes", "r": 0.2}, flags=("ONE_SAMPLE",)),
        Sample(
            "one sample, uniform",
            (np.array([1.7]),),
            {"strategy": "uniform", "r": 0.2},
            flags=("ONE_SAMPLE",),
        ),
        Sample(
            "losses 1e4 + O(1), quadratic",
            (1e4 + rng.uniform(0, 2, size=12),),
            {"strategy": "quadratic", "r": 0.1},
            flags=("LARGE_LOSSES",),
            comment="in float32 the inputs keep ~3 digits of the O(1) part; the reference sees the same",
        ),
        Sample(
            "losses 1e4 + O(0.05), identity",
            (1e4 + np.linspace(0, 0.05, 9),),
            {"strategy": "identity", "r": 0.5, "delta": 2.0},
            flags=("LARGE_LOSSES",),
            comment="float32: the published form's ℓ̃ is off by 0.08 here, this one by 3e-8",
        ),
        Sample(
            "spread below the 1e-6 guard",
            (2.0 + np.array([0.0, 2.5e-7, 5e-7, 1e-7]),),
            {"strategy": "identity", "r": 0.5},
            flags=("SPREAD_BELOW_GUARD",),
        ),
        Sample(
            "identity strategy upweights hard samples",
            (np.array([1.0, 2.0, 4.0]),),
            {"strategy": "identity", "r": 1.0},
            flags=("IDENTITY",),
            comment="weights ∝ exp([−1, −1/3, 1])",
        ),
        Sample("uniform", (rng.uniform(1, 3, size=7),), {"strategy": "uniform", "r": 1.0}),
        Sample("large temperature", (rng.uniform(1, 3, size=7),), {"strategy": "extremes", "r": 1e6}),
    ]
    return samples


def _errors():
    losses = np.array([1.0, 2.0, 3.0])
    return [
        ErrorCase("r = 0", (losses,), {"strategy": "linupper", "r": 0.0}, match=r"'r'.*> 0"),
        ErrorCase("negative r", (losses,), {"strategy": "linupper", "r": -1.0}, match=r"'r'.*> 0"),
        ErrorCase("infinite r", (losses,), {"strategy": "linupper", "r": float("inf")}, match=r"'r'.*finite"),
        ErrorCase(
            "delta = 0", (losses,), {"strategy": "quadratic", "r": 1.0, "delta": 0.0}, match=r"'delta'"
        ),
        ErrorCase(
            "unknown strategy",
            (losses,),
            {"strategy": "mid", "r": 1.0},
            match=r"'strategy'.*one of 'linupper'",
        ),
        ErrorCase("strategy missing", (losses,), {"r": 1.0}, match="strategy"),
        ErrorCase("r missing", (losses,), {"strategy": "linupper"}, match="'r'"),
        ErrorCase(
            "2-D losses",
            (np.ones((2, 3)),),
            {"strategy": "linupper", "r": 1.0},
            match=r"'losses'.*shape \(N,\)",
        ),
        ErrorCase(
            "integer losses",
            (np.array([1, 2, 3]),),
            {"strategy": "linupper", "r": 1.0},
            match=r"'losses'.*float32 or float64",
        ),
        ErrorCase("no samples", (np.zeros(0),), {"strategy": "linupper", "r": 1.0}, match="N >= 1"),
    ]


register(
    OpCases(
        "loss_based_sample_weights",
        dims={"N": (1, 40)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
    )
)
