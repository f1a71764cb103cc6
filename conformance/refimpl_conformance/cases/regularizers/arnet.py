"""Conformance cases for `arnet_sparsity_regularizer`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register

NOTES = {
    "ZERO_WEIGHT": "θ = 0 exactly: R term 0 and gradient 0 (sign(0) = 0), also with ε = 0 (no 0·∞)",
    "TINY_WEIGHT": "0 < |θ| ≪ ε = 1e-12: the slope is ≈ 5.0e7/p, finite only thanks to ε",
    "SATURATED": "|θ| ~ 1e6: tanh(c1 u/2) = 1 to the last digit, exp(−c1 u) underflows, gradient 0",
    "NO_EPS": "ε = 0 (the original AR-Net script): u = |θ|^{1/c2}",
    "SPARSITY": "s given: λ = 0.02(1/s − 1) multiplies R; s = 1 gives 0",
}


def _random(rng, p):
    shape = [(p,), (2, p), (p, 3)][int(rng.integers(0, 3))]
    theta = rng.standard_normal(shape) * float(rng.choice([0.01, 0.3, 3.0]))
    kwargs = {
        "c1": float(rng.choice([3.0, 3.0, 2.0])),
        "c2": float(rng.choice([3.0, 3.0, 2.0, 1.0])),
        "eps": float(rng.choice([1e-12, 1e-12, 1e-9, 0.0])),
        "sparsity": [None, None, 0.5, 0.1, 1.0][int(rng.integers(0, 5))],
    }
    return Sample("random", (theta,), kwargs)


def _edges():
    rng = np.random.default_rng(21)
    theta = rng.standard_normal(6) * 0.2
    return [
        Sample("θ with exact zeros", (np.array([0.0, 0.5, 0.0, -0.2]),), flags=("ZERO_WEIGHT",), fd=False),
        Sample("θ = 0 with ε = 0", (np.zeros(3),), {"eps": 0.0}, flags=("ZERO_WEIGHT", "NO_EPS"), fd=False),
        Sample(
            "0 < |θ| ≪ ε",
            (np.array([1e-15, -3e-16]),),
            flags=("TINY_WEIGHT",),
            dtypes=("float64",),
            fd=False,
            comment="the slope changes on the scale of ε: a difference step of 1e-6·|θ| is fine but the "
            "derivative is 5e7; checked against the known value instead",
        ),
        Sample("|θ| ~ 1e6", (np.array([1e6, -3e6, 0.1]),), flags=("SATURATED",)),
        Sample("ε = 0, c1 = c2 = 2", (theta,), {"eps": 0.0, "c1": 2.0, "c2": 2.0}, flags=("NO_EPS",)),
        Sample("s = 0.25", (theta,), {"sparsity": 0.25}, flags=("SPARSITY",)),
        Sample("s = 1", (theta,), {"sparsity": 1.0}, flags=("SPARSITY",)),
    ]


def _known():
    u = 1e-4  # (1e-12)^{1/3}
    slope = 3.0 * 2.0 * math.exp(-3 * u) / (1 + math.exp(-3 * u)) ** 2 * u / (3.0 * 1e-12)
    return [
        Known(
            "p = 1, θ = 1e-30 with ε = 1e-12: ∂R/∂θ ≈ 5.0e7",
            (np.array([1e-30]),),
            values={"penalty": math.tanh(1.5 * u), "cotangent of 'theta'": [slope]},
            source="the catalog's known value 5.0e7 (c1 = c2 = 3): 1.5·(1/3)·1e-4/1e-12",
            rtol=1e-9,
        ),
        Known(
            "θ = [0, 1e6], ε = 0: R = (0 + 1)/2",
            (np.array([0.0, 1e6]),),
            {"eps": 0.0},
            values={"penalty": 0.5, "cotangent of 'theta'": [0.0, 0.0]},
            source="by hand: tanh(0) = 0, tanh(150) = 1; the slope 2e^{−150}·… ≈ 5e-135 is 0 to atol",
            rtol=1e-15,
            atol=1e-120,
        ),
        Known(
            "θ = [1], c1 = c2 = 1, ε = 0, s = 0.5: λR = 0.02·tanh(½)",
            (np.array([1.0]),),
            {"c1": 1.0, "c2": 1.0, "eps": 0.0, "sparsity": 0.5},
            values={
                "penalty": 0.02 * math.tanh(0.5),
                "cotangent of 'theta'": [0.02 * 0.5 / math.cosh(0.5) ** 2],
            },
            source="by hand: 2σ(1) − 1 = tanh(½); d/dθ = ½ sech²(½); λ = 0.02(2 − 1)",
            rtol=1e-13,
        ),
    ]


def _arnet_torch(torch, args, kwargs, cotangent):
    """NeuralProphet's reg_func_ar with c1, c2, ε as arguments, times λ(s); autograd backward."""
    theta = torch.from_numpy(args[0]).requires_grad_()
    g = torch.from_numpy(np.asarray(cotangent))
    c1, c2, eps = kwargs.get("c1", 3.0), kwargs.get("c2", 3.0), kwargs.get("eps", 1e-12)
    sparsity = kwargs.get("sparsity")
    scale = 1.0 if sparsity is None else 0.02 * (1.0 / sparsity - 1.0)

    def step():
        theta.grad = None
        reg = torch.div(2.0, 1.0 + torch.exp(-c1 * (eps + torch.abs(theta)).pow(1.0 / c2))) - 1.0
        penalty = scale * torch.mean(reg)
        penalty.backward(g)
        return penalty

    return step


def _bench(rng, rows, cols):
    return Sample("bench", (rng.standard_normal((rows, cols)) * 0.1,))


register(
    OpCases(
        "arnet_sparsity_regularizer",
        dims={"p": (1, 8)},
        random=_random,
        edges=_edges,
        known=_known,
        notes=NOTES,
        defaults={"c1": 3.0, "c2": 3.0, "eps": 1e-12, "sparsity": None},
        bench=Bench(
            make=_bench,
            torch=_arnet_torch,
            torch_label="mean(2/(1 + exp(−c1 (ε + |θ|)^{1/c2})) − 1), NeuralProphet's reg_func_ar; "
            "autograd backward",
            # per weight: the power (a log and an exp) and exp(−c1 u); the backward reuses them
            transcendentals=lambda args, kwargs: 3 * args[0].size,
        ),
    )
)
