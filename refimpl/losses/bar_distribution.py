"""The PFN Riemann ("bar") distribution: NLL, half-normal-tailed NLL, mean, borders (Transformers Can Do
Bayesian Inference)."""

from __future__ import annotations

import math

import numpy as np

from ..authoring import (
    ArgumentError,
    Flag,
    FloatArray,
    IntScalar,
    OneOf,
    Paper,
    array_namespace,
    log_softmax,
    op,
    softmax,
)

__all__ = [
    "HALF_NORMAL_MEDIAN",
    "LEFT_TAIL_CLAMP",
    "PAPER",
    "bar_borders_from_quantiles",
    "bar_distribution_mean",
    "bar_distribution_nll",
    "bucket_index",
    "full_support_bar_distribution_nll",
]

PAPER = Paper(
    "Transformers Can Do Bayesian Inference",
    arxiv="2112.10510",
    year=2022,
    code="automl/TransformersCanDoBayesianInference",
)

#: ``Φ_HN⁻¹(0.5) = √2·erfinv(0.5) = Φ⁻¹(0.75)``: the median of the unit half-normal. A tail's
#: scale is ``s = w/HALF_NORMAL_MEDIAN``, so half its mass lies inside its outer bucket.
HALF_NORMAL_MEDIAN = 0.6744897501960817

#: The official code clamps the left tail's distance ``b_1 − y`` from below at 1e-8.
LEFT_TAIL_CLAMP = 1e-8

