"""Conformance cases for `min_norm_gradient_combination` (MGDA / ParetoDA)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register

NOTES = {
    "EQUAL": "g_1 = g_2: ‖g_1 − g_2‖² = 0, α_1 = ½ by convention (0/0 otherwise)",
    "ZERO": "all gradients zero: d = 0, α stays finite",
    "CLIP": "g_2·(g_2 − g_1) < 0: the unclipped weight leaves [0, 1]; α = (0, 1) (official: 0.001)",
    "STATIONARY": "0 inside the hull (opposite gradients): d = 0",
    "ONE": "M = 1: α = (1), d = −g_1",
}


def _random(rng, M, P):
    scale = float(10 ** rng.uniform(-3, 2))
    grads = rng.standard_normal((M, P)) * scale + rng.standard_normal(P) * scale * float(
        rng.choice([0.0, 2.0])
    )
    return Sample(
        "random", (grads,), {"max_iter": int(rng.integers(1, 40)), "tol": float(rng.choice([0.0, 1e-5]))}
    )


def _edges():
    return [
        Sample("g_1 = g_2", (np.array([[1.0, 2.0], [1.0, 2.0]]),), flags=("EQUAL",)),
        Sample("all zero", (np.zeros((3, 4)),), flags=("ZERO",)),
        Sample("clipped pair", (np.array([[1.0, 0.0], [3.0, 0.0]]),), flags=("CLIP",), comment="α = (1, 0)"),
        Sample(
            "Pareto-stationary triple",
            (np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]),),
            {"max_iter": 500, "tol": 0.0},
            flags=("STATIONARY",),
        ),
        Sample("one objective", (np.array([[0.5, -1.0, 2.0]]),), flags=("ONE",)),
    ]


def _bench_sample(rng, rows, cols):
    return Sample("bench", (rng.standard_normal((3, rows * cols // 3)),), {"max_iter": 250})


def _torch(torch, args, kwargs, cotangent):
    """The same Gram matrix and Frank–Wolfe iteration with torch tensors (float64)."""
    grads = torch.from_numpy(args[0])
    max_iter, tol = kwargs.get("max_iter", 250), kwargs.get("tol", 1e-5)

    def weight(aa, ab, bb):
        den = aa - 2 * ab + bb
        return 0.5 if den <= 0 else min(1.0, max(0.0, float((bb - ab) / den)))

    def step():
        with torch.no_grad():
            g64 = grads.double()
            gram = g64 @ g64.T
            m = gram.shape[0]
            iterations = 0
            if m == 1:
                alpha = torch.ones(1, dtype=torch.float64)
            elif m == 2:
                w = weight(gram[0, 0], gram[0, 1], gram[1, 1])
                alpha = torch.tensor([w, 1 - w], dtype=torch.float64)
            else:
                alpha = torch.full((m,), 1.0 / m, dtype=torch.float64)
                while iterations < max_iter:
                    ka = gram @ alpha
                    t = int(torch.argmin(ka))
                    keep = weight(alpha @ ka, ka[t], gram[t, t])
                    new = keep * alpha
                    new[t] += 1 - keep
                    change = float((new - alpha).abs().sum())
                    alpha, iterations = new, iterations + 1
                    if change < tol:
                        break
            ka = gram @ alpha
            gap = torch.clamp(alpha @ ka - ka.min(), min=0.0)
            direction = -(alpha @ g64)
            return (
                alpha.to(grads.dtype),
                direction.to(grads.dtype),
                torch.tensor(iterations),
                gap.to(grads.dtype),
            )

    return step


register(
    OpCases(
        "min_norm_gradient_combination",
        dims={"M": (1, 5), "P": (1, 8)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        defaults={"max_iter": 250, "tol": 1e-5},
        bench=Bench(
            make=_bench_sample,
            torch=_torch,
            torch_label="float64 G Gᵀ, Frank–Wolfe on the 3 × 3 Gram matrix, d = −αᵀG",
            blas=lambda args, kwargs: lambda: np.dot(args[0], args[0].T),
        ),
    )
)
