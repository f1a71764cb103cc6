"""Conformance cases for `ivl_regression`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "TWO_SLS": "α = 0: two-stage least squares (m >= p)",
    "NEAR_OLS": "α = 1e6: close to ordinary least squares",
    "WEAK_INSTRUMENTS": "G barely moves X: XᵀP_G X ill-conditioned; least squares, not normal equations",
    "FEW_INSTRUMENTS": "m < p with α > 0: P_G alone does not identify β, the α term does",
}


def _confounded(rng, n, p, m, strength=1.0):
    G = rng.standard_normal((n, m))
    hidden = rng.standard_normal(n)
    X = strength * G @ rng.standard_normal((m, p)) + hidden[:, None] + 0.5 * rng.standard_normal((n, p))
    y = X @ rng.standard_normal(p) + 2 * hidden + 0.1 * rng.standard_normal(n)
    return X, y, G


def _random(rng, n, p, m):
    X, y, G = _confounded(rng, n, p, m)
    alpha = float(rng.choice([0.1, 1.0, 10.0]))
    return Sample("random", (X, y, G, np.array(alpha)))


def _edges():
    rng = np.random.default_rng(31)
    X, y, G = _confounded(rng, 30, 2, 3)
    weak_X, weak_y, weak_G = _confounded(rng, 30, 2, 3, strength=1e-3)
    few_X, few_y, few_G = _confounded(rng, 30, 3, 1)
    return [
        Sample(
            "α = 0 (2SLS)",
            (X, y, G, np.array(0.0)),
            flags=("TWO_SLS",),
            fd=False,
            comment="α = 0 is the boundary of α >= 0: no central difference",
        ),
        Sample("α = 1e6", (X, y, G, np.array(1e6)), flags=("NEAR_OLS",)),
        Sample("weak instruments", (weak_X, weak_y, weak_G, np.array(1e-3)), flags=("WEAK_INSTRUMENTS",)),
        Sample("m = 1 < p = 3", (few_X, few_y, few_G, np.array(0.5)), flags=("FEW_INSTRUMENTS",)),
    ]


def _errors():
    X, y = np.ones((4, 2)), np.ones(4)
    G = np.array([[1.0], [0.0], [0.0], [0.0]])
    return [
        ErrorCase("α < 0", (X, y, G, np.array(-1.0)), match=r"'alpha'.*>= 0"),
        ErrorCase("α = 0 with m < p", (X, y, G, np.array(0.0)), match=r"'alpha'.*m >= p"),
        ErrorCase("rank-deficient G", (X, y, np.ones((4, 2)), np.array(1.0)), match=r"'G'.*full column rank"),
    ]


def _known():
    X, y, G = np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 1.0, 4.0]), np.array([[1.0], [0.0], [0.0]])
    return [
        Known(
            "documented example",
            (X, y, G, np.array(1.0)),
            values={
                "beta": [16 / 15],
                "cotangent of 'alpha'": 1 / 225,
            },
            source="by hand: H = 1 + 14 = 15, Xᵀ(P_G + I)y = 1 + 15 = 16; Xβ − y = (1, 17, −12)/15, "
            "Xᵀ(Xβ − y) = −1/15, dβ/dα = −Xᵀ(Xβ − y)/H = 1/225",
        ),
    ]


def _bench(rng, rows, cols):
    X, y, G = _confounded(rng, 4096, 32, 64)
    return Sample("bench", (X, y, G, np.array(0.5)))


def _torch(torch, args, kwargs, cotangent):
    """Q from torch.linalg.qr(G); β = torch.linalg.lstsq([QᵀX; √α X], [Qᵀy; √α y]); autograd in α."""
    X, y, G = (torch.from_numpy(a) for a in args[:3])
    alpha = torch.from_numpy(np.asarray(args[3])).clone().requires_grad_()
    g = torch.from_numpy(np.asarray(cotangent))
    q = torch.linalg.qr(G).Q

    def step():
        alpha.grad = None
        root = torch.sqrt(alpha)
        design = torch.cat([q.T @ X, root * X])
        target = torch.cat([q.T @ y, root * y])
        beta = torch.linalg.solve(design.T @ design, design.T @ target)
        beta.backward(g)
        return beta

    return step


def _blas(args, kwargs):
    X, y, G = args[:3]

    def products():
        q, _ = np.linalg.qr(G)
        design = np.concatenate([q.T @ X, X])
        return np.linalg.qr(design, mode="r"), X.T @ (X @ np.ones(X.shape[1]) - y)

    return products


register(
    OpCases(
        "ivl_regression",
        dims={"n": (6, 20), "p": (1, 3), "m": (1, 4)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        bench=Bench(
            make=_bench,
            torch=_torch,
            torch_label="QR of G, the stacked normal equations by torch.linalg.solve; autograd in α",
            blas=_blas,
        ),
    )
)
