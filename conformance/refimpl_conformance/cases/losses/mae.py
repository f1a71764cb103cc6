"""Conformance cases for `mae_loss`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "OFFSET": "logits 1e4 + O(1): the softmax must subtract the row max",
    "SATURATED": "p_y → 1 or p_y → 0: the gradient 2 p_y (p_j, −q) vanishes both ways",
    "ONE_CLASS": "K = 1: p = [1], so the loss and its gradient are 0",
    "LARGE_LOGITS": "|z| up to 1e4 (float32 too): exp without the max shift overflows",
}


def _random(rng, B, K):  # noqa: N803
    z = rng.standard_normal((B, K)) * float(rng.choice([0.5, 3.0, 10.0]))
    reduction = rng.choice(["default", "mean", "sum", "none"])
    kwargs = {} if reduction == "default" else {"reduction": str(reduction)}
    return Sample("random", (z, rng.integers(0, K, size=B)), kwargs)


def _edges():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((3, 5))
    y = np.array([4, 0, 2])
    return [
        Sample(
            "known value: z = [0, 0], y = 0",
            (np.array([[0.0, 0.0]]), np.array([0])),
            comment="p = [½, ½]: ℓ = 1, gradient [−½, ½]",
        ),
        Sample(
            "logits offset 1e4",
            (z + 1e4, y),
            {"reduction": "none"},
            flags=("OFFSET",),
            dtypes=("float64",),
            fd_step=1e-10,
            comment="float32 rounds 1e4 + O(1) to 1e-3; the FD step is 1e-6 absolute (the relative "
            "1e-6·|z| = 1e-2 would be far too coarse)",
        ),
        Sample(
            "p_y → 1",
            (np.array([[40.0, 0.0, -3.0], [0.0, 25.0, 1.0]]), np.array([0, 1])),
            {"reduction": "sum"},
            flags=("SATURATED",),
            comment="q = Σ_{k≠y} p_k ≈ 4e-18 and 5e-11: 1 − p_y would round to 0; gradient ≈ 0",
        ),
        Sample(
            "p_y → 0",
            (np.array([[0.0, 40.0, -3.0], [-30.0, 0.0, 5.0]]), np.array([0, 0])),
            {"reduction": "none"},
            flags=("SATURATED",),
            comment="p_y ≈ 4e-18 and 6e-16: ℓ ≈ 2, gradient ≈ 0",
        ),
        Sample(
            "one class",
            (np.array([[2.5], [-1.0]]), np.array([0, 0])),
            flags=("ONE_CLASS",),
        ),
        Sample(
            "logits ±1e4 (float32 too)",
            (np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4], [80.0, -90.0, 85.0]]), np.array([1, 0, 2])),
            {"reduction": "none"},
            flags=("LARGE_LOGITS",),
            fd=False,
            comment="the relative FD step 1e-6·|z| is 1e-2 here, where the loss is far from linear",
        ),
    ]


def _known():
    e2 = math.exp(2.0)
    return [
        Known(
            "z = [0, 0], y = 0",
            (np.array([[0.0, 0.0]]), np.array([0])),
            values={"loss": 1.0, "cotangent of 'z'": [[-0.5, 0.5]]},
            source="by hand: p = [½, ½], ℓ = 2(1 − ½); z̄ = 2 p_y (−q, p_1) = [−½, ½]",
            rtol=1e-12,
        ),
        Known(
            "z = [2, 0], y = 0, none",
            (np.array([[2.0, 0.0]]), np.array([0])),
            {"reduction": "none"},
            values={
                "loss": [2 / (e2 + 1)],
                "cotangent of 'z'": [[-2 * e2 / (e2 + 1) ** 2, 2 * e2 / (e2 + 1) ** 2]],
            },
            source="by hand: p_y = e²/(e² + 1), q = 1/(e² + 1); ℓ = 2q, z̄ = 2 p_y (−q, q)",
            rtol=1e-12,
        ),
        Known(
            "K = 3 uniform, y = 1, sum",
            (np.zeros((1, 3)), np.array([1])),
            {"reduction": "sum"},
            values={"loss": 4 / 3, "cotangent of 'z'": [[2 / 9, -4 / 9, 2 / 9]]},
            source="by hand: p = 1/3, ℓ = 2·(2/3); z̄ = 2·(1/3)·(1/3) off the label, −2·(1/3)·(2/3) at it",
            rtol=1e-12,
        ),
    ]


def _mae_torch(torch, args, kwargs, cotangent):
    """2·(1 − softmax(z).gather(y)), mean; autograd backward."""
    z = torch.from_numpy(args[0]).requires_grad_()
    y = torch.from_numpy(args[1]).long()
    g = torch.from_numpy(np.asarray(cotangent))
    reduction = kwargs.get("reduction", "mean")

    def step():
        z.grad = None
        per_row = 2 * (1 - torch.softmax(z, -1).gather(1, y[:, None])[:, 0])
        loss = per_row.mean() if reduction == "mean" else per_row.sum() if reduction == "sum" else per_row
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "mae_loss",
        dims={"B": (1, 6), "K": (2, 9)},  # K = 1 (loss and gradient 0) is an edge case
        random=_random,
        edges=_edges,
        known=_known,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "K": "cols"},
            torch=_mae_torch,
            torch_label="2·(1 − torch.softmax(z).gather(y)), mean; autograd backward",
            # one exp per logit (the backward recomputes the softmax: counted once), no log
            transcendentals=lambda args, kwargs: args[0].size,
        ),
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
@transcribes("ldr-mae-loss-missing-abs", outputs=("loss",))
def _ldr_mae(z, y, *, reduction, dtype):
    """ICML2023_LDR ``MAELoss.forward``: Σ_k (one-hot − softmax(z))_k per row, no absolute value."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    softmax = e / e.sum(axis=1, keepdims=True)
    one_hot = np.eye(z.shape[1], dtype=z.dtype)[y]
    per_row = (one_hot - softmax).sum(axis=1)
    return {"loss": {"mean": per_row.mean(), "sum": per_row.sum()}.get(reduction, per_row)}
