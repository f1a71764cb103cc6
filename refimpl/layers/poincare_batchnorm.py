"""Poincaré midpoint and midpoint batch normalization on the Poincaré ball (Poincaré ResNet)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..authoring import ArgumentError, Example, FloatArray, RealScalar, array_namespace, known_deviation, op
from .poincare import (  # PAPER: the paper of this module's ops (read by @op)
    PAPER,  # noqa: F401
    _c_squared_norm,
    _require_inside_ball,
    _row_dot,
    poincare_distance,
    poincare_distance_backward,
    poincare_expmap,
    poincare_expmap0,
    poincare_expmap0_backward,
    poincare_expmap_backward,
    poincare_logmap,
    poincare_logmap_backward,
    poincare_parallel_transport,
    poincare_parallel_transport_backward,
)

__all__ = ["poincare_batch_norm", "poincare_midpoint"]

VARIANCE_EPS = 1e-6
"""Added to the batch variance under the square root, as in the authors' ``HBatchNorm``."""


def _check_points_in_ball(arguments: Mapping[str, Any]) -> None:
    _require_inside_ball("points", arguments["points"], arguments["c"])


def _midpoint_forward(points: np.ndarray, c: float):
    batch = points.shape[0]
    w = 1 / (1 - _c_squared_norm(points, c))  # λ_i/2, (B, 1); 1 − c‖x‖² > 0: the domain check's expression
    w_sum = np.sum(w)  # W ≥ B
    numerator = 2 * np.sum(w * points, axis=0)  # N = Σ λ_i x_i
    centred = points - numerator / (2 * w_sum)  # e_i = x_i − x̄
    spread = np.sum(w * _row_dot(centred, centred))  # V = Σ w_i ‖e_i‖² ≥ 0
    root_q = np.sqrt(batch * batch + 4 * c * w_sum * spread)  # √Q ≥ B
    denominator = 2 * w_sum - batch + root_q  # S + √Q, a sum of positive terms
    m = numerator / denominator
    return m, (points, w, w_sum, centred, spread, root_q, denominator, m, c)


def _midpoint_backward(residuals, g_m):
    points, w, w_sum, centred, spread, root_q, denominator, m, c = residuals
    g_denominator = -np.sum(g_m * m) / denominator  # m = N/D
    g_q = g_denominator / (2 * root_q)  # D = 2W − B + √Q
    g_spread = 4 * c * w_sum * g_q  # Q = B² + 4cWV
    # w̄_i = 2⟨x_i, N̄⟩ + 2D̄ + 4cV Q̄ + V̄‖e_i‖², with 2⟨x_i, N̄⟩ + 2D̄ = 2⟨x_i − m, m̄⟩/D
    g_w = (
        2 * _row_dot(points - m, g_m) / denominator
        + g_spread * _row_dot(centred, centred)
        + 4 * c * spread * g_q
    )
    # ∂N/∂x_i = 2w_i, ∂V/∂x_i = 2w_i e_i (x̄ is stationary for V), ∂w_i/∂x_i = 2c w_i² x_i
    return 2 * w * g_m / denominator + 2 * g_spread * w * centred + 2 * c * w * w * g_w * points


