"""Conformance cases for `mixup` (and `adamixup_loss`)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ENDPOINTS": "λ ∈ {0, 1}: x̃ is exactly x_{π(i)} or x_i, and the gradient goes to one row only",
    "IDENTITY": "π = identity: x̃ = x and x̄ = ḡ whatever λ",
    "REPEATED_PARTNER": "π not a permutation: a row that is the partner of several rows adds their terms",
    "ONE_ROW": "B = 1: the only partner is the row itself",
}


def _labels(rng, B, K):  # noqa: N803
    return np.eye(K)[rng.integers(0, K, size=B)]


def _random(rng, B, D, K):  # noqa: N803
    x = rng.standard_normal((B, D)) * float(rng.choice([0.1, 1.0, 30.0]))
    lam = rng.beta(0.4, 0.4, size=B) if rng.integers(0, 2) else np.full(B, rng.beta(1.0, 1.0))
    return Sample("random", (x, _labels(rng, B, K), lam, rng.permutation(B)))


def _edges():
    rng = np.random.default_rng(3)
    x, Y = rng.standard_normal((4, 5)), _labels(rng, 4, 3)
    perm = np.array([2, 0, 3, 1])
    return [
        Sample("λ = 1: no mixing", (x, Y, np.ones(4), perm), flags=("ENDPOINTS",)),
        Sample("λ = 0: the partner row", (x, Y, np.zeros(4), perm), flags=("ENDPOINTS",)),
        Sample("λ ∈ {0, 1, ½}", (x, Y, np.array([0.0, 1.0, 0.5, 1.0]), perm), flags=("ENDPOINTS",)),
        Sample("π = identity", (x, Y, np.array([0.3, 0.9, 0.5, 0.1]), np.arange(4)), flags=("IDENTITY",)),
        Sample(
            "repeated partners",
            (x, Y, np.array([0.3, 0.9, 0.5, 0.1]), np.array([1, 1, 1, 0])),
            flags=("REPEATED_PARTNER",),
        ),
        Sample("B = 1", (x[:1], Y[:1], np.array([0.7]), np.array([0])), flags=("ONE_ROW",)),
    ]


def _errors():
    x, Y = np.ones((2, 3)), np.eye(2)
    return [
        ErrorCase("λ > 1", (x, Y, np.array([0.5, 1.5]), np.array([1, 0])), match=r"\[0, 1\].*row 1"),
        ErrorCase("λ < 0", (x, Y, np.array([-0.1, 0.5]), np.array([1, 0])), match=r"\[0, 1\].*row 0"),
    ]


def _known():
    x = np.array([[1.0, 0.0], [3.0, 4.0], [-2.0, 2.0]])
    return [
        Known(
            "three rows, π = (1, 2, 0), λ = (¼, 1, ½)",
            (x, np.eye(3), np.array([0.25, 1.0, 0.5]), np.array([1, 2, 0])),
            values={
                "x_mixed": [[2.5, 3.0], [3.0, 4.0], [-0.5, 1.0]],
                "y_mixed": [[0.25, 0.75, 0.0], [0.0, 1.0, 0.0], [0.5, 0.0, 0.5]],
                # x̄_j = λ_j + (1 − λ_i) for the i with π(i) = j (ones cotangent): ¼ + ½, 1 + ¾, ½ + 0
                "cotangent of 'x'": [[0.75, 0.75], [1.75, 1.75], [0.5, 0.5]],
            },
            source="by hand",
            rtol=1e-15,
        )
    ]


def _mixup_torch(torch, args, kwargs, cotangent):
    """Gather the partner rows, λx + (1 − λ)x[π] for inputs and labels; autograd backward."""
    x = torch.from_numpy(args[0]).requires_grad_()
    Y = torch.from_numpy(args[1])  # noqa: N806
    lam = torch.from_numpy(args[2])[:, None]
    perm = torch.from_numpy(args[3]).long()
    g = torch.from_numpy(cotangent[0])

    def step():
        x.grad = None
        x_mixed = lam * x + (1 - lam) * x[perm]
        y_mixed = lam * Y + (1 - lam) * Y[perm]
        x_mixed.backward(g)
        return x_mixed, y_mixed

    return step


def _mixup_bench(rng, rows, cols):
    x = rng.standard_normal((rows, cols))
    return Sample("bench", (x, _labels(rng, rows, 10), rng.beta(0.4, 0.4, size=rows), rng.permutation(rows)))


register(
    OpCases(
        "mixup",
        dims={"B": (1, 6), "D": (1, 7), "K": (2, 5)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_mixup_bench,
            torch=_mixup_torch,
            torch_label="λ·x + (1 − λ)·x[π], the same for Y (index gather); autograd backward (scatter-add)",
        ),
    )
)


ADAMIXUP_NOTES = {
    "LAMBDA_ENDPOINTS": "Δ = 0 or u ∈ {0, 1}: λ at an end of the policy region [α, α + Δ]",
    "SAME_LABELS": "y1 = y2: ỹ does not depend on λ, so ᾱ = Δ̄ = 0",
    "SATURATED": "logits ±500: the log-softmax must not overflow, p one-hot",
    "OFFICIAL_LAYOUT": "P = 2M positives [x_u; x¹] against M mixed negatives, as build_graph",
    "STOP_LABEL_GRADIENT": "the official TF1 stop-gradient on ỹ: ᾱ = Δ̄ = 0",
    "SOFT_LABELS": "labels that do not sum to 1: ∂CE/∂z = (Σy)p − y",
}


def _policy_region(rng, M):  # noqa: N803
    """α, Δ as the official generator's softmax (a, b, c), c discarded."""
    logits = rng.standard_normal((M, 3))
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return probabilities[:, 0], probabilities[:, 1]


