"""Logistic regression by gradient descent with large and normalized steps (Tyurin, 2024)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntArray, OneOf, Paper, RealScalar, logsumexp, op, softplus

__all__ = ["logistic_gd_step", "normalized_logistic_gd_step"]

PAPER = Paper(
    "From Logistic Regression to the Perceptron Algorithm: Exploring Gradient Descent with Large Step Sizes",
    arxiv="2412.08424",
    year=2024,
)


def _check_labels(args):
    labels = args["labels"]
    if (labels == 0).any():
        i = int(np.flatnonzero(np.asarray(labels).reshape(-1) == 0)[0])
        raise ArgumentError("labels", "values in {−1, +1}", f"0 at index {i}")


def log_softplus(t):
    """``log(softplus(t)) = log log(1 + eᵗ)``, finite for every finite ``t``.

    For ``t > 0`` directly (softplus(t) > log 2). For ``t ≤ 0``, with ``u = eᵗ ∈ [0, 1]``:
    ``log log1p(u) = t + log(log1p(u)/u)``; the ratio is in ``[log 2, 1]`` and is 1 where
    ``u`` underflows to 0 (``t < −745`` in float64), so the value stays ``≈ t`` instead of
    ``log 0 = −∞``.
    """
    u = np.exp(np.minimum(t, 0))
    ratio = np.where(u > 0, np.log1p(u) / np.where(u > 0, u, 1), 1)
    return np.where(t > 0, np.log(softplus(np.maximum(t, 0))), t + np.log(ratio))


def _margins(data, labels, x):
    y = labels.astype(x.dtype)
    return y, y * (data @ x)


@op(
    inputs={
        "data": FloatArray("N", "D"),
        "labels": IntArray("N", low=-1, high=2),
        "x": FloatArray("D"),
        "lr": RealScalar(0),
    },
    outputs=("x",),
    check=_check_labels,
)
def logistic_gd_step(data, labels, x, *, lr):
    r"""One gradient-descent step on the mean logistic loss (LR+GD), any step size γ.

    With rows ``a_i`` of ``data`` (n, d), labels ``y_i ∈ {±1}`` and margins
    ``m_i = y_i a_iᵀx``::

        f(x)   = (1/n) Σ_i log(1 + exp(−m_i))            (softplus(−m_i), no overflow)
        ∇f(x)  = −(1/n) Σ_i σ(−m_i) y_i a_i              (σ(−m) = 1/(1 + e^m), the logistic slope)
        x'     = x − γ ∇f(x)

    Derivation: ``d softplus(−m)/dm = −σ(−m)`` and ``∂m_i/∂x = y_i a_i``. In matrix form
    ``∇f = −Aᵀ(σ(−m) ⊙ y)/n`` (two BLAS products: ``Ax`` and ``Aᵀc``).

    Large steps: as γ → ∞, ``σ(−m_i)`` keeps the points with ``m_i < 0`` (weight → 1 once
    x has grown), drops those with ``m_i > 0`` and gives ``m_i = 0`` the weight ½: the step
    tends to the batch perceptron ``x + (γ/n) Σ_{m_i<0} y_i a_i`` (paper §2). No default
    for γ: the paper's point is that any γ > 0 works on separable data (a required
    argument, γ ≥ 0).

    Nothing is differentiable (an optimizer step: the iterate is the state, returned new).

    Args:
        data: features A, shape (n, d), float32 or float64.
        labels: y, shape (n,), integers in {−1, +1} (0 is refused).
        x: the iterate, shape (d,), same dtype as ``data``.
        lr: the step size γ ≥ 0 (required).

    Returns:
        x: the new iterate ``x − γ∇f(x)``.

    Reference: Tyurin, *From Logistic Regression to the Perceptron Algorithm: Exploring
    Gradient Descent with Large Step Sizes*, arXiv:2412.08424 (LR+GD, eq. (2)).

    >>> import numpy as np, refimpl
    >>> refimpl.optim.logistic_gd_step(np.array([[1.0, 0.0]]), np.array([1]), np.zeros(2), lr=2.0)
    array([1., 0.])
    """
    y, m = _margins(data, labels, x)
    coefficient = sigmoid_neg(m) * y
    grad = -(data.T @ coefficient) / data.shape[0]
    return x - x.dtype.type(lr) * grad, None


def sigmoid_neg(m):
    """``σ(−m) = 1/(1 + e^m)`` with ``exp`` only ever seeing ``−|m|``."""
    e = np.exp(-np.abs(m))
    return np.where(m <= 0, 1 / (1 + e), e / (1 + e))


def normalized_weights(m, normalizer):
    """The weights ω of ``x' = x + γ Aᵀ(ω ⊙ y)`` for each normalizer (see the op)."""
    log_w = -softplus(m)  # log σ(−m)
    if normalizer == "loss":
        return np.exp(log_w - logsumexp(log_softplus(-m)))
    scaled = np.exp(log_w - log_w.max())  # the direction is invariant to a positive scale
    return scaled