_HALF_LOG_2_OVER_PI = 0.5 * math.log(2 / math.pi)
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def bucket_index(borders: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``k(y)``: the right-closed bucket ``(b_k, b_{k+1}]`` that holds ``y``; ``y = b_0`` is bucket 0.

    ``searchsorted(b, y, side="left") − 1`` (the official ``map_to_bucket_idx``). Values below
    ``b_0`` give −1 and values above ``b_M`` give M; callers refuse or clamp them.
    """
    xp = array_namespace(y)
    k = xp.searchsorted(borders, y, side="left") - 1
    return xp.where(y == borders[0], 0, k)


# -- shared validation ------------------------------------------------------------------
def _check_borders(arguments, *, min_buckets: int = 1) -> None:
    z, borders = arguments["z"], arguments["borders"]
    xp = array_namespace(borders)
    buckets = z.shape[-1]
    if borders.shape[0] != buckets + 1:
        raise ArgumentError(
            "borders",
            f"M + 1 = {buckets + 1} borders for M = {buckets} buckets (the last axis of 'z')",
            f"{borders.shape[0]} borders",
        )
    if buckets < min_buckets:
        raise ArgumentError(
            "z",
            f"at least {min_buckets} buckets on the last axis (each half-normal tail needs its own"
            " outer bucket)",
            f"M = {buckets}",
        )
    widths = borders[1:] - borders[:-1]
    if not bool(xp.all(widths > 0)):
        first = int(xp.argmax(widths <= 0))
        raise ArgumentError(
            "borders",
            "strictly increasing borders (a zero-width bucket has density log 0)",
            f"b[{first}] = {float(borders[first])!r} >= b[{first + 1}] = {float(borders[first + 1])!r}",
        )


def _check_nll(arguments) -> None:
    _check_borders(arguments)
    y, borders = arguments["y"], arguments["borders"]
    xp = array_namespace(y)
    inside = (y >= borders[0]) & (y <= borders[-1])
    if not bool(xp.all(inside)):
        bad = y[~inside].ravel()[0]
        raise ArgumentError(
            "y",
            f"targets inside the support [b_0, b_M] = [{float(borders[0])!r}, {float(borders[-1])!r}]"
            " (full_support_bar_distribution_nll has half-normal tails for targets outside)",
            f"y = {float(bad)!r}",
        )


def _check_full_support(arguments) -> None:
    _check_borders(arguments, min_buckets=2)


def _check_mean(arguments) -> None:
    _check_borders(arguments, min_buckets=2 if arguments["full_support"] else 1)


def _reduce(per_element: np.ndarray, reduction: str, dtype) -> tuple[np.ndarray, float | None]:
    """The reduced loss and the weight of each element in it (None for reduction="none")."""
    if reduction == "mean":
        return np.asarray(per_element.mean(), dtype=dtype), 1.0 / per_element.size
    if reduction == "sum":
        return np.asarray(per_element.sum(), dtype=dtype), 1.0
    return per_element.astype(dtype, copy=False), None


def _element_cotangent(g_loss: np.ndarray, weight: float | None, shape, dtype) -> np.ndarray:
    """``w_e = ḡ·(1/n | 1)`` broadcast to every element, or ``ḡ_e`` for reduction="none"."""
    if weight is None:
        return np.asarray(g_loss, dtype=dtype)
    return np.full(shape, np.asarray(g_loss, dtype=dtype) * dtype.type(weight), dtype=dtype)


def _p_minus_onehot(p: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``softmax(z) − onehot(k)``: the gradient of ``−log_softmax(z)_k``."""
    g = p.copy()
    at_k = np.take_along_axis(g, k[..., None], axis=-1)
    np.put_along_axis(g, k[..., None], at_k - 1, axis=-1)
    return g


# -- bar_distribution_nll ---------------------------------------------------------------
@op(
    inputs={
        "z": FloatArray("...", "M"),
        "borders": FloatArray("N"),
        "y": FloatArray("..."),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("z",),
    check=_check_nll,
)
def bar_distribution_nll(z, borders, y, *, reduction="mean"):
    r"""Negative log-density of a target under a piecewise-constant ("bar") distribution.

    A prior-data fitted network (PFN) predicts a regression target as a histogram: the real
    line segment ``[b_0, b_M]`` is cut into M buckets and the network outputs one logit per
    bucket. The density is the bucket's probability spread uniformly over its width, so the
    loss is a cross-entropy over buckets plus the log of the bucket's width.

    Forward, for logits ``z`` (…, M), borders ``b`` (M + 1,) and targets ``y`` (…)::

        w_k  = b_{k+1} − b_k                                   (bucket widths, > 0)
        k(y) = searchsorted_left(b, y) − 1,  k(b_0) = 0        (right-closed buckets (b_k, b_{k+1}])
        ℓ    = −log_softmax(z)_{k(y)} + log w_{k(y)}           (−log of the density p_k/w_k)
        L    = mean ℓ  (reduction="mean", over every element of y); "sum"; "none": ℓ (…)

    Targets outside ``[b_0, b_M]`` have density 0 here and are refused (InputError); the
    full-support variant gives them half-normal tails.

    Backward. ``log w_k`` does not depend on ``z`` and ``k(y)`` is piecewise constant in ``y``
    (so y gets no gradient). With ``p = softmax(z)``, ``∂log_softmax(z)_k/∂z_j = δ_kj − p_j``,
    so ``∂ℓ/∂z = p − onehot(k)``. With ``w_e`` the weight of element e in the reduction times
    the cotangent (``ḡ/n`` mean over n elements, ``ḡ`` sum, ``ḡ_e`` none)::

        z̄_e = w_e · (softmax(z_e) − onehot(k(y_e)))

    Args:
        z: logits (…, M), float32 or float64.
        borders: strictly increasing bucket borders (M + 1,), same dtype.
        y: targets (…) inside ``[b_0, b_M]``, same dtype.
        reduction: "mean" (default), "sum" or "none" (the official module returns "none";
            its training loop takes the mean).

    Returns:
        loss: a scalar, or ℓ with the shape of ``y`` (reduction="none"), in the input dtype.

    Reference: Müller et al., *Transformers Can Do Bayesian Inference*, arXiv:2112.10510;
    official ``BarDistribution.forward`` in automl/TransformersCanDoBayesianInference.

    >>> import numpy as np, refimpl
    >>> z, b = np.log(np.array([0.25, 0.75])), np.array([0.0, 1.0, 3.0])
    >>> round(float(refimpl.losses.bar_distribution_nll(z, b, np.array(2.0))), 7)  # −log(0.75/2)
    0.9808293
    """
    dtype = z.dtype
    k = bucket_index(borders, y)
    log_p = log_softmax(z)
    log_widths = np.log(borders[1:] - borders[:-1])
    per_element = -np.take_along_axis(log_p, k[..., None], axis=-1)[..., 0] + log_widths[k]
    loss, weight = _reduce(per_element, reduction, dtype)
    return loss, (softmax(z), k, weight)  # not exp(log_p): z − lse loses digits at |z| ~ 1e4


@bar_distribution_nll.defvjp
def bar_distribution_nll_backward(residuals, g_loss):
    p, k, weight = residuals
    w = _element_cotangent(g_loss, weight, k.shape, p.dtype)
    return (w[..., None] * _p_minus_onehot(p, k),)


# -- full_support_bar_distribution_nll ----------------------------------------------------
def _tail_scales(borders: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-normal scales of the two outer buckets: ``s = w/Φ_HN⁻¹(0.5)``."""
    q = borders.dtype.type(HALF_NORMAL_MEDIAN)
    return (borders[1] - borders[0]) / q, (borders[-1] - borders[-2]) / q


@op(
    inputs={
        "z": FloatArray("...", "M"),
        "borders": FloatArray("N"),
        "y": FloatArray("..."),
        "reduction": OneOf("mean", "sum", "none"),
    },
    outputs=("loss",),
    differentiable=("z", "y"),
    check=_check_full_support,
)
def full_support_bar_distribution_nll(z, borders, y, *, reduction="mean"):
    r"""Bar-distribution NLL whose two outer buckets are half-normal tails: support on all of ℝ.

    The interior buckets are uniform as in ``bar_distribution_nll``. The first and last
    bucket's probability mass is spread over a half-line instead, by a half-normal density
    anchored at the inner border (``b_1`` on the left, ``b_{M−1}`` on the right) whose median
    equals the bucket's width, so half of the tail's mass still lies inside its bucket.

    Forward. ``q = Φ_HN⁻¹(0.5) = √2·erfinv(0.5) ≈ 0.6744897502``, ``s_0 = w_0/q``,
    ``s_{M−1} = w_{M−1}/q``, ``log HN_s(u) = ½ log(2/π) − log s − u²/(2s²)`` (u ≥ 0)::

        k       = clip(k(y), 0, M − 1)          (targets outside [b_0, b_M] join the outer buckets)
        log p   = log_softmax(z)_0     + log HN_{s_0}(u),  u = max(b_1 − y, 1e−8)      k = 0
                  log_softmax(z)_{M−1} + log HN_{s_{M−1}}(u),  u = y − b_{M−1}       k = M − 1
                  log_softmax(z)_k − log w_k                                     otherwise
        ℓ       = −log p;   L = mean ℓ (reduction="mean"), "sum", or ℓ (…) for "none"

    ``u`` of the right tail is > 0 (buckets are right-closed, so ``k = M − 1`` means
    ``y > b_{M−1}``); on the left ``y = b_1`` belongs to bucket 0 and the official code clamps
    ``u`` at 1e-8 (a change of ~1e-16/s² in ℓ, kept for fidelity).

    Backward. The logits enter only through ``log_softmax(z)_k``, so as before
    ``∂ℓ/∂z = softmax(z) − onehot(k)``. The target enters only through the tail's ``u``
    (``k`` is piecewise constant; interior buckets have a constant density): from
    ``∂(−log HN_s(u))/∂u = u/s²``,

        left tail   u = b_1 − y,      ∂u/∂y = −1  →  ∂ℓ/∂y = −u/s_0²   (0 where the clamp is active)
        right tail  u = y − b_{M−1},  ∂u/∂y = +1  →  ∂ℓ/∂y = +u/s_{M−1}²
        interior                                  →  ∂ℓ/∂y = 0

    and with ``w_e`` the reduction weight times the cotangent (as in ``bar_distribution_nll``)::

        z̄_e = w_e · (softmax(z_e) − onehot(k_e)),    ȳ_e = w_e · ∂ℓ_e/∂y_e

    Args:
        z: logits (…, M), M ≥ 2 (the official code asserts ``num_bars > 1``).
        borders: strictly increasing borders (M + 1,); ``b_0`` and ``b_M`` only set the outer
            widths (hence the tail scales).
        y: finite targets (…), anywhere on the real line.
        reduction: "mean" (default), "sum" or "none" (the official module's output).

    Returns:
        loss: a scalar, or ℓ with the shape of ``y``, in the input dtype.

    Reference: arXiv:2112.10510; official ``FullSupportBarDistribution.forward`` (and
    ``halfnormal_with_p_weight_before``) in automl/TransformersCanDoBayesianInference.

    >>> import numpy as np, refimpl
    >>> z, b = np.zeros(3), np.array([-1.0, 0.0, 1.0, 2.0])
    >>> round(float(refimpl.losses.full_support_bar_distribution_nll(z, b, np.array(0.5))), 7)  # log 3
    1.0986123
    """
    dtype = z.dtype
    buckets = z.shape[-1]
    k = np.clip(bucket_index(borders, y), 0, buckets - 1)
    log_p = log_softmax(z)
    log_p_k = np.take_along_axis(log_p, k[..., None], axis=-1)[..., 0]
    s_left, s_right = _tail_scales(borders)
    left, right = k == 0, k == buckets - 1
    u_left = np.maximum(borders[1] - y, dtype.type(LEFT_TAIL_CLAMP))
    u_right = np.where(right, y - borders[-2], dtype.type(0))
    half_log_2_over_pi = dtype.type(_HALF_LOG_2_OVER_PI)
    log_hn_left = half_log_2_over_pi - np.log(s_left) - u_left * u_left / (2 * s_left * s_left)
    log_hn_right = half_log_2_over_pi - np.log(s_right) - u_right * u_right / (2 * s_right * s_right)
    log_widths = np.log(borders[1:] - borders[:-1])
    log_density = np.where(left, log_hn_left, np.where(right, log_hn_right, -log_widths[k]))
    per_element = -(log_p_k + log_density)
    loss, weight = _reduce(per_element, reduction, dtype)
    # ∂ℓ/∂y: −u/s_0² in the left tail (0 under the clamp), +u/s_{M−1}² in the right tail
    unclamped = borders[1] - y > dtype.type(LEFT_TAIL_CLAMP)
    d_left = np.where(unclamped, -u_left / (s_left * s_left), dtype.type(0))
    d_y = np.where(left, d_left, np.where(right, u_right / (s_right * s_right), dtype.type(0)))
    return loss, (softmax(z), k, d_y, weight)


@full_support_bar_distribution_nll.defvjp
def full_support_bar_distribution_nll_backward(residuals, g_loss):
    p, k, d_y, weight = residuals
    w = _element_cotangent(g_loss, weight, k.shape, p.dtype)
    return w[..., None] * _p_minus_onehot(p, k), (w * d_y).astype(p.dtype, copy=False)


# -- bar_distribution_mean ----------------------------------------------------------------
def bucket_means(borders: np.ndarray, full_support: bool = True) -> np.ndarray:
    """``m_k``: bucket midpoints; with ``full_support`` the outer ones are the tails' means.

    A half-normal of scale s has mean ``s√(2/π)``, measured away from its anchor:
    ``m_0 = b_1 − s_0√(2/π)`` and ``m_{M−1} = b_{M−1} + s_{M−1}√(2/π)``.
    """
    means = (borders[:-1] + borders[1:]) / 2
    if full_support:
        s_left, s_right = _tail_scales(borders)
        sqrt_2_over_pi = borders.dtype.type(_SQRT_2_OVER_PI)
        means = means.copy()
        means[0] = borders[1] - s_left * sqrt_2_over_pi
        means[-1] = borders[-2] + s_right * sqrt_2_over_pi
    return means


@op(
    inputs={"z": FloatArray("...", "M"), "borders": FloatArray("N"), "full_support": Flag()},
    outputs=("mean",),
    differentiable=("z",),
    check=_check_mean,
)
def bar_distribution_mean(z, borders, *, full_support=True):
    r"""The mean of the predicted bar distribution: ``Σ_k softmax(z)_k m_k``.

    Forward (``p = softmax(z)`` over the last axis, M buckets)::

        m_k    = (b_k + b_{k+1})/2                         interior buckets (uniform density)
        m_0    = b_1 − s_0·√(2/π),  m_{M−1} = b_{M−1} + s_{M−1}·√(2/π)     (full_support=True)
        mean   = Σ_k p_k m_k

    with the half-normal tail scales ``s = w/Φ_HN⁻¹(0.5)`` of
    ``full_support_bar_distribution_nll`` (a half-normal of scale s has mean ``s√(2/π)``).
    ``full_support=False`` uses midpoints everywhere: the official ``BarDistribution.mean``
    (the default follows ``FullSupportBarDistribution.mean``).

    Backward. ``mean = ⟨p, m⟩`` with ``m`` constant in ``z``; the softmax VJP
    ``z̄ = p ⊙ (p̄ − ⟨p, p̄⟩)`` with ``p̄ = ḡ·m`` gives::

        z̄ = ḡ · p ⊙ (m − mean)

    Args:
        z: logits (…, M), float32 or float64; M ≥ 2 when ``full_support``.
        borders: strictly increasing borders (M + 1,), same dtype.
        full_support: half-normal tail means for the outer buckets (default True).

    Returns:
        mean: shape ``z.shape[:-1]``, in the input dtype.

    Reference: arXiv:2112.10510; official ``BarDistribution.mean`` and
    ``FullSupportBarDistribution.mean`` in automl/TransformersCanDoBayesianInference.

    >>> import numpy as np, refimpl
    >>> b = np.array([0.0, 1.0, 3.0])
    >>> float(refimpl.losses.bar_distribution_mean(np.zeros(2), b, full_support=False))  # (0.5 + 2)/2
    1.25
    """
    p = softmax(z)
    m = bucket_means(borders, full_support)
    mean = (p * m).sum(axis=-1)
    return mean, (p, m, mean)


@bar_distribution_mean.defvjp
def bar_distribution_mean_backward(residuals, g_mean):
    p, m, mean = residuals
    return (g_mean[..., None] * p * (m - mean[..., None]),)


# -- bar_borders_from_quantiles -----------------------------------------------------------
def _quantile_borders(ys, num_buckets: int, full_range):
    """The official ``get_bucket_limits(num_outputs, full_range, ys)``, array-module agnostic."""
    xp = array_namespace(ys)
    flat = ys.reshape(-1)
    flat = flat[: flat.shape[0] - flat.shape[0] % num_buckets]  # drop the tail remainder, unsorted
    per_bucket = flat.shape[0] // num_buckets
    ordered = xp.sort(flat)
    low, high = (ordered[0], ordered[-1]) if full_range is None else (full_range[0], full_range[1])
    inner = (ordered[per_bucket - 1 :: per_bucket][:-1] + ordered[per_bucket::per_bucket]) / 2
    return xp.concatenate([xp.reshape(low, (1,)), inner, xp.reshape(high, (1,))]), flat


def _check_quantiles(arguments) -> None:
    ys, num_buckets, full_range = arguments["ys"], arguments["num_buckets"], arguments["full_range"]
    xp = array_namespace(ys)
    if ys.size < num_buckets:
        raise ArgumentError(
            "ys", f"at least num_buckets = {num_buckets} values (one per bucket)", f"{ys.size} values"
        )
    borders, kept = _quantile_borders(ys, num_buckets, full_range)
    if full_range is not None:
        if bool(full_range[0] > kept.min()) or bool(full_range[1] < kept.max()):
            raise ArgumentError(
                "full_range",
                "(low, high) containing every value used (low <= min ys, high >= max ys)",
                f"({float(full_range[0])!r}, {float(full_range[1])!r}) for ys in "
                f"[{float(kept.min())!r}, {float(kept.max())!r}]",
            )
    widths = borders[1:] - borders[:-1]
    if not bool(xp.all(widths > 0)):
        first = int(xp.argmax(widths <= 0))
        raise ArgumentError(
            "ys",
            "values whose quantile borders are strictly increasing (duplicated quantiles make a"
            " zero-width bucket, density log 0)",
            f"border {first} = {float(borders[first])!r} >= border {first + 1} = "
            f"{float(borders[first + 1])!r}",
        )


@op(
    inputs={"ys": FloatArray("..."), "num_buckets": IntScalar(1), "full_range": FloatArray(2, optional=True)},
    outputs=("borders",),
    check=_check_quantiles,
)
def bar_borders_from_quantiles(ys, *, num_buckets, full_range=None):
    r"""Bucket borders with (about) equal prior mass per bucket, from samples of the prior's targets.

    The PFN fixes its output histogram before training: the borders are empirical quantiles
    of targets drawn from the prior, so every bucket is equally likely a priori.

    Forward (the official ``get_bucket_limits(num_outputs, full_range, ys)``)::

        ys     ← ys.ravel()[: n − n mod M]     (M = num_buckets; the LAST n mod M values of the
                                                flattened, unsorted ys are dropped)
        c      = len(ys)/M                      (values per bucket)
        y_(1) ≤ … ≤ y_(cM)                      (sorted)
        b_j    = (y_(jc) + y_(jc+1))/2,  j = 1 … M−1     (midpoint between consecutive chunks)
        b_0, b_M = min ys, max ys   or   full_range = (low, high) when given

    Duplicated quantiles (many equal targets) make a zero-width bucket whose density is
    log 0: refused (InputError), as are fewer values than buckets and a ``full_range`` that
    does not contain the values. Uniform borders (the official ``ys=None`` branch) are
    ``numpy.linspace(low, high, M + 1)`` and need no op.

    Not differentiable (a one-off preprocessing step).

    Args:
        ys: samples of the target (any shape, flattened in C order), float32 or float64, finite.
        num_buckets: M ≥ 1.
        full_range: optional (2,) array ``(low, high)`` for the outer borders, same dtype.

    Returns:
        borders: (M + 1,) strictly increasing, in the input dtype.

    Reference: arXiv:2112.10510; official ``get_bucket_limits`` in
    automl/TransformersCanDoBayesianInference (``bar_distribution.py``).

    >>> import numpy as np, refimpl
    >>> refimpl.losses.bar_borders_from_quantiles(np.array([4.0, 0.0, 3.0, 1.0, 9.0]), num_buckets=2)
    array([0., 2., 4.])
    """
    borders, _ = _quantile_borders(ys, num_buckets, full_range)
    return borders.astype(ys.dtype, copy=False), None
