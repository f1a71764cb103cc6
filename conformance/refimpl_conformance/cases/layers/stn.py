"""Conformance cases for `stn_hyperlinear`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ZERO_GATES": "U = 0 (the gates off): the layer is s·(x Wᵀ + b), and Ū still flows from G ⊙ (x W_hᵀ)",
    "GATE_SPLIT": "O = 1 with distinct U_w, U_b rows: swapping the two halves of U changes the output",
    "ONE_HYPERPARAMETER": "K = 1: h is a column; a (B,) squeeze breaks Ū and h̄",
}


def stn_layer(rng, B, I, O, K):
    bound = 1 / math.sqrt(I)  # official init_params: uniform(±1/√I) and N(0, 0.01²) for U
    return (
        rng.standard_normal((B, I)),
        rng.standard_normal((B, K)),
        rng.uniform(-bound, bound, (O, I)),
        rng.uniform(-bound, bound, O),
        rng.uniform(-bound, bound, (O, I)),
        rng.uniform(-bound, bound, O),
        rng.standard_normal((2 * O, K)),  # larger than the init's 0.01 so the gate terms count
        np.array([rng.uniform(0.5, 2.0)]),
    )


def _random(rng, B, I, O, K):
    return Sample("random", stn_layer(rng, B, I, O, K))


def _edges():
    rng = np.random.default_rng(5)
    zero_gates = list(stn_layer(rng, 3, 4, 2, 2))
    zero_gates[6] = np.zeros((4, 2))
    return [
        Sample("U = 0: gates off", tuple(zero_gates), flags=("ZERO_GATES",)),
        Sample("O = 1, K = 1", stn_layer(rng, 4, 3, 1, 1), flags=("GATE_SPLIT", "ONE_HYPERPARAMETER")),
        Sample("one example", stn_layer(rng, 1, 5, 3, 2)),
    ]


def _errors():
    args = list(stn_layer(np.random.default_rng(0), 2, 3, 2, 2))
    args[6] = np.ones((3, 2))
    return [ErrorCase("U with O rows, not 2·O", tuple(args), match="2·O")]


def _known():
    x, h = np.array([[1.0, 2.0]]), np.array([[3.0]])
    W, b, W_h, b_h = np.array([[1.0, 1.0]]), np.array([0.5]), np.array([[1.0, 0.0]]), np.array([2.0])
    U, s = np.array([[1.0], [-1.0]]), np.array([2.0])
    return [
        Known(
            "one unit: s = 2, σ_w = 3, σ_b = −3",
            (x, h, W, b, W_h, b_h, U, s),
            values={
                "out": [[4.0]],  # 2·3.5 + 3·1 − 3·2
                "cotangent of 'x'": [[2.0 + 3.0, 2.0]],  # s W + σ_w W_h
                "cotangent of 'h'": [[1.0 * 1.0 + 2.0 * -1.0]],  # [x W_hᵀ, b_h] U
                "cotangent of 'U'": [[3.0], [6.0]],  # [x W_hᵀ, b_h]ᵀ h
                "cotangent of 's'": [3.5],  # x Wᵀ + b
                "cotangent of 'b_h'": [-3.0],  # σ_b
            },
            source="hand computation from the forward",
        )
    ]


def _stn_torch(torch, args, kwargs, cotangent):
    """The official HyperLinear.forward: F.linear, the gates from a bias-free linear map."""
    F = torch.nn.functional
    x, h, W, b, W_h, b_h, U, s = (torch.from_numpy(a).requires_grad_() for a in args)
    leaves = (x, h, W, b, W_h, b_h, U, s)
    g = torch.from_numpy(cotangent)
    out_features = W.shape[0]

    def step():
        gates = F.linear(h, U)
        out = (
            F.linear(x, W, b) * s + gates[:, :out_features] * F.linear(x, W_h) + gates[:, out_features:] * b_h
        )
        for leaf in leaves:
            leaf.grad = None
        out.backward(g)
        return out

    return step


def _stn_blas(args, kwargs):
    """x Wᵀ, x W_hᵀ, h Uᵀ forward; G W, G W_h, σ̄ U, Gᵀ x (twice), σ̄ᵀ h backward."""
    x, h, W, _, W_h, _, U, _ = args
    g = np.ones((x.shape[0], W.shape[0]), dtype=x.dtype)
    g_gates = np.ones((x.shape[0], U.shape[0]), dtype=x.dtype)

    def step():
        x @ W.T
        x @ W_h.T
        h @ U.T
        g @ W
        g @ W_h
        g_gates @ U
        g.T @ x
        g.T @ x
        g_gates.T @ h

    return step


register(
    OpCases(
        "stn_hyperlinear",
        dims={"B": (1, 6), "I": (1, 6), "O": (1, 5), "K": (1, 4)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        defaults={},
        known=_known,
        bench=Bench(
            sizes={"B": "rows", "I": "cols", "O": 512, "K": 8},
            torch=_stn_torch,
            torch_label="official HyperLinear.forward (F.linear ×3); autograd backward",
            blas=_stn_blas,
        ),
    )
)
