"""Conformance cases for `lambda_orthogonality_penalty`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register

NOTES = {
    "ORTHOGONAL": "W with orthonormal rows exactly: x = 0, penalty 0, subgradient 0 (a kink: no FD)",
    "SATURATED": "α(x − λ) = ±500: the sigmoid and its slope must not overflow",
    "TALL": "m > n: WWᵀ has rank n < m, so x ≥ √(m − n) for every W",
    "WIDE": "m < n: the m × m Gram matrix of the rows",
    "LAMBDA_ZERO": "λ = 0: σ(αx)·x, the soft-orthogonality regime",
    "SCALE": "W ×1e3: x ~ 1e6·n, the switch fully on",
}


def _deviation(W):
    E = W @ W.T - np.eye(W.shape[0])
    return float(np.sqrt(np.sum(E * E)))


def _random(rng, m, n):
    Q, _ = np.linalg.qr(rng.standard_normal((max(m, n), max(m, n))))
    W = Q[:m, :n] + float(rng.choice([0.05, 0.3, 1.0])) * rng.standard_normal((m, n))
    x = _deviation(W)
    kwargs = {"alpha": float(rng.choice([0.5, 1.0, 4.0])), "lam": float(rng.choice([0.0, 0.5, 1.0, 1.5])) * x}
    return Sample("random", (W,), kwargs)


def _edges():
    rng = np.random.default_rng(225)
    W = np.eye(4) + 0.3 * rng.standard_normal((4, 4))
    x = _deviation(W)
    permutation = np.eye(4)[[2, 0, 3, 1]] * np.array([1.0, -1.0, 1.0, -1.0])[:, None]
    return [
        Sample(
            "signed permutation", (permutation,), {"alpha": 1.0, "lam": 0.5}, flags=("ORTHOGONAL",), fd=False
        ),
        Sample("α(x − λ) = +500", (W,), {"alpha": 500.0 / x, "lam": 0.0}, flags=("SATURATED",)),
        Sample("α(x − λ) = −500", (W,), {"alpha": 100.0, "lam": x + 5.0}, flags=("SATURATED",)),
        Sample("tall 5 × 2", (rng.standard_normal((5, 2)),), {"alpha": 2.0, "lam": 1.0}, flags=("TALL",)),
        Sample("wide 2 × 6", (rng.standard_normal((2, 6)),), {"alpha": 2.0, "lam": 1.0}, flags=("WIDE",)),
        Sample("λ = 0", (W,), {"alpha": 3.0, "lam": 0.0}, flags=("LAMBDA_ZERO",)),
        Sample("W ×1e3", (W * 1e3,), {"alpha": 1.0}, flags=("SCALE",)),
    ]


def _known():
    W = np.array([[2.0, 0.0], [0.0, 1.0]])
    return [
        Known(
            "W = diag(2, 1), α = 1, λ = 3",
            (W,),
            {"alpha": 1.0, "lam": 3.0},
            values={"penalty": 1.5, "cotangent of 'W'": [[5.0, 0.0], [0.0, 0.0]]},
            source="by hand: E = diag(3, 0), x = 3, s = 1/2, σ' = 1/4; ∂L/∂x = 1/2 + 3/4; "
            "W̄ = (5/4)(2/3)·E W = (5/6)·diag(6, 0)",
            rtol=1e-14,
        ),
    ]


def _torch(torch, args, kwargs, cotangent):
    """Eq. 6 in PyTorch: σ(α(‖WWᵀ − I‖_F − λ))·‖WWᵀ − I‖_F; autograd backward."""
    W = torch.from_numpy(args[0]).requires_grad_()
    g = torch.tensor(float(np.asarray(cotangent)), dtype=W.dtype)
    alpha, lam = kwargs["alpha"], kwargs.get("lam", 12.0)
    eye = torch.eye(W.shape[0], dtype=W.dtype)

    def step():
        W.grad = None
        x = torch.linalg.matrix_norm(W @ W.T - eye)
        penalty = torch.sigmoid(alpha * (x - lam)) * x
        penalty.backward(g)
        return penalty

    return step


def _bench(rng, rows, cols):
    n = min(rows, cols, 1024)  # the paper's adapter: a square n × n map between embedding spaces
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    W = Q + 0.01 * rng.standard_normal((n, n))
    return Sample("bench", (W,), {"alpha": 1.0, "lam": 12.0})


def _blas(args, kwargs):
    W = args[0]

    def step():
        return (W @ W.T) @ W

    return step


register(
    OpCases(
        "lambda_orthogonality_penalty",
        dims={"m": (1, 5), "n": (1, 5)},
        random=_random,
        edges=_edges,
        known=_known,
        notes=NOTES,
        defaults={"lam": 12.0},
        bench=Bench(
            make=_bench,
            kwargs={"alpha": 1.0},
            torch=_torch,
            torch_label="sigmoid(α(matrix_norm(WWᵀ − I) − λ))·matrix_norm(WWᵀ − I); autograd backward",
            transcendentals=lambda args, kwargs: 2,  # the sigmoid's exp and the norm's sqrt
            blas=_blas,
        ),
    )
)
