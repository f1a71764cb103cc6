"""Conformance cases for `nngp_kernel_recursion`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "RELU_CRITICAL": "ReLU at C_b = 0, C_W = 2: every variance K_aa is preserved exactly",
    "PARALLEL": "identical inputs (ρ = 1): θ = arccos(1 + rounding) is NaN unless cos θ is clipped",
    "ANTIPARALLEL": "x_b = −x_a (ρ = −1): θ = π, the ReLU covariance is 0",
    "ZERO_INPUT": "a zero-variance input (K_aa = 0): no 0/0 in the correlation, E[σ(0)σ(v)] = σ(0)·E σ(v)",
    "DEPTH_ZERO": "depth 0: K0 comes back alone",
    "SINGLE": "n = 1: the single-input recursion K ← C_b + C_W E[σ(z)²]",
    "QUADRATURE": "Gauss–Hermite quadrature (tanh has no closed form)",
}


def _kernel(rng, n, scale):
    x = rng.standard_normal((n, 3)) * scale
    return x @ x.T / 3 + float(rng.choice([0.0, 0.1]))


def _random(rng, n):
    activation = str(rng.choice(["relu", "relu", "tanh", "erf", "linear"]))
    order = int(rng.choice([5, 12, 20])) if activation == "tanh" or rng.integers(0, 4) == 0 else None
    kwargs = {
        "depth": int(rng.integers(0, 5)),
        "C_b": float(rng.choice([0.0, 0.05, 0.3])),
        "C_W": float(rng.choice([1.0, 2.0, rng.uniform(0.5, 2.5)])),
        "activation": activation,
        "quadrature_order": order,
    }
    return Sample("random", (_kernel(rng, n, float(rng.choice([0.5, 1.0, 2.0]))),), kwargs)


def _edges():
    rng = np.random.default_rng(146)
    x = rng.standard_normal((3, 4))
    x[1] = 2.0 * x[0]  # parallel to x_0
    x[2] = -x[0]  # antiparallel
    parallel = x @ x.T / 4
    with_zero = _kernel(rng, 3, 1.0) - 0.0
    with_zero[0, :] = with_zero[:, 0] = 0.0
    relu = {"C_b": 0.0, "C_W": 2.0, "activation": "relu"}
    return [
        Sample(
            "ReLU at criticality", (_kernel(rng, 3, 1.5),), {**relu, "depth": 6}, flags=("RELU_CRITICAL",)
        ),
        Sample(
            "parallel and antiparallel inputs",
            (parallel,),
            {**relu, "depth": 3},
            flags=("PARALLEL", "ANTIPARALLEL"),
        ),
        Sample(
            "a zero input",
            (with_zero,),
            {"depth": 3, "C_b": 0.0, "C_W": 1.5, "activation": "relu"},
            flags=("ZERO_INPUT",),
        ),
        Sample(
            "a zero input, erf with bias",
            (with_zero,),
            {"depth": 2, "C_b": 0.2, "C_W": 1.0, "activation": "erf"},
            flags=("ZERO_INPUT",),
        ),
        Sample("depth 0", (_kernel(rng, 2, 1.0),), {**relu, "depth": 0}, flags=("DEPTH_ZERO",)),
        Sample(
            "one input, tanh at criticality",
            (np.array([[0.7]]),),
            {"depth": 5, "C_b": 0.0, "C_W": 1.0, "activation": "tanh", "quadrature_order": 30},
            flags=("SINGLE", "QUADRATURE"),
        ),
        Sample(
            "tanh pair, quadrature",
            (_kernel(rng, 2, 1.0),),
            {"depth": 3, "C_b": 0.1, "C_W": 1.2, "activation": "tanh", "quadrature_order": 16},
            flags=("QUADRATURE",),
        ),
    ]


def _errors():
    relu = {"depth": 1, "C_b": 0.0, "C_W": 2.0, "activation": "relu"}
    return [
        ErrorCase("negative variance", (np.array([[-1.0]]),), relu, match="variances"),
        ErrorCase("asymmetric kernel", (np.array([[1.0, 0.5], [0.2, 1.0]]),), relu, match="symmetric"),
        ErrorCase("|K_ab| > √(K_aa K_bb)", (np.array([[1.0, 2.0], [2.0, 1.0]]),), relu, match="√"),
        ErrorCase(
            "tanh without a quadrature order",
            (np.eye(2),),
            {**relu, "activation": "tanh"},
            match="Gauss–Hermite order",
        ),
    ]


def _known():
    return [
        Known(
            "ReLU, orthogonal unit inputs, C_W = 2",
            (np.eye(2),),
            {"depth": 1, "C_b": 0.0, "C_W": 2.0, "activation": "relu"},
            values={"kernels": [np.eye(2), [[1.0, 1.0 / np.pi], [1.0 / np.pi, 1.0]]]},
            source="by hand: θ = π/2, E[σ(u)σ(v)] = 1/(2π), times C_W = 2",
            rtol=1e-14,
        ),
        Known(
            "erf, one input K = 1/2, C_W = 1",
            (np.array([[0.5]]),),
            {"depth": 1, "C_b": 0.0, "C_W": 1.0, "activation": "erf"},
            values={"kernels": [[[0.5]], [[(2 / np.pi) * np.arcsin(0.5)]]]},
            source="by hand: (2/π) arcsin(2·½/(1 + 1)) = (2/π)(π/6) = 1/3",
            rtol=1e-14,
        ),
    ]


register(
    OpCases(
        "nngp_kernel_recursion",
        dims={"n": (1, 4)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        known=_known,
        defaults={"quadrature_order": None},
    )
)
