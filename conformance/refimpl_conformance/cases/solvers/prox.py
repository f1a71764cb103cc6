"""Conformance cases for `soft_threshold` and `group_soft_threshold` (the ℓ1 and group-ℓ2 proxes)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register

NOTES = {
    "ZERO_THRESHOLD": "λ = 0 (or tβ = 0): the identity map, gradient the identity",
    "ALL_ZERO": "λ above every |v_j| (every row norm below tβ): output and gradient exactly 0",
    "KINK": "|v_j| = λ or ‖u_g‖ = tβ exactly: the one-sided slope 0 is the stated convention (no FD)",
    "ZERO_ROW": "a zero group: 0 out without dividing by ‖u‖ = 0",
    "TINY": "entries ~1e-30: ‖u‖² underflows; the norm must be computed scaled",
    "HUGE": "entries ~1e25: ‖u‖² overflows float32; the norm must be computed scaled",
}


def _away_from(values, threshold, margin):
    """Push |values| at least ``margin`` away from ``threshold`` (finite differences stay on one side)."""
    gap = np.abs(values) - threshold
    near = np.abs(gap) < margin
    return np.where(near, values + np.sign(values + (values == 0)) * 2 * margin, values)


# -- soft_threshold ----------------------------------------------------------------------------
def _soft_random(rng, n):
    scale = float(rng.choice([0.1, 1.0, 50.0]))
    lam = float(rng.choice([0.0, 0.3, 1.0])) * scale
    v = _away_from(rng.standard_normal(n) * scale, lam, 1e-2 * scale)
    return Sample("random", (v,), {"lam": lam})


def _soft_edges():
    return [
        Sample("λ = 0: identity", (np.array([1.5, -2.0, 0.25]),), {"lam": 0.0}, flags=("ZERO_THRESHOLD",)),
        Sample(
            "λ above every |v|",
            (np.array([0.5, -0.25, 0.0, 0.9]),),
            {"lam": 1.0},
            flags=("ALL_ZERO",),
        ),
        Sample(
            "entries exactly at ±λ",
            (np.array([1.0, -1.0, 2.0, 0.5]),),
            {"lam": 1.0},
            flags=("KINK",),
            fd=False,
            comment="the slope at |v| = λ is the stated 0 (the subgradient convention), not a difference",
        ),
        Sample("n = 1", (np.array([-3.0]),), {"lam": 0.5}),
    ]


def _soft_known():
    return [
        Known(
            "hand: S_1([3, −0.5, −2, 1])",
            (np.array([3.0, -0.5, -2.0, 1.0]),),
            {"lam": 1.0},
            values={"x": [2.0, 0.0, -1.0, 0.0], "cotangent of 'v'": [1.0, 0.0, 1.0, 0.0]},
            source="hand: sign(v)·max(|v| − 1, 0); slope 1[|v| > 1]",
        )
    ]


def _soft_torch(torch, args, kwargs, cotangent):
    """torch.sign(v)·relu(|v| − λ); autograd backward (slope 0 at |v| = λ, as relu'(0) = 0)."""
    v = torch.from_numpy(args[0]).requires_grad_()
    g = torch.from_numpy(cotangent)
    lam = kwargs["lam"]

    def step():
        v.grad = None
        x = torch.sign(v) * torch.relu(v.abs() - lam)
        x.backward(g)
        return x

    return step


register(
    OpCases(
        "soft_threshold",
        dims={"n": (1, 12)},
        random=_soft_random,
        edges=_soft_edges,
        known=_soft_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            sizes={"n": 2**22},
            kwargs={"lam": 0.5},
            torch=_soft_torch,
            torch_label="torch.sign(v)·relu(|v| − λ); autograd backward",
        ),
    )
)


