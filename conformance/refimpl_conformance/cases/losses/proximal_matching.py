"""Conformance cases for `proximal_matching_loss`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "ZERO_DISTANCE": "f = x in a row: ℓ = 0 and a zero gradient (the official sqrt-then-square gives NaN)",
    "SMALL_DISTANCE": "u/γ² = 1e-12: 1 − exp(−q) keeps ~4 digits, −expm1(−q) all of them",
    "SATURATED": "u/γ² ≈ 1e4: ℓ = 1 and the gradient underflows to exactly 0 (no inf·0)",
    "RMS": "normalize_by_dim: the squared distance is divided by D, the gradient by D too",
    "ONE_DIM": "D = 1: the scalar loss 1 − exp(−(f − x)²/γ²) of the Laplacian toy",
}


def _random(rng, B, D):  # noqa: N803
    x = rng.standard_normal((B, D)) * float(rng.choice([0.1, 1.0]))
    noise = float(rng.choice([0.05, 0.3, 1.0]))
    f = x + rng.standard_normal((B, D)) * noise
    normalize_by_dim = bool(rng.integers(0, 2))
    typical = noise * (1.0 if normalize_by_dim else math.sqrt(D))  # the typical distance
    kwargs = {
        "gamma": typical * float(rng.choice([0.5, 1.0, 2.0])),
        "normalize_by_dim": normalize_by_dim,
        "reduction": str(rng.choice(["mean", "sum", "none"])),
    }
    return Sample("random", (f, x), kwargs)


def _edges():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 5))
    f = x + 0.2 * rng.standard_normal((3, 5))
    f_with_exact_row = f.copy()
    f_with_exact_row[1] = x[1]
    return [
        Sample(
            "known value: ‖f − x‖² = 2 and 0, γ = √2",
            (np.array([[1.0, 1.0], [0.0, 0.0]]), np.zeros((2, 2))),
            {"gamma": math.sqrt(2.0)},
            flags=("ZERO_DISTANCE",),
            comment="(1 − e^−1 + 0)/2",
        ),
        Sample("f = x everywhere", (x.copy(), x), {"gamma": 0.3}, flags=("ZERO_DISTANCE",)),
        Sample(
            "one row with f = x",
            (f_with_exact_row, x),
            {"gamma": 0.5, "reduction": "none"},
            flags=("ZERO_DISTANCE",),
        ),
        Sample(
            "u/γ² = 1e-12",
            (np.array([[1e-6, 0.0], [0.0, -1e-6]]), np.zeros((2, 2))),
            {"gamma": 1.0},
            flags=("SMALL_DISTANCE",),
            dtypes=("float64",),
            fd_step=1e-12,
            comment="the FD step must be below the 1e-6 distance itself",
        ),
        Sample(
            "u/γ² ≈ 1e4",
            (f + 10.0, x),
            {"gamma": 0.1, "reduction": "sum"},
            flags=("SATURATED",),
        ),
        Sample(
            "RMS distance (normalize_by_dim)",
            (f, x),
            {"gamma": 0.2, "normalize_by_dim": True},
            flags=("RMS",),
        ),
        Sample(
            "D = 1",
            (np.array([[0.3], [-1.2], [0.0]]), np.array([[0.0], [-1.0], [0.5]])),
            {"gamma": 0.5},
            flags=("ONE_DIM",),
        ),
    ]


def _known():
    return [
        Known(
            "‖f − x‖² = 2 and 0, γ = √2",
            (np.array([[1.0, 1.0], [0.0, 0.0]]), np.zeros((2, 2))),
            {"gamma": math.sqrt(2.0)},
            values={
                "loss": 0.5 * (1.0 - math.exp(-1.0)),
                # (1/B)·exp(−u/γ²)·(1/γ²)·2·(f − x) = ½·e^−1·½·2·1
                "cotangent of 'f'": [[0.5 * math.exp(-1.0), 0.5 * math.exp(-1.0)], [0.0, 0.0]],
            },
            source="by hand (the catalog's VJP with n = 1)",
            rtol=1e-12,
        ),
        Known(
            "RMS: f − x = [2, 0], γ = 1, D = 2",
            (np.array([[2.0, 0.0]]), np.zeros((1, 2))),
            {"gamma": 1.0, "normalize_by_dim": True},
            values={
                "loss": 1.0 - math.exp(-2.0),  # u = (4 + 0)/2
                "cotangent of 'f'": [[2.0 * math.exp(-2.0), 0.0]],  # e^−2·(2/2)·2
            },
            source="by hand (the catalog's VJP: (1/B)·exp(−u/γ²)·(1/γ²)·(2/D)·(f − x))",
            rtol=1e-12,
        ),
    ]


def _proximal_matching_loss_torch(torch, args, kwargs, cotangent):
    """The official form: distance sqrt(Σ(f − x)²), 1 − exp(−(dist/γ)²), mean; autograd backward."""
    f = torch.from_numpy(args[0]).requires_grad_()
    x = torch.from_numpy(args[1])
    g = torch.from_numpy(np.asarray(cotangent))
    gamma = kwargs["gamma"]
    normalize_by_dim = kwargs.get("normalize_by_dim", False)
    reduction = kwargs.get("reduction", "mean")

    def step():
        f.grad = None
        squares = (f - x).pow(2)
        distance = (squares.mean(1) if normalize_by_dim else squares.sum(1)).sqrt()
        per_row = 1 - torch.exp(-((distance / gamma) ** 2))
        loss = per_row.mean() if reduction == "mean" else per_row.sum() if reduction == "sum" else per_row
        loss.backward(g)
        return loss

    return step


@transcribes("lpn-proximal-matching-nan-gradient-at-zero-distance", outputs=("loss",))
def _official_exp_dirac_srgt(f, x, gamma, normalize_by_dim, reduction, dtype):
    """ZhenghanFang/learned-proximal-networks, lpn/utils/utils.py, ExpDiracSrgt.forward in NumPy:
    ``dist = sqrt(Σ(f − x)²)``, ``1 − exp(−(dist/σ)²)``, mean. The forward equals the paper's;
    the deviation is its autograd backward (NaN where dist = 0), which a forward cannot show."""
    squares = ((f - x) ** 2).astype(dtype)
    distance = np.sqrt(squares.mean(1) if normalize_by_dim else squares.sum(1))
    per_row = -np.exp(-((distance / gamma) ** 2)) + 1
    loss = per_row.mean() if reduction == "mean" else per_row.sum() if reduction == "sum" else per_row
    return {"loss": np.asarray(loss)}


def _bench_sample(rng, rows, cols):
    x = rng.standard_normal((rows, cols))
    f = x + 0.1 * rng.standard_normal((rows, cols))
    return Sample("bench", (f, x), {"gamma": 0.1 * math.sqrt(cols)})  # the typical distance


register(
    OpCases(
        "proximal_matching_loss",
        dims={"B": (1, 6), "D": (1, 8)},
        random=_random,
        edges=_edges,
        known=_known,
        notes=NOTES,
        defaults={"normalize_by_dim": False, "reduction": "mean"},
        bench=Bench(
            make=_bench_sample,
            torch=_proximal_matching_loss_torch,
            torch_label="official ExpDiracSrgt: sqrt(Σ(f − x)²), 1 − exp(−(d/γ)²), mean; autograd backward "
            "(its NaN at f = x does not arise on these inputs)",
            # per row: exp(−u/γ²) (expm1 shares it)
            transcendentals=lambda args, kwargs: args[0].shape[0],
        ),
    )
)
