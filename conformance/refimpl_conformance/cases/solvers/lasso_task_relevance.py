"""Conformance cases for `lasso_task_relevance` and `source_sample_allocation`."""

from __future__ import annotations

import numpy as np

from ..._cases import Known, OpCases, Sample, register

NOTES = {
    "ZERO_SOLUTION": "λ ≥ ‖Ŵᵀw_0‖_∞: ν = 0 after one sweep",
    "NO_PENALTY": "λ = 0: least squares (coordinate descent converges to a least-squares solution)",
    "ORTHONORMAL": "orthonormal heads: ν = S_λ(Ŵᵀw_0) after one sweep",
    "ZERO_COLUMN": "a zero head: its ν_t stays 0 (no division by ‖ŵ_t‖² = 0)",
    "CAPPED": "max_iter below what convergence needs: the record says not converged",
    "NO_ITERATIONS": "max_iter = 0: ν = 0 comes back",
    "ZERO_NU": "ν = 0: allocation 0 and shares 0, no division by Σw = 0",
    "NU2": "the earlier ν² strategy: shares ∝ ν_t²",
}


# -- lasso_task_relevance ----------------------------------------------------------------------
def _lasso_random(rng, d, T):  # noqa: N803
    scale = float(rng.choice([0.1, 1.0, 20.0]))
    W = rng.standard_normal((d, T)) * scale  # noqa: N806
    w0 = rng.standard_normal(d) * scale
    lam_max = float(np.abs(W.T @ w0).max())
    kwargs = {
        "lam": float(rng.choice([0.05, 0.3, 1.2])) * lam_max,
        "max_iter": int(rng.choice([20, 500])),
        "tol": float(rng.choice([1e-8, 1e-4])) * scale,
    }
    return Sample("random", (W, w0), kwargs)


def _lasso_edges():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((6, 4))  # noqa: N806
    w0 = rng.standard_normal(6)
    lam_max = float(np.abs(W.T @ w0).max())
    W_zero = W.copy()  # noqa: N806
    W_zero[:, 2] = 0.0
    Q = np.linalg.qr(rng.standard_normal((5, 3)))[0]  # noqa: N806
    return [
        Sample(
            "documented example: identity heads",
            (np.eye(2), np.array([3.0, 0.5])),
            {"lam": 1.0, "max_iter": 50, "tol": 1e-12},
            flags=("ORTHONORMAL",),
        ),
        Sample(
            "orthonormal heads",
            (Q, rng.standard_normal(5)),
            {"lam": 0.3, "max_iter": 50, "tol": 1e-10},
            flags=("ORTHONORMAL",),
        ),
        Sample(
            "λ = λ_max", (W, w0), {"lam": lam_max, "max_iter": 100, "tol": 1e-10}, flags=("ZERO_SOLUTION",)
        ),
        Sample("λ = 0", (W, w0), {"lam": 0.0, "max_iter": 2000, "tol": 1e-9}, flags=("NO_PENALTY",)),
        Sample(
            "a zero head", (W_zero, w0), {"lam": 0.1, "max_iter": 500, "tol": 1e-9}, flags=("ZERO_COLUMN",)
        ),
        Sample("capped at 2 sweeps", (W, w0), {"lam": 0.1, "max_iter": 2, "tol": 0.0}, flags=("CAPPED",)),
        Sample("max_iter = 0", (W, w0), {"lam": 0.1, "max_iter": 0, "tol": 1e-9}, flags=("NO_ITERATIONS",)),
    ]


def _lasso_known():
    return [
        Known(
            "hand: identity heads, λ = 1",
            (np.eye(2), np.array([3.0, 0.5])),
            {"lam": 1.0, "max_iter": 50, "tol": 1e-12},
            values={"nu": [2.0, 0.0], "iterations": 2, "converged": True},
            source="hand: ν = S_1(3, 0.5) = (2, 0); the second sweep changes nothing",
        )
    ]


register(
    OpCases(
        "lasso_task_relevance",
        dims={"d": (1, 7), "T": (1, 5)},
        random=_lasso_random,
        edges=_lasso_edges,
        known=_lasso_known,
        notes=NOTES,
        defaults={},
    )
)


# -- source_sample_allocation ------------------------------------------------------------------
def _allocation_random(rng, T):  # noqa: N803
    nu = rng.standard_normal(T) * float(rng.choice([0.01, 1.0, 100.0]))
    nu[rng.random(T) < 0.3] = 0.0
    kwargs = {"scale": float(rng.choice([1.0, 1e3])), "strategy": str(rng.choice(["nu1", "nu2"]))}
    return Sample("random", (nu,), kwargs)


def _allocation_edges():
    nu = np.array([2.0, -1.0, 0.0, 1.0])
    return [
        Sample("documented example", (nu,), {"scale": 10.0}),
        Sample("ν² strategy", (nu,), {"scale": 10.0, "strategy": "nu2"}, flags=("NU2",)),
        Sample("ν = 0", (np.zeros(3),), {"scale": 5.0}, flags=("ZERO_NU",)),
        Sample(
            "ν² of 1e20 in float32",
            (np.array([1e20, -2e20]),),
            {"scale": 1e-30, "strategy": "nu2"},
            flags=("NU2",),
        ),
    ]


def _allocation_known():
    nu = np.array([2.0, -1.0, 0.0, 1.0])
    return [
        Known(
            "hand: ν¹ shares",
            (nu,),
            {"scale": 10.0},
            values={"allocation": [20.0, 10.0, 0.0, 10.0], "proportions": [0.5, 0.25, 0.0, 0.25]},
            source="hand: |ν| = (2, 1, 0, 1), Σ = 4",
        ),
        Known(
            "hand: ν² shares",
            (nu,),
            {"scale": 10.0, "strategy": "nu2"},
            values={"allocation": [40.0, 10.0, 0.0, 10.0], "proportions": [4 / 6, 1 / 6, 0.0, 1 / 6]},
            source="hand: ν² = (4, 1, 0, 1), Σ = 6",
        ),
    ]


register(
    OpCases(
        "source_sample_allocation",
        dims={"T": (1, 8)},
        random=_allocation_random,
        edges=_allocation_edges,
        known=_allocation_known,
        notes=NOTES,
        defaults={"strategy": "nu1"},
    )
)