@op(
    inputs={"points": FloatArray("B", "n"), "c": RealScalar(0, low_open=True)},
    outputs=("m",),
    differentiable=("points",),
    check=_check_points_in_ball,
)
def poincare_midpoint(points, *, c=1.0):
    r"""Gyromidpoint of a batch of points of the Poincaré ball (a closed-form "mean").

    The Einstein midpoint carried to the Poincaré ball: ``λ_i x_i/(λ_i − 1)`` are the
    points' Klein coordinates and ``λ_i − 1`` their Lorentz factors, so ``u`` below is the
    Lorentz-weighted Klein average, and ``½ ⊗ u`` brings it back to the Poincaré ball. With
    ``λ_i = 2/(1 − c‖x_i‖²)`` (the paper's formula)::

        u = Σ_i λ_i x_i / Σ_i (λ_i − 1)
        m = ½ ⊗ u = u / (1 + √(1 − c‖u‖²))

    (``½ ⊗ u = tanh(½ artanh(√c‖u‖)) u/(√c‖u‖)`` and ``tanh(a/2) = t/(1 + √(1 − t²))``
    with ``t = tanh a``). The midpoint of identical points is the point; it commutes with
    isometries (``a ⊕ ·`` and rotations); as c → 0 it is the mean. It is not the Fréchet
    mean (the authors' library offers both; Poincaré ResNet's batch norm uses this one).

    Stable evaluation. Written as above, ``1 − c‖u‖²`` cancels: for identical points it
    is ``((1 − c‖x‖²)/(1 + c‖x‖²))²``, ~1e-14 at ``1 − 1e-7`` of the radius in float64 and
    below float32's resolution already at ``0.9999``, where it rounds to ≤ 0 (the known
    "negative 1 − c‖u‖²" failure): clamping it gives a midpoint off by ~1e-4 and ``1/√(1 − c‖u‖²)``
    in the gradient ~1e35. Instead, with ``w_i = λ_i/2 = 1/(1 − c‖x_i‖²)``,
    ``W = Σ w_i``, ``x̄ = Σ w_i x_i / W``, ``e_i = x_i − x̄`` and ``V = Σ w_i ‖e_i‖²``
    (a weighted spread, two-pass, ≥ 0)::

        N = Σ λ_i x_i = 2W x̄,    S = Σ (λ_i − 1) = 2W − B
        S² − c‖N‖² = Σ_ij [(λ_i − 1)(λ_j − 1) − c λ_iλ_j ⟨x_i, x_j⟩]
                   = Σ_ij [β_iβ_j + 2c‖x_i − x_j‖²] / (β_iβ_j)          (β = 1 − c‖x‖²)
                   = B² + 4c W V  =: Q
        1 − c‖u‖² = Q/S²,   so   m = (N/S)/(1 + √Q/S) = N / (S + √Q)

    (per pair, ``(1 + a_i)(1 + a_j) − 4c⟨x_i, x_j⟩ = (1 − a_i)(1 − a_j) + 2c‖x_i − x_j‖²``
    with ``a = c‖x‖²``, and ``Σ_ij w_iw_j‖x_i − x_j‖² = 2W V``). Every quantity is a sum
    of non-negative terms, ``S + √Q ≥ 2B``, nothing is clamped, and identical points give
    back the point to an ulp; the same formula as the paper's, evaluated differently.

    Backward, through ``m = N/D``, ``D = 2W − B + √Q``, ``Q = B² + 4cWV``::

        N̄ = m̄/D,    D̄ = −⟨m̄, m⟩/D,    Q̄ = D̄/(2√Q),    V̄ = 4cW Q̄
        w̄_i = 2⟨x_i, N̄⟩ + 2D̄ + 4cV Q̄ + V̄ ‖e_i‖²
            = 2⟨x_i − m, m̄⟩/D + 4cV Q̄ + V̄ ‖e_i‖²               (no cancellation as x_i → m)
        x̄_i = 2 w_i N̄ + 2 V̄ w_i e_i + 2c w_i² w̄_i x_i

    (``∂N/∂x_i = 2w_i``; ``∂V/∂x_i = 2w_i e_i`` and ``∂V/∂w_i = ‖e_i‖²`` because
    ``Σ w_i e_i = 0`` makes V stationary in x̄; ``∂w_i/∂x_i = 2c w_i² x_i``). No ``1/√Q``
    grows: ``√Q ≥ B``.

    Args:
        points: points of the ball, shape (B, n), ``c‖x_i‖² < 1`` per row (B ≥ 1).
        c: curvature magnitude, > 0 (default 1).

    Returns:
        m: the midpoint, shape (n,), the dtype of points.

    Reference: van Spengler, Berkhout and Mettes, *Poincaré ResNet*, arXiv:2303.14027, and
    its official code maxvanspengler/poincare-resnet (``models/manifolds/math/midpoint.py``,
    ``poincare_midpoint``: ``γ² = 1/(1 − c‖x‖²)``, ``Σγ²x / (Σγ² − B/2)``, then
    ``γ_m/(1 + γ_m)·m`` — the formula above); Ungar (2008) for the gyromidpoint.

    >>> import numpy as np, refimpl
    >>> refimpl.layers.poincare_midpoint(np.array([[0.5, 0.0], [-0.5, 0.0]]))
    array([0., 0.])
    >>> refimpl.layers.poincare_midpoint(np.array([[0.5], [0.5]]))  # identical points
    array([0.5])
    """
    return _midpoint_forward(points, float(c))