@op(
    inputs={
        "data": FloatArray("N", "D"),
        "labels": IntArray("N", low=-1, high=2),
        "x": FloatArray("D"),
        "lr": RealScalar(0),
        "normalizer": OneOf("loss", "grad_norm"),
    },
    outputs=("x",),
    check=_check_labels,
)
def normalized_logistic_gd_step(data, labels, x, *, lr, normalizer):
    r"""One normalized LR+GD step: the logistic gradient step with γ divided by a normalizer.

    Same data, margins and ``f`` as :func:`logistic_gd_step`. The paper's "Normalized
    LR+GD" divides the step by a quantity that shrinks as the data become separated; which
    quantity is not pinned here (PENDING), so ``normalizer`` is a required argument:

    * ``"loss"``: ``x' = x − (γ/f(x)) ∇f(x)`` (risk-adaptive step). Written without f or ∇f,
      which both underflow once all margins are large::

          ∇f/f = −Σ_i ω_i y_i a_i,   ω_i = σ(−m_i) / Σ_j softplus(−m_j)
          log ω_i = log σ(−m_i) − logsumexp_j log softplus(−m_j),   log σ(−m) = −softplus(m)

      (the 1/n of f and ∇f cancels). Since ``σ(−m) ≤ softplus(−m)``, ``Σω ≤ 1`` (→ 1 as all
      margins → +∞): the step is bounded by ``γ·max‖a_i‖`` even where f underflows.
      ``log softplus`` is :func:`log_softplus` (finite for every finite argument).
    * ``"grad_norm"``: ``x' = x − γ ∇f(x)/‖∇f(x)‖₂`` (a unit-length step). ``∇f ∝ −Aᵀ(w ⊙ y)``
      with ``w_i = σ(−m_i)``; the direction does not change when w is scaled, so w is
      taken as ``exp(log w_i − max_j log w_j)`` (largest weight 1: no underflow of the
      whole vector). Where ``Aᵀ(w ⊙ y) = 0`` exactly (a stationary point) the step is 0.

    Derivation of ∇f as in :func:`logistic_gd_step`. Nothing is differentiable (an optimizer
    step).

    Args:
        data: features A, shape (n, d), float32 or float64.
        labels: y, shape (n,), integers in {−1, +1}.
        x: the iterate, shape (d,).
        lr: the step size γ ≥ 0 (required: no value is pinned).
        normalizer: ``"loss"`` or ``"grad_norm"`` (required, PENDING: the paper's choice is
            not pinned here).

    Returns:
        x: the new iterate.

    Reference: Tyurin, arXiv:2412.08424 (Normalized LR+GD).

    >>> import numpy as np, refimpl
    >>> A, y = np.array([[3.0, 4.0]]), np.array([1])
    >>> refimpl.optim.normalized_logistic_gd_step(A, y, np.zeros(2), lr=1.0, normalizer="grad_norm")
    array([0.6, 0.8])
    """
    y, m = _margins(data, labels, x)
    omega = normalized_weights(m, normalizer)
    v = data.T @ (omega * y)
    if normalizer == "grad_norm":
        norm = np.sqrt(np.sum(v.astype(np.float64) ** 2))
        if norm == 0:
            return x.copy(), None
        v = v / x.dtype.type(norm)
    return (x + x.dtype.type(lr) * v).astype(x.dtype), None
