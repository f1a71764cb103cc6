"""Poincaré midpoint and midpoint batch normalization on the Poincaré ball (Poincaré ResNet)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._op import defop
from .._papers import POINCARE_RESNET
from .._spec import ArgumentError, Float, Real, array_namespace
from .poincare import (
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
    beta = 1 - _c_squared_norm(points, c)  # (B, 1), > 0: the domain check's expression
    lam = 2 / beta
    numerator = np.sum(lam * points, axis=0)  # N = Σ λ_i x_i
    weight = np.sum(lam - 1)  # S = Σ (λ_i − 1) ≥ B: every λ_i ≥ 2
    u = numerator / weight
    # 1 − c‖u‖² ≥ 0 in exact arithmetic (u is a convex combination of Klein points);
    # clamp the rounding, and keep r > 0 so that the backward's 1/r stays finite
    root = np.sqrt(np.maximum(1 - _c_squared_norm(u, c), 0))
    root = np.maximum(root, np.finfo(points.dtype).tiny)
    m = u / (1 + root)
    return m, (points, lam, weight, u, root, c)


def _midpoint_backward(residuals, g_m):
    points, lam, weight, u, root, c = residuals
    # m = u/(1 + r), r = √(1 − c‖u‖²), ∂r/∂u = −c u/r
    g_u = g_m / (1 + root) + c * _row_dot(g_m, u) * u / (root * (1 + root) ** 2)
    g_numerator = g_u / weight  # u = N/S
    g_weight = -_row_dot(g_u, u) / weight
    # N = Σ λ_i x_i, S = Σ (λ_i − 1), ∂λ_i/∂x_i = c λ_i² x_i
    g_lam = _row_dot(points, g_numerator) + g_weight
    return lam * g_numerator + c * lam * lam * g_lam * points


@defop(
    family="layers",
    paper=POINCARE_RESNET,
    inputs={"points": Float("B", "n"), "c": Real(0, low_open=True)},
    outputs=("m",),
    differentiable=("points",),
    check=_check_points_in_ball,
)
def poincare_midpoint(points, *, c=1.0):
    r"""Gyromidpoint of a batch of points of the Poincaré ball (a closed-form "mean").

    The Einstein midpoint carried to the Poincaré ball: ``λ_i x_i/(λ_i − 1)`` are the
    points' Klein coordinates and ``λ_i − 1`` their Lorentz factors, so ``u`` below is the
    Lorentz-weighted Klein average, and ``½ ⊗ u`` brings it back to the Poincaré ball. With
    ``λ_i = 2/(1 − c‖x_i‖²)``::

        u = Σ_i λ_i x_i / Σ_i (λ_i − 1)
        m = ½ ⊗ u = u / (1 + √(1 − c‖u‖²))

    (``½ ⊗ u = tanh(½ artanh(√c‖u‖)) u/(√c‖u‖)`` and ``tanh(a/2) = t/(1 + √(1 − t²))``
    with ``t = tanh a``). ``1 − c‖u‖² ≥ 0`` holds exactly (u is a convex combination of
    Klein points) and is clamped at 0 against rounding. The midpoint of identical points
    is the point; it commutes with isometries (``a ⊕ ·`` and rotations); as c → 0 it is
    the mean. It is not the Fréchet mean (the authors' library offers both; the catalog's
    batch norm uses this one).

    Backward. With ``r = √(1 − c‖u‖²)`` (``∂r/∂u = −c u/r``), ``N = Σ λ_i x_i`` and
    ``S = Σ (λ_i − 1)``::

        ū = m̄/(1 + r) + c⟨m̄, u⟩ u / (r (1 + r)²)     (m = u/(1 + r))
        N̄ = ū/S,    S̄ = −⟨ū, u⟩/S                    (u = N/S)
        λ̄_i = ⟨x_i, N̄⟩ + S̄,    ∂λ_i/∂x_i = c λ_i² x_i
        x̄_i = λ_i N̄ + c λ_i² λ̄_i x_i

    The ``1/r`` term is large only when u nears the boundary, i.e. when every point does.

    Args:
        points: points of the ball, shape (B, n), ``c‖x_i‖² < 1`` per row (B ≥ 1).
        c: curvature magnitude, > 0 (default 1).

    Returns:
        m: the midpoint, shape (n,), the dtype of points.

    Reference: arXiv:2303.14027 (Poincaré ResNet; maxvanspengler/hyperbolic_learning_library
    ``midpoint``); Ungar (2008) for the gyromidpoint.

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
    _require_inside_ball("x", arguments["x"], arguments["c"])
    gamma = arguments["gamma"]
    xp = array_namespace(gamma)
    if not bool(xp.all(gamma > 0)):  # NaN fails too
        raise ArgumentError(
            "gamma",
            "a positive scale (it sits under a square root; the library initializes it to 1)",
            f"gamma = {float(gamma)}",
        )


