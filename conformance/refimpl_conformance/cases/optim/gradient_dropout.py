"""Conformance cases for `gradient_dropout_combine` (R-AMT gradient dropout)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "ZERO_ZERO": "g_a = g_b = 0: P = (0 + 1)/2 = ½ through the 1e-8 guard; without it 0/0 is NaN",
    "STRICT": "U = P exactly: 1[P > U] is 0, the element is dropped; a `>=` keeps it",
    "NOT_ADDED": "g_b only sets P: an implementation that adds g_b to the update is off by g_b",
    "SIGN_ZERO": "g_a = 0 with g_b ≠ 0: sign(0) = 0 gives P = ½; a `sign = a >= 0 ? 1 : -1` gives P ≈ 1",
    "LAMBDA_ZERO": "λ = 0: the result is g_a whatever U and g_b",
    "EMPTY": "a parameter tensor with no elements: nothing to combine, no crash",
}


def _keep_probability(g_a, g_b):
    return (np.sign(g_a) * (g_a + g_b) / (np.abs(g_a) + np.abs(g_b) + 1e-8) + 1) / 2


def _uniform_away_from(rng, p):
    """Uniform draws at least 1e-3 from P: there float32 and float64 may decide differently."""
    u = rng.uniform(size=p.shape)
    for _ in range(100):
        close = np.abs(u - p) < 1e-3
        if not close.any():
            return np.asarray(u)
        u = np.where(close, rng.uniform(size=p.shape), u)
    raise RuntimeError("could not draw U away from P")


def _random(rng, rank, size):
    shape = tuple(int(d) for d in rng.integers(1, size + 1, size=rank))
    scale = float(10 ** rng.uniform(-4, 1))
    g_a = np.asarray(rng.standard_normal(shape) * scale)
    g_b = np.asarray(rng.standard_normal(shape) * scale * float(rng.choice([0.1, 1.0, 10.0])))
    if g_a.size and rng.uniform() < 0.3:
        g_a[rng.uniform(size=shape) < 0.2] = 0.0
    u = _uniform_away_from(rng, _keep_probability(g_a, g_b))
    return Sample("random", (g_a, g_b, u), {"lam": float(rng.choice([0.0, 0.5, 1.0, rng.uniform()]))})


def _edges():
    rng = np.random.default_rng(5)
    g_a_many, g_b_many = rng.standard_normal(4096), rng.standard_normal(4096)
    return [
        Sample(
            "g_a = g_b = 0",
            (np.zeros(3), np.zeros(3), np.array([0.49, 0.5, 0.51])),
            {"lam": 1.0},
            flags=("ZERO_ZERO", "STRICT"),
            comment="P = ½: the outputs are 0 either way; the finiteness check catches a NaN",
        ),
        Sample(
            "U = P exactly drops",
            (
                np.array([2.0, 2.0, 0.0, 0.0]),
                np.array([2.0, -2.0, 7.0, -3.0]),
                np.array([1.0, 0.5, 0.5, 0.25]),
            ),
            {"lam": 0.5},
            flags=("STRICT", "SIGN_ZERO"),
            comment="P = [1 − 2.5e-9, ½, ½, ½] (agreement 4/(4 + 1e-8), 0, 0, 0); g = [1, 1, 0, 0]",
        ),
        Sample(
            "g_b only sets P",
            (np.array([1.0, -1.0, 3.0]), np.array([100.0, -100.0, -1.0]), np.array([0.5, 0.5, 0.1])),
            {"lam": 0.25},
            flags=("NOT_ADDED",),
            comment="P ≈ [1, 1, 0.75]: all kept, g = g_a exactly",
        ),
        Sample(
            "λ = 0",
            (
                np.array([[1.0, -2.0], [0.5, 3.0]]),
                np.array([[-5.0, 5.0], [0.0, -9.0]]),
                np.full((2, 2), 0.99),
            ),
            {"lam": 0.0},
            flags=("LAMBDA_ZERO",),
        ),
        Sample("scalar", (np.array(-0.75), np.array(0.25), np.array(0.1)), {"lam": 0.8}),
        Sample(
            "empty tensor",
            (np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3))),
            {"lam": 0.5},
            flags=("EMPTY",),
        ),
        Sample(
            "4096 elements",
            (g_a_many, g_b_many, _uniform_away_from(rng, _keep_probability(g_a_many, g_b_many))),
            {"lam": 0.7},
        ),
    ]


def _errors():
    return [
        ErrorCase(
            "U > 1", (np.ones(2), np.ones(2), np.array([0.5, 1.5])), {"lam": 0.5}, match="uniform draws"
        ),
        ErrorCase(
            "U < 0", (np.ones(2), np.ones(2), np.array([-0.1, 0.5])), {"lam": 0.5}, match="uniform draws"
        ),
    ]


def _bench_sample(rng, rows, cols):
    shape = (rows, cols)
    return Sample(
        "bench",
        (rng.standard_normal(shape), rng.standard_normal(shape), rng.uniform(size=shape)),
        {"lam": 0.5},
    )


def _torch(torch, args, kwargs, cotangent):
    """The official rule written functionally with torch ops (no autograd: a gradient transform)."""
    g_a, g_b, u = (torch.from_numpy(a) for a in args)
    lam = kwargs["lam"]

    def step():
        with torch.no_grad():
            p = (torch.sign(g_a) * (g_a + g_b) / (g_a.abs() + g_b.abs() + 1e-8) + 1) / 2
            return ((1 - lam) + lam * (p > u).to(g_a.dtype)) * g_a

    return step


register(
    OpCases(
        "gradient_dropout_combine",
        dims={"rank": (0, 3), "size": (1, 6)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_bench_sample,
            torch=_torch,
            torch_label="P = (sign(g_a)(g_a + g_b)/(|g_a| + |g_b| + 1e-8) + 1)/2; ((1 − λ) + λ·(P > U))·g_a",
        ),
    )
)
