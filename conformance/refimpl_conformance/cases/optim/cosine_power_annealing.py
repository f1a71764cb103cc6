"""Conformance cases for `cosine_power_annealing`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ENDPOINTS": "e = E: p = 0, lr = min_lr exactly; closed form e = 1: q = (k^{p_1+1} − k)/(k² − k) < 1",
    "EMPIRICAL": "normalization='empirical' (official): the first supplied epoch gets max_lr exactly",
    "K_ONE": "k = 1: plain cosine annealing (the closed form's 0/0 limit is p)",
    "K_NEAR_ONE": "k = 1 + 1e-9: k^{p+1} − k cancels; expm1(p·log1p(k − 1))/(k − 1) does not",
    "WARMUP": "warm-up W: epochs e ≤ W get e/W, the cosine runs over e − W and E − W",
    "RESUME": "a resumed run passes epochs s..E with max_epoch = E; empirical normalization then rescales "
    "over those epochs only",
}
FLOAT64_ONLY = ("float64",)  # integer epochs in, float64 learning rates out


def _random(rng, N):
    total = int(rng.choice([N, N + int(rng.integers(0, 20))]))
    start = int(rng.integers(1, total - N + 2))
    epochs = np.arange(start, start + N)
    warmup = int(rng.choice([0, 0, int(rng.integers(0, min(start + 2, total)))]))
    kwargs = {
        "exponent_order": float(rng.choice([10.0, 2.0, 1.0, rng.uniform(1.0, 50.0)])),
        "max_lr": float(rng.choice([0.1, 0.025, rng.uniform(0.0, 1.0)])),
        "min_lr": float(rng.choice([1e-4, 7.5e-4, 1e-3, 0.0])),
        "max_epoch": total,
        "warmup_epochs": warmup,
        "normalization": str(rng.choice(["closed_form", "empirical"])),
    }
    if kwargs["normalization"] == "empirical" and N < 2:
        kwargs["normalization"] = "closed_form"  # one epoch: 0/0 (an error case)
    return Sample("random", (epochs,), kwargs, dtypes=FLOAT64_ONLY)


def _edges():
    ten = np.arange(1, 11)
    return [
        Sample(
            "E = 10, k = 10, closed form",
            (ten,),
            {"max_lr": 1.0, "min_lr": 0.0},
            flags=("ENDPOINTS",),
            dtypes=FLOAT64_ONLY,
            comment="q = [0.93912, 0.78069, 0.58016, ...], q_10 = 0",
        ),
        Sample(
            "E = 10, k = 10, empirical",
            (ten,),
            {"max_lr": 1.0, "min_lr": 0.0, "normalization": "empirical"},
            flags=("EMPIRICAL",),
            dtypes=FLOAT64_ONLY,
            comment="q = [1, 0.83129, 0.61777, ...]",
        ),
        Sample("k = 1: cosine", (ten,), {"exponent_order": 1.0}, flags=("K_ONE",), dtypes=FLOAT64_ONLY),
        Sample(
            "k = 1 + 1e-9",
            (np.arange(1, 301),),
            {"exponent_order": 1.0 + 1e-9},
            flags=("K_NEAR_ONE",),
            dtypes=FLOAT64_ONLY,
        ),
        Sample(
            "CIFAR-10 example: k = 2, 0.025 → 1e-3, 1000 epochs",
            (np.arange(1, 1001),),
            {"exponent_order": 2.0, "max_lr": 0.025, "min_lr": 1e-3, "normalization": "empirical"},
            dtypes=FLOAT64_ONLY,
        ),
        Sample(
            "warm-up 5 of 20, empirical",
            (np.arange(1, 21),),
            {"warmup_epochs": 5, "normalization": "empirical"},
            flags=("WARMUP",),
            dtypes=FLOAT64_ONLY,
        ),
        Sample(
            "warm-up 3 of 12",
            (np.arange(1, 13),),
            {"warmup_epochs": 3},
            flags=("WARMUP",),
            dtypes=FLOAT64_ONLY,
        ),
        Sample(
            "resumed at epoch 40 of 50, empirical",
            (np.arange(40, 51),),
            {"max_epoch": 50, "normalization": "empirical"},
            flags=("RESUME",),
            dtypes=FLOAT64_ONLY,
        ),
        Sample("one epoch, closed form", (np.array([7]),), {"max_epoch": 9}, dtypes=FLOAT64_ONLY),
    ]


def _errors():
    return [
        ErrorCase(
            "one epoch, empirical",
            (np.array([3]),),
            {"max_epoch": 5, "normalization": "empirical"},
            match="0/0",
        ),
        ErrorCase("epoch past max_epoch", (np.arange(1, 8),), {"max_epoch": 5}, match=r"\[1, 5\]"),
        ErrorCase(
            "warm-up as long as the run", (np.arange(1, 6),), {"warmup_epochs": 5}, match="fewer warm-up"
        ),
    ]


def _known():
    ten = np.arange(1, 11)
    return [
        Known(
            "E = 10, k = 10, closed form, first three epochs",
            (ten[:3],),
            {"max_lr": 1.0, "min_lr": 0.0, "max_epoch": 10},
            values={"lr": [0.93912, 0.78069, 0.58016]},
            source="catalog (optim.md, cosine_power_annealing known values)",
            rtol=1e-4,
        ),
        Known(
            "E = 10, k = 10, empirical, first three epochs",
            (ten,),
            {"max_lr": 1.0, "min_lr": 0.0, "normalization": "empirical"},
            values={"lr": [1.0, 0.83129, 0.61777, 0.41569, 0.25583, 0.14382, 0.07186, 0.0291, 0.00686, 0.0]},
            source="catalog (first three); by hand: (10^{p+1} − 10)/(10^{p_1+1} − 10)",
            rtol=1e-4,
            atol=1e-5,
        ),
        Known(
            "k = 1, E = 4: cosine",
            (np.arange(1, 5),),
            {"exponent_order": 1.0, "max_lr": 1.0, "min_lr": 0.0},
            values={"lr": [(2 + np.sqrt(2)) / 4, 0.5, (2 - np.sqrt(2)) / 4, 0.0]},
            source="by hand: (1 + cos(πe/4))/2",
            rtol=1e-14,
            atol=1e-16,
        ),
    ]


register(
    OpCases(
        "cosine_power_annealing",
        dims={"N": (1, 12)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={
            "exponent_order": 10.0,
            "max_lr": 0.1,
            "min_lr": 1e-4,
            "max_epoch": None,
            "warmup_epochs": 0,
            "normalization": "closed_form",
        },
    )
)
