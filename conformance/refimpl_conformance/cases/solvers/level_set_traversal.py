"""Conformance cases for `level_set_traversal_step`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "REJECTED": "every candidate drops the confidence by δ or more: x comes back unchanged",
    "MIXED": "some images accepted, some rejected in one batch",
    "CLIPPED": "the step leaves [0, 1]: the candidate is clipped before the oracle sees it",
    "CORRECTION": "adv_pert: a accumulates (κ/2)g, clipped to [−κ, κ], and is subtracted",
    "PARALLEL": "x_t − x parallel to g: Δ_⊥ = 0, the candidate is x (clipped)",
}


class SoftmaxLinear:
    """p_src(x) = softmax(x W)_src per image: an analytic model, with its CE gradient."""

    def __init__(self, weights, source):
        self.weights, self.source = weights, source

    def probs(self, x):
        logits = x @ self.weights.astype(x.dtype)
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def __call__(self, x):
        return self.probs(x)[np.arange(x.shape[0]), self.source]

    def gradient(self, x):
        """∇_x CE = −∇_x log p_src = −(W_src − Σ_k p_k W_k)."""
        p = self.probs(x)
        w = self.weights.astype(x.dtype)
        return -(w[:, self.source].T - p @ w.T)


def _candidate_drops(x, g, target, p0, correction, model, eta, kappa, adv_pert):
    direction = target - x
    orthogonal = direction - ((direction * g).sum(1) / (g * g).sum(1))[:, None] * g
    a = np.clip(correction + kappa / 2 * g, -kappa, kappa) if adv_pert else correction
    candidate = np.clip(x + eta * orthogonal - (a if adv_pert else 0), 0, 1)
    return p0 - model(candidate)


def _delta_in_gap(rng, drops):
    """A δ > 0 at least 1e-3 from every drop, so that no dtype flips an acceptance."""
    points = np.sort(
        np.concatenate([[0.0], drops[drops > 0], [drops.max() + 0.1 if drops.max() > 0 else 0.1]])
    )
    gaps = [(lo, hi) for lo, hi in zip(points[:-1], points[1:], strict=True) if hi - lo > 2e-3]
    lo, hi = gaps[int(rng.integers(len(gaps)))]
    return float((lo + hi) / 2)


def _random(rng, B, D):
    C = 3
    model = SoftmaxLinear(rng.standard_normal((D, C)) * 2, rng.integers(0, C, size=B))
    x = rng.uniform(0.1, 0.9, size=(B, D))
    target = rng.uniform(0, 1, size=(B, D))
    g = model.gradient(x)
    p0 = model(x) + rng.uniform(-0.02, 0.02, size=B)
    adv_pert = bool(rng.integers(2))
    kappa = float(rng.choice([1 / 255, 0.05]))
    correction = np.clip(rng.standard_normal((B, D)) * kappa / 2, -kappa, kappa)
    eta = float(rng.choice([0.05, 0.3, 1.0]))
    drops = _candidate_drops(x, g, target, p0, correction, model, eta, kappa, adv_pert)
    kwargs = {"eta": eta, "delta": _delta_in_gap(rng, drops), "kappa": kappa, "adv_pert": adv_pert}
    return Sample("random", (x, g, target, p0, correction, model), kwargs)


def _edges():
    model = SoftmaxLinear(np.array([[3.0, -1.0], [-2.0, 1.0], [0.5, 0.5]]), np.array([0, 1]))
    x = np.array([[0.2, 0.7, 0.5], [0.9, 0.1, 0.4]])
    target = np.array([[0.8, 0.1, 0.3], [0.0, 1.0, 0.6]])
    g = model.gradient(x)
    p0 = model(x)
    zeros = np.zeros_like(x)
    return [
        Sample(
            "every candidate rejected",
            (x, g, target, p0 + 0.5, zeros, model),
            {"eta": 0.5, "delta": 0.05},
            flags=("REJECTED",),
        ),
        Sample(
            "mixed acceptance",
            (x, g, target, p0, zeros, model),
            {"eta": 1.0, "delta": 0.05},
            flags=("MIXED",),
        ),
        Sample(
            "large step, clipped",
            (x, g, 4 * target - 1.5, p0, zeros, model),
            {"eta": 1.0},
            flags=("CLIPPED",),
        ),
        Sample(
            "correction on",
            (x, g, target, p0, np.full_like(x, 0.003), model),
            {"eta": 0.2, "kappa": 1 / 255, "adv_pert": True, "delta": 0.5},
            flags=("CORRECTION",),
        ),
        Sample(
            "target along the gradient",
            (
                np.array([[0.5, 0.5]]),
                np.array([[1.0, 1.0]]),
                np.array([[0.7, 0.7]]),
                np.array([0.5]),
                np.zeros((1, 2)),
                lambda c: np.array([0.5]),
            ),
            {"delta": 0.01},
            flags=("PARALLEL",),
        ),
    ]


def _errors():
    x = np.full((2, 2), 0.5)
    g = np.array([[1.0, 0.0], [0.0, 0.0]])
    return [
        ErrorCase(
            "zero gradient",
            (x, g, x, np.ones(2), np.zeros((2, 2)), lambda c: np.ones(2)),
            match="g = 0 for image 1",
        ),
        ErrorCase(
            "oracle of the wrong shape",
            (x, np.ones((2, 2)), x, np.ones(2), np.zeros((2, 2)), lambda c: np.ones(3)),
            match="'confidence'",
        ),
    ]


def _known():
    return [
        Known(
            "documented example",
            (
                np.array([[0.5, 0.5]]),
                np.array([[1.0, 0.0]]),
                np.array([[0.9, 0.1]]),
                np.array([0.9]),
                np.zeros((1, 2)),
                lambda c: np.array([0.88]),
            ),
            {"eta": 0.5},
            values={"x_new": [[0.5, 0.3]], "correction_new": [[0.0, 0.0]], "accepted": [True]},
            source="by hand: Δ = (0.4, −0.4), Δ_⊥ = (0, −0.4), x + 0.5Δ_⊥; drop 0.02 < 0.05",
        ),
        Known(
            "correction clipped at κ",
            (
                np.array([[0.5, 0.5]]),
                np.array([[1.0, -1.0]]),
                np.array([[0.5, 0.5]]),
                np.array([0.9]),
                np.array([[0.2, 0.0]]),
                lambda c: np.array([0.0]),
            ),
            {"kappa": 0.25, "adv_pert": True},
            values={"x_new": [[0.5, 0.5]], "correction_new": [[0.25, -0.125]], "accepted": [False]},
            source="by hand: a = clip((0.2, 0) + 0.125(1, −1), ±0.25); drop 0.9 ≥ δ: rejected",
        ),
    ]


register(
    OpCases(
        "level_set_traversal_step",
        dims={"B": (1, 5), "D": (2, 8)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={"eta": 5e-2, "delta": 0.05, "kappa": 1 / 255, "adv_pert": False},
    )
)
