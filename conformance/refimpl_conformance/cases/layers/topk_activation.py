"""Conformance cases for `topk_activation` and `activation_sparsity`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "TIES_AT_THRESHOLD": "entries equal to t_k: 'exactly_k' keeps the lowest indices, 'threshold' all",
    "ZERO_TIES": "k above the number of positive entries: t_k = 0 is tied many times (zeros kept)",
    "K_IS_D": "k = D: the identity",
    "K_IS_ONE": "k = 1: only the row maximum (the first one on a tie)",
    "NEGATIVE": "h not after a ReLU: negative entries are ranked like any others",
    "BATCH_DIMS": "h with several leading dimensions: top-k along the last axis only",
    "ALL_ZERO": "an all-zero row: fraction 0",
    "NEGATIVE_ZERO": "−0.0 counts as zero",
}


def _relu_rows(rng, rows, d, k):
    """Distinct positive values (gaps ≥ 0.4·scale), some of those below the k-th largest set
    to 0 as a ReLU would: no entry is within a difference step of the threshold."""
    scale = rng.uniform(0.1, 10)
    ranks = np.stack([rng.permutation(d) for _ in range(rows)])
    h = (ranks + 1 + rng.uniform(-0.3, 0.3, (rows, d))) * scale
    below = ranks < d - k - 1  # strictly below the (k + 1)-th largest: zeroing keeps t_k
    h[below & (rng.random((rows, d)) < 0.5)] = 0.0
    return h


def _topk_random(rng, B, D):
    k = int(rng.integers(1, D + 1))
    return Sample(
        "random",
        (_relu_rows(rng, B, D, k),),
        {"k": k, "tie_rule": str(rng.choice(["exactly_k", "threshold"]))},
    )


def _topk_edges():
    rng = np.random.default_rng(21)
    ties = np.array([[2.0, 1.0, 1.0, 1.0, 0.0], [1.0, 3.0, 3.0, 0.5, 3.0]])
    sparse = np.array([[0.0, 2.0, 0.0, 0.0, 1.0, 0.0]])
    return [
        Sample("ties at t_k, exactly_k", (ties,), {"k": 2}, flags=("TIES_AT_THRESHOLD",), fd=False),
        Sample(
            "ties at t_k, threshold",
            (ties,),
            {"k": 2, "tie_rule": "threshold"},
            flags=("TIES_AT_THRESHOLD",),
            fd=False,
        ),
        Sample(
            "k = 1 on a tied maximum", (ties,), {"k": 1}, flags=("K_IS_ONE", "TIES_AT_THRESHOLD"), fd=False
        ),
        Sample("k above the positives", (sparse,), {"k": 4}, flags=("ZERO_TIES",), fd=False),
        Sample(
            "k above the positives, threshold",
            (sparse,),
            {"k": 4, "tie_rule": "threshold"},
            flags=("ZERO_TIES",),
            fd=False,
        ),
        Sample("k = D", (_relu_rows(rng, 3, 6, 6),), {"k": 6}, flags=("K_IS_D",)),
        Sample("negative entries", (_relu_rows(rng, 3, 7, 3) - 20.0,), {"k": 3}, flags=("NEGATIVE",)),
        Sample(
            "batch dims (2, 3, D)",
            (_relu_rows(rng, 6, 8, 3).reshape(2, 3, 8),),
            {"k": 3},
            flags=("BATCH_DIMS",),
        ),
        Sample("single row vector", (_relu_rows(rng, 1, 9, 4)[0],), {"k": 4}),
    ]


def _topk_errors():
    return [ErrorCase("k > D", (np.ones((2, 3)),), {"k": 4}, match=r"'k'.*at most")]


def _topk_known():
    return [
        Known(
            "h = (0, 3, 1, 3, 2), k = 2",
            (np.array([[0.0, 3.0, 1.0, 3.0, 2.0]]),),
            {"k": 2},
            values={"h_topk": [[0.0, 3.0, 0.0, 3.0, 0.0]], "cotangent of 'h'": [[0.0, 1.0, 0.0, 1.0, 0.0]]},
            source="by hand: the two 3s",
            rtol=0.0,
        ),
        Known(
            "h = (2, 1, 1, 1), k = 2, exactly_k",
            (np.array([[2.0, 1.0, 1.0, 1.0]]),),
            {"k": 2},
            values={"h_topk": [[2.0, 1.0, 0.0, 0.0]], "cotangent of 'h'": [[1.0, 1.0, 0.0, 0.0]]},
            source="the tie rule: the lowest-index 1 fills the last place",
            rtol=0.0,
        ),
        Known(
            "h = (2, 1, 1, 1), k = 2, threshold",
            (np.array([[2.0, 1.0, 1.0, 1.0]]),),
            {"k": 2, "tie_rule": "threshold"},
            values={"h_topk": [[2.0, 1.0, 1.0, 1.0]], "cotangent of 'h'": [[1.0, 1.0, 1.0, 1.0]]},
            source="the tie rule: every entry ≥ t_k = 1",
            rtol=0.0,
        ),
    ]


def _topk_torch(torch, args, kwargs, cotangent):
    """torch.topk indices scattered into a mask, h ⊙ mask; autograd for h̄ (equal to the
    reference where the k-th value is not tied, as in the benchmark's data)."""
    h = torch.from_numpy(args[0]).requires_grad_()
    g = torch.from_numpy(cotangent)
    k = kwargs["k"]

    def step():
        indices = torch.topk(h.detach(), k, dim=-1).indices
        mask = torch.zeros_like(h, dtype=torch.bool).scatter_(-1, indices, True)
        y = h * mask
        h.grad = None
        y.backward(g)
        return y

    return step


def _topk_bench_sample(rng, rows, cols):
    return Sample("bench", (np.maximum(rng.standard_normal((rows, cols)), 0.0),), {"k": max(1, cols // 16)})


register(
    OpCases(
        "topk_activation",
        dims={"B": (1, 6), "D": (1, 10)},
        random=_topk_random,
        edges=_topk_edges,
        errors=_topk_errors,
        known=_topk_known,
        notes=NOTES,
        defaults={"tie_rule": "exactly_k"},
        bench=Bench(
            make=_topk_bench_sample,
            torch=_topk_torch,
            torch_label="torch.topk indices → mask, h ⊙ mask (k = D/16)",
        ),
    )
)


# -- activation sparsity ---------------------------------------------------------------------


def _sparsity_random(rng, B, D):
    h = np.maximum(rng.standard_normal((B, D)) + rng.uniform(-2, 1), 0.0) * rng.uniform(0.1, 10)
    return Sample("random", (h,))


def _sparsity_edges():
    return [
        Sample(
            "all-zero and dense rows", (np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 3.0]]),), flags=("ALL_ZERO",)
        ),
        Sample(
            "−0.0 entries",
            (np.array([[-0.0, 0.0, 1e-300, 5.0]]),),
            flags=("NEGATIVE_ZERO",),
            dtypes=("float64",),
        ),
        Sample(
            "batch dims (2, 3, D)",
            (np.maximum(np.random.default_rng(22).standard_normal((2, 3, 5)), 0.0),),
            flags=("BATCH_DIMS",),
        ),
        Sample("single row vector", (np.array([0.0, 2.0, 0.0, 0.0]),)),
    ]


def _sparsity_known():
    return [
        Known(
            "rows (0, 1.5, 0, −0) and (1, 2, 3, 4)",
            (np.array([[0.0, 1.5, 0.0, -0.0], [1.0, 2.0, 3.0, 4.0]]),),
            values={"fraction": [0.25, 1.0]},
            source="by hand: one nonzero of four, four of four",
            rtol=0.0,
        )
    ]


def _sparsity_torch(torch, args, kwargs, cotangent):
    """(h != 0).sum(-1) / D; forward only (a statistic, no VJP)."""
    h = torch.from_numpy(args[0])

    def step():
        with torch.no_grad():
            return ((h != 0).sum(dim=-1) / h.shape[-1]).to(h.dtype)

    return step


register(
    OpCases(
        "activation_sparsity",
        dims={"B": (1, 6), "D": (1, 12)},
        random=_sparsity_random,
        edges=_sparsity_edges,
        known=_sparsity_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            sizes={"B": "rows", "D": "cols"},
            torch=_sparsity_torch,
            torch_label="(h != 0).sum(-1) / D (forward only, no VJP)",
        ),
    )
)
