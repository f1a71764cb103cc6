"""Conformance cases for `weighted_rff_decorrelation_loss`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ONE_CLUSTER": "every dimension in one cluster: no between-cluster pair, L = 0 and w̄ = 0",
    "ALL_PAIRS": "each dimension its own cluster: StableNet's decorrelation of every pair",
    "SUM_N": "Σw = n: the (n − s) term of ∂C/∂w vanishes",
    "SUM_NOT_N": "Σw ≠ n: the (n − s)(U_k Āᵀ + Ā U_kᵀ) term is what is checked",
    "COLLAPSED": "weights collapsed onto one sample (others 1e-3): the over-reduced sample size",
    "SHARED_FEATURES": "ω, φ shared by every dimension (one draw broadcast), as StableNet draws ω",
}


def _rff(rng, d, q):
    return rng.standard_normal((d, q)), rng.uniform(0.0, 2 * math.pi, size=(d, q))


def _random(rng, n, d, Q):  # noqa: N803
    Z = rng.standard_normal((n, d)) * float(rng.choice([0.3, 1.0, 3.0]))  # noqa: N806
    w = rng.uniform(0.2, 2.0, size=n)
    if rng.integers(0, 2):
        w = w * n / w.sum()  # Σw = n, the paper's constraint
    omega, phi = _rff(rng, d, Q)
    clusters = rng.integers(0, 3, size=d)
    return Sample("random", (Z, w, clusters, omega, phi))


def _edges():
    rng = np.random.default_rng(17)
    Z = rng.standard_normal((6, 4))  # noqa: N806
    w = rng.uniform(0.5, 1.5, size=6)
    omega, phi = _rff(rng, 4, 2)
    collapsed = np.full(6, 1e-3)
    collapsed[2] = 6.0
    shared_omega, shared_phi = np.repeat(omega[:1], 4, axis=0), np.repeat(phi[:1], 4, axis=0)
    return [
        Sample(
            "known value: perfectly correlated pair",
            (
                np.array([[0.0, 0.0], [math.pi, math.pi]]),
                np.ones(2),
                np.array([0, 1]),
                np.ones((2, 1)),
                np.zeros((2, 1)),
            ),
            comment="C = [[2, 2], [2, 2]]: L = 2·2² = 8",
        ),
        Sample("one cluster", (Z, w, np.zeros(4, dtype=np.int64), omega, phi), flags=("ONE_CLUSTER",)),
        Sample("every dimension its own cluster", (Z, w, np.arange(4), omega, phi), flags=("ALL_PAIRS",)),
        Sample("Σw = n", (Z, w * 6 / w.sum(), np.array([0, 0, 1, 1]), omega, phi), flags=("SUM_N",)),
        Sample("Σw = 3n", (Z, w * 18 / w.sum(), np.array([0, 1, 1, 2]), omega, phi), flags=("SUM_NOT_N",)),
        Sample("collapsed weights", (Z, collapsed, np.array([0, 1, 0, 1]), omega, phi), flags=("COLLAPSED",)),
        Sample(
            "shared ω, φ across dimensions",
            (Z, w, np.array([5, 2, 2, 9]), shared_omega, shared_phi),
            flags=("SHARED_FEATURES",),
        ),
    ]


def _errors():
    Z, omega = np.zeros((3, 2)), np.ones((2, 1))  # noqa: N806
    return [
        ErrorCase(
            "negative weight",
            (Z, np.array([1.0, -0.5, 2.0]), np.array([0, 1]), omega, omega),
            match=r"'w'.*w >= 0.*-0.5 at index 1",
        )
    ]


def _known():
    sqrt2 = math.sqrt(2.0)
    return [
        Known(
            "±√2 in both dimensions, w = 1",
            (
                np.array([[0.0, 0.0], [math.pi, math.pi]]),
                np.ones(2),
                np.array([0, 1]),
                np.ones((2, 1)),
                np.zeros((2, 1)),
            ),
            values={"loss": 8.0, "cotangent of 'w'": [8.0, 8.0]},  # (1/n) V_kᵀ G V_k, G = [[0, 4], [4, 0]]
            source="by hand: U = ±[√2, √2], Ā = 0, C = [[2, 2], [2, 2]]",
            rtol=1e-12,
        ),
        Known(
            "u = [√2, √2] and [0, 0], w = [1, 3] (Σw ≠ n)",
            (
                np.array([[0.0, 0.0], [math.pi / 2, math.pi / 2]]),
                np.array([1.0, 3.0]),
                np.array([0, 1]),
                np.ones((2, 1)),
                np.zeros((2, 1)),
            ),
            values={"loss": 2.0, "cotangent of 'w'": [5.0, 1.0]},
            source="by hand: C_01 = w_1(1 − w_1/2)² + w_2 w_1²/4 = 1, ∂L/∂w = 4 C_01 ∂C_01/∂w = [5, 1]",
            rtol=1e-12,
            atol=1e-12 * sqrt2,
        ),
    ]


def _rff_torch(torch, args, kwargs, cotangent):
    """√2·cos(ωz + φ), weighted mean and covariance, Σ (M ⊙ C)²; autograd backward w.r.t. w."""
    Z, w, clusters, omega, phi = args  # noqa: N806
    n = Z.shape[0]
    Zt, omega_t, phi_t = (torch.from_numpy(a) for a in (Z, omega, phi))  # noqa: N806
    wt = torch.from_numpy(w).requires_grad_()
    labels = torch.from_numpy(np.repeat(clusters, omega.shape[1]))
    between = labels[:, None] != labels[None, :]
    g = torch.from_numpy(np.asarray(cotangent))

    def step():
        wt.grad = None
        features = (math.sqrt(2.0) * torch.cos(Zt[:, :, None] * omega_t + phi_t)).reshape(n, -1)
        mean = (wt @ features) / n
        centered = features - mean
        covariance = ((wt[:, None] * centered).T @ centered) / n
        loss = (covariance[between] ** 2).sum()
        loss.backward(g)
        return loss

    return step


def _bench_sample(rng, rows, cols):
    d, q = max(cols // 16, 2), 4
    omega, phi = _rff(rng, d, q)
    args = (
        rng.standard_normal((rows, d)),
        rng.uniform(0.5, 1.5, size=rows),
        rng.integers(0, 8, size=d),
        omega,
        phi,
    )
    return Sample("bench", args)


def _rff_blas(args, kwargs):
    """The products: C = (w ⊙ V)ᵀV, then V G and U (G Ā) of the backward."""
    n = args[0].shape[0]
    features = np.cos(args[0][:, :, None] * args[3] + args[4]).reshape(n, -1)
    weighted = args[1][:, None] * features
    mean = features.mean(axis=0)

    def step():
        covariance = weighted.T @ features
        features @ covariance
        features @ (covariance @ mean)

    return step


register(
    OpCases(
        "weighted_rff_decorrelation_loss",
        dims={"n": (2, 8), "d": (2, 5), "Q": (1, 3)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_bench_sample,
            torch=_rff_torch,
            torch_label="√2·cos(ωz + φ), (w ⊙ V)ᵀV/n, Σ C[between]²; autograd backward w.r.t. w",
            transcendentals=lambda args, kwargs: args[0].size * args[3].shape[1],  # one cos per feature
            blas=_rff_blas,
        ),
    )
)
