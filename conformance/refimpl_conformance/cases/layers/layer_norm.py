"""Conformance cases for `layer_norm`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register, standardized_rows

NOTES = {
    "CONSTANT_ROW": "variance 0: output β, gradient finite only through ε (a dropped ε divides by 0)",
    "LARGE_OFFSET": "mean 1e4 ≫ spread: E[x²] − μ² cancels catastrophically in float32",
    "BATCH_DIMS": "x with several leading dimensions: normalization is over the last only",
    "LONG_ROWS": "a float32 accumulator over a long row (the mean or the variance summed in float32)",
}


def _random(rng, B, D):
    # each row's spread is the drawn scale (LARGE_OFFSET, offset ≫ spread, is an edge case)
    x = standardized_rows(rng.standard_normal((B, D))) * rng.uniform(0.1, 10) + rng.uniform(-5, 5)
    gamma = rng.standard_normal(D)
    beta = rng.standard_normal(D)
    return Sample("random", (x, gamma, beta), {"eps": float(rng.choice([1e-5, 1e-3, 0.1]))})


def _edges():
    rng = np.random.default_rng(7)
    D = 8
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    constant = np.vstack([np.full(D, 3.0), rng.standard_normal(D)])
    offset = 1e4 + rng.standard_normal((3, D))
    # half the row ≈ 1024 (its running sum reaches 2e6, float32 ulp 0.25), half ≈ 0.1 (< ulp/2)
    big, small = 1024 + rng.standard_normal(2048), 0.1 * (1 + 0.1 * rng.random(2048))
    long_rows = np.vstack([np.concatenate([big, small]), np.concatenate([small, big])])
    return [
        Sample("constant row", (constant, gamma, beta), flags=("CONSTANT_ROW",)),
        Sample(
            "large mean offset 1e4",
            (offset, gamma, beta),
            flags=("LARGE_OFFSET",),
            fd_step=1e-10,
            comment="float32 holds 1e4 to ~1e-3, so x − μ keeps only ~3 digits in float32 "
            "arithmetic; E[x²] − μ² would lose all of them (variance error ~10)",
        ),
        Sample(
            "batch dims (2, 3, D)",
            (rng.standard_normal((2, 3, D)), gamma, beta),
            flags=("BATCH_DIMS",),
        ),
        Sample("D = 1", (rng.standard_normal((4, 1)), np.ones(1), np.zeros(1)), flags=("CONSTANT_ROW",)),
        Sample("single row vector", (rng.standard_normal(D), gamma, beta), {"eps": 1e-3}),
        Sample(
            "long rows D = 4096: 2048 entries ≈ 1024, then 2048 ≈ 0.1",
            (long_rows, rng.standard_normal(4096), rng.standard_normal(4096)),
            flags=("LONG_ROWS",),
            comment="summed term by term in float32, every 0.1 after the 1024s rounds away (the "
            "running sum's ulp is 0.25): the mean is off by 0.05, x̂ by 1e-4, ~4x the allowed "
            "error; pairwise or float64 sums keep it (the second row is the first reversed)",
        ),
    ]


def _layer_norm_torch(torch, args, kwargs, cotangent):
    """PyTorch's own layer norm, forward and backward: the same function."""
    x, gamma, beta = (torch.from_numpy(a).requires_grad_() for a in args)
    g_y = torch.from_numpy(cotangent)

    def step():
        y = torch.nn.functional.layer_norm(x, (x.shape[-1],), gamma, beta, kwargs.get("eps", 1e-5))
        x.grad = gamma.grad = beta.grad = None
        y.backward(g_y)
        return y

    return step


register(
    OpCases(
        "layer_norm",
        dims={"B": (1, 6), "D": (1, 12)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "D": "cols"},
            torch=_layer_norm_torch,
            bytes_moved=lambda args, kwargs: 4 * args[0].nbytes,  # x, ȳ in; y, x̄ out (γ, β: one row each)
            torch_label="torch.nn.functional.layer_norm",
            # no transcendentals (one sqrt per row) and no matrix products: the roofline is the bytes
        ),
    )
)