@poincare_midpoint.defvjp
def poincare_midpoint_backward(residuals, g_m):
    return (_midpoint_backward(residuals, g_m),)


def _check_batch_norm(arguments: Mapping[str, Any]) -> None:
    c = float(arguments["c"])
    _require_inside_ball("x", arguments["x"], c)
    gamma, beta = arguments["gamma"], arguments["beta"]
    xp = array_namespace(gamma)
    if not bool(xp.all(gamma > 0)):  # NaN fails too
        raise ArgumentError(
            "gamma",
            "a positive scale (it sits under a square root; the official code initializes it to 1)",
            f"gamma = {float(gamma)}",
        )
    # b = exp_0(β) must stay inside the ball in the working dtype, or exp_b divides by
    # 1 − c‖b‖² = 0; the forward's arithmetic (f = tanh(u)/u, b = f β), for u > 1 only
    # (‖β‖² overflows to inf past ~1.8e19 in float32: then b would be 0·β, refused as well)
    u = math.sqrt(c) * float(xp.sqrt(xp.sum(beta * beta)))
    if u > 1:
        root_c_norm = xp.sqrt(c * xp.sum(beta * beta))
        b = (xp.tanh(root_c_norm) / root_c_norm) * beta
        if not (math.isfinite(u) and bool(c * xp.sum(b * b) < 1)):
            raise ArgumentError(
                "beta",
                f"a shift whose point exp_0(β) lies inside the ball in {beta.dtype} (tanh(√c‖β‖) must "
                "not round to 1: √c‖β‖ below ~18 in float64, ~9 in float32)",
                f"√c‖β‖ = {u:.6g}",
            )