@defop(
    family="layers",
    paper=POINCARE_RESNET,
    inputs={
        "x": Float("B", "n"),
        "gamma": Float(),
        "beta": Float("n"),
        "c": Real(0, low_open=True),
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

    Conventions (official code, maxvanspengler/hyperbolic_learning_library
    ``hypll/nn/modules/batchnorm.py``, ``HBatchNorm`` with ``use_midpoint=True``): γ
    sits under the square root, ``(γ/(σ² + 1e-6))^½``; PENDING: where the paper puts γ.
    The library keeps no running statistics: it normalizes with the batch statistics in
    training and in evaluation alike, so this op has no running mean/variance, momentum or
    training flag (the running-statistics rule is missing from the source). The library
    also projects after each exp map; this op does not (see ``poincare_project``).

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
    c = float(c)
    batch = x.shape[0]
    b, b_residuals = poincare_expmap0.forward(beta, c=c)
    mu, mu_residuals = _midpoint_forward(x, c)
    mu_rows = np.broadcast_to(mu, x.shape)
    b_rows = np.broadcast_to(b, x.shape)
    w, log_residuals = poincare_logmap.forward(mu_rows, x, c=c)
    d, distance_residuals = poincare_distance.forward(x, mu_rows, c=c)
    variance = np.sum(d * d) / batch
    p, transport_residuals = poincare_parallel_transport.forward(mu_rows, b_rows, w, c=c)
    scale = np.sqrt(gamma / (variance + VARIANCE_EPS))
    z = scale * p
    out, exp_residuals = poincare_expmap.forward(b_rows, z, c=c)
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


@poincare_batch_norm.defvjp
def poincare_batch_norm_backward(residuals, g_out):
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
    batch = g_out.shape[0]
    g_b_rows, g_z = poincare_expmap_backward(exp_residuals, g_out)
    g_scale = np.sum(g_z * p)
    g_p = scale * g_z
    g_gamma = g_scale * scale / (2 * gamma)
    g_variance = -g_scale * scale / (2 * (variance + VARIANCE_EPS))
    g_mu_rows, g_b_from_transport, g_w = poincare_parallel_transport_backward(transport_residuals, g_p)
    g_b_rows = g_b_rows + g_b_from_transport
    g_x_from_distance, g_mu_from_distance = poincare_distance_backward(
        distance_residuals, g_variance * 2 * d / batch
    )
    g_mu_from_log, g_x = poincare_logmap_backward(log_residuals, g_w)
    g_mu = np.sum(g_mu_rows + g_mu_from_distance + g_mu_from_log, axis=0)
    g_x = g_x + g_x_from_distance + _midpoint_backward(mu_residuals, g_mu)
    (g_beta,) = poincare_expmap0_backward(b_residuals, np.sum(g_b_rows, axis=0))
    return g_x, np.asarray(g_gamma, dtype=g_out.dtype), g_beta
