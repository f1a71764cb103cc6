"""Poincaré-ball operations: Möbius addition and the maps at the origin (Poincaré ResNet)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._op import defop
from .._papers import POINCARE_RESNET
from .._spec import ArgumentError, Float, Real, array_namespace

__all__ = ["mobius_add", "poincare_expmap0", "poincare_logmap0"]

SERIES_BELOW = 1e-3
"""``u = √c‖v‖`` below which ``exp_0``/``log_0`` use their Taylor series.

The direct formula for ``h(u) = f'(u)/u`` subtracts two numbers that agree to ``~u²``, so it
loses ``log10(1/u²)`` digits; but it enters the gradient multiplied by ``c‖v‖² = u²``, which
brings the error back to ``~eps`` for every ``u > 0``. What fails is ``u = 0`` (0/0) and
``u²`` underflowing to 0. The two-term series used below the switch are off by ``~0.3·u⁶``
(``3e-19`` at the switch), far below float64 rounding, so the switch is invisible.
"""


def _c_squared_norm(x: Any, c: float) -> Any:
    """``c‖x‖²`` per row, keeping the last axis (length 1).

    The domain check and the forward use this same expression, so a point the check
    accepts has ``1 − c‖x‖² > 0`` in the very arithmetic the forward then does.
    """
    xp = array_namespace(x)
    return c * xp.sum(x * x, axis=-1, keepdims=True)


def _require_inside_ball(name: str, x: Any, c: float) -> None:
    """Raise ``ArgumentError`` unless every row has ``c‖x‖² < 1`` (NaN rows fail too)."""
    xp = array_namespace(x)
    c = float(c)  # as in the forward: the same arithmetic, the same dtype
    c_norm2 = _c_squared_norm(x, c)[..., 0]
    outside = ~(c_norm2 < 1)
    if not bool(xp.any(outside)):
        return
    first = int(xp.argmax(outside.reshape(-1)))
    value = np.dtype(x.dtype).type(float(c_norm2.reshape(-1)[first]))
    row = tuple(int(i) for i in np.unravel_index(first, c_norm2.shape))
    where = "" if not row else f" in row {row[0] if len(row) == 1 else row}"
    raise ArgumentError(
        name,
        f"points inside the Poincaré ball, c‖{name}‖² < 1 (‖{name}‖ < 1/√c = {1 / math.sqrt(c):.6g})",
        f"c‖{name}‖² = {value}{where} (rescale or project the points onto the ball first)",
    )


def _check_x_y_in_ball(arguments: Mapping[str, Any]) -> None:
    _require_inside_ball("x", arguments["x"], arguments["c"])
    _require_inside_ball("y", arguments["y"], arguments["c"])


def _check_y_in_ball(arguments: Mapping[str, Any]) -> None:
    _require_inside_ball("y", arguments["y"], arguments["c"])


@defop(
    family="layers",
    paper=POINCARE_RESNET,
    inputs={"x": Float("...", "n"), "y": Float("...", "n"), "c": Real(0, low_open=True)},
    outputs=("o",),
    differentiable=("x", "y"),
    check=_check_x_y_in_ball,
)
def mobius_add(x, y, *, c=1.0):
    r"""Möbius addition ``x ⊕ y``, the Poincaré ball's counterpart of ``x + y``.

    On the ball of curvature −c (points with ``c‖x‖² < 1``), ``x ⊕ y`` moves ``y`` by the
    isometry that carries the origin to ``x``. Poincaré ResNet builds its residual
    connections ``F(x) ⊕ x`` from it, and ``−x ⊕ y`` is the "difference" inside distances
    and log maps. It is neither commutative nor associative, but 0 is its identity, ``−x``
    the inverse of ``x``, left cancellation ``−x ⊕ (x ⊕ y) = y`` holds, and as c → 0 it
    becomes ``x + y``.

    Forward, per row (the textbook form, as in the catalog)::

        α = 1 + 2c⟨x, y⟩ + c‖y‖²
        β = 1 − c‖x‖²
        D = 1 + 2c⟨x, y⟩ + c²‖x‖²‖y‖²
        o = x ⊕ y = (α x + β y) / D

    Stable evaluation. With ``y ≈ −x`` near the boundary α, β and D are all tiny and the
    textbook sums cancel: at ``1 − 1e-7`` of the radius D ≈ 4e-14 comes out of terms of
    size 1, with only ~3 correct digits. Write ``σ = x + y``, ``β_x = 1 − c‖x‖²`` (= β),
    ``β_y = 1 − c‖y‖²`` and ``q = c‖σ‖²``. Expanding the right-hand sides shows::

        α = β_x + q                       (1 − c‖x‖² + c‖x‖² + 2c⟨x,y⟩ + c‖y‖²)
        D = β_x β_y + q                   (1 − c‖x‖² − c‖y‖² + c²‖x‖²‖y‖² + c‖x‖² + 2c⟨x,y⟩ + c‖y‖²)
        α x + β y = β_x σ + q x           (α x + β y = β_x (x + y) + (α − β_x) x)

    Every term is a product or sum of non-negative numbers, so ``D ≥ β_x β_y > 0`` and
    nothing cancels; ``(−x) ⊕ x = 0`` exactly (σ = 0). The code evaluates these forms.

    Backward. Write ``N = α x + β y``, so ``o = N/D``, and let ``ō`` be the cotangent of
    ``o``. The loss sees N through ``ḡ = ∂L/∂N = ō/D`` and D through
    ``d̄ = ∂L/∂D = −⟨ō, N⟩/D² = −⟨ō, o⟩/D``. The pieces' gradients are::

        ∂α/∂x = 2c y      ∂α/∂y = 2c (x + y)      ∂β/∂x = −2c x      ∂β/∂y = 0
        ∂D/∂x = 2c y + 2c²‖y‖² x                  ∂D/∂y = 2c x + 2c²‖x‖² y

    From ``N_j = α x_j + β y_j``: ``∂N_j/∂x_k = α δ_jk + 2c x_j y_k − 2c y_j x_k`` and
    ``∂N_j/∂y_k = β δ_jk + 2c x_j (x_k + y_k)``. Contracting with ḡ (``s_x = ⟨ḡ, x⟩``,
    ``s_y = ⟨ḡ, y⟩``) and adding ``d̄ ∂D``::

        x̄ = α ḡ + 2c s_x y − 2c s_y x + d̄ (2c y + 2c²‖y‖² x)
        ȳ = β ḡ + 2c s_x (x + y)       + d̄ (2c x + 2c²‖x‖² y)

    (the catalog's VJP). Near ``y = −x`` the brackets cancel like the forward did, so the
    code uses their σ forms (``y = σ − x``, ``c‖y‖² = 1 − β_y``, ``s_σ = ⟨ḡ, σ⟩ = s_x + s_y``)::

        y + c‖y‖² x   = σ − x + (1 − β_y) x = σ − β_y x
        x + c‖x‖² y   = σ − β_x y
        s_x y − s_y x = s_x (σ − x) − (s_σ − s_x) x = s_x σ − s_σ x

        x̄ = α ḡ + 2c (s_x σ − s_σ x) + 2c d̄ (σ − β_y x)
        ȳ = β_x ḡ + 2c s_x σ + 2c d̄ (σ − β_x y)

    Args:
        x, y: points of the ball, shape (..., n), the same shape (nothing is broadcast),
            float32 or float64; every row must satisfy ``c‖·‖² < 1``.
        c: curvature magnitude, > 0 (the ball has radius ``1/√c``; default 1).

    Returns:
        o: ``x ⊕ y``, same shape and dtype, inside the ball.

    Reference: van Spengler, Berkhout and Mettes, *Poincaré ResNet*, arXiv:2303.14027
    (their library maxvanspengler/hyperbolic_learning_library); the operation is Ungar's
    gyrovector addition.

    On a line, Möbius addition is relativistic velocity addition ``(x + y)/(1 + cxy)``:

    >>> import numpy as np, refimpl
    >>> refimpl.layers.mobius_add(np.array([0.5]), np.array([0.5]))
    array([0.8])
    """
    c = float(c)  # a NumPy float64 c would promote float32 inputs
    x_plus_y = x + y
    beta_x = 1 - _c_squared_norm(x, c)  # > 0: the domain check evaluated this same expression
    beta_y = 1 - _c_squared_norm(y, c)
    q = _c_squared_norm(x_plus_y, c)
    alpha = beta_x + q
    denominator = beta_x * beta_y + q  # ≥ β_x β_y > 0, a sum of non-negative terms
    o = (beta_x * x_plus_y + q * x) / denominator
    return o, (x, y, x_plus_y, o, alpha, beta_x, beta_y, denominator, c)


@mobius_add.defvjp
def mobius_add_backward(residuals, g_o):
    x, y, x_plus_y, o, alpha, beta_x, beta_y, denominator, c = residuals
    g = g_o / denominator
    s_x = np.sum(g * x, axis=-1, keepdims=True)
    s_sigma = np.sum(g * x_plus_y, axis=-1, keepdims=True)
    d_bar = -np.sum(g_o * o, axis=-1, keepdims=True) / denominator
    g_x = alpha * g + 2 * c * (s_x * x_plus_y - s_sigma * x) + 2 * c * d_bar * (x_plus_y - beta_y * x)
    g_y = beta_x * g + 2 * c * s_x * x_plus_y + 2 * c * d_bar * (x_plus_y - beta_x * y)
    return g_x, g_y


def expmap0_factors(u2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``f(u) = tanh(u)/u`` and ``h(u) = f'(u)/u`` from ``u² = c‖v‖²``, branch-free.

    Each branch is evaluated on arguments clipped to its own side of the switch (the series
    on ``min(u², t²)``, the direct formula on ``max(u, t)``), so neither can produce a NaN
    or an overflow, even where ``np.where`` then discards it.
    """
    u = np.sqrt(u2)
    small = u < SERIES_BELOW
    u2_lo = np.minimum(u2, SERIES_BELOW**2)
    f_series = 1 - u2_lo / 3 + 2 * u2_lo**2 / 15
    h_series = -2 / 3 + 8 * u2_lo / 15
    u_hi = np.maximum(u, SERIES_BELOW)
    u2_hi = np.maximum(u2, SERIES_BELOW**2)
    tanh_u = np.tanh(u_hi)
    f_direct = tanh_u / u_hi
    h_direct = (
        1 - tanh_u * tanh_u - f_direct
    ) / u2_hi  # (sech²u − f)/u²; sech² = 1 − tanh², no cosh overflow
    return np.where(small, f_series, f_direct), np.where(small, h_series, h_direct)


@defop(
    family="layers",
    paper=POINCARE_RESNET,
    inputs={"v": Float("...", "n"), "c": Real(0, low_open=True)},
    outputs=("o",),
    differentiable=("v",),
)
def poincare_expmap0(v, *, c=1.0):
    r"""Exponential map at the origin: a tangent vector ``v`` to the point ``exp_0(v)``.

    Walk from the origin along the geodesic in direction ``v`` for hyperbolic length
    ``2‖v‖`` (the metric at 0 is twice the Euclidean one); Poincaré ResNet uses it to move
    Euclidean features (the stem's output, biases) onto the ball. With ``u = √c‖v‖``::

        exp_0(v) = tanh(u) · v / u = f(u) · v,     f(u) = tanh(u)/u,  f(0) = 1

    As c → 0, ``exp_0(v) → v``. For ``u ≳ 19`` (float64) or ``≳ 9`` (float32) ``tanh(u)``
    rounds to 1 and the result lies on the boundary of the ball in floating point: project
    it (``1 − eps`` of the radius, as the authors' library does) before ``log_0`` or ``⊕``.

    Backward. ``u`` depends on ``v`` through ``∂u/∂v = √c v/‖v‖ = c v/u``, so for a
    cotangent ``ō`` on ``o = f(u) v``::

        v̄ = f(u) ō + ⟨ō, v⟩ f'(u) ∂u/∂v = f(u) ō + c h(u) ⟨ō, v⟩ v,      h(u) = f'(u)/u

    With ``tanh' = sech²``: ``f'(u) = (u sech²u − tanh u)/u² = (sech²u − f(u))/u``, hence::

        h(u) = (sech²u − f(u)) / u²,       sech²u = 1 − tanh²u

    At ``u = 0`` both are 0/0. From ``tanh u = u − u³/3 + 2u⁵/15 − …`` and
    ``sech²u = 1 − u² + 2u⁴/3 − …``::

        f(u) = 1 − u²/3 + 2u⁴/15 − …       h(u) = −2/3 + 8u²/15 − …

    (the catalog's ``f ≈ 1 − u²/3``, ``c f'/u ≈ −2c/3``, one term further). Below
    ``u = SERIES_BELOW = 1e-3`` the series are used; at ``v = 0`` the Jacobian is the
    identity (``v̄ = ō``).

    Args:
        v: tangent vectors at the origin, shape (..., n), float32 or float64 (any size).
        c: curvature magnitude, > 0 (default 1).

    Returns:
        o: points of the ball, same shape and dtype.

    Reference: arXiv:2303.14027 (Poincaré ResNet); Ganea, Bécigneul and Hofmann,
    *Hyperbolic Neural Networks*, arXiv:1805.09112, for the map.

    >>> import numpy as np, refimpl
    >>> refimpl.layers.poincare_expmap0(np.array([3.0, 4.0])).round(7)  # tanh(5)/5 · v
    array([0.5999455, 0.7999274])
    """
    c = float(c)  # a NumPy float64 c would promote float32 inputs
    f, h = expmap0_factors(_c_squared_norm(v, c))
    return f * v, (v, f, h, c)


@poincare_expmap0.defvjp
def poincare_expmap0_backward(residuals, g_o):
    v, f, h, c = residuals
    g_dot_v = np.sum(g_o * v, axis=-1, keepdims=True)
    g_v = f * g_o + c * h * g_dot_v * v
    return (g_v,)


def logmap0_factors(u2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``f(u) = artanh(u)/u`` and ``h(u) = f'(u)/u`` from ``u² = c‖y‖² < 1``, branch-free.

    Clipped like :func:`expmap0_factors`. ``artanh u = log1p(u) − ½·log1p(−u²)`` takes u²
    before the square root, so it is finite whenever ``c‖y‖² < 1`` — ``np.arctanh(√(u²))``
    can see u rounded up to exactly 1 in float32 — and keeps the digits of ``1 − u²``.
    """
    u = np.sqrt(u2)
    small = u < SERIES_BELOW
    u2_lo = np.minimum(u2, SERIES_BELOW**2)
    f_series = 1 + u2_lo / 3 + u2_lo**2 / 5
    h_series = 2 / 3 + 4 * u2_lo / 5
    u_hi = np.maximum(u, SERIES_BELOW)
    u2_hi = np.maximum(u2, SERIES_BELOW**2)
    artanh_u = np.log1p(u_hi) - 0.5 * np.log1p(-u2_hi)
    f_direct = artanh_u / u_hi
    h_direct = (1 / (1 - u2_hi) - f_direct) / u2_hi
    return np.where(small, f_series, f_direct), np.where(small, h_series, h_direct)


@defop(
    family="layers",
    paper=POINCARE_RESNET,
    inputs={"y": Float("...", "n"), "c": Real(0, low_open=True)},
    outputs=("v",),
    differentiable=("y",),
    check=_check_y_in_ball,
)
def poincare_logmap0(y, *, c=1.0):
    r"""Logarithmic map at the origin: a point ``y`` of the ball to the tangent vector ``log_0(y)``.

    The inverse of :func:`poincare_expmap0`: the tangent vector at 0 whose geodesic reaches
    ``y`` (its norm is half the hyperbolic distance ``d(0, y)``). With ``u = √c‖y‖ < 1``::

        log_0(y) = artanh(u) · y / u = f(u) · y,     f(u) = artanh(u)/u,  f(0) = 1

    Backward. Exactly as for ``exp_0`` (``∂u/∂y = c y/u``)::

        ȳ = f(u) ō + c h(u) ⟨ō, y⟩ y,        h(u) = f'(u)/u

    With ``artanh' u = 1/(1 − u²)``: ``f'(u) = (u/(1 − u²) − artanh u)/u² = (1/(1 − u²) − f)/u``::

        h(u) = (1/(1 − u²) − f(u)) / u²

    where ``1 − u² = 1 − c‖y‖²`` is taken from the squared norm, not from the rounded u. At
    ``u = 0``, from ``artanh u = u + u³/3 + u⁵/5 + …`` and ``1/(1 − u²) = 1 + u² + u⁴ + …``::

        f(u) = 1 + u²/3 + u⁴/5 + …         h(u) = 2/3 + 4u²/5 + …

    used below ``u = 1e-3``. Near the boundary f grows like ``artanh u`` and h like
    ``1/(1 − u²)``: at ``1 − 1e-7`` of the radius the gradient is ~5e6 and finite.

    Args:
        y: points of the ball, shape (..., n), float32 or float64, ``c‖y‖² < 1`` per row.
        c: curvature magnitude, > 0 (default 1).

    Returns:
        v: tangent vectors at the origin, same shape and dtype.

    Reference: arXiv:2303.14027 (Poincaré ResNet); arXiv:1805.09112 for the map.

    >>> import numpy as np, refimpl
    >>> refimpl.layers.poincare_logmap0(np.array([0.6, 0.0])).round(7)  # artanh(0.6) = log 2
    array([0.6931472, 0.       ])
    """
    c = float(c)  # a NumPy float64 c would promote float32 inputs
    f, h = logmap0_factors(_c_squared_norm(y, c))  # c‖y‖² < 1: the domain check, same expression
    return f * y, (y, f, h, c)


@poincare_logmap0.defvjp
def poincare_logmap0_backward(residuals, g_v):
    y, f, h, c = residuals
    g_dot_y = np.sum(g_v * y, axis=-1, keepdims=True)
    g_y = f * g_v + c * h * g_dot_y * y
    return (g_y,)