@op(
    inputs={
        "x": FloatArray("B", "n"),
        "gamma": FloatArray(),
        "beta": FloatArray("n"),
        "c": RealScalar(0, low_open=True),
    },
    outputs=("out",),
    differentiable=("x", "gamma", "beta"),
    check=_check_batch_norm,
)
def poincare_batch_norm(x, gamma, beta, *, c=1.0):
    r"""Poincaré batch normalization with the midpoint as the batch mean (training mode).

    Re-centre a batch at a learned point ``b = exp_0(β)`` and rescale its spread: take
    the batch midpoint μ and the Fréchet variance σ² around it, move every point's
    log map from μ to b by parallel transport, scale the tangent vectors, and map back::

        μ   = midpoint(x_1, …, x_B)                           (poincare_midpoint)
        σ²  = (1/B) Σ_i d(x_i, μ)²                            (poincare_distance)
        b   = exp_0(β)
        s   = √(γ / (σ² + 1e-6))
        out_i = exp_b( s · PT_{μ→b}( log_μ(x_i) ) )

    ``γ`` is one scalar (initialized to 1 in the library), ``β`` a tangent vector at 0.
    Since exp/log/PT are isometric in the right sense, ``d(out_i, b) = s·d(x_i, μ)``: the
    output batch's variance around b is ``γ σ²/(σ² + 1e-6) ≈ γ``. Its midpoint is b
    exactly when ``s = 1`` or the batch is symmetric about μ; in general the midpoint is
    not equivariant under the tangent rescaling and lands near b, not on it (the Fréchet
    mean would be kept exactly).

    Conventions, pinned from the official code of the paper,
    maxvanspengler/poincare-resnet (``models/nn/modules/batchnorm.py``,
    ``PoincareBatchNorm.forward`` with ``use_midpoint=True``, the setting of its ResNets),
    and identical in the authors' library maxvanspengler/hyperbolic_learning_library
    (``hypll/nn/modules/batchnorm.py``, ``HBatchNorm``) only with ``use_midpoint=True``: the
    library's default centres the batch at the Fréchet mean instead, which moves the outputs
    by ~1e−2 (``refimpl deviations --op poincare_batch_norm``):

    * γ sits under the square root: ``(self.var / (input_var + 1e-6)).sqrt()``, with
      ``self.var`` a scalar parameter initialized to 1 (``weight`` in the library). The
      paper's own text was not available to check for where it writes γ. The Lou et al. form ``γ'/√(σ² + ε)``
      is the same map with ``γ = γ'²``: pass ``gamma = γ'**2`` (and ``γ̄' = 2γ' γ̄``).
    * σ² is the mean of the squared distances to the midpoint (``frechet_variance``,
      ``distance.pow(2).mean()``), ε = 1e-6 added inside the square root.
    * No running statistics: ``PoincareBatchNorm`` registers ``running_mean`` and
      ``running_var`` buffers and takes a ``momentum=0.9`` argument but never reads or
      updates them, so the batch statistics are used in training and evaluation alike
      (the library's ``HBatchNorm`` has neither). This op therefore has no running mean,
      variance, momentum or training flag; a running-statistics rule is not in the source.
    * The official module works on the tangent representation at 0 (``expmap0`` of its
      input, ``logmap0`` of its output) and the library projects after each exp map; this
      op takes and returns points of the ball and does not project (see
      ``poincare_project``). ``PoincareBatchNorm2d`` flattens (B, H, W) into the batch:
      reshape an image of points to (B·H·W, n) to normalize per channel vector.

    Backward: reverse-mode through the composition, each step the hand-derived VJP of
    the op named above (their derivations are in their docstrings). With ``z_i = s p_i``,
    ``p_i = PT_{μ→b}(w_i)``, ``w_i = log_μ(x_i)``, ``d_i = d(x_i, μ)``::

        (b̄, z̄_i)     ← VJP of exp_b(z_i)                  (b̄ summed over i)
        s̄ = Σ_i ⟨z̄_i, p_i⟩,    p̄_i = s z̄_i
        γ̄ = s̄ s/(2γ),          σ̄² = −s̄ s/(2(σ² + 1e-6))
        (μ̄, b̄, w̄_i)  += VJP of PT_{μ→b}(w_i)
        d̄_i = σ̄² · 2 d_i / B;  (x̄_i, μ̄) += VJP of d(x_i, μ)
        (μ̄, x̄_i)     += VJP of log_μ(x_i)
        x̄            += VJP of the midpoint at μ̄
        β̄ = VJP of exp_0 at b̄

    Args:
        x: a batch of points of the ball, shape (B, n), ``c‖x_i‖² < 1`` per row.
        gamma: scale, a 0-d array > 0 (library init 1).
        beta: shift, a tangent vector at 0, shape (n,) (library init 0).
        c: curvature magnitude, > 0 (default 1).

    Returns:
        out: normalized points, shape (B, n), the dtype of x.

    Reference: van Spengler, Berkhout and Mettes, *Poincaré ResNet*, arXiv:2303.14027;
    Lou et al., *Differentiating through the Fréchet Mean*, arXiv:2003.00335 (the BN).

    >>> import numpy as np, refimpl
    >>> x = np.array([[0.3, 0.0], [-0.3, 0.0]])  # symmetric about 0: midpoint 0
    >>> out = refimpl.layers.poincare_batch_norm(x, np.array(1.0), np.zeros(2))
    >>> d = refimpl.layers.poincare_distance(out, np.zeros((2, 2)))
    >>> float((d**2).mean().round(5))  # γ σ²/(σ² + 1e-6) with γ = 1
    1.0
    """
    return chain_batch_norm_forward(x, gamma, beta, float(c), REFERENCE_PARTS)


@poincare_batch_norm.defvjp
def poincare_batch_norm_backward(residuals, g_out):
    return chain_batch_norm_backward(residuals, g_out, REFERENCE_PARTS)


# -- the chain of midpoint batch normalization, written once ---------------------------------------
@dataclass(frozen=True)
class BatchNormParts:
    """The maps midpoint batch normalization is chained from: each backend passes its own
    kernels, so the chain rule below is written once for the reference, Numba and CuPy.

    Every ``*_forward`` returns ``(output, residuals)``; every ``*_backward`` takes them back.
    ``scalar(value, like)`` makes a constant of ``like``'s dtype where a backend needs one.
    """

    expmap0_forward: Callable
    expmap0_backward: Callable
    midpoint_forward: Callable
    midpoint_backward: Callable
    logmap_forward: Callable
    logmap_backward: Callable
    distance_forward: Callable
    distance_backward: Callable
    transport_forward: Callable
    transport_backward: Callable
    expmap_forward: Callable
    expmap_backward: Callable
    scalar: Callable[[float, Any], Any] = lambda value, like: value


