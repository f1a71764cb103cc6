"""Poincaré-ball geometry of Poincaré ResNet: Möbius operations, exp/log maps, distance, transport."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..authoring import ArgumentError, FloatArray, Paper, RealScalar, array_namespace, op, row_norm

__all__ = [
    "mobius_add",
    "mobius_matvec",
    "mobius_scalar_mul",
    "poincare_distance",
    "poincare_expmap",
    "poincare_expmap0",
    "poincare_gyration",
    "poincare_logmap",
    "poincare_logmap0",
    "poincare_parallel_transport",
    "poincare_project",
]

SERIES_BELOW = 1e-3
"""``u = √c‖v‖`` below which ``exp_0``/``log_0`` use their Taylor series.

The direct formula for ``h(u) = f'(u)/u`` subtracts two numbers that agree to ``~u²``, so it
loses ``log10(1/u²)`` digits; but it enters the gradient multiplied by ``c‖v‖² = u²``, which
brings the error back to ``~eps`` for every ``u > 0``. What fails is ``u = 0`` (0/0) and
``u²`` underflowing to 0. The two-term series used below the switch are off by ``~0.3·u⁶``
(``3e-19`` at the switch), far below float64 rounding, so the switch is invisible.
"""

PAPER = Paper(
    "Poincaré ResNet",
    arxiv="2303.14027",
    year=2023,
    code="maxvanspengler/hyperbolic_learning_library",
)


def _c_squared_norm(x: Any, c: float) -> Any:
    """``c‖x‖²`` per row, keeping the last axis (length 1).

    The domain check and the forward use this same expression, so a point the check
    accepts has ``1 − c‖x‖² > 0`` in the very arithmetic the forward then does.
    """
    xp = array_namespace(x)
    return c * xp.sum(x * x, axis=-1, keepdims=True)


def _first_bad_row(bad: Any) -> tuple[int, str]:
    """The flat index of the first True of a per-row mask, and `` in row i`` naming it."""
    first = int(array_namespace(bad).argmax(bad.reshape(-1)))
    row = tuple(int(i) for i in np.unravel_index(first, bad.shape))
    return first, "" if not row else f" in row {row[0] if len(row) == 1 else row}"


def _require_inside_ball(name: str, x: Any, c: float) -> None:
    """Raise ``ArgumentError`` unless every row has ``c‖x‖² < 1`` (NaN rows fail too)."""
    xp = array_namespace(x)
    c = float(c)  # as in the forward: the same arithmetic, the same dtype
    c_norm2 = _c_squared_norm(x, c)[..., 0]
    outside = ~(c_norm2 < 1)
    if not bool(xp.any(outside)):
        return
    first, where = _first_bad_row(outside)
    value = np.dtype(x.dtype).type(float(c_norm2.reshape(-1)[first]))
    raise ArgumentError(
        name,
        f"points inside the Poincaré ball, c‖{name}‖² < 1 (‖{name}‖ < 1/√c = {1 / math.sqrt(c):.6g})",
        f"c‖{name}‖² = {value}{where} (rescale or project the points onto the ball first)",
    )


def tangent_length_limit(dtype: Any) -> float:
    """The largest ``√c‖p‖`` of a tangent vector that ``exp_0`` accepts in ``dtype``.

    Past ``tiny^(−1/3)/2`` (≈ 2.2e12 in float32, 1.6e102 in float64) the factor
    ``h = (sech²u − f)/u² ≈ −1/u³`` of the VJP underflows and the gradient loses its radial
    term; ``c‖p‖²`` itself overflows later still. ``tanh(u)`` has long rounded to 1 there:
    every such vector maps onto the boundary.
    """
    return float(np.finfo(dtype).tiny) ** (-1 / 3) / 2


def _require_tangent_in_range(name: str, what: str, length: Any, norm: Any, dtype: Any) -> None:
    """Raise ``ArgumentError`` unless every row's ``√c‖p‖`` (``length``) and ``‖p‖`` (``norm``)
    stay in the dtype's range (see :func:`tangent_length_limit`); both are per-row arrays."""
    xp = array_namespace(length)
    limit = tangent_length_limit(dtype)
    norm_limit = math.sqrt(float(np.finfo(dtype).max)) / 2  # ‖p‖² must not overflow (c < 1)
    bad = ~((length <= limit) & (norm <= norm_limit))
    if not bool(xp.any(bad)):
        return
    length, bad = length[..., 0], bad[..., 0]  # per row: drop the kept last axis
    first, where = _first_bad_row(bad)
    raise ArgumentError(
        name,
        f"{what} of at most {limit:.3g} in {np.dtype(dtype)} (and ‖·‖ ≤ {norm_limit:.3g}): beyond it "
        "exp_0 rounds onto the boundary and its gradient underflows",
        f"{float(length.reshape(-1)[first]):.3g}{where} (rescale, or use float64)",
    )


def _artanh_of_norm(x: Any, c: float) -> Any:
    """``artanh(√c‖x‖)`` per row (keepdims) of points inside the ball: ``√c‖log_0 x‖``."""
    u2 = _c_squared_norm(x, c)
    f, _ = logmap0_factors(u2)
    return f * np.sqrt(u2)


def _check_x_y_in_ball(arguments: Mapping[str, Any]) -> None:
    _require_inside_ball("x", arguments["x"], arguments["c"])
    _require_inside_ball("y", arguments["y"], arguments["c"])