# -- group_soft_threshold ----------------------------------------------------------------------
def _group_random(rng, G, d):  # noqa: N803
    scale = float(rng.choice([0.1, 1.0, 50.0]))
    u = rng.standard_normal((G, d)) * scale
    t = float(rng.choice([0.5, 1.0, 2.0]))
    norms = np.linalg.norm(u, axis=1)
    beta = float(rng.choice([0.0, float(np.median(norms)) / t, 0.3 * scale]))
    threshold = t * beta
    # keep every row norm 1 % away from the threshold: finite differences stay on one side
    near = np.abs(norms - threshold) < 1e-2 * max(threshold, 1e-300)
    u[near] *= 1.5 if threshold > 0 else 1.0
    return Sample("random", (u,), {"t": t, "beta": beta})


def _group_edges():
    u = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0], [-1.0, 2.0]])
    return [
        Sample("documented example", (np.array([[3.0, 4.0], [0.3, 0.4]]),), {"t": 1.0, "beta": 1.0}),
        Sample("β = 0: identity", (u,), {"t": 1.0, "beta": 0.0}, flags=("ZERO_THRESHOLD", "ZERO_ROW")),
        Sample("a zero row among active rows", (u,), {"t": 0.4, "beta": 1.0}, flags=("ZERO_ROW",)),
        Sample("every row below tβ", (u,), {"t": 2.0, "beta": 5.0}, flags=("ALL_ZERO",)),
        Sample(
            "a row exactly at ‖u‖ = tβ",
            (np.array([[3.0, 4.0], [6.0, 8.0]]),),
            {"t": 1.0, "beta": 5.0},
            flags=("KINK",),
            fd=False,
            comment="the slope at the kink is the stated 0, not a difference",
        ),
        Sample(
            "tiny entries",
            (np.array([[3e-30, 4e-30, 0.0], [1e-30, -2e-30, 2e-30]]),),
            {"t": 1.0, "beta": 1e-30},
            flags=("TINY",),
            dtypes=("float64",),
            fd_step=1e-37,
            comment="1e-30 is below float32's range; the FD step is scaled to the entries",
        ),
        Sample(
            "huge entries",
            (np.array([[3e25, 4e25], [1e25, 1e25]]),),
            {"t": 1.0, "beta": 2e25},
            flags=("HUGE",),
        ),
    ]


def _group_known():
    return [
        Known(
            "hand: (3, 4) shrunk by 1, (0.3, 0.4) zeroed",
            (np.array([[3.0, 4.0], [0.3, 0.4]]),),
            {"t": 1.0, "beta": 1.0},
            values={"y": [[2.4, 3.2], [0.0, 0.0]]},
            source="hand: ‖(3, 4)‖ = 5, factor 1 − 1/5 = 0.8; ‖(0.3, 0.4)‖ = 0.5 ≤ 1",
        ),
        Known(
            "hand: VJP along and across û",
            (np.array([[3.0, 4.0]]),),
            {"t": 1.0, "beta": 1.0},
            values={"cotangent of 'u'": [[0.8 + 0.2 * 0.36, 0.2 * 0.48]]},
            cotangent=np.array([[1.0, 0.0]]),
            source="hand: ȳ − (1/5)(ȳ − û⟨û, ȳ⟩), û = (0.6, 0.8), ȳ = (1, 0): "
            "(1, 0) − 0.2·((1, 0) − 0.6·(0.6, 0.8))",
        ),
    ]


def _group_torch(torch, args, kwargs, cotangent):
    """relu(1 − tβ/‖u_g‖)·u_g with torch.linalg.vector_norm; autograd backward."""
    u = torch.from_numpy(args[0]).requires_grad_()
    g = torch.from_numpy(cotangent)
    threshold = kwargs["t"] * kwargs["beta"]

    def step():
        u.grad = None
        norm = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
        y = torch.relu(1 - threshold / norm) * u
        y.backward(g)
        return y

    return step


register(
    OpCases(
        "group_soft_threshold",
        dims={"G": (1, 6), "d": (1, 7)},
        random=_group_random,
        edges=_group_edges,
        known=_group_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            sizes={"G": "rows", "d": "cols"},
            kwargs={"t": 1.0, "beta": 10.0},
            torch=_group_torch,
            torch_label="relu(1 − tβ/‖u_g‖)·u_g, vector_norm over rows; autograd backward",
        ),
    )
)
