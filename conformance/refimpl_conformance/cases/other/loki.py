"""Conformance cases for `loki_scores` and `loki_predict`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ZERO_ONE": "the 0/1 metric on the observed classes: Loki is the argmax of P",
    "UNOBSERVED": "a tree metric: the predicted label is an inner node never observed",
    "TIE": "two labels with equal scores: the lowest index wins",
    "ONE_LABEL": "Y = 1: every prediction is 0",
    "ONE_CLASS": "K = 1: the scores are −P·d(0, y)², the nearest label to the only class",
    "LARGE_DISTANCES": "distances 1e3: squares 1e6, scores stay finite in float32",
}

# a path tree a − m − b − c over Y = 4 labels, with the leaves a, b, c observed (K = 3)
PATH_DISTANCES = np.array([[0.0, 1.0, 2.0, 3.0], [2.0, 1.0, 0.0, 1.0], [3.0, 2.0, 1.0, 0.0]])


def _probs(rng, B, K):
    logits = rng.standard_normal((B, K)) * float(rng.choice([0.5, 2.0]))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def _distances(rng, K, Y):
    # a Euclidean metric between points: the observed classes are the first K, the labels the first Y
    points = rng.standard_normal((max(K, Y), 2))
    distances = np.linalg.norm(points[:K, None, :] - points[None, :Y, :], axis=-1)
    return distances * float(rng.choice([1.0, 5.0]))


def _random(rng, B, K, Y):
    return Sample("random", (_probs(rng, B, K), _distances(rng, K, Y)))


def _random_predict(rng, B, K, Y):
    # keep the top two scores apart, so float32 rounding cannot swap the argmax
    for _ in range(100):
        probs, distances = _probs(rng, B, K), _distances(rng, K, Y)
        scores = np.sort(-(probs @ distances**2), axis=1)
        if Y == 1 or np.all(scores[:, -1] - scores[:, -2] > 1e-3 * (1 + np.abs(scores[:, -1]))):
            return Sample("random", (probs, distances))
    raise RuntimeError("could not draw scores with separated maxima")


def _edges():
    zero_one = 1.0 - np.eye(4)
    probs = np.array([[0.1, 0.6, 0.2, 0.1], [0.375, 0.125, 0.125, 0.375], [0.25, 0.25, 0.25, 0.25]])
    # exact binary fractions: the ties stay exact ties in float32, whatever the summation order
    return [
        Sample("0/1 metric", (probs, zero_one), flags=("ZERO_ONE", "TIE")),
        Sample(
            "path tree, inner node",
            (np.array([[0.5, 0.0, 0.5], [0.0, 0.2, 0.8], [0.45, 0.1, 0.45]]), PATH_DISTANCES),
            flags=("UNOBSERVED", "TIE"),
        ),
        Sample("one label", (probs, np.ones((4, 1))), flags=("ONE_LABEL",)),
        Sample("one class", (np.array([[1.0], [0.3]]), np.array([[2.0, 0.5, 1.0]])), flags=("ONE_CLASS",)),
        Sample("distances 1e3", (probs[:2], zero_one * 1e3), flags=("LARGE_DISTANCES", "ZERO_ONE")),
    ]


def _errors():
    probs = np.array([[0.5, 0.5]])
    return [
        ErrorCase("negative probability", (np.array([[1.5, -0.5]]), PATH_DISTANCES[:2]), match=r"'P'.*>= 0"),
        ErrorCase("negative distance", (probs, -PATH_DISTANCES[:2]), match=r"'D'.*>= 0"),
    ]


def _known_scores():
    return [
        Known(
            "path a − m − b − c, P = (½, 0, ½)",
            (np.array([[0.5, 0.0, 0.5]]), PATH_DISTANCES),
            values={"scores": [[-4.5, -2.5, -2.5, -4.5]]},
            source="by hand: −(½·d(a, y)² + ½·d(c, y)²)",
            rtol=1e-15,
        )
    ]


def _known_predict():
    return [
        Known(
            "path a − m − b − c, ties to the lowest index",
            (np.array([[0.5, 0.0, 0.5], [0.0, 0.0, 1.0]]), PATH_DISTANCES),
            values={"prediction": [1, 3]},
            source="by hand: scores (−4.5, −2.5, −2.5, −4.5) and (−9, −4, −1, 0)",
        )
    ]


def _scores_torch(torch, args, kwargs, cotangent):
    """s = −P @ (D * D) with autograd for P̄ (D a constant)."""
    probs = torch.from_numpy(args[0]).requires_grad_()
    distances = torch.from_numpy(args[1])
    g = torch.from_numpy(cotangent)

    def step():
        probs.grad = None
        scores = -(probs @ (distances * distances))
        scores.backward(g)
        return scores

    return step


def _scores_blas(args, kwargs):
    """The forward product P (D∘D) and the backward s̄ (D∘D)ᵀ."""
    probs, distances = args
    squared = distances * distances
    g = np.ones((probs.shape[0], distances.shape[1]), dtype=probs.dtype)

    def step():
        return probs @ squared, g @ squared.T

    return step


register(
    OpCases(
        "loki_scores",
        dims={"B": (1, 5), "K": (1, 5), "Y": (1, 7)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known_scores,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "K": 100, "Y": "cols"},  # K observed classes (ImageNet-1k scale: 100s)
            torch=_scores_torch,
            torch_label="−P @ (D * D), autograd backward for P",
            blas=_scores_blas,
        ),
    )
)

register(
    OpCases(
        "loki_predict",
        dims={"B": (1, 5), "K": (1, 5), "Y": (1, 7)},
        random=_random_predict,
        edges=_edges,
        errors=_errors,
        known=_known_predict,
        notes=NOTES,
    )
)
