"""Conformance cases for `shrink_loss`."""

from __future__ import annotations

import math

import numpy as np

from refimpl.losses.shrink import shrunk_class_space

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "TWO_CLASSES": "C = 2: the official loop over c = 2..C−1 is empty, so the loss and its gradient are 0",
    "ALL_CERTAIN": "every max p ≥ τ: the term is 0 and ρ' = μρ + (1 − μ)",
    "TIES": "tied probabilities: the top-1 class and the removed ranks follow the lowest class index",
    "AT_THRESHOLD": "conf_c = τ and max p = τ exactly (dyadic values): both comparisons are ≥",
    "NEVER_REACHED": "conf_{C−1} < τ: the row's weight is 0 (not the loss of the last subset)",
    "LARGE_LOGITS": "|z| ~ 1e4, a removed class far above the kept max: the CE over S must not overflow",
}

# a drawn probability closer than this to a decision (max p = τ, conf_c = τ) is redrawn: the
# Monte Carlo rounding of the selection could move it across τ (the edges test the ties)
MARGIN = 1e-5


def _near_a_decision(p, tau):
    """Rows whose max p or some conf_c lies within MARGIN of τ."""
    sorted_p = -np.sort(-p, axis=-1)
    top = sorted_p[:, :1]
    tail = np.cumsum(sorted_p[:, ::-1], axis=-1)[:, ::-1]
    near = np.abs(top[:, 0] - tau) < MARGIN
    if p.shape[1] >= 3:
        near |= (np.abs(top / (top + tail[:, 2:]) - tau) < MARGIN).any(axis=-1)
    return near


def _probabilities(rng, B, C, tau):
    """Softmax rows with a top class, 0–3 confusion classes near it and a small tail, and
    one row in five nearly flat.

    tail/top ≈ e^−extra with extra ∈ [2, 6], so some rows are certain and some reach τ once
    the confusion classes are removed; a flat row never does (conf_{C−1} ≈ 1/2)."""
    p = np.empty((B, C))
    redraw = np.ones(B, dtype=bool)
    for _ in range(50):
        for b in np.flatnonzero(redraw):
            logits = 0.5 * rng.standard_normal(C)
            if rng.uniform() < 0.2:
                e = np.exp(logits - logits.max())
                p[b] = e / e.sum()
                continue
            classes = rng.permutation(C)
            a = math.log(C) + rng.uniform(2.0, 6.0)
            logits[classes[0]] += a
            confusers = classes[1 : 1 + int(rng.integers(0, min(3, C - 1) + 1))]
            logits[confusers] += a - rng.uniform(0.0, 1.5, size=confusers.size)
            e = np.exp(logits - logits.max())
            p[b] = e / e.sum()
        redraw = _near_a_decision(p, tau)
        if not redraw.any():
            return p
    raise RuntimeError("could not draw probabilities away from the threshold")


def _random(rng, B, C):
    tau = float(rng.choice([0.95, 0.95, 0.8, 0.6]))
    p = _probabilities(rng, B, C, tau)
    z = rng.standard_normal((B, C)) * float(rng.choice([0.5, 2.0, 10.0]))
    kwargs = {
        "certain_ratio": float(rng.uniform(0.05, 1.0)),
        "threshold": tau,
        "momentum": float(rng.choice([0.999, 0.9, 0.0])),
        "reduction": str(rng.choice(["mean", "sum", "none"])),
    }
    return Sample("random", (p, z), kwargs)


def _edges():
    rng = np.random.default_rng(3)
    return [
        Sample(
            "two classes",
            (np.array([[0.6, 0.4], [0.97, 0.03]]), rng.standard_normal((2, 2))),
            {"certain_ratio": 0.5},
            flags=("TWO_CLASSES",),
        ),
        Sample(
            "all certain",
            (np.array([[0.96, 0.02, 0.02], [0.01, 0.98, 0.01]]), rng.standard_normal((2, 3))),
            {"certain_ratio": 0.3, "reduction": "none"},
            flags=("ALL_CERTAIN",),
        ),
        Sample(
            "ties in p",
            (
                np.array([[0.25, 0.25, 0.25, 0.25], [0.125, 0.375, 0.375, 0.125], [0.5, 0.125, 0.125, 0.25]]),
                rng.standard_normal((3, 4)),
            ),
            {"certain_ratio": 0.8, "threshold": 0.5, "reduction": "none"},
            flags=("TIES", "AT_THRESHOLD"),
            comment="row 0: conf_3 = 0.25/0.5 = τ, S = {0, 3}; row 1: top = class 1, class 2 removed; "
            "row 2: max p = τ, certain",
        ),
        Sample(
            "never reached and reached",
            (np.array([[0.5, 0.4, 0.1], [0.6, 0.3, 0.1]]), rng.standard_normal((2, 3))),
            {"certain_ratio": 1.0, "threshold": 0.8, "momentum": 0.9, "reduction": "sum"},
            flags=("NEVER_REACHED",),
        ),
        Sample(
            "large logits",
            (
                np.array([[0.55, 0.4, 0.03, 0.02], [0.3, 0.1, 0.6, 0.0]]),
                np.array([[-1e4, 1e4, 3.0, -2.0], [2e4, 1e4, -1e4, 5e3]]),
            ),
            {"certain_ratio": 0.7, "threshold": 0.9},
            flags=("LARGE_LOGITS",),
            comment="row 0: the removed class 1 has z = 1e4, the kept max is 3",
        ),
    ]


