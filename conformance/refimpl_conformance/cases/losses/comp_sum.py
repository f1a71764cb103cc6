"""Conformance cases for `comp_sum_loss`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register

NOTES = {
    "SPECIAL_TAU": "τ = 0 (sum-exponential), 1 (cross-entropy), 1.7 (GCE q = 0.7), 2 (1 − p_y)",
    "NEAR_ONE": "τ = 1 ± 1e-8: (p_y^{τ−1} − 1)/(1 − τ) cancels unless written with expm1",
    "LARGE_LOGITS": "|z| up to 1e4 with τ ≥ 1: u = Σ exp(z_k − z_y) overflows if formed",
    "ONE_CLASS": "K = 1: p_y = 1, the loss and its gradient are 0",
}

TAUS = (0.0, 0.5, 1.0, 1.7, 2.0, 3.0)


def _random(rng, B, K):
    tau = float(rng.choice(TAUS))
    # τ < 1 is unbounded as p_y → 0 (τ = 0 is exp(margin)): keep margins where float32 holds it
    scales = [0.5, 3.0] if tau < 1 else [0.5, 3.0, 30.0]
    z = rng.standard_normal((B, K)) * float(rng.choice(scales))
    kwargs = {"tau": tau, "reduction": str(rng.choice(["mean", "sum", "none"]))}
    return Sample("random", (z, rng.integers(0, K, size=B)), kwargs)


def _edges():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((4, 5)) * 2
    y = np.array([1, 0, 4, 2])
    known = (np.array([[0.0, np.log(3.0)]]), np.array([0]))
    return [
        Sample("known value τ = 0: u = 3", known, {"tau": 0.0}, flags=("SPECIAL_TAU",)),
        Sample("known value τ = 1: log 4", known, {"tau": 1.0}, flags=("SPECIAL_TAU",)),
        Sample("known value τ = 2: 1 − p_y = 0.75", known, {"tau": 2.0}, flags=("SPECIAL_TAU",)),
        Sample("GCE q = 0.7 (τ = 1.7)", (z, y), {"tau": 1.7, "reduction": "none"}, flags=("SPECIAL_TAU",)),
        Sample("τ = 1 + 1e-8", (z, y), {"tau": 1.0 + 1e-8}, flags=("NEAR_ONE",)),
        Sample("τ = 1 − 1e-8", (z, y), {"tau": 1.0 - 1e-8, "reduction": "sum"}, flags=("NEAR_ONE",)),
        Sample(
            "logits ±1e4, τ = 1.7",
            (np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]]), np.array([1, 0])),
            {"tau": 1.7, "reduction": "none"},
            flags=("LARGE_LOGITS",),
            fd=False,
            comment="the relative FD step 1e-6·|z| is 1e-2 here, where the loss is far from linear",
        ),
        Sample(
            "logits ±1e4, τ = 1",
            (np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]]), np.array([0, 1])),
            {"tau": 1.0},
            flags=("LARGE_LOGITS",),
            fd=False,
            comment="the relative FD step 1e-6·|z| is 1e-2 here, where the loss is far from linear",
        ),
        Sample(
            "one class", (np.array([[2.5], [-1.0]]), np.array([0, 0])), {"tau": 0.5}, flags=("ONE_CLASS",)
        ),
    ]


def _comp_sum_torch(torch, args, kwargs, cotangent):
    """ℓ = −expm1((τ − 1)·log p_y)/(τ − 1) from F.cross_entropy's −log p_y (τ = 1: that itself)."""
    F = torch.nn.functional
    z = torch.from_numpy(args[0]).requires_grad_()
    y = torch.from_numpy(args[1]).long()
    g = torch.from_numpy(cotangent)
    tau, reduction = kwargs["tau"], kwargs.get("reduction", "mean")

    def step():
        z.grad = None
        nll = F.cross_entropy(z, y, reduction="none")  # −log p_y per row
        per_row = nll if tau == 1.0 else -torch.expm1((1.0 - tau) * nll) / (tau - 1.0)
        loss = per_row.mean() if reduction == "mean" else per_row.sum() if reduction == "sum" else per_row
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "comp_sum_loss",
        dims={"B": (1, 6), "K": (1, 9)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "K": "cols"},
            torch=_comp_sum_torch,
            torch_label="F.cross_entropy per row, −expm1((τ − 1)·(−nll))/(τ − 1), mean; autograd backward",
            # one exp per logit (the softmax; its backward reuses it) and one log per row (the LSE);
            # τ ≠ 1 adds one expm1 per row (p_y^{τ−1} = expm1 + 1 serves the backward)
            transcendentals=lambda args, kwargs: (
                args[0].size + args[0].shape[0] * (1 if kwargs["tau"] == 1.0 else 2)
            ),
        ),
    )
)
