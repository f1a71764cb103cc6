"""Conformance cases for `unpg_loss`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "NO_NEGATIVES": "one identity (or B = 1): no negative pair, nothing appended (the official code fails)",
    "LARGE_SCALE": "s = 64: logits up to 64, the log-sum-exp must subtract its max",
    "PAST_PI": "θ_y + m > π: the ArcFace target cos(θ + m) is non-monotone there, no fallback",
    "AT_THE_CLIP": "cos θ_y = 1 exactly: acos has no derivative there, the reference takes slope 0",
    "FILTERED": "whisker 0: only the similarities between the quartiles stay appended",
}


def _random(rng, B, D, K):
    x = rng.standard_normal((B, D)) * float(rng.choice([0.1, 1.0, 20.0]))
    weight = rng.standard_normal((K, D))
    y = rng.integers(0, K, size=B)
    kwargs = {
        "margin": str(rng.choice(["arcface", "cosface"])),
        "s": float(rng.choice([1.0, 8.0, 64.0])),
        "m": float(rng.choice([0.0, 0.35, 0.5])),
        "w": float(rng.choice([0.0, 0.5, 1.5])),
        "reduction": str(rng.choice(["mean", "sum", "none"])),
    }
    return Sample("random", (x, weight, y), kwargs)


def _edges():
    rng = np.random.default_rng(99)
    x = rng.standard_normal((6, 4))
    weight = rng.standard_normal((3, 4))
    y = np.array([0, 1, 2, 0, 1, 2])
    past_pi = x.copy()
    past_pi[0] = -weight[0] + 0.05 * rng.standard_normal(4)  # cos θ_0 ≈ −1: θ + 0.5 > π
    at_clip_x = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    at_clip_w = np.array([[1.0, 0.0], [0.5, 0.5]])
    return [
        Sample("defaults, arcface", (x, weight, y), {"margin": "arcface"}, flags=("LARGE_SCALE",)),
        Sample("defaults, cosface", (x, weight, y), {"margin": "cosface"}, flags=("LARGE_SCALE",)),
        Sample(
            "one identity: no negative pair",
            (x, weight, np.full(6, 2)),
            {"margin": "arcface", "s": 8.0, "reduction": "none"},
            flags=("NO_NEGATIVES",),
        ),
        Sample("B = 1", (x[:1], weight, y[:1]), {"margin": "cosface", "s": 4.0}, flags=("NO_NEGATIVES",)),
        Sample("θ_y + m > π", (past_pi, weight, y), {"margin": "arcface", "s": 4.0}, flags=("PAST_PI",)),
        Sample("whisker 0", (x, weight, y), {"margin": "cosface", "s": 4.0, "w": 0.0}, flags=("FILTERED",)),
        Sample(
            "cos θ_y = 1 exactly",
            (at_clip_x, at_clip_w, np.array([0, 1, 0])),
            {"margin": "arcface", "s": 2.0, "reduction": "sum"},
            flags=("AT_THE_CLIP",),
            fd=False,
            comment="row 0 lies on its class weight: acos is not differentiable at 1",
        ),
    ]


def _errors():
    x = np.array([[1.0, 0.0], [0.0, 0.0]])
    weight = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([0, 1])
    return [
        ErrorCase("zero feature row", (x, weight, y), {"margin": "arcface"}, match="row 1 is all zeros"),
        ErrorCase(
            "zero class-weight row",
            (weight, np.array([[0.0, 0.0], [0.0, 1.0]]), y),
            {"margin": "cosface"},
            match=r"'weight'.*row 0 is all zeros",
        ),
    ]


def _known():
    eye = np.eye(2)
    return [
        Known(
            "x = ŵ = I, cosface s = 1: logits [0.5, 0, 0] in each row",
            (eye, eye, np.array([0, 1])),
            {"margin": "cosface", "s": 1.0},
            values={"loss": math.log(math.exp(0.5) + 2.0) - 0.5},
            source="by hand: cos = I, one negative pair (0, 1) of similarity 0, kept (l = 1)",
            rtol=1e-14,
        ),
        Known(
            "one row on its class weight, arcface m = 0.5, s = 3",
            (np.array([[2.0, 0.0]]), eye, np.array([0])),
            {"margin": "arcface", "s": 3.0},
            values={"loss": math.log1p(math.exp(-3.0 * math.cos(0.5)))},
            source="by hand: θ = 0, target cos 0.5, other logit 0, no pair (B = 1)",
            rtol=1e-14,
        ),
        Known(
            "cosface, the pair column dominates: appended 0.9 vs class logits",
            (np.array([[1.0, 0.0], [0.9, math.sqrt(1 - 0.81)]]), eye, np.array([1, 0])),
            {"margin": "cosface", "s": 2.0, "m": 0.0, "reduction": "none"},
            values={
                "loss": [
                    math.log(math.exp(2.0) + 1.0 + math.exp(1.8)) - 0.0,
                    math.log(math.exp(1.8) + math.exp(2 * math.sqrt(0.19)) + math.exp(1.8)) - 1.8,
                ]
            },
            source="by hand: cos = [[1, 0], [0.9, √0.19]], pair (0, 1) with similarity 0.9",
            rtol=1e-13,
        ),
    ]


def _unpg_torch(torch, args, kwargs, cotangent):
    """The official pipeline: normalize, linear, acos/+m/cos (or −m), triu negatives, sort +
    index quartiles, concat, cross-entropy; autograd backward through the kept similarities."""
    F = torch.nn.functional
    x = torch.from_numpy(args[0]).requires_grad_()
    weight = torch.from_numpy(args[1]).requires_grad_()
    y = torch.from_numpy(args[2]).long()
    g = torch.from_numpy(np.asarray(cotangent))
    margin, s = kwargs["margin"], kwargs.get("s", 64.0)
    m, whisker = kwargs.get("m", 0.5), kwargs.get("w", 1.5)
    reduction = kwargs.get("reduction", "mean")
    negative = (y[:, None] != y[None, :]).triu(diagonal=1).reshape(-1)

    def step():
        x.grad = weight.grad = None
        x_hat, w_hat = F.normalize(x), F.normalize(weight)
        cos = x_hat @ w_hat.T
        one_hot = F.one_hot(y, cos.shape[1]).to(cos.dtype)
        if margin == "cosface":
            cos = cos - m * one_hot
        else:
            cos = torch.cos(torch.acos(cos.clamp(-1, 1)) + m * one_hot)
        similarity = (x_hat @ x_hat.T).reshape(-1)[negative]
        columns = [cos]
        if similarity.numel():
            ordered = torch.sort(similarity)[0]
            length = ordered.shape[0]
            q1, q3 = ordered[length // 4], ordered[(3 * length) // 4]
            iqr = q3 - q1
            kept = ordered[(ordered >= q1 - whisker * iqr) & (ordered <= q3 + whisker * iqr)]
            columns.append(kept[None, :].expand(cos.shape[0], -1))
        loss = F.cross_entropy(s * torch.cat(columns, dim=1), y, reduction=reduction)
        loss.backward(g)
        return loss

    return step


def _transcendentals(args, kwargs):
    # the B×K softmax exps, the kept pairs' exps (at most B(B − 1)/2), a log per row, and
    # acos/cos per row for arcface
    batch, classes = args[0].shape[0], args[1].shape[0]
    return batch * classes + batch * (batch - 1) // 2 + 3 * batch


def _blas(args, kwargs):
    x, weight = args[0], args[1]

    def step():
        cos = x @ weight.T
        gram = x @ x.T
        return cos @ weight, cos.T @ x, gram @ x

    return step


register(
    OpCases(
        "unpg_loss",
        dims={"B": (1, 7), "D": (2, 5), "K": (2, 6)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={"s": 64.0, "m": 0.5, "w": 1.5, "reduction": "mean"},
        bench=Bench(
            sizes={"B": 256, "D": 512, "K": "cols"},
            kwargs={"margin": "arcface", "s": 64.0, "m": 0.5, "w": 1.5, "reduction": "mean"},
            torch=_unpg_torch,
            torch_label="official pipeline: F.normalize, acos/cos margin, triu negatives, sort-index "
            "quartiles, concat, F.cross_entropy; autograd",
            transcendentals=_transcendentals,
            blas=_blas,
        ),
    )
)
