"""Conformance cases for `pinto_counterfactual_loss`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register

NOTES = {
    "OFFSET": "scores 1e4 + O(1): log-sum-exp must subtract the row max (exp(1e4) is inf)",
    "SATURATED": "perturbed scores ±200: softmax saturates; −log q of the smoothed target stays finite",
    "UNIFORM_EQUALS_EPS_ONE": "the paper's uniform target is the smoothed target with ε = 1",
    "NO_SMOOTHING": "ε = 0: the counterfactual term is a plain CE on the perturbed batch's labels",
    "OWN_LABELS": "y_perturbed given: the counterfactual batch has its own labels (official sampler)",
    "ONE_CHOICE": "K = 1: both terms are 0 whatever the scores, the gradients are 0",
}


def _random(rng, B, K):  # noqa: N803
    scale = float(rng.choice([0.3, 1.0, 5.0]))
    s = rng.standard_normal((B, K)) * scale + float(rng.choice([0.0, -3.0]))
    s_perturbed = rng.standard_normal((B, K)) * scale
    y_perturbed = rng.integers(0, K, size=B) if rng.integers(0, 2) else None
    kwargs = {
        "counter_factor": float(rng.choice([1.0, 0.5, 2.0, 0.0])),
        "counterfactual_target": str(rng.choice(["label_smoothing", "uniform"])),
        "smoothing": float(rng.choice([0.1, 0.0, 0.3, 1.0])),
        "reduction": str(rng.choice(["mean", "sum", "none"])),
    }
    return Sample("random", (s, s_perturbed, rng.integers(0, K, size=B), y_perturbed), kwargs)


def _edges():
    rng = np.random.default_rng(13)
    s, s_perturbed = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    y, y_perturbed = np.array([0, 4, 2, 2]), np.array([1, 1, 3, 0])
    return [
        Sample(
            "known value: q = [3/4, 1/4], uniform target",
            (np.array([[0.0, 0.0]]), np.array([[math.log(3.0), 0.0]]), np.array([0])),
            {"counterfactual_target": "uniform"},
            comment="log 2 − ½ log(3/16)",
        ),
        Sample(
            "offset 1e4",
            (s + 1e4, s_perturbed - 1e4, y),
            {"reduction": "none"},
            flags=("OFFSET",),
            fd_step=1e-10,
            comment="the FD step is 1e-6 absolute (a relative 1e-6·|s| = 1e-2 would see the curvature)",
        ),
        Sample(
            "perturbed scores ±200",
            (s, np.array([[200.0, -200.0, 0.0, 0.0, 0.0]] * 4), y, y_perturbed),
            {"reduction": "sum"},
            flags=("SATURATED",),
        ),
        Sample("ε = 1", (s, s_perturbed, y), {"smoothing": 1.0}, flags=("UNIFORM_EQUALS_EPS_ONE",)),
        Sample(
            "ε = 0, own labels, λ = 2",
            (s, s_perturbed, y, y_perturbed),
            {"smoothing": 0.0, "counter_factor": 2.0},
            flags=("NO_SMOOTHING", "OWN_LABELS"),
        ),
        Sample(
            "K = 1",
            (np.array([[3.0], [-1.0]]), np.array([[0.5], [2.0]]), np.array([0, 0])),
            flags=("ONE_CHOICE",),
        ),
    ]


def _known():
    s, s_perturbed, y = np.array([[0.0, 0.0]]), np.array([[math.log(3.0), 0.0]]), np.array([0])
    return [
        Known(
            "K = 2, q = [3/4, 1/4], official label smoothing ε = 0.1",
            (s, s_perturbed, y),
            values={
                "loss": math.log(2.0) - 0.95 * math.log(0.75) - 0.05 * math.log(0.25),
                "cotangent of 's'": [[-0.5, 0.5]],  # p − Y
                "cotangent of 's_perturbed'": [[-0.2, 0.2]],  # q − t, t = [0.95, 0.05]
            },
            source="by hand: t = 0.9·Y + 0.1/K",
            rtol=1e-12,
        ),
        Known(
            "K = 2, q = [3/4, 1/4], uniform target (paper), λ = 0.5",
            (s, s_perturbed, y),
            {"counterfactual_target": "uniform", "counter_factor": 0.5},
            values={
                "loss": math.log(2.0) - 0.25 * math.log(3.0 / 16.0),
                "cotangent of 's_perturbed'": [[0.125, -0.125]],  # λ (q − 1/K)
            },
            source="by hand",
            rtol=1e-12,
        ),
        Known(
            "K = 3, own perturbed labels, ε = 0, mean over 2 rows",
            (np.zeros((2, 3)), np.zeros((2, 3)), np.array([0, 1]), np.array([2, 2])),
            {"smoothing": 0.0},
            values={
                "loss": 2 * math.log(3.0),
                "cotangent of 's_perturbed'": [[1 / 6, 1 / 6, -1 / 3], [1 / 6, 1 / 6, -1 / 3]],
            },
            source="by hand: (q − Ỹ)/B with q = 1/3",
            rtol=1e-12,
        ),
    ]


def _pinto_torch(torch, args, kwargs, cotangent):
    """F.cross_entropy(s, y) + λ·F.cross_entropy(s̃, ỹ, label_smoothing=ε) as in the official loop."""
    F = torch.nn.functional
    s = torch.from_numpy(args[0]).requires_grad_()
    s_perturbed = torch.from_numpy(args[1]).requires_grad_()
    y = torch.from_numpy(args[2]).long()
    y_perturbed = y if len(args) < 4 or args[3] is None else torch.from_numpy(args[3]).long()
    g = torch.from_numpy(np.asarray(cotangent))
    factor = kwargs.get("counter_factor", 1.0)
    uniform = kwargs.get("counterfactual_target", "label_smoothing") == "uniform"
    epsilon = 1.0 if uniform else kwargs.get("smoothing", 0.1)
    reduction = kwargs.get("reduction", "mean")

    def step():
        s.grad = s_perturbed.grad = None
        loss = F.cross_entropy(s, y, reduction=reduction) + factor * F.cross_entropy(
            s_perturbed, y_perturbed, label_smoothing=epsilon, reduction=reduction
        )
        loss.backward(g)
        return loss

    return step


def _bench_sample(rng, rows, cols):
    args = (
        rng.standard_normal((rows, cols)),
        rng.standard_normal((rows, cols)),
        rng.integers(0, cols, size=rows),
    )
    return Sample("bench", args)


register(
    OpCases(
        "pinto_counterfactual_loss",
        dims={"B": (1, 6), "K": (2, 7)},
        random=_random,
        edges=_edges,
        known=_known,
        notes=NOTES,
        defaults={
            "y_perturbed": None,
            "counter_factor": 1.0,
            "counterfactual_target": "label_smoothing",
            "smoothing": 0.1,
            "reduction": "mean",
        },
        bench=Bench(
            make=_bench_sample,
            torch=_pinto_torch,
            torch_label="CE(s, y) + λ·F.cross_entropy(s̃, y, label_smoothing=0.1); autograd backward",
            # one exp per element of s and of s̃ (the backward's softmaxes recompute them, counted once)
            # and one log per row of each
            transcendentals=lambda args, kwargs: 2 * args[0].size + 2 * args[0].shape[0],
        ),
    )
)
