"""Conformance cases for `z_loss`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register, standardized_rows

NOTES = {
    "EQUAL_OUTPUTS": "σ = 0 without eps: only eps > 0 makes the row valid (z = 0 then)",
    "OFFSET": "outputs 1e4 + O(1): the one-pass variance E[o²] − μ² cancels; two-pass does not",
    "SCALE": "outputs ×1e6: the loss is scale invariant, the gradient scales as 1/σ",
    "SATURATED": "a(b − z_c) ≈ ±500: softplus must not overflow and σ(·) must not be NaN",
    "TWO_OUTPUTS": "D = 2: z = ±1 always, so the loss is constant in o and the gradient is 0",
}


def _random(rng, B, D):
    o = standardized_rows(rng.standard_normal((B, D)))  # each row's spread is the drawn scale
    o = o * float(rng.choice([0.1, 1.0, 30.0])) + float(rng.choice([0.0, 5.0]))
    kwargs = {
        "a": float(rng.choice([0.5, 1.0, 5.0])),
        "b": float(rng.choice([-1.0, 0.0, 1.0, 3.0])),
        "eps": float(rng.choice([0.0, 0.0, 1e-3])),
        "reduction": str(rng.choice(["mean", "sum", "none"])),
    }
    return Sample("random", (o, rng.integers(0, D, size=B)), kwargs)


def _edges():
    rng = np.random.default_rng(9)
    o = rng.standard_normal((3, 6))
    c = np.array([2, 0, 5])
    return [
        Sample(
            "known value: z = [1, −1], a = b = 1",
            (np.array([[1.0, -1.0]]), np.array([0])),
            {"a": 1.0, "b": 1.0},
            flags=("TWO_OUTPUTS",),
            comment="softplus(0) = log 2",
        ),
        Sample(
            "equal outputs with eps",
            (np.array([[2.0, 2.0, 2.0], [1.0, -1.0, 0.0]]), np.array([0, 1])),
            {"a": 1.0, "b": 1.0, "eps": 1e-6},
            flags=("EQUAL_OUTPUTS",),
        ),
        Sample(
            "offset 1e4",
            (o + 1e4, c),
            {"a": 2.0, "b": 1.0, "reduction": "none"},
            flags=("OFFSET",),
            dtypes=("float64",),
            fd_step=1e-10,
            comment="float32 rounds 1e4 + O(1) to 1e-3: the inputs themselves lose 4 digits; "
            "the FD step is 1e-6 absolute (the relative 1e-6·|o| = 1e-2 is the size of the spread)",
        ),
        Sample("scale 1e6", (o * 1e6, c), {"a": 1.0, "b": 0.5}, flags=("SCALE",)),
        Sample("a(b − z_c) = +500", (o, c), {"a": 100.0, "b": 5.0, "reduction": "sum"}, flags=("SATURATED",)),
        Sample("a(b − z_c) = −500", (o, c), {"a": 100.0, "b": -5.0}, flags=("SATURATED",)),
    ]


def _errors():
    o = np.array([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])
    c = np.array([0, 1])
    return [
        ErrorCase("D = 1", (np.ones((2, 1)), np.array([0, 0])), {"a": 1.0, "b": 0.0}, match="D >= 2"),
        ErrorCase("equal outputs, eps = 0", (o, c), {"a": 1.0, "b": 0.0}, match="all outputs equal in row 1"),
    ]


def _z_loss_torch(torch, args, kwargs, cotangent):
    """Two-pass standardization, F.softplus(a(b − z_c))/a, mean; autograd backward."""
    F = torch.nn.functional
    o = torch.from_numpy(args[0]).requires_grad_()
    c = torch.from_numpy(args[1]).long()
    g = torch.from_numpy(cotangent)
    a, b, eps = kwargs["a"], kwargs["b"], kwargs.get("eps", 0.0)
    reduction = kwargs.get("reduction", "mean")

    def step():
        o.grad = None
        centered = o - o.mean(-1, keepdim=True)
        sigma = torch.sqrt((centered * centered).mean(-1) + eps)
        z_c = centered.gather(1, c[:, None])[:, 0] / sigma
        # threshold=inf: the exact softplus (PyTorch's default returns x itself above 20)
        per_row = F.softplus(a * (b - z_c), threshold=float("inf")) / a
        loss = per_row.mean() if reduction == "mean" else per_row.sum() if reduction == "sum" else per_row
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "z_loss",
        dims={"B": (1, 6), "D": (3, 9)},  # D = 2 (gradient exactly 0) is an edge case
        random=_random,
        edges=_edges,
        errors=_errors,
        defaults={"eps": 0.0, "reduction": "mean"},
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "D": "cols"},
            torch=_z_loss_torch,
            torch_label="two-pass mean/std, gather, F.softplus(a(b − z_c))/a, mean; autograd backward",
            # per row: the softplus's exp(−|x|) and log1p (the backward's sigmoid reuses the exp)
            transcendentals=lambda args, kwargs: 2 * args[0].shape[0],
        ),
    )
)
