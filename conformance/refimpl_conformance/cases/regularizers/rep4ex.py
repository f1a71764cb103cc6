"""Conformance cases for `rep4ex_invariance_penalty`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "AFFINE": "Φ = α + A W exactly: R = 0, K = 11ᵀ, penalty 0 and gradient 0",
    "COLLINEAR": "A has duplicated/collinear columns: (ÃᵀÃ)⁻¹ does not exist; the projection still does",
    "N_LE_K": "n ≤ k + 1: Ã spans every direction, R = 0 for any Φ",
    "OFFSET": "Φ = 1e4 + O(1): the intercept removes the offset; distances of the residuals stay O(1)",
    "TWO_SAMPLES": "n = 2: the smallest batch",
}


def _random(rng, n, q, k):
    A = rng.standard_normal((n, k)) * float(rng.choice([0.5, 2.0]))
    W = rng.standard_normal((k, q))
    Phi = A @ W + np.sin(A[:, :1] * 2.0) * rng.standard_normal((1, q)) + 0.3 * rng.standard_normal((n, q))
    kwargs = {
        "sigma_residual": float(rng.choice([0.5, 1.0, 2.0])),
        "sigma_action": float(rng.choice([0.5, 1.0, 3.0])),
        "dependence": str(rng.choice(["hsic", "mmd"])),
    }
    return Sample("random", (Phi, A), kwargs)


def _edges():
    rng = np.random.default_rng(181)
    A = rng.standard_normal((7, 2))
    Phi = np.tanh(A @ rng.standard_normal((2, 3))) + 0.2 * rng.standard_normal((7, 3))
    base = {"sigma_residual": 1.0, "sigma_action": 1.0, "dependence": "hsic"}
    collinear = np.concatenate([A, 2 * A[:, :1] - A[:, 1:]], axis=1)
    return [
        Sample("Φ affine in A", (1.5 + A @ rng.standard_normal((2, 3)), A), base, flags=("AFFINE",)),
        Sample("collinear actions", (Phi, collinear), {**base, "dependence": "mmd"}, flags=("COLLINEAR",)),
        Sample("n = 3 ≤ k + 1", (Phi[:3], A[:3]), base, flags=("N_LE_K",)),
        Sample("Φ + 1e4", (Phi + 1e4, A), base, flags=("OFFSET",), dtypes=("float64",), fd_step=1e-10),
        Sample("n = 2, k = 1", (Phi[:2], A[:2, :1]), base, flags=("TWO_SAMPLES", "N_LE_K")),
        Sample("wide bandwidths", (Phi, A), {**base, "sigma_residual": 30.0, "sigma_action": 0.1}),
    ]


def _errors():
    return [
        ErrorCase(
            "one sample",
            (np.ones((1, 2)), np.ones((1, 1))),
            {"sigma_residual": 1.0, "sigma_action": 1.0, "dependence": "hsic"},
            match="at least n = 2 samples",
        ),
    ]


def _known():
    # n = 3, one action a = [0, 1, 2] (σ_A = 1), Φ = [0, 1, 0] (σ_R = 1): the OLS fit on [1, a] has
    # slope 0 and intercept 1/3, so R = r = [−1, 2, −1]/3 (mean 0). D_ij = (r_i − r_j)² ∈ {0, 1}, so
    # K = exp(−D/2) = 1 − (1 − e)D with e = e^{−1/2}; HDH = −2 r rᵀ (the r² terms are killed by H),
    # hence HKH = 2(1 − e) r rᵀ, and L_ij = exp(−(i − j)²/2).
    e = math.exp(-0.5)
    r = np.array([-1.0, 2.0, -1.0]) / 3
    HKH = 2 * (1 - e) * np.outer(r, r)
    L = np.exp(-0.5 * (np.arange(3)[:, None] - np.arange(3)[None, :]) ** 2)
    value = float(np.sum(HKH * L))  # = 2(1 − e)·rᵀ L r
    Phi = np.array([[0.0], [1.0], [0.0]])
    A = np.array([[0.0], [1.0], [2.0]])
    kwargs = {"sigma_residual": 1.0, "sigma_action": 1.0}
    return [
        Known(
            "n = 3, Φ = [0, 1, 0], a = [0, 1, 2], hsic",
            (Phi, A),
            {**kwargs, "dependence": "hsic"},
            values={"penalty": value / 4},
            source="by hand: R = [−1, 2, −1]/3, HKH = 2(1 − e^{−1/2}) r rᵀ (see the comment above)",
            rtol=1e-12,
        ),
        Known(
            "same, mmd",
            (Phi, A),
            {**kwargs, "dependence": "mmd"},
            values={"penalty": value / 9},
            source="by hand: ÷n² instead of ÷(n − 1)²",
            rtol=1e-12,
        ),
    ]


def _torch(torch, args, kwargs, cotangent):
    """OLS residual by torch.linalg.lstsq, Gaussian kernels from torch.cdist, tr(K H L H)/c."""
    Phi = torch.from_numpy(args[0]).requires_grad_()
    A = torch.from_numpy(args[1])
    g = torch.tensor(float(np.asarray(cotangent)), dtype=Phi.dtype)
    n = Phi.shape[0]
    A_tilde = torch.cat([torch.ones((n, 1), dtype=A.dtype), A], dim=1)
    H = torch.eye(n, dtype=A.dtype) - 1.0 / n
    v_r, v_a = 2 * kwargs["sigma_residual"] ** 2, 2 * kwargs["sigma_action"] ** 2
    L = torch.exp(-(torch.cdist(A, A) ** 2) / v_a)
    c = (n - 1) ** 2 if kwargs["dependence"] == "hsic" else n * n

    def step():
        Phi.grad = None
        R = Phi - A_tilde @ torch.linalg.lstsq(A_tilde, Phi).solution
        squared = (R * R).sum(1)
        K = torch.exp(-(squared[:, None] - 2 * R @ R.T + squared[None, :]).clamp_min(0) / v_r)
        penalty = torch.sum((H @ K @ H) * L) / c
        penalty.backward(g)
        return penalty

    return step


def _bench(rng, rows, cols):
    n, q, k = min(rows, 2048), min(cols, 64), 4  # a minibatch: the kernels are n × n
    A = rng.standard_normal((n, k))
    Phi = A @ rng.standard_normal((k, q)) + np.tanh(A[:, :1]) + 0.5 * rng.standard_normal((n, q))
    kwargs = {"sigma_residual": 1.0, "sigma_action": 1.0, "dependence": "hsic"}
    return Sample("bench", (Phi, A), kwargs)


def _blas(args, kwargs):
    """The projection ``U(UᵀΦ)``, the residual Gram ``R Rᵀ`` and the backward's ``S R``."""
    Phi, A = args
    U = np.linalg.qr(np.concatenate([np.ones((A.shape[0], 1), dtype=A.dtype), A], axis=1))[0]

    def step():
        R = Phi - U @ (U.T @ Phi)
        G = R @ R.T
        return U @ (U.T @ (G @ R))

    return step


register(
    OpCases(
        "rep4ex_invariance_penalty",
        dims={"n": (2, 8), "q": (1, 4), "k": (1, 3)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_bench,
            kwargs={"sigma_residual": 1.0, "sigma_action": 1.0, "dependence": "hsic"},
            torch=_torch,
            torch_label="lstsq OLS residual, cdist Gaussian kernels, tr(HKH·L)/(n − 1)²; autograd backward",
            transcendentals=lambda args, kwargs: 2 * args[0].shape[0] ** 2,  # the two kernels' exp
            blas=_blas,
        ),
    )
)