def _check_y_in_ball(arguments: Mapping[str, Any]) -> None:
    _require_inside_ball("y", arguments["y"], arguments["c"])


@op(
    inputs={"x": FloatArray("...", "n"), "y": FloatArray("...", "n"), "c": RealScalar(0, low_open=True)},
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

    Forward, per row (the textbook form)::

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

    (the textbook VJP). Near ``y = −x`` the brackets cancel like the forward did, so the
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


def _check_expmap0(arguments: Mapping[str, Any]) -> None:
    v, c = arguments["v"], float(arguments["c"])
    norm = row_norm(v)
    _require_tangent_in_range("v", "tangent vectors with √c‖v‖", math.sqrt(c) * norm, norm, v.dtype)


@op(
    inputs={"v": FloatArray("...", "n"), "c": RealScalar(0, low_open=True)},
    outputs=("o",),
    differentiable=("v",),
    check=_check_expmap0,
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

    (the series ``f ≈ 1 − u²/3``, ``c f'/u ≈ −2c/3``, one term further). Below
    ``u = SERIES_BELOW = 1e-3`` the series are used; at ``v = 0`` the Jacobian is the
    identity (``v̄ = ō``).

    Args:
        v: tangent vectors at the origin, shape (..., n), float32 or float64, with
            ``√c‖v‖`` up to :func:`tangent_length_limit` (2.2e12 in float32, 1.6e102 in float64;
            every longer vector maps onto the boundary, and is refused).
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


@op(
    inputs={"y": FloatArray("...", "n"), "c": RealScalar(0, low_open=True)},
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


# -- helpers shared by the ops below ---------------------------------------------------------
def _row_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``⟨a, b⟩`` per row, keeping the last axis (length 1)."""
    return np.sum(a * b, axis=-1, keepdims=True)


def _points_in_ball(*names: str):
    """A domain check: every row of each named argument satisfies ``c‖·‖² < 1``."""

    def check(arguments: Mapping[str, Any]) -> None:
        for name in names:
            _require_inside_ball(name, arguments[name], arguments["c"])

    return check


def artanh_factors(u2: np.ndarray, one_minus_u2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``f(u) = artanh(u)/u`` and ``h(u) = f'(u)/u`` from ``u²`` and ``1 − u²`` given apart.

    :func:`logmap0_factors` with ``1 − u²`` supplied by the caller: for ``u = √c‖−x ⊕ y‖``
    it is known without cancellation as ``β_x β_y / D`` (see :func:`poincare_logmap`),
    while ``1 − c‖w‖²`` from the rounded ``w`` keeps only ``~eps/(1 − u²)`` of its digits
    (none at all for two antipodal points at ``1 − 1e-7`` of the radius). The direct
    branch is ``artanh u = log1p(u) − ½ log(1 − u²)``; the series are those of ``log_0``.
    """
    u = np.sqrt(u2)
    small = u < SERIES_BELOW
    u2_lo = np.minimum(u2, SERIES_BELOW**2)
    f_series = 1 + u2_lo / 3 + u2_lo**2 / 5
    h_series = 2 / 3 + 4 * u2_lo / 5
    u_hi = np.maximum(u, SERIES_BELOW)
    u2_hi = np.maximum(u2, SERIES_BELOW**2)
    one_minus_hi = np.minimum(one_minus_u2, 1 - SERIES_BELOW**2)  # the direct side of the switch
    artanh_u = np.log1p(u_hi) - 0.5 * np.log(one_minus_hi)
    f_direct = artanh_u / u_hi
    h_direct = (1 / one_minus_hi - f_direct) / u2_hi
    return np.where(small, f_series, f_direct), np.where(small, h_series, h_direct)


def _expmap0_forward(v: np.ndarray, c: float) -> tuple[np.ndarray, tuple]:
    f, h = expmap0_factors(_c_squared_norm(v, c))
    return f * v, (v, f, h, c)


def _logmap0_forward(y: np.ndarray, c: float) -> tuple[np.ndarray, tuple]:
    f, h = logmap0_factors(_c_squared_norm(y, c))
    return f * y, (y, f, h, c)


def _check_mobius_scalar_mul(arguments: Mapping[str, Any]) -> None:
    """x inside the ball; ``p = r·log_0(x)`` (``√c‖p‖ = |r|·artanh(√c‖x‖)``) in range."""
    r, x, c = arguments["r"], arguments["x"], float(arguments["c"])
    _require_inside_ball("x", x, c)
    length = np.abs(r)[..., None] * _artanh_of_norm(x, c)
    _require_tangent_in_range(
        "r", "|r|·artanh(√c‖x‖) (the length √c‖r·log_0(x)‖)", length, length / math.sqrt(c), x.dtype
    )


def _check_mobius_matvec(arguments: Mapping[str, Any]) -> None:
    """x inside the ball; ``p = M log_0(x)``, bounded by ``‖M‖_F·artanh(√c‖x‖)/√c``, in range."""
    M, x, c = arguments["M"], arguments["x"], float(arguments["c"])
    _require_inside_ball("x", x, c)
    length = row_norm(M.reshape(1, -1))[0, 0] * _artanh_of_norm(x, c)
    _require_tangent_in_range(
        "M", "‖M‖_F·artanh(√c‖x‖) (a bound on √c‖M log_0(x)‖)", length, length / math.sqrt(c), x.dtype
    )


def _check_expmap(arguments: Mapping[str, Any]) -> None:
    """x inside the ball; ``s = v/β_x`` in range."""
    x, v, c = arguments["x"], arguments["v"], float(arguments["c"])
    _require_inside_ball("x", x, c)
    norm = row_norm(v) / (1 - _c_squared_norm(x, c))
    what = "tangent vectors with √c‖v‖/(1 − c‖x‖²)"
    _require_tangent_in_range("v", what, math.sqrt(c) * norm, norm, v.dtype)


# -- Möbius scalar multiplication and matrix-vector product ---------------------------------
@op(
    inputs={"r": FloatArray("..."), "x": FloatArray("...", "n"), "c": RealScalar(0, low_open=True)},
    outputs=("o",),
    differentiable=("r", "x"),
    check=_check_mobius_scalar_mul,
)
def mobius_scalar_mul(r, x, *, c=1.0):
    r"""Möbius scalar multiplication ``r ⊗ x``: walk ``r`` times as far from the origin.

    The point on the geodesic from 0 through ``x`` whose hyperbolic distance from 0 is
    ``r`` times that of ``x`` (its reflection through 0 for ``r < 0``). With
    ``u = √c‖x‖``::

        r ⊗ x = tanh(r · artanh(u)) · x / u,        r ⊗ 0 = 0

    Since ``√c‖log_0(x)‖ = artanh(u)`` and ``tanh`` is odd, this is
    ``r ⊗ x = exp_0(r · log_0(x))``, which is how it is evaluated: ``w = F(u) x`` with
    ``F(u) = artanh(u)/u``, ``p = r w``, ``o = T(√c‖p‖) p`` with ``T(s) = tanh(s)/s`` — both
    factors with their series near 0, so ``x = 0`` needs no special case (``o = 0``,
    Jacobian ``r·I``). Laws: ``1 ⊗ x = x``, ``(r₁ + r₂) ⊗ x = (r₁ ⊗ x) ⊕ (r₂ ⊗ x)``,
    ``r₁ ⊗ (r₂ ⊗ x) = (r₁r₂) ⊗ x``; as c → 0, ``r ⊗ x → r x``.

    Shape convention: one scalar per point. ``r`` has the batch shape of ``x``
    (``x.shape[:-1]``; a 0-d array for a single point). Nothing is broadcast: for one
    ``r`` for all points pass ``numpy.full(x.shape[:-1], r)``.

    Backward, step by step along ``w → p → o`` (the VJPs of :func:`poincare_expmap0` and
    :func:`poincare_logmap0`, whose ``f, h`` are ``T, F`` and their ``f'(u)/u``)::

        p̄ = T ō + c h_T ⟨ō, p⟩ p                  (o = T(√c‖p‖) p)
        r̄ = ⟨p̄, w⟩,    w̄ = r p̄                    (p = r w)
        x̄ = F w̄ + c h_F ⟨w̄, x⟩ x                  (w = F(√c‖x‖) x)

    Args:
        r: scalars, shape ``x.shape[:-1]``, the dtype of x; ``|r|·artanh(√c‖x‖)`` up to
            :func:`tangent_length_limit`.
        x: points of the ball, shape (..., n), ``c‖x‖² < 1`` per row.
        c: curvature magnitude, > 0 (default 1).

    Returns:
        o: ``r ⊗ x``, shape and dtype of x. For ``|r|·artanh(√c‖x‖) ≳ 19`` (float64) it
        rounds onto the boundary, like :func:`poincare_expmap0`.

    Reference: arXiv:2303.14027 (Poincaré ResNet); Ganea, Bécigneul and Hofmann,
    *Hyperbolic Neural Networks*, arXiv:1805.09112, eq. (24).

    On a line ``r ⊗ x = tanh(r artanh(x))``; with ``x = 0.6`` (``artanh 0.6 = log 2``),
    ``2 ⊗ x = tanh(log 4) = 15/17``:

    >>> import numpy as np, refimpl
    >>> refimpl.layers.mobius_scalar_mul(np.array([2.0]), np.array([[0.6]])) * 17
    array([[15.]])
    """
    c = float(c)
    w, log_residuals = _logmap0_forward(x, c)
    p = r[..., None] * w
    o, exp_residuals = _expmap0_forward(p, c)
    return o, (r, w, log_residuals, exp_residuals)


@mobius_scalar_mul.defvjp
def mobius_scalar_mul_backward(residuals, g_o):
    r, w, log_residuals, exp_residuals = residuals
    (g_p,) = poincare_expmap0_backward(exp_residuals, g_o)
    g_r = np.sum(g_p * w, axis=-1)
    (g_x,) = poincare_logmap0_backward(log_residuals, r[..., None] * g_p)
    return g_r, g_x


@op(
    inputs={"M": FloatArray("m", "n"), "x": FloatArray("...", "n"), "c": RealScalar(0, low_open=True)},
    outputs=("o",),
    differentiable=("M", "x"),
    check=_check_mobius_matvec,
)
def mobius_matvec(M, x, *, c=1.0):
    r"""Möbius matrix-vector product ``M ⊗ x``: a linear map carried onto the ball.

    Map ``x`` to the tangent space at 0, apply ``M`` there, map back. With ``u = √c‖x‖``::

        M ⊗ x = tanh((‖Mx‖/‖x‖) · artanh(u)) · Mx / (√c‖Mx‖),      Mx = 0 ↦ 0

    which is ``exp_0(M log_0(x))`` (``√c‖M log_0 x‖ = (artanh(u)/u)·√c‖Mx‖``), the form
    evaluated here: ``w = F(u) x`` (``F(u) = artanh(u)/u``), ``p = M w``,
    ``o = T(√c‖p‖) p`` (``T(s) = tanh(s)/s``). Both factors have their series near 0, so
    ``x = 0`` and ``Mx = 0`` need no special case. ``I ⊗ x = x``,
    ``(M N) ⊗ x = M ⊗ (N ⊗ x)``, ``(r I) ⊗ x = r ⊗ x``; as c → 0, ``M ⊗ x → M x``.

    Backward, step by step (rows of x are independent; M is shared)::

        p̄ = T ō + c h_T ⟨ō, p⟩ p                  (o = T(√c‖p‖) p)
        M̄ = Σ_rows p̄ wᵀ,    w̄ = Mᵀ p̄             (p = M w)
        x̄ = F w̄ + c h_F ⟨w̄, x⟩ x                  (w = F(√c‖x‖) x)

    Args:
        M: matrix, shape (m, n); ``‖M‖_F·artanh(√c‖x‖)`` up to :func:`tangent_length_limit`.
        x: points of the ball, shape (..., n), ``c‖x‖² < 1`` per row.
        c: curvature magnitude, > 0 (default 1).

    Returns:
        o: ``M ⊗ x``, shape (..., m), the dtype of x.

    Reference: arXiv:2303.14027 (Poincaré ResNet); arXiv:1805.09112, eq. (27).

    >>> import numpy as np, refimpl
    >>> x = np.array([0.6, 0.0])
    >>> refimpl.layers.mobius_matvec(np.eye(2), x)  # the identity
    array([0.6, 0. ])
    >>> refimpl.layers.mobius_matvec(np.array([[0.0, 2.0], [2.0, 0.0]]), x) * 17  # swap, 2 ⊗
    array([ 0., 15.])
    """
    c = float(c)
    w, log_residuals = _logmap0_forward(x, c)
    p = w @ M.T
    o, exp_residuals = _expmap0_forward(p, c)
    return o, (M, w, log_residuals, exp_residuals)


@mobius_matvec.defvjp
def mobius_matvec_backward(residuals, g_o):
    M, w, log_residuals, exp_residuals = residuals
    (g_p,) = poincare_expmap0_backward(exp_residuals, g_o)
    g_M = g_p.reshape(-1, M.shape[0]).T @ w.reshape(-1, M.shape[1])
    (g_x,) = poincare_logmap0_backward(log_residuals, g_p @ M)
    return g_M, g_x


# -- exp and log maps at any point, distance ---------------------------------------------------
@op(
    inputs={"x": FloatArray("...", "n"), "v": FloatArray("...", "n"), "c": RealScalar(0, low_open=True)},
    outputs=("o",),
    differentiable=("x", "v"),
    check=_check_expmap,
)
def poincare_expmap(x, v, *, c=1.0):
    r"""Exponential map at ``x``: follow the geodesic from ``x`` with initial velocity ``v``.

    With the conformal factor ``λ_x = 2/(1 − c‖x‖²) = 2/β_x``::

        exp_x(v) = x ⊕ tanh(√c λ_x‖v‖/2) · v/(√c‖v‖) = x ⊕ exp_0(v/β_x)

    (the second term is ``exp_0`` of ``s = (λ_x/2) v = v/β_x``: ``tanh(√c‖s‖)·s/(√c‖s‖)``).
    It is evaluated as written on the right: ``s = v/β_x``, ``e = exp_0(s)``,
    ``o = x ⊕ e``; at ``x = 0`` it is :func:`poincare_expmap0`, and ``v = 0`` gives ``x``.
    As c → 0, ``exp_x(v) → x + v``. No projection is applied (the authors' library
    projects after every map; use :func:`poincare_project`); for ``√c‖v‖/β_x ≳ 19``
    (float64) ``e`` rounds onto the boundary.

    Backward, composing the VJPs of :func:`mobius_add` and :func:`poincare_expmap0`::

        (x̄₁, ē) = VJP of x ⊕ e at ō
        s̄ = T ē + c h_T ⟨ē, s⟩ s                    (e = T(√c‖s‖) s)
        v̄ = s̄ / β_x                                 (s = v/β_x)
        β̄ = −⟨s̄, v⟩/β_x² = −⟨s̄, s⟩/β_x,   ∂β_x/∂x = −2c x
        x̄ = x̄₁ + 2c ⟨s̄, s⟩/β_x · x

    Args:
        x: base points of the ball, shape (..., n), ``c‖x‖² < 1`` per row.
        v: tangent vectors at x, the same shape, ``√c‖v‖/β_x`` up to :func:`tangent_length_limit`.
        c: curvature magnitude, > 0 (default 1).

    Returns:
        o: ``exp_x(v)``, same shape and dtype.

    Reference: arXiv:2303.14027 (Poincaré ResNet); arXiv:1805.09112, Lemma 2.

    >>> import numpy as np, refimpl
    >>> x, v = np.array([0.5]), np.array([np.log(3.0) * 0.75])  # d(x, o) = λ_x‖v‖ = 2 log 3
    >>> (refimpl.layers.poincare_expmap(x, v) * 14).round(12)  # 0.5 ⊕ tanh(log 3) = 0.5 ⊕ 0.8
    array([13.])
    """
    c = float(c)
    beta_x = 1 - _c_squared_norm(x, c)
    s = v / beta_x
    e, exp_residuals = _expmap0_forward(s, c)
    o, add_residuals = mobius_add.forward(x, e, c=c)
    return o, (x, s, beta_x, c, exp_residuals, add_residuals)


@poincare_expmap.defvjp
def poincare_expmap_backward(residuals, g_o):
    x, s, beta_x, c, exp_residuals, add_residuals = residuals
    g_x, g_e = mobius_add_backward(add_residuals, g_o)
    (g_s,) = poincare_expmap0_backward(exp_residuals, g_e)
    g_v = g_s / beta_x
    g_x = g_x + 2 * c * _row_dot(g_s, s) / beta_x * x
    return g_x, g_v


def _minus_x_plus_y_norms(x: np.ndarray, y: np.ndarray, c: float):
    """``β_x``, ``β_y``, ``q = c‖y − x‖²`` and ``c‖−x ⊕ y‖² = q/D``, ``1 − c‖−x ⊕ y‖² = β_xβ_y/D``.

    With ``w = −x ⊕ y`` the conformal identity of :func:`mobius_add`
    (``1 − c‖a ⊕ b‖² = β_a β_b / D``) and ``D = β_x β_y + q`` (its stable denominator,
    with ``σ = y − x``) give both ``u² = c‖w‖² = q/D`` and ``1 − u² = β_xβ_y/D`` as
    quotients of non-negative numbers: no cancellation, and ``u² < 1`` always.
    """
    beta_x = 1 - _c_squared_norm(x, c)
    beta_y = 1 - _c_squared_norm(y, c)
    q = _c_squared_norm(y - x, c)
    denominator = beta_x * beta_y + q
    return beta_x, beta_y, q, q / denominator, beta_x * beta_y / denominator


@op(
    inputs={"x": FloatArray("...", "n"), "y": FloatArray("...", "n"), "c": RealScalar(0, low_open=True)},
    outputs=("v",),
    differentiable=("x", "y"),
    check=_points_in_ball("x", "y"),
)
def poincare_logmap(x, y, *, c=1.0):
    r"""Logarithmic map at ``x``: the tangent vector at ``x`` whose geodesic reaches ``y``.

    The inverse of :func:`poincare_expmap`. With ``w = −x ⊕ y``, ``u = √c‖w‖`` and
    ``λ_x = 2/β_x``::

        log_x(y) = (2/(√c λ_x)) · artanh(u) · w/‖w‖ = β_x · F(u) · w,   F(u) = artanh(u)/u

    i.e. ``β_x · log_0(−x ⊕ y)``; its Riemannian norm ``λ_x‖log_x y‖`` is ``d(x, y)``.
    Evaluation: ``w`` by the stable :func:`mobius_add`; ``u²`` and ``1 − u²`` not from the
    rounded ``w`` but from the identity ``1 − c‖−x ⊕ y‖² = β_xβ_y/D`` (``D = β_xβ_y + q``,
    ``q = c‖y − x‖²``): ``u² = q/D``, ``1 − u² = β_xβ_y/D`` (:func:`artanh_factors`). At
    ``1 − 1e-7`` of the radius, for nearly antipodal points, ``1 − c‖w‖²`` taken from
    ``w`` would have lost every digit. ``y = x`` gives 0 (series); as c → 0,
    ``log_x(y) → y − x``.

    Backward, composing (``l = F w``, ``o = β_x l``)::

        l̄ = β_x ō,    β̄ = ⟨ō, l⟩                   (o = β_x l)
        w̄ = F l̄ + c h_F ⟨l̄, w⟩ w                   (l = log_0(w), h_F = F'(u)/u)
        (m̄, ȳ) = VJP of m ⊕ y at w̄,  m = −x
        x̄ = −m̄ − 2c β̄ x                            (∂β_x/∂x = −2c x)

    with ``h_F = (1/(1 − u²) − F)/u²`` taken from the same accurate ``1 − u²``.

    Args:
        x: base points, shape (..., n), ``c‖x‖² < 1`` per row.
        y: target points, the same shape, ``c‖y‖² < 1`` per row.
        c: curvature magnitude, > 0 (default 1).

    Returns:
        v: ``log_x(y)``, same shape and dtype.

    Reference: arXiv:2303.14027 (Poincaré ResNet); arXiv:1805.09112, Lemma 2.

    >>> import numpy as np, refimpl
    >>> v = refimpl.layers.poincare_logmap(np.array([0.5]), np.array([13 / 14]))
    >>> (v / np.log(3.0)).round(12)  # the inverse of the exp_x example: v = 0.75 log 3
    array([0.75])
    """
    c = float(c)
    beta_x, _, _, u2, one_minus_u2 = _minus_x_plus_y_norms(x, y, c)
    w, add_residuals = mobius_add.forward(-x, y, c=c)
    f, h = artanh_factors(u2, one_minus_u2)
    log_w = f * w
    return beta_x * log_w, (x, beta_x, log_w, (w, f, h, c), add_residuals, c)


@poincare_logmap.defvjp
def poincare_logmap_backward(residuals, g_v):
    x, beta_x, log_w, log_residuals, add_residuals, c = residuals
    g_beta = _row_dot(g_v, log_w)
    (g_w,) = poincare_logmap0_backward(log_residuals, beta_x * g_v)
    g_minus_x, g_y = mobius_add_backward(add_residuals, g_w)
    g_x = -g_minus_x - 2 * c * g_beta * x
    return g_x, g_y


@op(
    inputs={"x": FloatArray("...", "n"), "y": FloatArray("...", "n"), "c": RealScalar(0, low_open=True)},
    outputs=("d",),
    differentiable=("x", "y"),
    check=_points_in_ball("x", "y"),
)
def poincare_distance(x, y, *, c=1.0):
    r"""Geodesic distance between two points of the Poincaré ball.

    Two equal forms (the test suite checks it)::

        d(x, y) = (2/√c) · artanh(√c‖−x ⊕ y‖)
                = (1/√c) · arcosh(1 + δ),       δ = 2c‖x − y‖² / ((1 − c‖x‖²)(1 − c‖y‖²))

    They agree because ``u² = c‖−x ⊕ y‖² = q/(β_xβ_y + q)`` with ``q = c‖x − y‖²``
    (see :func:`poincare_logmap`), so ``(1 + u²)/(1 − u²) = 1 + 2q/(β_xβ_y) = 1 + δ`` and
    ``2 artanh u = arcosh((1 + u²)/(1 − u²))``. The second form is evaluated, as
    ``arcosh(1 + δ) = log1p(δ + √(δ(δ + 2)))``: no Möbius addition, no cancellation (β
    and ``‖x − y‖²`` are computed directly), accurate for ``y → x`` (δ → 0) and at the
    boundary (δ → ∞). Symmetric; ``d(x, x) = 0``; as c → 0, ``d → 2‖x − y‖``.

    Backward. With ``A(δ) = arcosh(1 + δ)``, ``A'(δ) = 1/√(δ(δ + 2))``, and
    ``∂δ/∂x = (4c/(β_xβ_y))·[(x − y) + (q/β_x) x]`` (from ``∂q/∂x = 2c(x − y)`` and
    ``∂β_x/∂x = −2c x``). Since ``δ(δ + 2) = 4q(q + β_xβ_y)/(β_xβ_y)²``, the product
    ``A'(δ)·4c/(β_xβ_y) = 2c/√(q·D)`` with ``D = β_xβ_y + q``, and with
    ``√q = √c‖x − y‖``::

        x̄ = d̄ · (2/√D) · [ (x − y)/‖x − y‖ + c‖x − y‖ x/β_x ]
        ȳ = d̄ · (2/√D) · [ (y − x)/‖x − y‖ + c‖x − y‖ y/β_y ]

    Every term is bounded as ``y → x``. At ``y = x`` exactly d has a cone point (like
    ``‖x − y‖``); the unit vector is then taken as 0, the minimal-norm subgradient.

    Args:
        x, y: points of the ball, shape (..., n) each, ``c‖·‖² < 1`` per row.
        c: curvature magnitude, > 0 (default 1).

    Returns:
        d: distances, shape ``x.shape[:-1]`` (0-d for single points), the dtype of x.

    Reference: arXiv:2303.14027 (Poincaré ResNet); arXiv:1805.09112, eq. (5).

    >>> import numpy as np, refimpl
    >>> refimpl.layers.poincare_distance(np.zeros(2), np.array([0.6, 0.0]))  # 2 artanh 0.6
    array(1.38629436)
    """
    c = float(c)
    beta_x = 1 - _c_squared_norm(x, c)
    beta_y = 1 - _c_squared_norm(y, c)
    x_minus_y = x - y
    q = _c_squared_norm(x_minus_y, c)
    delta = 2 * q / (beta_x * beta_y)
    d = np.log1p(delta + np.sqrt(delta * (delta + 2))) / math.sqrt(c)
    return d[..., 0], (x, y, x_minus_y, beta_x, beta_y, q, c)


@poincare_distance.defvjp
def poincare_distance_backward(residuals, g_d):
    x, y, x_minus_y, beta_x, beta_y, q, c = residuals
    distance_xy = np.sqrt(q / c)  # ‖x − y‖
    unit = x_minus_y / np.where(distance_xy > 0, distance_xy, 1)  # 0 at y = x: a subgradient
    scale = g_d[..., None] * 2 / np.sqrt(beta_x * beta_y + q)
    g_x = scale * (unit + c * distance_xy * x / beta_x)
    g_y = scale * (-unit + c * distance_xy * y / beta_y)
    return g_x, g_y


# -- gyration and parallel transport ------------------------------------------------------------
def _gyration_forward(a, b, v, c):
    ab, av, bv = _row_dot(a, b), _row_dot(a, v), _row_dot(b, v)
    a2, b2 = _c_squared_norm(a, 1.0), _c_squared_norm(b, 1.0)
    c2 = c * c
    big_a = -c2 * av * b2 + c * bv + 2 * c2 * ab * bv
    big_b = -c2 * bv * a2 - c * av
    # D = 1 + 2c⟨a,b⟩ + c²‖a‖²‖b‖² in the cancellation-free form of mobius_add
    denominator = (1 - c * a2) * (1 - c * b2) + _c_squared_norm(a + b, c)
    o = v + 2 * (big_a * a + big_b * b) / denominator
    return o, (a, b, v, ab, av, bv, a2, b2, big_a, big_b, denominator, c)


def _gyration_backward(residuals, g_o):
    a, b, v, ab, av, bv, a2, b2, big_a, big_b, denominator, c = residuals
    c2 = c * c
    s = 2 / denominator
    g_dot_a, g_dot_b = _row_dot(g_o, a), _row_dot(g_o, b)
    g_big_a, g_big_b = s * g_dot_a, s * g_dot_b
    g_denominator = -(big_a * g_dot_a + big_b * g_dot_b) * s / denominator
    g_av = -c2 * b2 * g_big_a - c * g_big_b
    g_bv = (c + 2 * c2 * ab) * g_big_a - c2 * a2 * g_big_b
    g_ab = 2 * c2 * bv * g_big_a + 2 * c * g_denominator
    g_a2 = -c2 * bv * g_big_b + c2 * b2 * g_denominator
    g_b2 = -c2 * av * g_big_a + c2 * a2 * g_denominator
    g_a = s * big_a * g_o + g_av * v + g_ab * b + 2 * g_a2 * a
    g_b = s * big_b * g_o + g_bv * v + g_ab * a + 2 * g_b2 * b
    g_v = g_o + g_av * a + g_bv * b
    return g_a, g_b, g_v


@op(
    inputs={
        "a": FloatArray("...", "n"),
        "b": FloatArray("...", "n"),
        "v": FloatArray("...", "n"),
        "c": RealScalar(0, low_open=True),
    },
    outputs=("o",),
    differentiable=("a", "b", "v"),
    check=_points_in_ball("a", "b"),
)
def poincare_gyration(a, b, v, *, c=1.0):
    r"""Gyration ``gyr[a, b] v``: the rotation by which Möbius addition fails to associate.

    Defined by ``a ⊕ (b ⊕ v) = (a ⊕ b) ⊕ gyr[a, b] v``, i.e. (left cancellation)::

        gyr[a, b] v = −(a ⊕ b) ⊕ (a ⊕ (b ⊕ v))

    For fixed a, b it is a linear isometry (a rotation) of Rⁿ, so it applies to any
    vector ``v`` (tangent vectors included), with the closed form (Ungar; the authors'
    library uses the same)::

        A = −c²⟨a, v⟩‖b‖² + c⟨b, v⟩ + 2c²⟨a, b⟩⟨b, v⟩
        B = −c²⟨b, v⟩‖a‖² − c⟨a, v⟩
        D = 1 + 2c⟨a, b⟩ + c²‖a‖²‖b‖²  (= β_aβ_b + c‖a + b‖², evaluated so)
        gyr[a, b] v = v + 2(A a + B b)/D

    The tests check it against the composition of Möbius additions. ``gyr[0, b] =
    gyr[a, 0] = I``; ``gyr[a, b]`` preserves ⟨·, ·⟩; ``gyr[a, b]⁻¹ = gyr[b, a]``.

    Backward. ``o = v + s(A a + B b)``, ``s = 2/D``. With ``P = ⟨ō, a⟩``, ``Q = ⟨ō, b⟩``:
    ``Ā = sP``, ``B̄ = sQ``, ``D̄ = −s(A P + B Q)/D``; then through the five scalars
    (``⟨a,v⟩, ⟨b,v⟩, ⟨a,b⟩, ‖a‖², ‖b‖²``)::

        ⟨a,v⟩̄ = −c²‖b‖² Ā − c B̄
        ⟨b,v⟩̄ = (c + 2c²⟨a,b⟩) Ā − c²‖a‖² B̄
        ⟨a,b⟩̄ = 2c²⟨b,v⟩ Ā + 2c D̄
        ‖a‖²̄ = −c²⟨b,v⟩ B̄ + c²‖b‖² D̄
        ‖b‖²̄ = −c²⟨a,v⟩ Ā + c²‖a‖² D̄
        ā = sA ō + ⟨a,v⟩̄ v + ⟨a,b⟩̄ b + 2‖a‖²̄ a
        b̄ = sB ō + ⟨b,v⟩̄ v + ⟨a,b⟩̄ a + 2‖b‖²̄ b
        v̄ = ō + ⟨a,v⟩̄ a + ⟨b,v⟩̄ b

    Args:
        a, b: points of the ball, shape (..., n), ``c‖·‖² < 1`` per row.
        v: vectors, the same shape (any size).
        c: curvature magnitude, > 0 (default 1).

    Returns:
        o: ``gyr[a, b] v``, same shape and dtype.

    Reference: arXiv:2303.14027 (Poincaré ResNet; the library's ``gyration``); A. A.
    Ungar, *A Gyrovector Space Approach to Hyperbolic Geometry* (2008).

    >>> import numpy as np, refimpl
    >>> v = np.array([0.3, -0.2])
    >>> refimpl.layers.poincare_gyration(np.zeros(2), np.array([0.5, 0.1]), v)  # gyr[0, b] = I
    array([ 0.3, -0.2])
    """
    return _gyration_forward(a, b, v, float(c))


@poincare_gyration.defvjp
def poincare_gyration_backward(residuals, g_o):
    return _gyration_backward(residuals, g_o)


@op(
    inputs={
        "x": FloatArray("...", "n"),
        "y": FloatArray("...", "n"),
        "v": FloatArray("...", "n"),
        "c": RealScalar(0, low_open=True),
    },
    outputs=("o",),
    differentiable=("x", "y", "v"),
    check=_points_in_ball("x", "y"),
)
def poincare_parallel_transport(x, y, v, *, c=1.0):
    r"""Parallel transport of a tangent vector ``v`` from ``x`` to ``y`` along the geodesic.

    Transport is the gyration that carries the frame at x to the frame at y, rescaled by
    the conformal factors so that the Riemannian norm ``λ‖·‖`` is kept::

        PT_{x→y}(v) = gyr[y, −x] v · λ_x/λ_y = gyr[y, −x] v · β_y/β_x

    (``λ = 2/β``, ``β = 1 − c‖·‖²``). ``λ_y‖PT v‖ = λ_x‖v‖``; ``PT_{x→x} = I``;
    ``PT_{0→y}(v) = β_y v`` (``gyr[y, 0] = I``); ``PT_{y→x}∘PT_{x→y} = I``.

    Backward, with ``g = gyr[y, −x] v`` and ``k = β_y/β_x``::

        ḡ = k ō,    k̄ = ⟨ō, g⟩                      (o = k g)
        (ȳ₁, m̄, v̄) = VJP of gyr[y, m] v at ḡ, m = −x   (see :func:`poincare_gyration`)
        β̄_y = k̄/β_x,    β̄_x = −k̄ β_y/β_x²
        x̄ = −m̄ − 2c β̄_x x,    ȳ = ȳ₁ − 2c β̄_y y    (∂β/∂x = −2c x)

    Args:
        x: start points, shape (..., n), ``c‖x‖² < 1`` per row.
        y: end points, the same shape, ``c‖y‖² < 1`` per row.
        v: tangent vectors at x, the same shape.
        c: curvature magnitude, > 0 (default 1).

    Returns:
        o: tangent vectors at y, same shape and dtype.

    Reference: arXiv:2303.14027 (Poincaré ResNet; the library's ``transp``); Ungar (2008).

    >>> import numpy as np, refimpl
    >>> refimpl.layers.poincare_parallel_transport(np.zeros(1), np.array([0.5]), np.array([1.0]))
    array([0.75])
    """
    c = float(c)
    beta_x = 1 - _c_squared_norm(x, c)
    beta_y = 1 - _c_squared_norm(y, c)
    g, gyration_residuals = _gyration_forward(y, -x, v, c)
    ratio = beta_y / beta_x
    return ratio * g, (x, y, g, beta_x, beta_y, ratio, gyration_residuals, c)


@poincare_parallel_transport.defvjp
def poincare_parallel_transport_backward(residuals, g_o):
    x, y, g, beta_x, beta_y, ratio, gyration_residuals, c = residuals
    g_ratio = _row_dot(g_o, g)
    g_y, g_minus_x, g_v = _gyration_backward(gyration_residuals, ratio * g_o)
    g_beta_y = g_ratio / beta_x
    g_beta_x = -g_ratio * ratio / beta_x
    g_x = -g_minus_x - 2 * c * g_beta_x * x
    g_y = g_y - 2 * c * g_beta_y * y
    return g_x, g_y, g_v


# -- projection ----------------------------------------------------------------------------------
PROJECT_EPS = {np.dtype(np.float32): 4e-3, np.dtype(np.float64): 1e-5}
"""The library's default margins: project onto the ball of radius ``(1 − eps)/√c``."""


@op(
    inputs={
        "x": FloatArray("...", "n"),
        "c": RealScalar(0, low_open=True),
        "eps": RealScalar(0, 1, high_open=True, optional=True),
    },
    outputs=("o",),
)
def poincare_project(x, *, c=1.0, eps=None):
    r"""Project points onto the closed ball of radius ``(1 − eps)/√c`` (a numerical guard).

    Rows with ``‖x‖ > (1 − eps)/√c`` are scaled back to that norm along their direction;
    the others are returned unchanged (bit for bit). Poincaré ResNet's library applies it
    after every ``exp`` map, so that ``1 − c‖x‖²`` stays ≳ ``2 eps`` in the working dtype::

        o = x · min(1, ((1 − eps)/√c) / ‖x‖)

    ``eps=None`` (the default) selects the library's margin for the dtype: ``4e-3`` for
    float32, ``1e-5`` for float64 (``PROJECT_EPS``).
    Not differentiable here (a clamp, used as a guard; it has no VJP here).

    Args:
        x: points (any finite values), shape (..., n).
        c: curvature magnitude, > 0 (default 1).
        eps: margin as a fraction of the radius, ``0 <= eps < 1``; None (default): the dtype's.

    Returns:
        o: projected points, same shape and dtype.

    Reference: arXiv:2303.14027 (Poincaré ResNet); maxvanspengler/hyperbolic_learning_library
    ``project`` (eps 4e-3 float32, 1e-5 float64).

    >>> import numpy as np, refimpl
    >>> refimpl.layers.poincare_project(np.array([[3.0, 4.0], [0.3, 0.4]]), eps=0.5)
    array([[0.3, 0.4],
           [0.3, 0.4]])
    """
    c = float(c)
    eps = PROJECT_EPS[np.dtype(x.dtype)] if eps is None else float(eps)
    max_norm = (1 - eps) / math.sqrt(c)
    norm = row_norm(x)  # ‖x‖ even where ‖x‖² overflows (x = 1e30 in float32)
    outside = norm > max_norm
    scale = max_norm / np.where(outside, norm, 1)
    return np.where(outside, x * scale, x), None
