"""Loki: geometry-aware prediction by the Fréchet mean over a label metric (Geometry-Aware
Adaptation for Pretrained Models, Roberts et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, Paper, op

__all__ = ["PAPER", "loki_predict", "loki_scores"]

PAPER = Paper("Geometry-Aware Adaptation for Pretrained Models", arxiv="2307.12226", year=2023)


def _check(arguments) -> None:
    probs, distances = arguments["P"], arguments["D"]
    if bool(np.any(probs < 0)):
        raise ArgumentError(
            "P", "class probabilities P >= 0 (the Fréchet-mean weights)", f"minimum {probs.min()}"
        )
    if bool(np.any(distances < 0)):
        raise ArgumentError("D", "distances d(i, y) >= 0", f"minimum {distances.min()}")


def squared_distances(distances):
    """``D ∘ D``, the squared metric of the Fréchet-mean objective (the input's dtype)."""
    return distances * distances


@op(
    inputs={"P": FloatArray("B", "K"), "D": FloatArray("K", "Y")},
    outputs=("scores",),
    differentiable=("P",),
    check=_check,
)
def loki_scores(P, D):  # noqa: N803 - the paper's P and D
    r"""Loki scores: the negative Fréchet-mean objective of every label under a metric.

    A classifier trained (or prompted) on K observed classes outputs probabilities P over
    them; the full label space Y (|Y| ≥ K, e.g. the nodes of a label tree or graph) carries
    a metric d. Loki predicts the label that minimizes the expected squared distance to the
    observed class, the Fréchet mean of the predictive distribution, so it can predict a
    label it never saw (the tree node between two likely leaves). This op gives every label's
    score, the objective with its sign flipped so that larger is better::

        s_{b,y} = −Σ_i P_{b,i} d(i, y)²,     i.e.  s = −P (D ∘ D)

    with ``D_{i,y} = d(observed class i, label y)`` (tree/graph metrics computed upstream,
    e.g. by BFS or Floyd–Warshall).

    Backward. s is linear in P: ``∂s_{b,y}/∂P_{b,i} = −D_{i,y}²``, so with the cotangent s̄::

        P̄_{b,i} = −Σ_y s̄_{b,y} D_{i,y}²,     i.e.  P̄ = −s̄ (D ∘ D)ᵀ

    D is data (the metric), not differentiated.

    Args:
        P: (B, K) probabilities over the observed classes, ≥ 0 (rows need not sum to 1:
            the argmax does not depend on their sum), float32 or float64.
        D: (K, Y) distances from each observed class to every label, ≥ 0, same dtype.

    Returns:
        scores: (B, Y) ``−P (D ∘ D)``, in the dtype of P.

    Reference: Roberts, Li, Huang, Vishwakarma, Sala, *Geometry-Aware Adaptation for
    Pretrained Models*, NeurIPS 2023, arXiv:2307.12226 (the Loki estimator, the Fréchet mean
    with squared distances; the authors' exact-score function, repository not identified).

    >>> import numpy as np, refimpl
    >>> D = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])   # a path a − m − b, observed a and b
    >>> refimpl.other.loki_scores(np.array([[0.5, 0.5]]), D)  # m is the Fréchet mean
    array([[-2., -1., -2.]])
    """
    return -(P @ squared_distances(D)), squared_distances(D)


@loki_scores.defvjp
def loki_scores_backward(residuals, g_scores):
    squared = residuals
    g_probs = -(g_scores @ squared.T)  # P̄ = −s̄ (D ∘ D)ᵀ
    return (g_probs.astype(squared.dtype, copy=False),)


@op(
    inputs={"P": FloatArray("B", "K"), "D": FloatArray("K", "Y")},
    outputs=("prediction",),
    check=_check,
)
def loki_predict(P, D):  # noqa: N803 - the paper's P and D
    r"""Loki prediction: the label of largest Loki score (the Fréchet mean of P under d²).

    Forward::

        s_{b,y} = −Σ_i P_{b,i} d(i, y)²        (loki_scores)
        ŷ_b     = argmax_y s_{b,y}            (ties: the lowest label index)

    With the 0/1 metric restricted to the observed classes (Y = K, ``D = 1 − I``),
    ``s_y = P_y − Σ_i P_i``, so Loki reduces to the ordinary argmax of P.

    The scores are computed in float64 from ``D / max D`` (the argmax does not change under a
    positive scaling of D): ``D²`` of float32 distances beyond ~1e19 would overflow (every
    score −inf, prediction 0) and below ~1e-23 underflow (every score 0, prediction 0).

    Not differentiable (an argmax; compared on outputs exactly). The authors' straight-through
    variant (a one-hot of ŷ in the forward, the scores' gradient in the backward) is
    ``loki_scores`` with its VJP applied to the one-hot cotangent; it is not a separate mode
    here. Reference-only: an argmax over ``loki_scores``, whose product is the fast part.

    Args:
        P: (B, K) probabilities over the observed classes, ≥ 0, float32 or float64.
        D: (K, Y) distances from each observed class to every label, ≥ 0.

    Returns:
        prediction: (B,) int64 label indices in [0, Y).

    Reference: Roberts et al., arXiv:2307.12226 (Loki).

    >>> import numpy as np, refimpl
    >>> D = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    >>> refimpl.other.loki_predict(np.array([[0.5, 0.5], [0.9, 0.1]]), D)  # m, then a
    array([1, 0])
    """
    # the argmax is invariant to scaling D: divide by max D (D² can neither overflow nor
    # underflow) and score in float64, so float32 inputs get the float64 prediction
    scale = float(D.max()) or 1.0
    scores = -(P.astype(np.float64) @ squared_distances(D.astype(np.float64) / scale))
    return np.argmax(scores, axis=1).astype(np.int64), None  # argmax: the first of ties
