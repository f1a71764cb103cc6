"""Conformance cases for the Iterative Newton (Newton–Schulz) ops: `newton_schulz_step`,
`newton_schulz_pinv` and `iterative_newton_predictor`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

STEP_NOTES = {
    "FIXED_POINT": "M = S⁻¹: the step returns M unchanged (M S M = M)",
    "ZERO_M": "M = 0: M' = 0 and M̄ = 2Ḡ (the products vanish)",
    "ASYMMETRIC": "a general square S: the VJP must not assume symmetry (Ḡ(SM)ᵀ vs (MS)ᵀḠ)",
    "ONE_BY_ONE": "d = 1: the scalar Newton step 2m − m²s",
}

PINV_NOTES = {
    "RANK_DEFICIENT": "S = XᵀX with n < d: the iterates converge to the pseudo-inverse S⁺",
    "NO_STEPS": "num_steps = 0: M₀ = αS with the official α = 1/‖SSᵀ‖_F",
    "TOL_STOP": "a tolerance that stops the loop early: the record says converged",
    "GIVEN_ALPHA": "an explicit α inside the convergence region 0 < αλ² < 2",
    "ONE_BY_ONE": "d = 1: the scalar iteration",
}


def _design(rng, n, d, scale=1.0):
    return rng.standard_normal((n, d)) * scale


def _step_random(rng, d):
    kind = str(rng.choice(["gram", "general"]))
    if kind == "gram":
        x = _design(rng, d + 2, d)
        s = x.T @ x / (d + 2)
        m = np.linalg.inv(s) * float(rng.uniform(0.3, 1.2)) + 0.1 * rng.standard_normal((d, d))
    else:
        s = rng.standard_normal((d, d))
        m = rng.standard_normal((d, d)) * 0.5
    return Sample("random", (m, s), flags=() if kind == "gram" else ("ASYMMETRIC",))


def _step_edges():
    s = np.array([[2.0, 0.5], [0.5, 1.0]])
    return [
        Sample("M = S⁻¹ is a fixed point", (np.linalg.inv(s), s), flags=("FIXED_POINT",)),
        Sample("M = 0", (np.zeros((3, 3)), np.diag([1.0, 2.0, 3.0])), flags=("ZERO_M",)),
        Sample(
            "asymmetric S",
            (np.array([[0.3, -0.2], [0.1, 0.4]]), np.array([[1.0, 2.0], [0.0, 3.0]])),
            flags=("ASYMMETRIC",),
        ),
        Sample("1 × 1", (np.array([[0.25]]), np.array([[2.0]])), flags=("ONE_BY_ONE",)),
    ]


def _step_known():
    return [
        Known(
            "scalar: 2·¼ − ¼·2·¼",
            (np.array([[0.25]]), np.array([[2.0]])),
            values={"M_next": [[0.375]]},
            source="by hand",
            rtol=1e-15,
        ),
        Known(
            "diagonal: 2m − m²s per entry",
            (np.diag([0.5, 0.1]), np.diag([1.0, 4.0])),
            values={"M_next": [[0.75, 0.0], [0.0, 0.16]]},
            source="by hand",
            rtol=1e-14,
        ),
    ]


def _step_torch(torch, args, kwargs, cotangent):
    """2M − M S M with torch.matmul; autograd backward."""
    m = torch.from_numpy(args[0]).requires_grad_()
    s = torch.from_numpy(args[1]).requires_grad_()
    g = torch.from_numpy(np.asarray(cotangent))

    def step():
        m.grad = None
        s.grad = None
        out = 2 * m - m @ (s @ m)
        out.backward(g)
        return out

    return step


def _step_blas(args, kwargs):
    """The six products: S M, M(SM) forward; Ḡ(SM)ᵀ, MᵀḠ, Sᵀ(MᵀḠ), (MᵀḠ)Mᵀ backward."""
    m, s = args
    g = m  # a stand-in cotangent of the same shape

    def step():
        s_m = s @ m
        mt_g = m.T @ g
        return m @ s_m, g @ s_m.T, s.T @ mt_g, mt_g @ m.T

    return step


def _step_bench(rng, rows, cols):
    d = cols
    x = rng.standard_normal((2 * d, d))
    s = x.T @ x / (2 * d)
    return Sample("bench", (s / np.linalg.norm(s), s))


register(
    OpCases(
        "newton_schulz_step",
        dims={"d": (1, 6)},
        random=_step_random,
        edges=_step_edges,
        known=_step_known,
        notes=STEP_NOTES,
        defaults={},
        bench=Bench(
            make=_step_bench,
            torch=_step_torch,
            torch_label="2M − M @ (S @ M) with torch.matmul; autograd backward",
            blas=_step_blas,
        ),
    )
)


# -- the iteration ------------------------------------------------------------------------------------
def _gram(rng, n, d, scale=1.0):
    x = _design(rng, n, d, scale)
    s = x.T @ x
    return (s + s.T) / 2


STOP_FLOAT64 = (
    "a tolerance stop: the float32-rounded inputs may stop one step apart from the float64 ones, "
    "and the count is compared exactly"
)


def _pinv_random(rng, n, d):
    s = _gram(rng, n, d, float(rng.choice([0.1, 1.0, 10.0])))
    kwargs = {"num_steps": int(rng.choice([0, 1, 3, 8]))}
    if rng.random() < 0.3:
        kwargs["alpha"] = float(rng.uniform(0.2, 1.9)) / float(np.linalg.eigvalsh(s)[-1] ** 2)
    if rng.random() < 0.3:
        kwargs.update(num_steps=60, tol=1e-10)
        return Sample("random", (s,), kwargs, dtypes=("float64",), comment=STOP_FLOAT64)
    return Sample("random", (s,), kwargs)


def _pinv_edges():
    rng = np.random.default_rng(7)
    s_low = _gram(rng, 2, 4)
    s_full = _gram(rng, 8, 3)
    return [
        Sample(
            "rank 2 of 4",
            (s_low,),
            {"num_steps": 100, "tol": 1e-12},
            flags=("RANK_DEFICIENT", "TOL_STOP"),
            dtypes=("float64",),
            comment=STOP_FLOAT64,
        ),
        Sample("no steps", (s_full,), {"num_steps": 0}, flags=("NO_STEPS",)),
        Sample(
            "tolerance stops the loop",
            (s_full,),
            {"num_steps": 60, "tol": 1e-4},
            flags=("TOL_STOP",),
            dtypes=("float64",),
            comment=STOP_FLOAT64,
        ),
        Sample(
            "given α",
            (s_full,),
            {"num_steps": 10, "alpha": 1.0 / float(np.linalg.eigvalsh(s_full)[-1] ** 2)},
            flags=("GIVEN_ALPHA",),
        ),
        Sample("1 × 1", (np.array([[4.0]]),), {"num_steps": 8}, flags=("ONE_BY_ONE",)),
    ]


def _pinv_errors():
    return [
        ErrorCase("asymmetric S", (np.array([[1.0, 2.0], [0.0, 1.0]]),), match="symmetric"),
        ErrorCase("S = 0", (np.zeros((2, 2)),), match="nonzero"),
    ]


def _pinv_known():
    return [
        Known(
            "S = diag(1, 2), 7 steps from α = 1/√17",
            (np.diag([1.0, 2.0]),),
            {"num_steps": 7},
            values={"M": [[1.0, 0.0], [0.0, 0.5]], "iterations": 7, "converged": False},
            source="by hand: error factors (1 − λ²α)^(2^k) → 0",
            rtol=1e-12,
            atol=1e-12,
        ),
        Known(
            "no steps: M₀ = S/‖SSᵀ‖_F",
            (np.diag([3.0, 4.0]),),
            {"num_steps": 0},
            values={
                "M": [[3.0 / np.hypot(9.0, 16.0), 0.0], [0.0, 4.0 / np.hypot(9.0, 16.0)]],
                "iterations": 0,
            },
            source="by hand: ‖diag(9, 16)‖_F = √337",
            rtol=1e-14,
        ),
    ]


register(
    OpCases(
        "newton_schulz_pinv",
        dims={"n": (1, 6), "d": (1, 4)},
        random=_pinv_random,
        edges=_pinv_edges,
        errors=_pinv_errors,
        known=_pinv_known,
        notes=PINV_NOTES,
        defaults={"num_steps": 3, "alpha": None, "tol": 0.0},
    )
)


PREDICTOR_NOTES = {
    "UNDERDETERMINED": "n < d: ŵ converges to the minimum-norm solution X⁺y",
    "EXACT_FIT": "y = X w exactly: ŵ → w",
    "NO_STEPS": "num_steps = 0: ŵ₀ = αXᵀX Xᵀy",
}


def _predictor_random(rng, n, d):
    x = _design(rng, n, d, float(rng.choice([0.3, 1.0, 3.0])))
    y = rng.standard_normal(n)
    kwargs = {"num_steps": int(rng.choice([0, 2, 3, 10])), "tol": float(rng.choice([0.0, 1e-10]))}
    if rng.random() < 0.5:  # a given step size inside the convergent range (0, 2/λ_max²)
        kwargs["alpha"] = float(rng.uniform(0.2, 1.9)) / float(np.linalg.eigvalsh(x.T @ x)[-1] ** 2)
    return Sample("random", (x, y), kwargs)


def _predictor_edges():
    rng = np.random.default_rng(3)
    x_wide = rng.standard_normal((2, 4))
    x_tall = rng.standard_normal((6, 3))
    return [
        Sample("n < d", (x_wide, rng.standard_normal(2)), {"num_steps": 40}, flags=("UNDERDETERMINED",)),
        Sample(
            "exact fit",
            (x_tall, x_tall @ np.array([1.0, -2.0, 0.5])),
            {"num_steps": 30},
            flags=("EXACT_FIT",),
        ),
        Sample("no steps", (x_tall, rng.standard_normal(6)), {"num_steps": 0}, flags=("NO_STEPS",)),
    ]


def _predictor_errors():
    return [ErrorCase("X = 0", (np.zeros((3, 2)), np.ones(3)), match="nonzero")]


def _predictor_known():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    return [
        Known(
            "least squares w = (1, 1)",
            (x, np.array([2.0, 2.0, 0.0])),
            {"num_steps": 20, "tol": 1e-14},
            values={"w": [1.0, 1.0], "converged": True},
            source="by hand: XᵀX = diag(2, 4), Xᵀy = (2, 4)",
            rtol=1e-12,
        )
    ]


register(
    OpCases(
        "iterative_newton_predictor",
        dims={"n": (1, 8), "d": (1, 4)},
        random=_predictor_random,
        edges=_predictor_edges,
        errors=_predictor_errors,
        known=_predictor_known,
        notes=PREDICTOR_NOTES,
        defaults={"num_steps": 3, "alpha": None, "tol": 0.0},
    )
)
