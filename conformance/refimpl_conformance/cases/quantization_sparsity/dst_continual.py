"""Conformance cases for `erk_density_allocation` (reference-only) and `prune_grow_update`
(fast backends, not differentiable: outputs compared exactly)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

ERK_NOTES = {
    "DENSE_SPILL": "a small layer whose ε p_l exceeds 1: it is made dense and ε solved again",
    "TIED_MAX": "two layers with the same largest raw density: both move to the dense set together",
    "INITIAL_DENSE": "a layer dense from the start: its ⌊S N_l⌋ zeros are taken from the others",
    "UNIFORM": "distribution 'uniform': S everywhere but the dense layers",
    "ER": "distribution 'er': (n_in + n_out)/(n_in n_out) on the last two dims, no power",
    "POWER_ZERO": "erk_power_scale = 0: every sparse layer gets the same density",
    "NEGATIVE_EPS": "the initially dense layers' zeros exceed the sparse layers' nonzeros: ε < 0 (refused)",
}


#: no float input: the outputs are float64 whatever the run dtype
F64 = ("float64",)


def _shapes(rng, L, K):  # noqa: N803
    rows = np.zeros((L, K), dtype=np.int64)
    for layer in range(L):
        rank = int(rng.choice([2, K])) if K > 2 else 2
        rows[layer, K - rank :] = rng.integers(1, 65, size=rank)
        if rank == 4:
            rows[layer, :2] = rng.choice([1, 3, 5], size=2)
    return rows


def _erk_random(rng, L, K):  # noqa: N803
    shapes = _shapes(rng, L, K)
    dense = rng.random(L) < 0.15
    if dense.all():
        dense[0] = False
    sparsity = float(rng.choice([0.5, 0.8, 0.9, 0.95, rng.uniform(0, 1)]))
    sizes = np.array([math.prod(int(x) for x in row[row > 0]) for row in shapes], dtype=np.float64)
    zeros = np.floor(sparsity * sizes)
    if np.sum((sizes - zeros)[~dense]) < np.sum(zeros[dense]):  # ε < 0: refused, not a sample
        dense[:] = False
    kwargs = {
        "sparsity": sparsity,
        "erk_power_scale": float(rng.choice([1.0, 0.5, 0.0])),
        "distribution": str(rng.choice(["erk", "erk", "er", "uniform"])),
    }
    return Sample("random", (shapes, dense), kwargs, dtypes=F64)


def _erk_edges():
    conv_net = np.array([[3, 3, 3, 64], [3, 3, 64, 128], [3, 3, 128, 256], [0, 0, 4096, 10]])
    samples = [
        Sample("conv net, S = 0.9", (conv_net, np.zeros(4, bool)), {"sparsity": 0.9}),
        Sample(
            "small conv beside a huge layer",
            (np.array([[3, 3, 3, 16], [0, 0, 4096, 4096]]), np.zeros(2, bool)),
            {"sparsity": 0.9},
            flags=("DENSE_SPILL",),
        ),
        Sample(
            "tied maximum raw density",
            (np.array([[4, 4], [4, 4], [200, 300]]), np.zeros(3, bool)),
            {"sparsity": 0.5},
            flags=("TIED_MAX", "DENSE_SPILL"),
        ),
        Sample(
            "initial dense layer",
            (conv_net, np.array([False, False, False, True])),
            {"sparsity": 0.8},
            flags=("INITIAL_DENSE",),
        ),
        Sample(
            "uniform",
            (conv_net, np.array([True, False, False, False])),
            {"sparsity": 0.7, "distribution": "uniform"},
            flags=("UNIFORM",),
        ),  # fmt: skip
        Sample("er", (conv_net, np.zeros(4, bool)), {"sparsity": 0.9, "distribution": "er"}, flags=("ER",)),
        Sample(
            "power 0",
            (conv_net, np.zeros(4, bool)),
            {"sparsity": 0.6, "erk_power_scale": 0.0},
            flags=("POWER_ZERO",),
        ),  # fmt: skip
        Sample("S = 0", (conv_net, np.zeros(4, bool)), {"sparsity": 0.0}),
        Sample("S = 1", (conv_net, np.zeros(4, bool)), {"sparsity": 1.0}),
    ]
    return [dataclasses.replace(sample, dtypes=F64) for sample in samples]


def _erk_errors():
    return [
        ErrorCase(
            "dense layers exceed the budget",
            (np.array([[2, 2], [100, 100]]), np.array([False, True])),
            {"sparsity": 0.9},
            match="ε = .* < 0",
        ),
        ErrorCase(
            "padding inside a shape",
            (np.array([[3, 0, 4]]), np.zeros(1, bool)),
            {"sparsity": 0.5},
            match="left-padded with 0",
        ),
        ErrorCase(
            "rank-1 layer with 'er'",
            (np.array([[0, 5]]), np.zeros(1, bool)),
            {"sparsity": 0.5, "distribution": "er"},
            match="two dimensions",
        ),
    ]


def _erk_known():
    return [
        Known(
            "two dense layers 10×10 and 100×100",
            (np.array([[10, 10], [100, 100]]), np.zeros(2, bool)),
            {"sparsity": 0.9},
            {"sparsities": [1 - 0.2 * 1010 / 220, 1 - 0.02 * 1010 / 220], "epsilon": 1010 / 220},
            source="by hand: p = (0.2, 0.02), ε = (10 + 1000)/(0.2·100 + 0.02·10⁴)",
        )
    ]


register(
    OpCases(
        "erk_density_allocation",
        dims={"L": (1, 5), "K": (2, 4)},
        random=_erk_random,
        edges=_erk_edges,
        errors=_erk_errors,
        notes=ERK_NOTES,
        known=_erk_known,
        defaults={"erk_power_scale": 1.0, "distribution": "erk"},
    )
)


# -- prune_grow_update ---------------------------------------------------------------------
NOTES = {
    "TIES": "equal |w| among the active weights and equal growth scores: the lower index goes first",
    "RESERVED": "weights reserved by other tasks are never grown",
    "FEW_CANDIDATES": "fewer candidates than k: only as many are pruned and grown (nnz kept)",
    "REGROW": "regrow_pruned=True: a just-pruned weight with a large score is grown back (at 0)",
    "END": "t = T_end: ζ_t = 0, nothing moves",
    "EMPTY_MASK": "no active weight: k = 0",
}


def _update_random(rng, N):  # noqa: N803
    w = rng.standard_normal(N) * float(rng.choice([0.01, 1.0, 100.0]))
    mask = rng.random(N) < 0.5
    reserved = ~mask & (rng.random(N) < 0.2)
    w[~mask] = np.where(rng.random(N) < 0.5, 0.0, w)[~mask]  # inactive weights are often 0
    end_step = int(rng.integers(1, 100))
    kwargs = {
        "step": int(rng.integers(0, end_step + 1)),
        "end_step": end_step,
        "drop_fraction": float(rng.choice([0.3, 0.5, 1.0, rng.uniform(0, 1)])),
        "regrow_pruned": bool(rng.random() < 0.3),
    }
    return Sample("random", (w, mask, rng.random(N), reserved), kwargs)


def _update_edges():
    none = np.zeros(8, bool)
    w = np.array([0.5, -0.5, 2.0, 0.0, 0.5, 0.0, -3.0, 0.0])
    mask = np.array([True, True, True, False, True, False, True, False])
    scores = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    return [
        Sample(
            "ties",
            (w, mask, scores, none),
            {"step": 0, "end_step": 10, "drop_fraction": 0.8},
            flags=("TIES",),
            comment="k = ⌊0.8·5⌋ = 4 > 3 candidates: prune 0, 1, 4; grow 3, 5, 7",
        ),  # fmt: skip
        Sample(
            "reserved",
            (w, mask, np.array([0, 0, 0, 1.0, 0, 9.0, 0, 2.0]), np.array([0, 0, 0, 0, 0, 1, 0, 0], bool)),
            {"step": 0, "end_step": 10, "drop_fraction": 0.5},
            flags=("RESERVED",),
        ),
        Sample(
            "few candidates",
            (w, np.array([1, 1, 1, 1, 1, 1, 1, 0], bool), scores, none),
            {"step": 0, "end_step": 4, "drop_fraction": 1.0},
            flags=("FEW_CANDIDATES",),
        ),
        Sample(
            "regrow a pruned weight",
            (w, mask, np.array([5.0, 0, 0, 1.0, 0, 0.5, 0, 0.25]), none),
            {"step": 0, "end_step": 10, "drop_fraction": 0.5, "regrow_pruned": True},
            flags=("REGROW",),
        ),
        Sample("t = T_end", (w, mask, scores, none), {"step": 10, "end_step": 10}, flags=("END",)),
        Sample("empty mask", (w, none, scores, none), {"step": 0, "end_step": 10}, flags=("EMPTY_MASK",)),
    ]


def _update_errors():
    w = np.ones(3)
    return [
        ErrorCase(
            "step past end_step",
            (w, np.ones(3, bool), w, np.zeros(3, bool)),
            {"step": 11, "end_step": 10},
            match="t ≤ T_end",
        ),
        ErrorCase(
            "active weight reserved",
            (w, np.ones(3, bool), w, np.array([True, False, False])),
            {"step": 0, "end_step": 10},
            match="mask ∧ reserved",
        ),
    ]


def _update_known():
    w = np.array([0.5, -2.0, 0.0, 0.1, 3.0, 0.0])
    mask = np.array([True, True, False, True, True, False])
    return [
        Known(
            "docstring example",
            (w, mask, np.array([0, 0, 5.0, 0, 0, 7.0]), np.zeros(6, bool)),
            {"step": 0, "end_step": 10, "drop_fraction": 0.5},
            {
                "new_mask": [False, True, True, False, True, True],
                "new_w": [0, -2.0, 0, 0, 3.0, 0],
                "n_updated": 2,
            },
            source="by hand: ζ_0 = 0.5, k = 2; prune |0.1|, |0.5|; grow scores 7, 5",
        )
    ]


def _update_torch(torch, args, kwargs, cotangent):
    """Stable torch.sort of |w| (inactive set to +inf) and of −scores (non-candidates +inf)."""
    w = torch.from_numpy(np.asarray(args[0]))
    mask, scores, reserved = (torch.from_numpy(np.asarray(a)) for a in args[1:])
    step, end_step = kwargs["step"], kwargs["end_step"]
    fraction = kwargs.get("drop_fraction", 0.3) / 2 * (1 + math.cos(math.pi * step / end_step))
    regrow = kwargs.get("regrow_pruned", False)

    def step_fn():
        with torch.no_grad():
            count = int(math.floor(fraction * int(mask.sum())))
            if not regrow:
                count = min(count, int((~mask & ~reserved).sum()))
            inf = torch.tensor(float("inf"), dtype=torch.float64)
            drop_key = torch.where(mask, w.double().abs(), inf)
            pruned = torch.sort(drop_key, stable=True).indices[:count]
            kept = mask.clone()
            kept[pruned] = False
            candidates = (~kept if regrow else ~mask) & ~reserved
            grow_key = torch.where(candidates, -scores.double(), inf)
            grown = torch.sort(grow_key, stable=True).indices[:count]
            new_mask = kept.clone()
            new_mask[grown] = True
            return new_mask, torch.where(kept, w, torch.zeros_like(w)), torch.tensor(count)

    return step_fn


def _update_bench(rng, rows, cols):
    size = rows * cols
    mask = rng.random(size) < 0.1
    w = np.where(mask, rng.standard_normal(size), 0.0)
    return Sample("bench", (w, mask, rng.random(size), np.zeros(size, bool)), {"step": 100, "end_step": 1000})


register(
    OpCases(
        "prune_grow_update",
        dims={"N": (1, 24)},
        random=_update_random,
        edges=_update_edges,
        errors=_update_errors,
        notes=NOTES,
        known=_update_known,
        defaults={"drop_fraction": 0.3, "regrow_pruned": False},
        bench=Bench(
            make=_update_bench,
            torch=_update_torch,
            torch_label="stable torch.sort of masked |w| and −scores, first k (forward only)",
        ),
    )
)