def _adamixup_args(rng, M, K, P, scale=2.0):  # noqa: N803
    alpha, delta = _policy_region(rng, M)
    return (
        rng.standard_normal((M, K)) * scale,
        rng.standard_normal((M, K)) * scale,
        _labels(rng, M, K),
        _labels(rng, M, K),
        rng.standard_normal((P, 2)) * scale,
        rng.standard_normal((M, 2)) * scale,
        alpha,
        delta,
        rng.random(M),
    )


def _adamixup_random(rng, M, K, P):  # noqa: N803
    args = _adamixup_args(rng, M, K, P, scale=float(rng.choice([0.3, 2.0, 10.0])))
    if rng.integers(0, 4) == 0:  # soft labels (label smoothing, or any soft target)
        args = (*args[:2], args[2] * 0.9 + 0.05, args[3] * 0.8 + 0.1, *args[4:])
    if rng.integers(0, 4) == 0:  # the official stop-gradient on ỹ: by design not the derivative
        return Sample("random", args, {"stop_label_gradient": True}, fd=False)
    return Sample("random", args)


def _adamixup_edges():
    rng = np.random.default_rng(8)
    base = _adamixup_args(rng, 3, 4, 6)
    z_mix, z_orig, y1, y2, d_pos, d_neg, alpha, delta, u = base
    saturated = (z_mix * 250, z_orig * 250, y1, y2, d_pos * 250, d_neg * 250, alpha, delta, u)
    return [
        Sample(
            "Δ = 0 and u ∈ {0, 1}",
            (
                z_mix,
                z_orig,
                y1,
                y2,
                d_pos,
                d_neg,
                alpha,
                np.array([0.0, 0.3, 0.3]),
                np.array([0.5, 0.0, 1.0]),
            ),
            flags=("LAMBDA_ENDPOINTS",),
        ),
        Sample(
            "y1 = y2", (z_mix, z_orig, y1, y1.copy(), d_pos, d_neg, alpha, delta, u), flags=("SAME_LABELS",)
        ),
        Sample("logits ±500", saturated, flags=("SATURATED",), fd_step=1e-4),
        Sample("official layout P = 2M", base, flags=("OFFICIAL_LAYOUT",)),
        Sample(
            "official stop-gradient on ỹ",
            base,
            {"stop_label_gradient": True},
            flags=("STOP_LABEL_GRADIENT",),
            fd=False,
            comment="by design ᾱ = Δ̄ = 0 while the value depends on λ",
        ),
        Sample(
            "soft labels",
            (z_mix, z_orig, y1 * 0.7, y2 * 0.5 + 0.2, d_pos, d_neg, alpha, delta, u),
            flags=("SOFT_LABELS",),
        ),
    ]


def _adamixup_known():
    third = np.log(3.0)
    args = (
        np.array([[0.0, third]]),
        np.zeros((1, 2)),
        np.array([[1.0, 0.0]]),
        np.array([[0.0, 1.0]]),
        np.zeros((1, 2)),
        np.zeros((1, 2)),
        np.array([0.2]),
        np.array([0.5]),
        np.array([0.4]),
    )
    # λ = 0.4, ỹ = (0.4, 0.6), p_mix = (1/4, 3/4): CE_mix = 0.4 log 4 + 0.6 log(4/3), CE_orig = log 2,
    # CE_intr = log 2; λ̄ = ½ Σ(−log p)(y1 − y2) = ½(log 4 − log 4/3) = ½ log 3
    ce_mix = 0.4 * np.log(4.0) + 0.6 * np.log(4.0 / 3.0)
    return [
        Known(
            "one pair, K = 2, P = 1",
            args,
            values={
                "loss": (ce_mix + np.log(2.0)) / 2 + np.log(2.0),
                "cotangent of 'z_mix'": [[0.5 * (0.25 - 0.4), 0.5 * (0.75 - 0.6)]],
                "cotangent of 'z_orig'": [[-0.25, 0.25]],
                "cotangent of 'd_pos'": [[0.25, -0.25]],  # (q − e_1)/(P + M)
                "cotangent of 'd_neg'": [[-0.25, 0.25]],  # (q − e_0)/(P + M)
                "cotangent of 'alpha'": [0.5 * third],
                "cotangent of 'delta'": [0.4 * 0.5 * third],
            },
            source="by hand",
            rtol=1e-14,
        ),
        Known(
            "the same with the official stop-gradient on ỹ",
            args,
            {"stop_label_gradient": True},
            values={"cotangent of 'alpha'": [0.0], "cotangent of 'delta'": [0.0]},
            source="TF1 softmax_cross_entropy_with_logits: no gradient into the labels",
        ),
    ]


register(
    OpCases(
        "adamixup_loss",
        dims={"M": (1, 5), "K": (2, 5), "P": (1, 6)},
        random=_adamixup_random,
        edges=_adamixup_edges,
        known=_adamixup_known,
        notes=ADAMIXUP_NOTES,
        defaults={"stop_label_gradient": False},
    )
)
