"""Conformance cases for aTLAS: `atlas_composition`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register

NOTES = {
    "ZERO": "Λ = 0 (the official initialization): θ₀ exactly, and λ̄ = ⟨θ̄, τ_t⟩ still nonzero",
    "TASK_ARITHMETIC": "all λ_t equal: task arithmetic θ₀ + λ·Σ_t τ_t",
    "ONE_TASK": "T = 1",
    "SCALAR_PARAMETER": "a 0-d parameter tensor (a scalar block, e.g. a logit scale)",
    "OFFSET": "θ₀ ≈ 1e4 with task vectors of 1e-3: the update is far below θ₀'s magnitude",
}


def _shape_with(rng, n):
    divisors = [d for d in range(1, min(n, 64) + 1) if n % d == 0]
    d = int(rng.choice(divisors))
    shapes = [(n,), (n // d, d), (d, 1, n // d)] + ([()] if n == 1 else [])
    return shapes[int(rng.integers(0, len(shapes)))]


def _random(rng, n, T):  # noqa: N803
    shape = _shape_with(rng, n)
    theta0 = rng.standard_normal(shape)
    taus = np.stack(
        [rng.standard_normal(shape) * float(rng.choice([0.01, 0.1, 1.0])) for _ in range(T)], axis=-1
    )
    lam = rng.standard_normal(T) * float(rng.choice([0.0, 0.3, 1.0]))
    return Sample("random", (theta0, taus, lam))


def _edges():
    rng = np.random.default_rng(31)
    theta0 = rng.standard_normal((3, 4))
    taus = rng.standard_normal((3, 4, 3)) * 0.1
    return [
        Sample("Λ = 0: θ₀", (theta0, taus, np.zeros(3)), flags=("ZERO",)),
        Sample("equal λ = 0.3: task arithmetic", (theta0, taus, np.full(3, 0.3)), flags=("TASK_ARITHMETIC",)),
        Sample("T = 1", (theta0, taus[..., :1], np.array([-0.7])), flags=("ONE_TASK",)),
        Sample(
            "0-d parameter, T = 2",
            (np.array(0.5), np.array([1.0, -2.0]), np.array([0.25, 0.5])),
            flags=("SCALAR_PARAMETER",),
        ),
        Sample(
            "θ₀ ≈ 1e4, τ ≈ 1e-3",
            (1e4 + theta0, 1e-3 * taus, np.array([1.0, -0.5, 2.0])),
            flags=("OFFSET",),
        ),
        Sample(
            "documented example",
            (
                np.array([1.0, 1.0]),
                np.stack([np.array([2.0, 0.0]), np.array([0.0, 4.0])], axis=-1),
                np.array([0.5, -0.25]),
            ),
        ),
    ]


def _atlas_torch(torch, args, kwargs, cotangent):
    """θ₀ + task_vectors @ λ with autograd for λ̄: the same function."""
    theta0, taus = torch.from_numpy(args[0]), torch.from_numpy(args[1])
    lam = torch.from_numpy(args[2]).requires_grad_()
    g_theta = torch.from_numpy(cotangent)

    def step():
        lam.grad = None
        theta = theta0 + taus @ lam
        theta.backward(g_theta)
        return theta

    return step


register(
    OpCases(
        "atlas_composition",
        dims={"n": (1, 12), "T": (1, 4)},
        random=_random,
        edges=_edges,
        errors=lambda: [],
        notes=NOTES,
        defaults={},
        bench=Bench(
            sizes={"n": 2**21, "T": 4},
            torch=_atlas_torch,
            torch_label="theta0 + taus @ lam, autograd",
        ),
    )
)
