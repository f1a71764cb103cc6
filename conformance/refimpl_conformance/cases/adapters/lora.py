"""Conformance cases for `lora_linear`."""

from __future__ import annotations

import numpy as np

import refimpl

from ..._cases import Bench, OpCases, Sample, register

NOTES = {
    "ZERO_B": "B = 0 (LoRA's initialization): the layer is the base layer, yet Ā = s·(G B)ᵀ X = 0 "
    "while B̄ = s·Gᵀ H ≠ 0 (a backward that skips the branch when B = 0 loses B̄)",
    "NO_BIAS": "bias None: the optional frozen argument is skipped, never broadcast as 0-d",
    "BATCH_DIMS": "x with several leading dimensions: Ā and B̄ sum over all of them",
    "SINGLE_VECTOR": "x of shape (in,): no batch dimension at all",
    "FULL_RANK": "r = min(out, in) (and r above it): the branch is not low rank",
    "PISSA_INIT": "the weights pissa_init returns: the layer reproduces x Wᵀ of the original W",
    "ZERO_SCALE": "s = 0: the branch is switched off and Ā = B̄ = 0",
}


def _weights(rng, T, I, O, R):  # noqa: N803 - dimension names as in the op's specs
    x = rng.standard_normal((T, I))
    W = rng.standard_normal((O, I)) / np.sqrt(I)
    A = rng.standard_normal((R, I)) / np.sqrt(I)
    B = rng.standard_normal((O, R))
    bias = rng.standard_normal(O)
    return x, W, A, B, bias


def _random(rng, T, I, O, R):  # noqa: N803
    x, W, A, B, bias = _weights(rng, T, I, O, R)
    lora_alpha = float(rng.choice([1.0, 8.0, 16.0]))
    args = (x, W, A, B, bias) if rng.random() < 0.5 else (x, W, A, B)
    return Sample("random", args, {"scale": lora_alpha / R})


def _edges():
    rng = np.random.default_rng(11)
    x, W, A, B, bias = _weights(rng, 3, 5, 4, 2)
    pissa_W = rng.standard_normal((4, 5))
    pissa_A, pissa_B, pissa_W_res = refimpl.get("pissa_init")(pissa_W, 2, scale=2.0)
    return [
        Sample(
            "B = 0 (standard LoRA init), with bias",
            (x, W, A, np.zeros_like(B), bias),
            {"scale": 2.0},
            flags=("ZERO_B",),
            comment="y = x Wᵀ + b exactly; Ā = 0 and B̄ = s·Gᵀ(x Aᵀ)",
        ),
        Sample("bias None", (x, W, A, B), {"scale": 0.5}, flags=("NO_BIAS",)),
        Sample("bias given", (x, W, A, B, bias), {"scale": 0.5}),
        Sample(
            "batch dims (2, 3, in)",
            (rng.standard_normal((2, 3, 5)), W, A, B, bias),
            {"scale": 1.5},
            flags=("BATCH_DIMS",),
        ),
        Sample(
            "single input vector (in,)",
            (rng.standard_normal(5), W, A, B),
            {"scale": 1.0},
            flags=("SINGLE_VECTOR",),
        ),
        Sample(
            "rank r = min(out, in) = 4",
            (x, W, rng.standard_normal((4, 5)), rng.standard_normal((4, 4)), bias),
            {"scale": 0.25},
            flags=("FULL_RANK",),
        ),
        Sample(
            "rank r = 6 > in = 5",
            (x, W, rng.standard_normal((6, 5)), rng.standard_normal((4, 6))),
            {"scale": 0.5},
            flags=("FULL_RANK",),
        ),
        Sample(
            "after pissa_init (r = 2, s = 2)",
            (x, pissa_W_res, pissa_A, pissa_B),
            {"scale": 2.0},
            flags=("PISSA_INIT",),
            comment="y equals x Wᵀ for the W pissa_init factored",
        ),
        Sample("scale = 0", (x, W, A, B, bias), {"scale": 0.0}, flags=("ZERO_SCALE",)),
    ]


def _lora_torch(torch, args, kwargs, cotangent):
    """peft's LoRA forward: W x + s·B(A x), as two linear maps (and torch's autograd)."""
    x, W, A, B, bias = (torch.from_numpy(a) if a is not None else None for a in (*args, None)[:5])
    x.requires_grad_(), A.requires_grad_(), B.requires_grad_()
    linear, scale, g_y = torch.nn.functional.linear, kwargs["scale"], torch.from_numpy(cotangent)

    def step():
        y = linear(x, W, bias) + scale * linear(linear(x, A), B)
        x.grad = A.grad = B.grad = None
        y.backward(g_y)
        return y

    return step


def lora_blas(args, kwargs):
    """Forward x Wᵀ, h = x Aᵀ, h Bᵀ; backward G B, G W, H̄ A, H̄ᵀ X, Gᵀ H."""
    x, W, A, B = args[:4]
    x_rows = x.reshape(-1, W.shape[1])
    g_rows = np.ones((x_rows.shape[0], W.shape[0]), dtype=x.dtype)

    def step():
        h = x_rows @ A.T
        x_rows @ W.T
        h @ B.T
        g_h = g_rows @ B
        g_rows @ W
        g_h @ A
        g_h.T @ x_rows
        g_rows.T @ h

    return step


register(
    OpCases(
        "lora_linear",
        dims={"T": (1, 6), "I": (1, 8), "O": (1, 8), "R": (1, 4)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        bench=Bench(
            sizes={"T": "rows", "I": "cols", "O": "cols", "R": 16},
            torch=_lora_torch,
            torch_label="two torch.nn.functional.linear calls (peft's LoRA forward)",
            blas=lora_blas,
        ),
    )
)
