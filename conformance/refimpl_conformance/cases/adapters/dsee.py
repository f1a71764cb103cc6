"""Conformance cases for `dsee_linear` and `dsee_sparse_support`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register
from .lora import lora_blas

NOTES = {
    "ZERO_S": "S = 0 (DSEE's initialization): the layer is lora_linear, yet S̄ = s·(Gᵀ X) ⊙ Ω ≠ 0",
    "S_OFF_SUPPORT": "S non-zero off Ω: ignored in the forward, S̄ = 0 there",
    "EMPTY_SUPPORT": "Ω empty (num_sparse = 0 in the official code): S̄ = 0 and the layer is lora_linear",
    "FULL_SUPPORT": "Ω everything: a dense additive update s·S",
    "BATCH_DIMS": "x with several leading dimensions: Ā, B̄, S̄ sum over all of them",
    "SINGLE_VECTOR": "x of shape (in,)",
    "ZERO_SCALE": "s = 0: both branches off (the sparse one is scaled too), Ā = B̄ = S̄ = 0",
}


def _layer(rng, T, I, O, R, density=0.2):  # noqa: N803 - dimension names as in the op's specs
    x = rng.standard_normal((T, I))
    W = rng.standard_normal((O, I)) / np.sqrt(I)
    A = rng.standard_normal((R, I)) / np.sqrt(I)
    B = rng.standard_normal((O, R))
    S = rng.standard_normal((O, I))
    mask = rng.random((O, I)) < density
    bias = rng.standard_normal(O)
    return x, W, A, B, S, mask, bias


def _random(rng, T, I, O, R):  # noqa: N803
    x, W, A, B, S, mask, bias = _layer(rng, T, I, O, R, density=float(rng.choice([0.1, 0.3, 0.7])))
    args = (x, W, A, B, S, mask, bias) if rng.random() < 0.5 else (x, W, A, B, S, mask)
    return Sample("random", args, {"scale": float(rng.choice([32.0, 16.0, 8.0])) / R})


def _edges():
    rng = np.random.default_rng(186)
    x, W, A, B, S, mask, bias = _layer(rng, 3, 5, 4, 2)
    return [
        Sample("S = 0 (init)", (x, W, A, B, np.zeros_like(S), mask, bias), {"scale": 8.0}, flags=("ZERO_S",)),
        Sample("S dense, Ω sparse", (x, W, A, B, S, mask), {"scale": 2.0}, flags=("S_OFF_SUPPORT",)),
        Sample(
            "Ω empty", (x, W, A, B, S, np.zeros_like(mask), bias), {"scale": 2.0}, flags=("EMPTY_SUPPORT",)
        ),
        Sample("Ω full", (x, W, A, B, S, np.ones_like(mask)), {"scale": 0.5}, flags=("FULL_SUPPORT",)),
        Sample(
            "batch dims (2, 3, in)",
            (rng.standard_normal((2, 3, 5)), W, A, B, S, mask, bias),
            {"scale": 1.5},
            flags=("BATCH_DIMS",),
        ),
        Sample(
            "single vector",
            (rng.standard_normal(5), W, A, B, S, mask),
            {"scale": 1.0},
            flags=("SINGLE_VECTOR",),
        ),
        Sample("scale = 0", (x, W, A, B, S, mask, bias), {"scale": 0.0}, flags=("ZERO_SCALE",)),
    ]


def _known():
    # y = [1, 2] + 2·([1·0, 1·1] + [3·1, 0]) = [7, 4]; with G = [1, 1]: S̄ = 2·Gᵀx ⊙ Ω = [[2, 0], [0, 0]]
    x, W = np.array([[1.0, 2.0]]), np.eye(2)
    A, B = np.array([[1.0, 0.0]]), np.array([[0.0], [1.0]])
    S, mask = np.array([[3.0, 5.0], [0.0, 0.0]]), np.array([[True, False], [False, False]])
    return [
        Known(
            "2 × 2 by hand",
            (x, W, A, B, S, mask),
            {"scale": 2.0},
            {"y": np.array([[7.0, 4.0]]), "cotangent of 'S'": np.array([[2.0, 0.0], [0.0, 0.0]])},
        )
    ]


def _dsee_torch(torch, args, kwargs, cotangent):
    """DSEE's BertSelfAttention branch: linear(x, W, b) + s·lora_b(lora_a(x)) + s·linear(x, S·mask)
    (torch.nn.utils.prune's weight_orig·weight_mask), autograd for the backward."""
    x, W, A, B, S, mask = (torch.from_numpy(a) for a in args[:6])
    bias = torch.from_numpy(args[6]) if len(args) > 6 and args[6] is not None else None
    for tensor in (x, A, B, S):
        tensor.requires_grad_()
    linear, scale, g_y = torch.nn.functional.linear, kwargs["scale"], torch.from_numpy(cotangent)
    weight_mask = mask.to(S.dtype)

    def step():
        y = linear(x, W, bias) + scale * linear(linear(x, A), B) + scale * linear(x, S * weight_mask)
        x.grad = A.grad = B.grad = S.grad = None
        y.backward(g_y)
        return y

    return step


def _dsee_blas(args, kwargs):
    """lora_linear's products plus the sparse cotangent Gᵀ X."""
    x, W = args[:2]
    x_rows = x.reshape(-1, W.shape[1])
    g_rows = np.ones((x_rows.shape[0], W.shape[0]), dtype=x.dtype)
    lora_step = lora_blas(args, kwargs)

    def step():
        lora_step()
        g_rows.T @ x_rows

    return step


register(
    OpCases(
        "dsee_linear",
        dims={"T": (1, 6), "I": (1, 8), "O": (1, 8), "R": (1, 4)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        known=_known,
        defaults={"bias": None},
        bench=Bench(
            sizes={"T": "rows", "I": "cols", "O": "cols", "R": 16},
            torch=_dsee_torch,
            torch_label="torch.nn.functional.linear: W x + s·B(A x) + s·(S·mask) x "
            "(DSEE's self-attention branch)",
            blas=_dsee_blas,
        ),
    )
)


# -- dsee_sparse_support ------------------------------------------------------------------
SUPPORT_NOTES = {
    "TIES_KEEP_ALL": "ties at the N-th largest |S| keep every tied entry (official |S| ≥ kthvalue)",
    "TIES_FIRST": "ties='first': exactly N entries, lowest row-major index among ties",
    "SATURATED_RANK": "V spans the whole row space: S = 0, q = 0 and keep_all keeps the whole matrix",
    "ONE_ROUND": "rounds = 1: the hand-checkable first round",
    "N_IS_NUMEL": "N = out·in: everything is kept",
    "WIDE_AND_TALL": "out < in and out > in: the reduced QR shapes differ",
}


def _support_random(rng, O, I, R0):  # noqa: N803
    W = rng.standard_normal((O, I)) * float(rng.choice([0.02, 0.3, 1.0]))
    kwargs = {
        "num_sparse": int(rng.integers(1, O * I + 1)),
        "rounds": int(rng.integers(1, 4)),
        "alternations": int(rng.integers(1, 4)),
        "rows_per_round": int(rng.choice([3, 5])),
        "threshold": float(rng.choice([0.01, 0.1])),
        "ties": str(rng.choice(["keep_all", "first"])),
    }
    return Sample("random", (W, rng.standard_normal((R0, I))), kwargs)


def _support_edges():
    rng = np.random.default_rng(7)
    low_rank = rng.standard_normal((12, 1)) @ rng.standard_normal((1, 10))
    spikes = np.zeros((12, 10))
    spikes[3, 4], spikes[7, 1], spikes[10, 9] = 4.0, -3.0, 2.5
    diag = np.diag([3.0, 0.5, 0.5])
    return [
        Sample(
            "tie at the threshold, keep_all",
            (diag, np.array([[1.0, 0.0, 0.0]])),
            {"num_sparse": 1, "rounds": 1},
            flags=("TIES_KEEP_ALL", "ONE_ROUND"),
            comment="both 0.5 entries kept",
        ),
        Sample(
            "tie at the threshold, first",
            (diag, np.array([[1.0, 0.0, 0.0]])),
            {"num_sparse": 1, "rounds": 1, "ties": "first"},
            flags=("TIES_FIRST", "ONE_ROUND"),
            comment="(1, 1) only",
        ),
        Sample(
            "rank saturates (4 × 3, 3 rounds)",
            (rng.standard_normal((4, 3)), rng.standard_normal((1, 3))),
            {"num_sparse": 2, "rounds": 3},
            flags=("SATURATED_RANK",),
        ),
        Sample(
            "rank 1 plus spikes",
            (low_rank + spikes, rng.standard_normal((1, 10))),
            {"num_sparse": 3, "rounds": 1},
        ),
        Sample(
            "N = numel",
            (rng.standard_normal((3, 4)), rng.standard_normal((1, 4))),
            {"num_sparse": 12},
            flags=("N_IS_NUMEL",),
        ),
        Sample(
            "wide 3 × 9",
            (rng.standard_normal((3, 9)), rng.standard_normal((2, 9))),
            {"num_sparse": 4, "rounds": 2},
            flags=("WIDE_AND_TALL",),
        ),
        Sample(
            "tall 9 × 3",
            (rng.standard_normal((9, 3)), rng.standard_normal((1, 3))),
            {"num_sparse": 4, "rounds": 2},
            flags=("WIDE_AND_TALL",),
        ),
    ]


def _support_errors():
    return [
        ErrorCase(
            "N > numel", (np.ones((2, 3)), np.ones((1, 3))), {"num_sparse": 7}, match=r"'num_sparse'.*at most"
        ),
    ]


def _support_known():
    diag = np.diag([3.0, 0.5, 0.5])
    V0 = np.array([[1.0, 0.0, 0.0]])
    sparse = np.diag([0.0, 0.5, 0.5])
    return [
        Known(
            "one round on diag(3, ½, ½), keep_all",
            (diag, V0),
            {"num_sparse": 1, "rounds": 1},
            {"mask": sparse > 0, "sparse": sparse},
        ),
        Known(
            "one round on diag(3, ½, ½), first",
            (diag, V0),
            {"num_sparse": 1, "rounds": 1, "ties": "first"},
            {"mask": np.diag([False, True, False]), "sparse": sparse},
        ),
    ]


register(
    OpCases(
        "dsee_sparse_support",
        dims={"O": (2, 7), "I": (2, 7), "R0": (1, 2)},
        random=_support_random,
        edges=_support_edges,
        errors=_support_errors,
        notes=SUPPORT_NOTES,
        known=_support_known,
        defaults={
            "rounds": 100,
            "alternations": 2,
            "rows_per_round": 5,
            "threshold": 0.01,
            "ties": "keep_all",
        },
    )
)
