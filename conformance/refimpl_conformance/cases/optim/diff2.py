"""Conformance cases for `diff2_estimator_step` (DIFF2)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register

NOTES = {
    "RESTART": "r mod T = 0: v_r is the clipped full gradient plus σ₁ξ; v_{r−1} and g' must not be read",
    "DIFFERENCE": "r mod T ≠ 0: the differences are clipped (C₂), not the gradients, and added to v_{r−1}",
    "ZERO_ROW": "a node whose u_i = 0: the clip factor is 1 (0/0 otherwise)",
    "NO_CLIP": "C = None (∞): the exact node average, DIFF2 telescopes to the full gradient",
    "OVERFLOW": "|u| ~ 1e20 in float32: ‖u‖² overflows unless summed in float64",
    "DP_GD": "T = 1: every round is a restart (DP-GD)",
}

_NAMES = ("clip_restart", "clip_difference", "sigma_restart", "sigma_difference")


def _kwargs(rng, round_index, period, scale):
    return {
        "round_index": round_index,
        "period": period,
        "clip_restart": None if rng.uniform() < 0.2 else float(scale * 10 ** rng.uniform(-1, 1)),
        "clip_difference": None if rng.uniform() < 0.2 else float(scale * 10 ** rng.uniform(-2, 0)),
        "sigma_restart": float(rng.choice([0.0, rng.uniform(0, 2)])),
        "sigma_difference": float(rng.choice([0.0, rng.uniform(0, 0.5)])),
        "lr": float(10 ** rng.uniform(-3, 0)),
    }


def _random(rng, N, P):
    scale = float(10 ** rng.uniform(-3, 2))
    grads = rng.standard_normal((N, P)) * scale
    grads_previous = grads + rng.standard_normal((N, P)) * scale * float(rng.choice([0.01, 0.3, 1.0]))
    period = int(rng.integers(1, 6))
    round_index = int(rng.integers(0, 12))
    args = (
        rng.standard_normal(P),
        grads,
        grads_previous,
        rng.standard_normal(P) * scale,
        rng.standard_normal(P),
    )
    return Sample("random", args, _kwargs(rng, round_index, period, scale))


def _fixed(round_index, period, c1, c2, s1=0.0, s2=0.0, lr=0.1):
    return {
        "round_index": round_index,
        "period": period,
        "clip_restart": c1,
        "clip_difference": c2,
        "sigma_restart": s1,
        "sigma_difference": s2,
        "lr": lr,
    }


def _edges():
    rng = np.random.default_rng(7)
    x, v, xi = np.array([1.0, -1.0]), np.array([0.25, 0.5]), np.array([0.3, -1.2])
    g = np.array([[3.0, 4.0], [0.0, 1.0], [0.0, 0.0]])
    g_prev = np.array([[3.0, 3.0], [0.0, 0.0], [1.0, 1.0]])
    nan_free = np.full_like(g, 1e6)
    return [
        Sample(
            "restart round",
            (x, g, nan_free, np.full(2, -7.0), xi),
            _fixed(6, 3, 1.0, 0.5, s1=0.5),
            flags=("RESTART", "ZERO_ROW"),
            comment="v = ((0.6, 0.8) + (0, 1) + 0)/3 + 0.5ξ; g' and v_{r−1} are junk and ignored",
        ),
        Sample(
            "difference round",
            (x, g, g_prev, v, xi),
            _fixed(7, 3, 1.0, 0.5, s2=0.1),
            flags=("DIFFERENCE",),
            comment="u = [(0, 1), (0, 1), (−1, −1)]: norms 1, 1, √2, all clipped to 0.5",
        ),
        Sample(
            "no clipping",
            (x, g, g_prev, v, xi),
            _fixed(1, 2, None, None),
            flags=("NO_CLIP",),
            comment="v = v_{r−1} + mean(g − g')",
        ),
        Sample("T = 1 (DP-GD)", (x, g, g_prev, v, xi), _fixed(5, 1, 2.0, 0.1, s1=1.0), flags=("DP_GD",)),
        Sample(
            "huge gradients",
            (
                np.zeros(3),
                np.array([[1e20, -1e20, 1e20], [1e19, 0.0, 0.0]]),
                np.zeros((2, 3)),
                np.zeros(3),
                np.ones(3),
            ),
            _fixed(0, 4, 1.0, 1.0, s1=0.01),
            flags=("OVERFLOW",),
            comment="each row clipped to norm 1: v = ((1, −1, 1)/√3 + (1, 0, 0))/2 + 0.01",
        ),
        Sample(
            "one node",
            (
                rng.standard_normal(5),
                rng.standard_normal((1, 5)),
                rng.standard_normal((1, 5)),
                rng.standard_normal(5),
                rng.standard_normal(5),
            ),
            _fixed(3, 2, 0.5, 0.05, s2=0.2, lr=1.0),
        ),
    ]


def _bench_sample(rng, rows, cols):
    grads = rng.standard_normal((rows, cols))
    args = (
        rng.standard_normal(cols),
        grads,
        grads + 0.1 * rng.standard_normal((rows, cols)),
        rng.standard_normal(cols),
        rng.standard_normal(cols),
    )
    return Sample("bench", args, _fixed(1, 5, 1.0, 1.0, s1=1.0, s2=0.1, lr=0.01))


def _torch(torch, args, kwargs, cotangent):
    """The same round with torch ops in float64 (no autograd: an optimizer step)."""
    params, grads, grads_previous, estimator, noise = (torch.from_numpy(a) for a in args)
    restart = kwargs["round_index"] % kwargs["period"] == 0
    radius = kwargs["clip_restart"] if restart else kwargs["clip_difference"]
    sigma = kwargs["sigma_restart"] if restart else kwargs["sigma_difference"]
    lr = kwargs["lr"]

    def step():
        with torch.no_grad():
            u = grads.double() if restart else grads.double() - grads_previous.double()
            norms = torch.linalg.vector_norm(u, dim=1)
            factors = torch.ones_like(norms) if radius is None else torch.clamp(radius / norms, max=1.0)
            base = 0.0 if restart else estimator.double()
            v = base + (factors[:, None] * u).sum(0) / grads.shape[0] + sigma * noise.double()
            return (params.double() - lr * v).to(params.dtype), v.to(params.dtype)

    return step


register(
    OpCases(
        "diff2_estimator_step",
        dims={"N": (1, 5), "P": (1, 8)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_bench_sample,
            torch=_torch,
            torch_label="float64: u = g − g'; clamp(C/‖u_i‖, max=1); v = v' + mean(factor·u) + σξ; x − ηv",
        ),
    )
)