def chain_batch_norm_forward(x, gamma, beta, c: float, parts: BatchNormParts):
    """The forward of ``poincare_batch_norm`` (see its docstring), step by step."""
    xp = array_namespace(x)
    batch = x.shape[0]
    b, b_residuals = parts.expmap0_forward(beta, c=c)
    mu, mu_residuals = parts.midpoint_forward(x, c)
    mu_rows = xp.broadcast_to(mu, x.shape)
    b_rows = xp.broadcast_to(b, x.shape)
    w, log_residuals = parts.logmap_forward(mu_rows, x, c=c)
    d, distance_residuals = parts.distance_forward(x, mu_rows, c=c)
    variance = xp.sum(d * d) / batch
    p, transport_residuals = parts.transport_forward(mu_rows, b_rows, w, c=c)
    scale = xp.sqrt(gamma / (variance + parts.scalar(VARIANCE_EPS, x)))
    z = scale * p
    out, exp_residuals = parts.expmap_forward(b_rows, z, c=c)
    residuals = (
        gamma,
        d,
        variance,
        p,
        scale,
        b_residuals,
        mu_residuals,
        log_residuals,
        distance_residuals,
        transport_residuals,
        exp_residuals,
    )
    return out, residuals


def chain_batch_norm_backward(residuals, g_out, parts: BatchNormParts):
    """The backward of ``poincare_batch_norm``: the chain rule through the steps above, in reverse."""
    (
        gamma,
        d,
        variance,
        p,
        scale,
        b_residuals,
        mu_residuals,
        log_residuals,
        distance_residuals,
        transport_residuals,
        exp_residuals,
    ) = residuals
    xp = array_namespace(g_out)
    batch = g_out.shape[0]
    g_b_rows, g_z = parts.expmap_backward(exp_residuals, g_out)
    g_scale = xp.sum(g_z * p)
    g_p = scale * g_z
    g_gamma = g_scale * scale / (2 * gamma)
    g_variance = -g_scale * scale / (2 * (variance + parts.scalar(VARIANCE_EPS, g_out)))
    g_mu_rows, g_b_from_transport, g_w = parts.transport_backward(transport_residuals, g_p)
    g_b_rows = g_b_rows + g_b_from_transport
    g_x_from_distance, g_mu_from_distance = parts.distance_backward(
        distance_residuals, g_variance * 2 * d / batch
    )
    g_mu_from_log, g_x = parts.logmap_backward(log_residuals, g_w)
    g_mu = xp.sum(g_mu_rows + g_mu_from_distance + g_mu_from_log, axis=0)
    g_x = g_x + g_x_from_distance + parts.midpoint_backward(mu_residuals, g_mu)
    (g_beta,) = parts.expmap0_backward(b_residuals, xp.sum(g_b_rows, axis=0))
    return g_x, xp.asarray(g_gamma, dtype=g_out.dtype), g_beta


REFERENCE_PARTS = BatchNormParts(
    expmap0_forward=poincare_expmap0.forward,
    expmap0_backward=poincare_expmap0_backward,
    midpoint_forward=_midpoint_forward,
    midpoint_backward=_midpoint_backward,
    logmap_forward=poincare_logmap.forward,
    logmap_backward=poincare_logmap_backward,
    distance_forward=poincare_distance.forward,
    distance_backward=poincare_distance_backward,
    transport_forward=poincare_parallel_transport.forward,
    transport_backward=poincare_parallel_transport_backward,
    expmap_forward=poincare_expmap.forward,
    expmap_backward=poincare_expmap_backward,
)


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    poincare_batch_norm,
    name="hypll-batchnorm-frechet-default",
    source="hypll 0.1.1, hypll/nn/modules/batchnorm.py, HBatchNorm (use_midpoint=False by default)",
    official="centres the batch at the Fréchet mean (an iterative solve), not the gyromidpoint the "
    "Poincaré ResNet uses; with use_midpoint=True it equals refimpl to 1e−8. (hypll's Curvature(1.0) "
    "means c = softplus(1) ≈ 1.313: pass constraining_strategy=lambda v: v to compare at c = 1.)",
    paper="the gyromidpoint (the paper's midpoint batch norm, maxvanspengler/poincare-resnet)",
    example=Example(
        args=(np.array([[0.1, 0.2], [-0.3, 0.5], [0.6, -0.2]]), np.array(1.0), np.zeros(2)),
        kwargs={"c": 1.0},
        official={"out": [[-0.01478, 0.06612], [-0.42434, 0.30965], [0.42978, -0.36260]]},
        reference={"out": [[-0.02194, 0.07486], [-0.42933, 0.31579], [0.42762, -0.35326]]},
    ),
    convention=True,
)
