"""Conformance cases for `vcb_class_weights` and `vcb_loss`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "GLOBAL_ONLY": "epoch 0: ω = 0, every vertex gets the global weights (the vertex counts are ignored)",
    "LAST_EPOCH": "epoch E − 1: ω = ω_max exactly",
    "LATE_EPOCH": "epoch past E − 1: the last epoch's table (the official fallback), not ω > ω_max",
    "FLOOR": "a class a vertex never shows: ñ = 0 before the floor m, an infinite weight without it",
    "ZERO_ROW": "a vertex with no counts: share 0 (the 1e-6 denominator clamp), not 0/0 = nan",
    "UNIFORM": "β = 0: β^ñ = 0, weights 1/2 for every vertex",
    "CANCELLATION": "β = 1 − 1e-9: 1 − β^ñ must not cancel (float32 rounds β to 1)",
    "HUGE_COUNTS": "counts of 1e12: only their ratios matter",
}


def _counts(rng, V, N):
    """Per-vertex and global counts of N binary contact labels per vertex."""
    contact_rate = 10 ** rng.uniform(-3, -0.1, size=V)  # contact is the rare class at most vertices
    contacts = rng.binomial(N, contact_rate).astype(np.float64)
    vertex_counts = np.stack([N - contacts, contacts], axis=1)
    return vertex_counts, vertex_counts.sum(axis=0)


def _random(rng, V):
    vertex_counts, global_counts = _counts(rng, V, int(rng.integers(1, 5000)))
    total_epochs = int(rng.integers(2, 15))
    return Sample(
        "random",
        (vertex_counts, global_counts),
        {
            "epoch": int(rng.integers(0, total_epochs + 2)),
            "total_epochs": total_epochs,
            "beta": float(rng.choice([0.9999, 0.999, 0.99, 0.9])),
            "total_samples": float(rng.choice([1000.0, 200.0, 5000.0])),
            "vertex_weight_max": float(rng.uniform(0, 1)),
            "min_samples": float(rng.choice([20.0, 5.0, 50.0])),
        },
    )


def _edges():
    rng = np.random.default_rng(67)
    vertex_counts, global_counts = _counts(rng, 6, 2000)
    never = np.array([[2000.0, 0.0], [0.0, 2000.0], [1990.0, 10.0]])
    counts = (vertex_counts, global_counts)
    return [
        Sample("epoch 0", counts, {"epoch": 0, "total_epochs": 10}, flags=("GLOBAL_ONLY",)),
        Sample("epoch E − 1", counts, {"epoch": 9, "total_epochs": 10}, flags=("LAST_EPOCH",)),
        Sample("epoch past E − 1", counts, {"epoch": 25, "total_epochs": 10}, flags=("LATE_EPOCH",)),
        Sample(
            "a class never seen at a vertex, ω_max = 1",
            (never, never.sum(axis=0)),
            {"epoch": 1, "total_epochs": 2, "vertex_weight_max": 1.0},
            flags=("FLOOR",),
            comment="row 0: ñ = [1000, 0] → floor [1000, 20] → ×1000/1020",
        ),
        Sample(
            "a vertex with no counts",
            (np.array([[0.0, 0.0], [900.0, 100.0]]), np.array([900.0, 100.0])),
            {"epoch": 4, "total_epochs": 5},
            flags=("ZERO_ROW",),
            comment="row 0 falls back to the global distribution [900, 100]",
        ),
        Sample("β = 0", counts, {"epoch": 3, "total_epochs": 4, "beta": 0.0}, flags=("UNIFORM",)),
        Sample(
            "β = 1 − 1e-9",
            counts,
            {"epoch": 3, "total_epochs": 4, "beta": 1 - 1e-9},
            flags=("CANCELLATION",),
        ),
        Sample(
            "counts 1e12",
            (vertex_counts * 5e8, global_counts * 5e8),
            {"epoch": 2, "total_epochs": 4},
            flags=("HUGE_COUNTS",),
        ),
        Sample(
            "778 MANO vertices, the official configuration (E = 10)",
            _counts(np.random.default_rng(778), 778, 40000),
            {"epoch": 6, "total_epochs": 10},
        ),
    ]


def _errors():
    counts = np.array([[10.0, 2.0], [5.0, 0.0]])
    return [
        ErrorCase(
            "negative vertex count",
            (np.array([[10.0, -1.0]]), np.array([10.0, 1.0])),
            {"epoch": 0, "total_epochs": 2},
            match=r"'vertex_counts'.*>= 0",
        ),
        ErrorCase(
            "negative global count",
            (counts, np.array([15.0, -2.0])),
            {"epoch": 0, "total_epochs": 2},
            match=r"'global_counts'.*>= 0",
        ),
        ErrorCase(
            "global counts both 0",
            (counts, np.zeros(2)),
            {"epoch": 0, "total_epochs": 2},
            match=r"'global_counts'.*at least one counted label",
        ),
    ]


def _known():
    small = {"beta": 0.5, "vertex_weight_max": 1.0}
    return [
        Known(
            "ω = 1: the vertex's own counts [3, 1]",
            (np.array([[3.0, 1.0]]), np.array([1.0, 1.0])),
            {"epoch": 1, "total_epochs": 2, "total_samples": 4.0, "min_samples": 1.0, **small},
            values={"weights": [[4 / 11, 7 / 11]]},
            source="by hand: u = [(1/2)/(7/8), (1/2)/(1/2)] = [4/7, 1], w = u/Σu",
            rtol=1e-14,
        ),
        Known(
            "ω = 0 (epoch 0): the global counts [1, 3] for every vertex",
            (np.array([[3.0, 1.0], [0.0, 8.0]]), np.array([1.0, 3.0])),
            {"epoch": 0, "total_epochs": 5, "total_samples": 4.0, "min_samples": 1.0, **small},
            values={"weights": [[7 / 11, 4 / 11], [7 / 11, 4 / 11]]},
            source="by hand: ñ = [1, 3], u = [1, 4/7], w = u/Σu",
            rtol=1e-14,
        ),
        Known(
            "floor and renormalization: ñ = [6, 0] → [6, 3] → [4, 2]",
            (np.array([[6.0, 0.0]]), np.array([1.0, 1.0])),
            {"epoch": 3, "total_epochs": 4, "total_samples": 6.0, "min_samples": 3.0, **small},
            values={"weights": [[4 / 9, 5 / 9]]},
            source="by hand: u = [(1/2)/(15/16), (1/2)/(3/4)] = [8/15, 2/3], w = u/Σu",
            rtol=1e-14,
        ),
        Known(
            "ω = 0.15 (epoch 1 of E = 3, ω_max = 0.3)",
            (np.array([[0.0, 10.0]]), np.array([1.0, 0.0])),
            {"epoch": 1, "total_epochs": 3, "beta": 0.5, "total_samples": 20.0, "min_samples": 1.0},
            # share [0, 20] and [20, 0]; ñ = 0.15·[0, 20] + 0.85·[20, 0] = [17, 3];
            # u_c = (1/2)/(1 − 2^−ñ_c), w_0 = (1 − 2^−3)/((1 − 2^−3) + (1 − 2^−17))
            values={
                "weights": [
                    [
                        (1 - 2.0**-3) / ((1 - 2.0**-3) + (1 - 2.0**-17)),
                        (1 - 2.0**-17) / ((1 - 2.0**-3) + (1 - 2.0**-17)),
                    ]
                ]
            },
            source="by hand, from the blend ñ = ω·n^v + (1 − ω)·n^g",
            rtol=1e-14,
        ),
    ]


register(
    OpCases(
        "vcb_class_weights",
        dims={"V": (1, 12)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        known=_known,
        defaults={"beta": 0.9999, "total_samples": 1000.0, "vertex_weight_max": 0.3, "min_samples": 20.0},
    )
)


# -- vcb_loss --------------------------------------------------------------------------------------
LOSS_NOTES = {
    "SATURATED": "|z| = 40: σ(z) rounds to 1, so log(1 − σ) is −inf and σ − y cancels; softplus(±z) does not",
    "CLAMP": "bce_log_clamp with |z| = 200: the term is held at 100 and its gradient is 0",
    "NO_CLAMP": "|z| = 200 without the clamp: the term is 200·w, the gradient ±w/(BV)",
    "ALL_CONTACT": "every label 1: the false-positive term vanishes, only the contact weights are used",
    "NO_CONTACT": "every label 0: only the no-contact weights, and the penalty on every vertex",
    "FP_WEIGHT_0": "λ = 0: the class-balanced cross-entropy alone",
}


def _loss_random(rng, B, V):
    vertex_counts, global_counts = _counts(rng, V, int(rng.integers(1, 5000)))
    contact_rate = np.clip(vertex_counts[:, 1] / np.maximum(vertex_counts.sum(axis=1), 1), 0.05, 0.95)
    y = (rng.random((B, V)) < contact_rate).astype(np.int64)
    z = rng.standard_normal((B, V)) * float(rng.choice([0.3, 2.0, 8.0])) + float(rng.choice([0.0, -2.0]))
    total_epochs = int(rng.integers(2, 15))
    kwargs = {
        "epoch": int(rng.integers(0, total_epochs + 2)),
        "total_epochs": total_epochs,
        "beta": float(rng.choice([0.9999, 0.999, 0.9])),
        "total_samples": float(rng.choice([1000.0, 200.0])),
        "vertex_weight_max": float(rng.uniform(0, 1)),
        "min_samples": float(rng.choice([20.0, 5.0])),
        "fp_weight": float(rng.choice([0.5, 0.0, 2.0])),
        "bce_log_clamp": bool(rng.random() < 0.5),  # |z| < 100 here: the clamp is inactive
    }
    return Sample("random", (z, y, vertex_counts, global_counts), kwargs)


def _loss_edges():
    rng = np.random.default_rng(67)
    vertex_counts, global_counts = _counts(rng, 5, 2000)
    counts = (vertex_counts, global_counts)
    schedule = {"epoch": 4, "total_epochs": 10}
    z = rng.standard_normal((3, 5))
    y = (rng.random((3, 5)) < 0.4).astype(np.int64)
    y[0, :2] = [0, 1]
    far = np.array([[40.0, -40.0, 40.0, -40.0, 0.5]] * 2)
    far_labels = np.array([[0, 1, 1, 0, 0], [1, 0, 0, 1, 1]])
    huge = np.array([[200.0, -200.0, 200.0, -200.0, 1.0]])
    huge_labels = np.array([[0, 1, 1, 0, 1]])
    mano = _counts(np.random.default_rng(778), 778, 40000)
    mano_rng = np.random.default_rng(779)
    return [
        Sample("|z| = 40", (far, far_labels, *counts), schedule, flags=("SATURATED",)),
        Sample(
            "|z| = 200, clamped",
            (huge, huge_labels, *counts),
            {**schedule, "bce_log_clamp": True},
            flags=("CLAMP",),
            comment="columns 0 and 1: ℓ = 200 → 100, gradient 0 there",
        ),
        Sample("|z| = 200, not clamped", (huge, huge_labels, *counts), schedule, flags=("NO_CLAMP",)),
        Sample(
            "all contact", (z, np.ones((3, 5), dtype=np.int64), *counts), schedule, flags=("ALL_CONTACT",)
        ),
        Sample("no contact", (z, np.zeros((3, 5), dtype=np.int64), *counts), schedule, flags=("NO_CONTACT",)),
        Sample("λ = 0", (z, y, *counts), {**schedule, "fp_weight": 0.0}, flags=("FP_WEIGHT_0",)),
        Sample("epoch 0 (global weights)", (z, y, *counts), {"epoch": 0, "total_epochs": 10}),
        Sample(
            "778 MANO vertices, batch 4, the official configuration (E = 10)",
            (
                mano_rng.standard_normal((4, 778)) * 3 - 2,
                (mano_rng.random((4, 778)) < 0.1).astype(np.int64),
                *mano,
            ),
            {"epoch": 6, "total_epochs": 10},
        ),
    ]


def _loss_errors():
    z, y = np.zeros((1, 2)), np.array([[0, 1]])
    counts = np.array([[10.0, 2.0], [5.0, 0.0]])
    return [
        ErrorCase(
            "negative vertex count",
            (z, y, np.array([[10.0, -1.0], [5.0, 0.0]]), np.array([15.0, 1.0])),
            {"epoch": 0, "total_epochs": 2},
            match=r"'vertex_counts'.*>= 0",
        ),
        ErrorCase(
            "global counts both 0",
            (z, y, counts, np.zeros(2)),
            {"epoch": 0, "total_epochs": 2},
            match=r"'global_counts'.*at least one counted label",
        ),
    ]


def _loss_known():
    log2 = float(np.log(2.0))
    small = {"epoch": 1, "total_epochs": 2, "beta": 0.5, "total_samples": 4.0, "vertex_weight_max": 1.0}
    counts = (np.array([[3.0, 1.0], [3.0, 1.0]]), np.array([1.0, 1.0]))
    return [
        Known(
            "z = 0, labels [0, 1], w = [4/11, 7/11]",
            (np.zeros((1, 2)), np.array([[0, 1]]), *counts),
            {**small, "min_samples": 1.0},
            values={"loss": (4 / 11 + 7 / 11) * log2 / 2 + 0.5 * 0.5 / 2},
            source="by hand: ℓ = log 2 for both labels; the penalty 0.5·σ(0) on the y = 0 vertex, /BV = /2",
            rtol=1e-14,
        ),
        Known(
            "z = 200 (y = 0) and z = −200 (y = 1), clamped, λ = 0",
            (np.array([[200.0, -200.0]]), np.array([[0, 1]]), *counts),
            {**small, "min_samples": 1.0, "fp_weight": 0.0, "bce_log_clamp": True},
            values={"loss": (4 / 11 * 100 + 7 / 11 * 100) / 2},
            source="by hand: each term capped at 100 (nn.BCELoss's log clamp)",
            rtol=1e-14,
        ),
    ]


def _vcb_loss_torch(torch, args, kwargs, cotangent):
    """The weight table (the same formula, torch ops), gathered by label; BCE with logits
    weighted per element, mean, + λ·mean((1 − y)σ(z)); autograd backward."""
    F = torch.nn.functional
    z = torch.from_numpy(args[0]).requires_grad_()
    y = torch.from_numpy(args[1]).long()
    vertex_counts, global_counts = torch.from_numpy(args[2]), torch.from_numpy(args[3])
    g = torch.from_numpy(np.asarray(cotangent))
    epoch, total_epochs = kwargs["epoch"], kwargs["total_epochs"]
    beta = kwargs.get("beta", 0.9999)
    total = kwargs.get("total_samples", 1000.0)
    omega = kwargs.get("vertex_weight_max", 0.3) * min(epoch, total_epochs - 1) / (total_epochs - 1)
    floor = kwargs.get("min_samples", 20.0)
    fp_weight = kwargs.get("fp_weight", 0.5)
    clamp = kwargs.get("bce_log_clamp", False)

    def step():
        z.grad = None
        share_v = vertex_counts / vertex_counts.sum(1, keepdim=True).clamp(min=1e-6) * total
        share = global_counts / global_counts.sum().clamp(min=1e-6) * total
        n = (omega * share_v + (1 - omega) * share).clamp(min=floor)
        n = n / n.sum(1, keepdim=True) * total
        u = (1 - beta) / -torch.expm1(n * np.log1p(beta - 1))  # 1 − β^n without cancellation
        weights = u / u.sum(1, keepdim=True)
        w_y = torch.gather(weights.expand(z.shape[0], -1, -1), 2, y[..., None])[..., 0]
        target = y.to(z.dtype)
        bce = F.binary_cross_entropy_with_logits(z, target, reduction="none")
        if clamp:
            bce = bce.clamp(max=100.0)
        loss = (w_y * bce).mean() + fp_weight * ((1 - target) * torch.sigmoid(z)).mean()
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "vcb_loss",
        dims={"B": (1, 5), "V": (1, 10)},
        random=_loss_random,
        edges=_loss_edges,
        errors=_loss_errors,
        notes=LOSS_NOTES,
        known=_loss_known,
        defaults={
            "beta": 0.9999,
            "total_samples": 1000.0,
            "vertex_weight_max": 0.3,
            "min_samples": 20.0,
            "fp_weight": 0.5,
            "bce_log_clamp": False,
        },
        bench=Bench(
            sizes={"B": "rows", "V": "cols"},
            kwargs={"epoch": 6, "total_epochs": 10},
            torch=_vcb_loss_torch,
            torch_label="the weight table in torch ops, gather, F.binary_cross_entropy_with_logits "
            "weighted, mean, + 0.5·mean((1 − y)σ(z)); autograd backward",
            # per element: exp(−|z|) and log1p (σ and σ' reuse the exp)
            transcendentals=lambda args, kwargs: 2 * args[0].size,
        ),
    )
)
