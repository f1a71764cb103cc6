"""Conformance cases for `amcl_loss`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "FEW_NEGATIVES": "N < top_k: k = N, every negative enters and the mean divides by N, not top_k",
    "TIES": "equal negative similarities at the k-th place: the lowest index is kept (stable sort)",
    "TAU_MIN": "t ≫ 0: τ → τ_min = 1e−5, 1/τ ≈ 1e5; σ(−t) must not round to 0 before the slope",
    "TAU_MAX": "t ≪ 0: τ → τ_max, the slope e/(1 + e)² underflows to 0 without NaN",
}


def _arrays(rng, H, R, N, score_scale=1.5):
    s_pos = rng.uniform(-1.0, 1.0, size=(H, R))
    s_neg = rng.uniform(-1.0, 1.0, size=(H, R, N))
    t_pos = rng.standard_normal((H, R)) * score_scale
    t_neg = rng.standard_normal((H, R, N)) * score_scale
    return s_pos, t_pos, s_neg, t_neg


def _random(rng, H, R, N):
    kwargs = {
        "dim": int(rng.choice([2, 16, 128])),
        "beta": float(rng.choice([0.0, 0.01, 0.3])),
        "tau_min": float(rng.choice([1e-5, 0.05])),
        "tau_max": float(rng.choice([2.0, 1.0])),
        "top_k": int(rng.choice([1, 3, 100])),
    }
    return Sample("random", _arrays(rng, H, R, N), kwargs)


def _edges():
    rng = np.random.default_rng(73)
    s_pos, t_pos, s_neg, t_neg = _arrays(rng, 2, 3, 5)
    tied = s_neg.copy()
    tied[:, :, 1] = tied[:, :, 3] = 1.5  # two equal hardest negatives: top_k = 1 keeps index 1
    return [
        Sample(
            "N = 5 < top_k = 100 (defaults)",
            (s_pos, t_pos, s_neg, t_neg),
            {"dim": 64},
            flags=("FEW_NEGATIVES",),
        ),
        Sample(
            "ties at the k-th place",
            (s_pos, t_pos, tied, t_neg),
            {"dim": 8, "beta": 0.1, "top_k": 1},
            flags=("TIES",),
            fd=False,
            comment="a perturbation of a tied similarity switches the kept index: no derivative there",
        ),
        Sample(
            "t = +12: τ near τ_min",
            (s_pos, t_pos * 0 + 12.0, s_neg, t_neg * 0 + 12.0),
            {"dim": 16, "beta": 0.01, "top_k": 2},
            flags=("TAU_MIN",),
            comment="τ = 1e−5 + 2σ(−12) ≈ 1.2e−5",
        ),
        Sample(
            "t = −60: τ at τ_max",
            (s_pos, t_pos * 0 - 60.0, s_neg, t_neg * 0 - 60.0),
            {"dim": 16, "beta": 0.01, "top_k": 2},
            flags=("TAU_MAX",),
        ),
    ]


def _errors():
    ones = np.ones((1, 2))
    return [
        ErrorCase(
            "tau_min >= tau_max",
            (ones, ones, np.ones((1, 2, 3)), np.ones((1, 2, 3))),
            {"dim": 4, "tau_min": 2.0, "tau_max": 1.0},
            match="tau_max > tau_min",
        ),
    ]


def _known():
    # t = 0: τ = τ_min + (τ_max − τ_min)/2; with τ_min = 0+ and τ_max = 2, τ = 1 everywhere;
    # ∂τ/∂t = −2·¼ = −½
    zero = np.zeros((1, 1))
    s_neg = np.array([[[0.2, -0.4, 0.6]]])
    return [
        Known(
            "τ = 1 everywhere, d = 4, β = 0.1, k = 2",
            (np.array([[0.5]]), zero, s_neg, np.zeros((1, 1, 3))),
            {"dim": 4, "beta": 0.1, "tau_min": 1e-300, "tau_max": 2.0, "top_k": 2},
            values={
                # −0.5 + (0.6 + 0.2)/2 + 0.1·(2·0 + 1) − 0.1·2·(0 + 1)
                "loss": -0.5 + 0.4 + 0.1 - 0.2,
                "cotangent of 's_pos'": [[-1.0]],
                # ∂ℓ/∂τ⁺ = 0.5 + 0.1·(2 − 1) = 0.6, times −½
                "cotangent of 't_pos'": [[-0.3]],
                "cotangent of 's_neg'": [[[0.5, 0.0, 0.5]]],
                # ∂ℓ/∂τ⁻_j = −s_j/2 − 0.1·0, times −½: s_j/4 on the kept (0.2, 0.6)
                "cotangent of 't_neg'": [[[0.05, 0.0, 0.15]]],
            },
            source="by hand from the official formula (amcl/losses.py, AMCLNTXentLoss._direction)",
            rtol=1e-12,
            atol=1e-15,
        ),
        Known(
            "two heads are summed, rows averaged: τ = 1, β = 0",
            (np.array([[0.5, 0.1], [0.3, 0.3]]), np.zeros((2, 2)), np.zeros((2, 2, 1)), np.zeros((2, 2, 1))),
            {"dim": 4, "beta": 0.0, "tau_min": 1e-300},
            values={"loss": -(0.5 + 0.1) / 2 - (0.3 + 0.3) / 2},
            source="by hand",
            rtol=1e-12,
        ),
        Known(
            "Ω at τ = e: (d/2)·1 + 1/e",
            (np.array([[0.0]]), np.array([[-40.0]]), np.zeros((1, 1, 1)), np.array([[[-40.0]]])),
            {"dim": 6, "beta": 1.0, "tau_min": math.e - 1.0, "tau_max": math.e},
            values={"loss": (3.0 + 1 / math.e) - (1.0 + 1 / math.e)},
            source="by hand: σ(40) = 1 in float64, so τ = τ_max = e",
            rtol=1e-12,
        ),
    ]


def _amcl_torch(torch, args, kwargs, cotangent):
    """τ = τ_min + Δ·sigmoid(−t), topk + gather, linear negative term and Ω; autograd backward."""
    s_pos, t_pos, s_neg, t_neg = (torch.from_numpy(a).requires_grad_() for a in args)
    g = torch.from_numpy(np.asarray(cotangent))
    dim, beta = kwargs["dim"], kwargs.get("beta", 0.01)
    tau_min, tau_max = kwargs.get("tau_min", 1e-5), kwargs.get("tau_max", 2.0)
    k = min(kwargs.get("top_k", 100), args[2].shape[-1])

    def step():
        for tensor in (s_pos, t_pos, s_neg, t_neg):
            tensor.grad = None
        tau_pos = tau_min + (tau_max - tau_min) * torch.sigmoid(-t_pos)
        values, index = s_neg.topk(k, dim=-1)
        tau_top = tau_min + (tau_max - tau_min) * torch.sigmoid(-t_neg.gather(-1, index))
        per_row = (
            -s_pos / tau_pos
            + (values / tau_top).mean(-1)
            + beta * (0.5 * dim * torch.log(tau_pos) + 1 / tau_pos)
            - beta * (torch.log(tau_top) + 1 / tau_top).sum(-1)
        )
        loss = per_row.mean(-1).sum()
        loss.backward(g)
        return loss

    return step


def _transcendentals(args, kwargs):
    # per kept pair and per positive: exp(−|t|) in σ and log τ (the backward reuses both)
    heads, rows = args[0].shape
    k = min(kwargs.get("top_k", 100), args[2].shape[-1])
    return 2 * heads * rows * (k + 1)


register(
    OpCases(
        "amcl_loss",
        dims={"H": (1, 3), "R": (1, 5), "N": (1, 7)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={"beta": 0.01, "tau_min": 1e-5, "tau_max": 2.0, "top_k": 100},
        bench=Bench(
            sizes={"H": 3, "R": "rows", "N": "cols"},
            kwargs={"dim": 128},
            torch=_amcl_torch,
            torch_label="sigmoid temperatures, topk + gather, linear negatives, Ω, head sum; autograd",
            transcendentals=_transcendentals,
        ),
    )
)