def _errors():
    z = np.zeros((2, 3))
    return [
        ErrorCase(
            "negative probability",
            (np.array([[0.5, 0.6, -0.1], [0.2, 0.3, 0.5]]), z),
            {"certain_ratio": 0.5},
            match="a negative entry in row 0",
        ),
        ErrorCase(
            "row of zeros",
            (np.array([[0.2, 0.3, 0.5], [0.0, 0.0, 0.0]]), z),
            {"certain_ratio": 0.5},
            match="all zeros in row 1",
        ),
    ]


def _known():
    e = math.e
    return [
        Known(
            "hand: p = [0.6, 0.3, 0.1], z = [1, 2, 0], τ = 0.8, ρ = 0.5, μ = 0.9",
            (np.array([[0.6, 0.3, 0.1]]), np.array([[1.0, 2.0, 0.0]])),
            {"certain_ratio": 0.5, "threshold": 0.8, "momentum": 0.9},
            values={
                # conf_2 = 0.6/0.7 ≥ 0.8: S = {0, 2}, ω = 0.6, ℓ = log(e¹ + e⁰) − 1 = log(1 + 1/e)
                "loss": 0.5 * 0.6 * math.log1p(1 / e),
                "certain_ratio": 0.9 * 0.5,
                # ρω(σ_S − e_0) = 0.3·[e/(e+1) − 1, 0, 1/(e+1)]
                "cotangent of 'z'": [[-0.3 / (e + 1), 0.0, 0.3 / (e + 1)]],
            },
            source="computed by hand from the catalog's forward and VJP",
            rtol=1e-12,
        ),
        Known(
            "hand: ties, p = [0.25]*4, z = [0, 1, 2, 3], τ = 0.5",
            (np.full((1, 4), 0.25), np.array([[0.0, 1.0, 2.0, 3.0]])),
            {"certain_ratio": 1.0, "threshold": 0.5, "momentum": 0.0},
            values={
                # top = class 0; conf_2 = 0.25/0.75 < τ, conf_3 = 0.25/0.5 = τ: classes 1, 2
                # removed, S = {0, 3}, ω = 0.25, ℓ = log(e⁰ + e³) − 0
                "loss": 0.25 * math.log1p(e**3),
                "certain_ratio": 0.0,
            },
            source="computed by hand (the stable tie rule of the catalog)",
            rtol=1e-12,
        ),
    ]


def _shrink_torch(torch, args, kwargs, cotangent):
    """Batched ShrinkMatch selection (stable descending torch.sort, float64 tail cumsum),
    −log_softmax of z with the removed classes masked to −inf at the top-1 class, ρ ω weights,
    mean; autograd backward. (The official per-row Python loop is O(B·C²) and not timed.)"""
    dtype = args[0].dtype
    p = torch.from_numpy(args[0])
    z = torch.from_numpy(args[1]).requires_grad_()
    g = torch.from_numpy(np.asarray(cotangent[0]))
    ratio = kwargs["certain_ratio"]
    tau = float(dtype.type(kwargs.get("threshold", 0.95)))
    momentum, reduction = kwargs.get("momentum", 0.999), kwargs.get("reduction", "mean")
    batch, num_classes = args[0].shape

    def step():
        z.grad = None
        sorted_p, order = torch.sort(p, dim=-1, descending=True, stable=True)
        q = sorted_p.double()
        top = q[:, 0]
        certain = top >= tau
        tail = q.flip(-1).cumsum(-1).flip(-1)
        cut = torch.full((batch,), num_classes - 1, dtype=torch.long)
        reached = torch.zeros(batch, dtype=torch.bool)
        if num_classes >= 3:
            passes = top[:, None] / (top[:, None] + tail[:, 2:]) >= tau
            reached = passes.any(-1)
            cut = torch.where(reached, 2 + passes.long().argmax(-1), cut)
        ranks = torch.arange(num_classes)[None, :]
        kept = torch.zeros_like(p, dtype=torch.bool).scatter(1, order, (ranks == 0) | (ranks >= cut[:, None]))
        weight = torch.where(reached & ~certain, top, torch.zeros_like(top)).to(z.dtype)
        log_p = torch.log_softmax(z.masked_fill(~kept, float("-inf")), dim=-1)
        per_row = ratio * weight * -log_p.gather(1, order[:, :1])[:, 0]
        loss = per_row.mean() if reduction == "mean" else per_row.sum() if reduction == "sum" else per_row
        new_ratio = torch.tensor(
            momentum * ratio + (1 - momentum) * certain.double().mean().item(), dtype=z.dtype
        )
        loss.backward(g)
        return loss, new_ratio

    return step


def _transcendentals(args, kwargs):
    """One exp per kept class and one log per row with ω > 0 (other rows need none)."""
    p = args[0]
    _, kept, weight, _ = shrunk_class_space(p, kwargs.get("threshold", 0.95))
    active = weight > 0
    return int(kept[active].sum() + active.sum())


register(
    OpCases(
        "shrink_loss",
        dims={"B": (1, 6), "C": (3, 9)},  # C = 2 (no loss) is an edge case
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        defaults={"threshold": 0.95, "momentum": 0.999, "reduction": "mean"},
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "C": "cols"},
            torch=_shrink_torch,
            torch_label="stable torch.sort, float64 tail cumsum, masked log_softmax at the top-1 class, "
            "ρω-weighted mean; autograd backward",
            transcendentals=_transcendentals,
        ),
    )
)
