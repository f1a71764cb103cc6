"""Conformance cases for `pst_masked_weight` (custom VJP: the identity STE through the mask,
checked against the stated formula)."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register

NOTES = {
    "OFFICIAL_INIT": "V = B = 0, R = C = 0 (the official initialization): W̃ = W and S = |W|",
    "TIES": "equal importance scores (exact in every precision): the lower flat index is pruned first",
    "NO_PRUNING": "s = 0: M = 1 and W_eff = W̃",
    "ALL_PRUNED": "s = 1: W_eff = 0, yet the STE still passes S̄ = G ⊙ W̃ to the importance",
    "ZERO_ENTRY": "W̃_ij = 0 exactly: sign 0, the |W̃| path adds nothing",
    "FLOOR": "s·mn not an integer: ⌊s·mn⌋ entries pruned (0.3·10 = 3, not rounded up)",
}

#: relative gap kept between the last pruned and the first kept importance score, and between
#: W̃ and 0, in drawn samples: float32 rounding cannot move an entry across the mask or flip a sign
MARGIN = 1e-3


def _parts(w, u, v, a, b, r, c, beta=1.0, alpha1=1.0, alpha2=1.0):
    w_tilde = w + beta * (u @ v)
    importance = np.abs(w_tilde) + alpha1 * (a @ b) + alpha2 * (r[:, None] + c[None, :])
    return w_tilde, importance


def _clear(args, kwargs):
    w_tilde, importance = _parts(*args, **{k: kwargs[k] for k in ("beta", "alpha1", "alpha2") if k in kwargs})
    scale = np.abs(importance).max() + 1.0
    if np.abs(w_tilde).min() < MARGIN * (np.abs(w_tilde).max() + 1.0):
        return False
    ordered = np.sort(importance, axis=None)
    count = math.floor(kwargs["sparsity"] * importance.size)
    if 0 < count < importance.size and ordered[count] - ordered[count - 1] < MARGIN * scale:
        return False
    return True


def _random(rng, M, N, R, RM):  # noqa: N803
    for _ in range(200):
        scale = float(rng.choice([0.05, 1.0, 10.0]))
        args = (
            rng.standard_normal((M, N)) * scale,
            rng.standard_normal((M, R)),
            rng.standard_normal((R, N)) * 0.1 * scale,
            rng.standard_normal((M, RM)),
            rng.standard_normal((RM, N)) * 0.1 * scale,
            rng.standard_normal(M) * 0.1 * scale,
            rng.standard_normal(N) * 0.1 * scale,
        )
        kwargs = {
            "sparsity": float(rng.choice([0.25, 0.5, 0.7, rng.uniform(0, 1)])),
            "beta": float(rng.choice([1.0, 0.5, 2.0])),
            "alpha1": float(rng.choice([1.0, 0.3])),
            "alpha2": float(rng.choice([1.0, 2.0])),
        }
        if _clear(args, kwargs):
            return Sample("random", args, kwargs)
    raise RuntimeError("no draw with clear mask margins")  # pragma: no cover


def _zeros(*shape):
    return np.zeros(shape)


def _edges():
    rng = np.random.default_rng(93)
    w = rng.standard_normal((4, 5))
    official = (
        w,
        rng.standard_normal((4, 8)),
        _zeros(8, 5),
        rng.standard_normal((4, 8)),
        _zeros(8, 5),
        _zeros(4),
        _zeros(5),
    )
    trained = (
        w,
        rng.standard_normal((4, 2)),
        rng.standard_normal((2, 5)) * 0.1,
        rng.standard_normal((4, 3)),
        rng.standard_normal((3, 5)) * 0.1,
        rng.standard_normal(4) * 0.1,
        rng.standard_normal(5) * 0.1,
    )
    ties = (
        np.array([[1.0, -1.0, 2.0], [-1.0, 1.0, -2.0]]),
        _zeros(2, 1),
        _zeros(1, 3),
        _zeros(2, 1),
        _zeros(1, 3),
        _zeros(2),
        _zeros(3),
    )
    zero_entry = (np.array([[0.5, 0.25], [-2.0, 1.0]]), np.array([[1.0], [0.0]]), np.array([[-0.5, 0.0]]),
                  _zeros(2, 1), _zeros(1, 2), np.array([3.0, 0.0]), _zeros(2))  # fmt: skip
    floor_case = (
        rng.standard_normal((2, 5)),
        _zeros(2, 1),
        _zeros(1, 5),
        _zeros(2, 1),
        _zeros(1, 5),
        _zeros(2),
        _zeros(5),
    )
    return [
        Sample("official initialization", official, {"sparsity": 0.5}, flags=("OFFICIAL_INIT",)),
        Sample(
            "exact ties", ties, {"sparsity": 0.5}, flags=("TIES",), comment="prunes flat 0, 1, 3 (|·| = 1)"
        ),
        Sample("s = 0", trained, {"sparsity": 0.0}, flags=("NO_PRUNING",)),
        Sample("s = 1", trained, {"sparsity": 1.0}, flags=("ALL_PRUNED",)),
        Sample(
            "W̃ entry exactly 0",
            zero_entry,
            {"sparsity": 0.25},
            flags=("ZERO_ENTRY",),
            comment="W̃[0, 0] = 0.5 − 0.5 = 0 but R[0] = 3 keeps it",
        ),
        Sample("⌊0.3·10⌋ = 3", floor_case, {"sparsity": 0.3}, flags=("FLOOR",)),
    ]


def _known():
    w = np.array([[1.0, -3.0], [0.5, 2.0]])
    zeros = (_zeros(2, 1), _zeros(1, 2), _zeros(2, 1), _zeros(1, 2), _zeros(2), _zeros(2))
    return [
        Known(
            "magnitude pruning at the official init",
            (w, *zeros),
            {"sparsity": 0.5},
            {"w_eff": [[0.0, -3.0], [0.0, 2.0]]},
            source="by hand: S = |W|, the two smallest (1, 0.5) pruned",
        )
    ]


def stated_vjp(args, kwargs, cotangents):
    """S̄ = G⊙W̃, W̃̄ = G⊙M + sign(W̃)⊙S̄, then the low-rank and broadcast pullbacks; float64 loops
    for the elementwise part."""
    w, u, v, a, b, r, c = (np.asarray(x, dtype=np.float64) for x in args)
    beta, alpha1, alpha2 = (kwargs.get(k, 1.0) for k in ("beta", "alpha1", "alpha2"))
    w_tilde, importance = _parts(w, u, v, a, b, r, c, beta, alpha1, alpha2)
    order = np.argsort(importance, axis=None, kind="stable")
    mask = np.ones(w.size)
    mask[order[: math.floor(kwargs["sparsity"] * w.size)]] = 0
    mask = mask.reshape(w.shape)
    g = np.asarray(cotangents[0], dtype=np.float64)
    s_bar = np.zeros_like(w)
    w_bar = np.zeros_like(w)
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            s_bar[i, j] = g[i, j] * w_tilde[i, j]
            w_bar[i, j] = g[i, j] * mask[i, j] + np.sign(w_tilde[i, j]) * s_bar[i, j]
    return [
        beta * w_bar @ v.T,
        beta * u.T @ w_bar,
        alpha1 * s_bar @ b.T,
        alpha1 * a.T @ s_bar,
        alpha2 * s_bar.sum(axis=1),
        alpha2 * s_bar.sum(axis=0),
    ]


def _torch(torch, args, kwargs, cotangent):
    """W̃ = W + βUV, S = |W̃| + α₁AB + α₂(R1ᵀ + 1Cᵀ), mask from a stable argsort, and the STE as
    W_eff = W̃ ⊙ (M + S − sg[S]); autograd backward."""
    w, u, v, a, b, r, c = (torch.from_numpy(np.asarray(x)) for x in args)
    leaves = [x.clone().requires_grad_(True) for x in (u, v, a, b, r, c)]
    g = torch.from_numpy(np.asarray(cotangent))
    beta, alpha1, alpha2 = (kwargs.get(k, 1.0) for k in ("beta", "alpha1", "alpha2"))
    count = math.floor(kwargs["sparsity"] * w.numel())

    def step():
        u_, v_, a_, b_, r_, c_ = leaves
        w_tilde = w + beta * (u_ @ v_)
        importance = w_tilde.abs() + alpha1 * (a_ @ b_) + alpha2 * (r_[:, None] + c_[None, :])
        with torch.no_grad():
            order = torch.sort(importance.flatten(), stable=True).indices
            mask = torch.ones(w.numel(), dtype=w.dtype)
            mask[order[:count]] = 0
            mask = mask.reshape(w.shape)
        w_eff = w_tilde * (mask + importance - importance.detach())
        w_eff.backward(g)
        return w_eff.detach()

    return step


def _blas(args, kwargs):
    """U V and A B forward; W̃̄ Vᵀ, Uᵀ W̃̄, S̄ Bᵀ, Aᵀ S̄ backward."""
    w, u, v, a, b = (np.asarray(x) for x in args[:5])

    def step():
        return u @ v, a @ b, w @ v.T, u.T @ w, w @ b.T, a.T @ w

    return step


def _bench(rng, rows, cols):
    return Sample(
        "bench",
        (
            rng.standard_normal((rows, cols)),
            rng.standard_normal((rows, 8)),
            rng.standard_normal((8, cols)) * 0.01,
            rng.standard_normal((rows, 8)),
            rng.standard_normal((8, cols)) * 0.01,
            rng.standard_normal(rows) * 0.01,
            rng.standard_normal(cols) * 0.01,
        ),
        {"sparsity": 0.5},
    )


register(
    OpCases(
        "pst_masked_weight",
        dims={"M": (1, 5), "N": (1, 6), "R": (1, 3), "RM": (1, 3)},
        random=_random,
        edges=_edges,
        known=_known,
        notes=NOTES,
        defaults={"beta": 1.0, "alpha1": 1.0, "alpha2": 1.0},
        stated_vjp=stated_vjp,
        bench=Bench(
            make=_bench,
            torch=_torch,
            torch_label="torch: stable sort for the mask, STE as W̃⊙(M + S − sg[S]), autograd backward",
            blas=_blas,
        ),
    )
)
