"""Conformance cases for CoLiDE: `colide_ev_score`, `colide_nv_score`, `colide_sigma`,
`colide_homotopy_fit`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, OpCases, Sample, register
from .acyclicity import dag_weights, sem_data

NOTES = {
    "PROFILED": "σ = σ*(W): the σ-cotangent of the score is 0 there (the envelope theorem)",
    "SMALL_SIGMA": "σ ≪ the residuals: the score and its W-gradient grow like 1/σ",
    "PERFECT_FIT": "a column fitted exactly: σ* = 0, raised to the floor when clamped",
    "NO_CLAMP": "clamp_sigma=False: the official unclamped σ",
    "ONE_NODE": "d = 1",
    "RESTART": "a stage whose s is below the previous stage's ρ(W∘W): the first step leaves the "
    "domain and the stage restarts with s + 0.1 and half the learning rate",
    "BACKTRACK": "a large learning rate at s = 1: a step leaves the domain and is halved",
    "NV": "non-equal variances: one σ per column",
}


def _centred(rng, n, d, scale=1.0):
    X = rng.standard_normal((n, d)) * scale
    return X - X.mean(axis=0)


def _data(rng, n, d):
    return _centred(rng, n, d, float(rng.choice([0.3, 1.0, 5.0]))), 0.5 * rng.standard_normal((d, d))


# -- the scores ----------------------------------------------------------------------------------------
def _ev_random(rng, n, d):
    X, W = _data(rng, n, d)
    return Sample("random", (X, W, np.asarray(float(rng.uniform(0.2, 3.0)))))


def _nv_random(rng, n, d):
    X, W = _data(rng, n, d)
    return Sample("random", (X, W, rng.uniform(0.2, 3.0, size=d)))


def _score_edges(nonequal):
    rng = np.random.default_rng(41)
    X = np.array([[1.0, 2.0], [-1.0, -2.0]])
    X5, W5 = _centred(rng, 30, 4), 0.3 * rng.standard_normal((4, 4))
    R = X5 - X5 @ W5
    if nonequal:
        profiled = np.sqrt(np.sum(R * R, axis=0) / 30)
        known = (X, np.zeros((2, 2)), np.array([1.0, 2.0]))
        small = np.full(4, 1e-3)
        one = (_centred(rng, 6, 1), np.array([[0.2]]), np.array([0.7]))
    else:
        profiled = np.asarray(np.sqrt(np.sum(R * R) / 120))
        known = (X, np.zeros((2, 2)), np.asarray(1.0))
        small = np.asarray(1e-3)
        one = (_centred(rng, 6, 1), np.array([[0.2]]), np.asarray(0.7))
    flags = ("NV",) if nonequal else ()
    return [
        Sample("known value: X = [[1, 2], [−1, −2]], W = 0", known, flags=flags, comment="hand-checked"),
        Sample("σ = σ*(W)", (X5, W5, profiled), flags=("PROFILED", *flags)),
        Sample(
            "σ = 1e-3",
            (X5, W5, small),
            flags=("SMALL_SIGMA", *flags),
            fd_step=1e-9,
            comment="the default step 1e-6 moves σ by 0.1 %: the differences would see the curvature",
        ),
        Sample("d = 1", one, flags=("ONE_NODE", *flags)),
    ]


def _score_errors(nonequal):
    X, W = np.array([[1.0, 2.0], [-1.0, -2.0]]), np.zeros((2, 2))
    zero = np.array([1.0, 0.0]) if nonequal else np.asarray(0.0)
    negative = np.array([1.0, -2.0]) if nonequal else np.asarray(-1.0)
    return [
        ErrorCase("σ = 0", (X, W, zero), match="σ > 0"),
        ErrorCase("σ < 0", (X, W, negative), match="σ > 0"),
    ]


register(
    OpCases(
        "colide_ev_score",
        dims={"n": (1, 12), "d": (1, 5)},
        random=_ev_random,
        edges=lambda: _score_edges(False),
        errors=lambda: _score_errors(False),
        notes=NOTES,
        defaults={},
    )
)

register(
    OpCases(
        "colide_nv_score",
        dims={"n": (1, 12), "d": (1, 5)},
        random=_nv_random,
        edges=lambda: _score_edges(True),
        errors=lambda: _score_errors(True),
        notes=NOTES,
        defaults={},
    )
)


# -- colide_sigma -----------------------------------------------------------------------------------------
def _sigma_random(rng, n, d):
    X, W = _data(rng, n, d)
    kwargs = {"variance": str(rng.choice(["equal", "nonequal"]))}
    if rng.random() < 0.4:
        kwargs["clamp_sigma"] = False
    else:
        kwargs["sigma_floor"] = float(rng.choice([1e-6, 0.1, 2.0]))  # 2.0: often active
    return Sample("random", (X, W), kwargs)


def _sigma_edges():
    X = np.array([[1.0, 2.0], [-1.0, -2.0], [0.5, 1.0], [-0.5, -1.0]])
    W = np.array([[0.0, 2.0], [0.0, 0.0]])  # x₁ = 2x₀ exactly
    return [
        Sample(
            "x₁ = 2x₀, NV, clamped",
            (X, W),
            {"variance": "nonequal", "sigma_floor": 1e-3},
            flags=("PERFECT_FIT", "NV"),
        ),
        Sample(
            "x₁ = 2x₀, NV, official (no clamp)",
            (X, W),
            {"variance": "nonequal", "clamp_sigma": False},
            flags=("PERFECT_FIT", "NO_CLAMP", "NV"),
        ),
        Sample(
            "W = 0, EV: σ* = √(tr Σ̂/d)", (X, np.zeros((2, 2))), {"clamp_sigma": False}, flags=("NO_CLAMP",)
        ),
        Sample(
            "perfect fit of everything, EV, clamped",
            (np.zeros((3, 2)), np.zeros((2, 2))),
            {"sigma_floor": 0.5},
            flags=("PERFECT_FIT",),
        ),
    ]


def _sigma_errors():
    X, W = np.ones((3, 2)), np.zeros((2, 2))
    return [ErrorCase("clamp_sigma without a floor", (X, W), {}, match="sigma_floor")]


register(
    OpCases(
        "colide_sigma",
        dims={"n": (1, 12), "d": (1, 5)},
        random=_sigma_random,
        edges=_sigma_edges,
        errors=_sigma_errors,
        notes=NOTES,
        defaults={"variance": "equal", "clamp_sigma": True, "sigma_floor": None},
    )
)


# -- colide_homotopy_fit -------------------------------------------------------------------------------
def _fit_random(rng, n, d):
    X = sem_data(rng, dag_weights(rng, d), n)
    kwargs = {
        "lambda1": float(rng.choice([0.05, 0.1])),
        "warm_iter": int(rng.choice([20, 50])),
        "max_iter": int(rng.choice([30, 80])),
        "variance": str(rng.choice(["equal", "nonequal"])),
        "T": int(rng.choice([5, 2, 3])),
        "mu_init": float(rng.choice([1.0, 0.5])),
        "mu_factor": float(rng.choice([0.1, 0.3])),
        "lr": float(rng.choice([3e-4, 0.01])),
        "beta1": float(rng.choice([0.99, 0.9])),
        "beta2": float(rng.choice([0.999, 0.99])),
        "checkpoint": int(rng.choice([1000, 10])),
        "tol": float(rng.choice([1e-6, 1e-4])),
    }
    if rng.random() < 0.3:
        kwargs["s"] = np.array([1.0, 0.8])
    if rng.random() < 0.3:
        kwargs["clamp_sigma"] = False
    else:
        kwargs["sigma_floor"] = float(rng.choice([1e-6, 1e-3]))
    return Sample("random", (X,), kwargs)


def _fit_edges():
    rng = np.random.default_rng(42)
    chain = np.array([[0.0, 1.5, 0.0], [0.0, 0.0, -1.2], [0.0, 0.0, 0.0]])
    X = sem_data(rng, chain, 100)
    base = {"lambda1": 0.05, "sigma_floor": 1e-6, "checkpoint": 50}
    return [
        Sample("chain, EV, 3 stages", (X,), {**base, "T": 3, "warm_iter": 200, "max_iter": 300, "lr": 0.01}),
        Sample(
            "chain, NV, 3 stages",
            (X,),
            {**base, "T": 3, "warm_iter": 200, "max_iter": 300, "lr": 0.01, "variance": "nonequal"},
            flags=("NV",),
        ),
        Sample(
            "s drops from 1 to 0.05: restarts",
            (X,),
            {**base, "T": 2, "warm_iter": 300, "max_iter": 50, "lr": 0.05, "s": np.array([1.0, 0.05])},
            flags=("RESTART",),
        ),
        Sample(
            "η = 0.7 at s = 1: backtracking",
            (X,),
            {**base, "T": 1, "warm_iter": 1, "max_iter": 40, "lr": 0.7},
            flags=("BACKTRACK",),
        ),
        Sample(
            "official: no clamp",
            (X,),
            {"lambda1": 0.1, "T": 2, "warm_iter": 100, "max_iter": 100, "lr": 0.01, "clamp_sigma": False},
            flags=("NO_CLAMP",),
        ),
    ]


def _fit_errors():
    X = np.random.default_rng(43).standard_normal((10, 2))
    budget = {"lambda1": 0.1, "warm_iter": 5, "max_iter": 5}
    zero_column = np.column_stack([X[:, 0], np.zeros(10)])
    return [
        ErrorCase("clamp_sigma without a floor", (X,), budget, match="sigma_floor"),
        ErrorCase("s ≤ 0", (X,), {**budget, "sigma_floor": 1e-6, "s": np.array([1.0, 0.0])}, match="s > 0"),
        ErrorCase(
            "a zero column without the clamp",
            (zero_column,),
            {**budget, "clamp_sigma": False},
            match="column 1 is zero",
        ),
    ]


register(
    OpCases(
        "colide_homotopy_fit",
        dims={"n": (20, 30), "d": (2, 3)},
        random=_fit_random,
        edges=_fit_edges,
        errors=_fit_errors,
        notes=NOTES,
        defaults={
            "variance": "equal",
            "T": 5,
            "mu_init": 1.0,
            "mu_factor": 0.1,
            "s": None,
            "lr": 3e-4,
            "beta1": 0.99,
            "beta2": 0.999,
            "checkpoint": 1000,
            "tol": 1e-6,
            "clamp_sigma": True,
            "sigma_floor": None,
        },
    )
)
