"""Poincaré ResNet layers: the HNN++ fully connected layer, β-concatenation, convolution,
tangent ReLU and the residual connection (Poincaré ResNet; HNN++)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    FloatArray,
    InputError,
    IntScalar,
    OneOf,
    RealScalar,
    known_deviation,
    op,
    row_norm,
)
from .poincare import (  # PAPER: the paper of this module's ops (read by @op)
    PAPER,  # noqa: F401
    _c_squared_norm,
    _require_inside_ball,
    expmap0_factors,
    logmap0_factors,
    mobius_add,
)

__all__ = [
    "beta_concat_ratio",
    "poincare_beta_concat",
    "poincare_conv2d",
    "poincare_fc",
    "poincare_identity_init",
    "poincare_relu",
    "poincare_residual",
]
EXPORTS = ("poincare_identity_init",)  # a helper exported by refimpl.layers beside the ops

HNNPP = "Shimizu, Mukuta and Harada, *Hyperbolic Neural Networks++*, arXiv:2006.08210"


def _below_one(dtype: Any) -> float:
    """The largest number below 1 in ``dtype`` (a cap on ``c‖x‖²`` that no checked input reaches)."""
    dtype = np.dtype(dtype)
    return float(np.nextafter(dtype.type(1), dtype.type(0)))


def _sum_last(a: np.ndarray) -> np.ndarray:
    return np.sum(a, axis=-1, keepdims=True)


# -- the fully connected layer ------------------------------------------------------------
def _check_fc(arguments: Mapping[str, Any]) -> None:
    _require_inside_ball("x", arguments["x"], arguments["c"])


@op(
    inputs={
        "x": FloatArray("...", "n"),
        "Z": FloatArray("n", "m"),
        "r": FloatArray("m"),
        "c": RealScalar(0, low_open=True),
    },
    outputs=("y",),
    differentiable=("x", "Z", "r"),
    check=_check_fc,
)
def poincare_fc(x, Z, r, *, c=1.0):
    r"""The HNN++ Poincaré fully connected layer: hyperplane distances, turned back into a point.

    A Euclidean linear layer ``y_k = ⟨x, w_k⟩ − b_k`` computes (scaled) signed distances of x
    to m hyperplanes. HNN++ does the same on the ball: output coordinate k is built from the
    signed hyperbolic distance ``v_k`` of x to the Poincaré hyperplane with orientation
    ``z_k`` (column k of Z) and offset ``r_k``, and the m distances are then mapped to the
    point y whose distances to the coordinate hyperplanes through the origin are exactly
    ``v`` (so stacking layers composes "distances to hyperplanes" like an MLP). Poincaré
    ResNet builds every convolution from it (:func:`poincare_conv2d`).

    Forward, per row x (``λ = 2/(1 − c‖x‖²)``, ``ζ_k = ‖z_k‖``, ``p_k = ⟨x, z_k⟩/ζ_k``,
    ``C_k = cosh(2√c r_k)``, ``S_k = sinh(2√c r_k)``)::

        u_k = √c λ p_k C_k − (λ − 1) S_k
        v_k = (2 ζ_k/√c) · asinh(u_k)
        w_k = sinh(√c v_k)/√c
        y   = w / (1 + sqrt(1 + c‖w‖²))

    (HNN++'s eq. for ``v_k``; ``u_k`` multiplies ``a_k = ⟨x, z_k⟩`` by
    ``√c λ/ζ_k``; with ``p_k`` the forward and backward never divide by ``ζ_k`` again).

    Stable evaluation. ``λ − 1 = (1 + c‖x‖²)/(1 − c‖x‖²)`` is formed from ``β = 1 − c‖x‖²``
    (no cancellation near the boundary). ``sinh(√c v)`` overflows for ``√c v > 710``
    (float64) or ``89`` (float32), which a point near the boundary with ``ζ ≳ 5`` reaches
    easily; y itself is bounded, so it is computed with every exponential scaled by
    ``e^{−M}``, ``M = max_k |s_k|``, ``s = √c v``::

        t_k = e^{−M} sinh(s_k) = sign(s_k) · e^{|s_k| − M} · (−expm1(−2|s_k|))/2     (|t_k| ≤ ½)
        Q   = sqrt(e^{−2M} + ‖t‖²)            (= e^{−M} q, q = sqrt(1 + c‖w‖²))
        √c y = t / (e^{−M} + Q)               (= √c w/(1 + q), numerator and denominator × e^{−M})

    Nothing overflows, and ``expm1`` keeps the digits of ``sinh s`` for small s. For a very
    large ``√c‖w‖`` (beyond ~1e16 in float64, ~1e7 in float32) y rounds onto the boundary,
    as ``poincare_expmap0`` does; the authors' library projects every FC output onto the
    ball of radius ``(1 − eps)/√c``, this op does not (project where the next op needs it).

    Guard for ``ζ_k = 0``. ``v_k`` is continuous at ``z_k = 0`` (``|u_k|`` stays bounded,
    ``v_k → 0``) but not differentiable there. Where ``ζ_k = 0`` exactly, ``ζ_k`` is replaced
    by 1 in the division only, so ``p_k = 0`` and ``v_k = 0``; every ``ζ_k > 0``, however
    small, uses the exact formula (the forms below never divide by ``ζ_k``, so nothing
    overflows). This equals the library's ``‖z_k‖.clamp_min(1e-15)`` for ``ζ_k ≥ 1e-15``, and
    at ``z_k = 0`` gives the gradient its autograd gives, ``z̄_k = ā_k x``. That matters for
    the identity initialization, whose extra columns are zero.

    Backward (the standard VJP, with ``p_k`` in place of ``a_k/ζ_k``). Let ``ō`` be the
    cotangent of y. Since ``y = w/D``, ``D = 1 + q``, ``∂q/∂w = c w/q``::

        w̄ = ō/D − c⟨ō, w⟩ w/(D² q) = ō/D − c⟨ō, y⟩ y/q           (w = D y)
        v̄_k = w̄_k cosh(√c v_k)                                   (dw_k/dv_k = cosh(√c v_k))
        ū_k = v̄_k (2ζ_k/√c) / sqrt(1 + u_k²)                      (asinh' = 1/sqrt(1 + u²))

    In the scaled variables ``1/D = e^{−M}/(e^{−M} + Q)``, ``1/q = e^{−M}/Q`` and
    ``e^{−M} cosh s_k = e^{|s_k| − M}(1 + e^{−2|s_k|})/2``, so ``v̄`` is a product of bounded
    factors. ``u`` depends on ``a_k = ⟨x, z_k⟩`` (through ``√c λ a_k C_k/ζ_k``), on λ, on
    ``r_k`` and on ``ζ_k``; v also on ``ζ_k`` directly::

        ā_k = ū_k √c λ C_k/ζ_k = v̄_k · 2 λ C_k / sqrt(1 + u_k²)           (ζ_k cancels)
        λ̄   = Σ_k ū_k (√c p_k C_k − S_k)
        r̄_k = Σ_rows ū_k (2c λ p_k S_k − 2√c (λ − 1) C_k)                  (dC/dr = 2√c S, dS/dr = 2√c C)
        ζ̄_k = v̄_k (2/√c) asinh(u_k) − ū_k √c λ a_k C_k/ζ_k² = v̄_k (2/√c) asinh(u_k) − ā_k p_k

    With ``∂λ/∂x = 2·2c x/(1 − c‖x‖²)² = c λ² x``, ``∂a_k/∂x = z_k``, ``∂a_k/∂z_k = x`` and
    ``∂ζ_k/∂z_k = ẑ_k = z_k/ζ_k``::

        x̄   = Z ā + λ̄ c λ² x
        z̄_k = Σ_rows ā_k x + (Σ_rows ζ̄_k) ẑ_k,     i.e.  Z̄ = xᵀ Ā + ẑ ⊙ Σ_rows(v̄ (2/√c) asinh u − Ā ⊙ P)

    Euclidean limit: as c → 0, ``λ → 2``, ``u_k ≈ 2√c(p_k − r_k)``, ``v_k ≈ 4(a_k − ζ_k r_k)``,
    ``y ≈ w/2 ≈ v/2``, so ``y_k → 2⟨x, z_k⟩ − 2‖z_k‖ r_k``. Identity: with ``Z = ½I``,
    ``r = 0`` (:func:`poincare_identity_init`), ``v_k = asinh(√c λ x_k)/√c``, ``w = λx`` and
    ``1 + sqrt(1 + cλ²‖x‖²) = λ``, so ``y = x`` on the whole ball.

    Args:
        x: points of the ball, shape (..., n) (a batch (B, n), or pixels (B, H, W, n)),
            float32 or float64, ``c‖x‖² < 1`` per row.
        Z: hyperplane orientations (n, m), column k is ``z_k`` (the library's ``weights``,
            ``in_features × out_features``); any real values, zero columns allowed.
        r: hyperplane offsets (m,) (the library's ``bias``); finite for ``2√c|r_k| < 710``.
        c: curvature magnitude, > 0 (default 1).

    Returns:
        y: points of the ball, shape (..., m), same dtype.

    Reference: Shimizu, Mukuta and Harada, *Hyperbolic Neural Networks++*, arXiv:2006.08210
    (the layer); van Spengler, Berkhout and Mettes, *Poincaré ResNet*, arXiv:2303.14027, and
    their library maxvanspengler/hyperbolic_learning_library
    (``hypll/manifolds/poincare_ball/math/linalg.py``, ``poincare_fully_connected``).

    With the identity initialization the layer returns its input:

    >>> import numpy as np, refimpl
    >>> Z, r = refimpl.layers.poincare_identity_init(2, 3)
    >>> refimpl.layers.poincare_fc(np.array([[0.3, -0.9]]), Z, r).round(12)
    array([[ 0.3, -0.9,  0. ]])
    """
    c = float(c)  # a NumPy float64 c would promote float32 inputs
    sqrt_c = math.sqrt(c)
    # β = 1 − c‖x‖² > 0 (the check evaluated this expression; the cap only protects callers
    # such as poincare_conv2d that feed points of their own)
    beta = 1 - np.minimum(_c_squared_norm(x, c), _below_one(x.dtype))
    lam = 2 / beta
    lam_minus_one = (2 - beta) / beta  # (1 + c‖x‖²)/(1 − c‖x‖²): no cancellation near the boundary
    zeta = row_norm(Z.T)[:, 0]  # ‖z_k‖, also where ‖z_k‖² under- or overflows (float32 1e-30)
    zeta_safe = np.where(zeta > 0, zeta, np.ones_like(zeta))  # only ζ = 0 is replaced (see above)
    z_hat = Z / zeta_safe
    p = x @ z_hat  # ⟨x, z_k⟩/ζ_k
    cosh_r = np.cosh(2 * sqrt_c * r)
    sinh_r = np.sinh(2 * sqrt_c * r)
    u = sqrt_c * lam * p * cosh_r - lam_minus_one * sinh_r
    asinh_u = np.arcsinh(u)
    s = 2 * zeta * asinh_u  # s = √c v
    abs_s = np.abs(s)
    # scale every exponential by e^{−M}, M = max_k |s_k|: sinh cannot overflow
    big = np.max(abs_s, axis=-1, keepdims=True)
    decay = np.exp(abs_s - big)  # e^{|s| − M} ≤ 1
    t = np.sign(s) * decay * (-np.expm1(-2 * abs_s)) / 2  # e^{−M} sinh(s)
    scale = np.exp(-big)  # e^{−M}
    big_q = np.sqrt(scale * scale + _sum_last(t * t))  # e^{−M} sqrt(1 + c‖w‖²)
    denominator = scale + big_q  # e^{−M} (1 + q)
    y = t / (sqrt_c * denominator)
    residuals = (x, Z, z_hat, zeta, p, lam, lam_minus_one, cosh_r, sinh_r, u, asinh_u, abs_s, big)
    return y, residuals + (decay, scale, big_q, denominator, y, c)


@poincare_fc.defvjp
def poincare_fc_backward(residuals, g_y):
    (x, Z, z_hat, zeta, p, lam, lam_minus_one, cosh_r, sinh_r, u, asinh_u, abs_s, big) = residuals[:13]
    decay, scale, big_q, denominator, y, c = residuals[13:]
    sqrt_c = math.sqrt(c)
    # w̄ = ō/D − c⟨ō, y⟩ y/q, and v̄ = w̄ cosh(s), every factor taken times e^{−M}
    cosh_scaled = decay * (1 + np.exp(-2 * abs_s)) / 2  # e^{−M} cosh(s)
    g_v = (g_y / denominator - c * _sum_last(g_y * y) * y / big_q) * cosh_scaled
    inverse_hypot = 1 / np.hypot(1, u)  # asinh'(u); no u² overflow
    g_u = g_v * (2 * zeta / sqrt_c) * inverse_hypot
    g_a = g_v * 2 * lam * cosh_r * inverse_hypot  # = ū √c λ C/ζ
    g_lam = _sum_last(g_u * (sqrt_c * p * cosh_r - sinh_r))
    g_r = g_u * (2 * c * lam * p * sinh_r - 2 * sqrt_c * lam_minus_one * cosh_r)
    g_zeta = g_v * (2 / sqrt_c) * asinh_u - g_a * p
    g_x = g_a @ Z.T + g_lam * c * lam * lam * x
    x_rows = x.reshape(-1, x.shape[-1])
    m = Z.shape[1]
    g_Z = x_rows.T @ g_a.reshape(-1, m) + z_hat * np.sum(g_zeta.reshape(-1, m), axis=0)
    g_r = np.sum(g_r.reshape(-1, m), axis=0)
    return g_x, g_Z, g_r


def poincare_identity_init(
    n_in: int, n_out: int, *, dtype: Any = np.float64
) -> tuple[np.ndarray, np.ndarray]:
    r"""Identity initialization of :func:`poincare_fc` (Poincaré ResNet's fix for collapse).

    ``Z = ½·I`` padded with zeros to (n_in, n_out) (``½·eye(n_in, n_out)``) and ``r = 0``.
    With it ``poincare_fc`` maps x to ``(x, 0, …, 0)`` when ``n_in ≤ n_out`` — exactly the
    identity on the whole ball for a square layer (see :func:`poincare_fc`). For
    ``n_in > n_out`` it keeps the first ``n_out`` orientations; that is *not* the identity
    (λ is still that of the whole x) and the authors' library then draws Z from
    ``N(0, (2·n_in·n_out)^{−1})`` instead (``PoincareBall.reset_parameters``); this helper
    gives the truncated ``½·eye`` so the result is deterministic. Not differentiable (a
    constructor, not an op).

    Args:
        n_in, n_out: input and output dimensions (≥ 1).
        dtype: float32 or float64 (default float64).

    Returns:
        (Z, r): orientations (n_in, n_out) and offsets (n_out,).

    Reference: arXiv:2303.14027 (Poincaré ResNet, identity-based initialization).

    >>> import refimpl
    >>> refimpl.layers.poincare_identity_init(2, 3)[0]
    array([[0.5, 0. , 0. ],
           [0. , 0.5, 0. ]])
    """
    for name, value in (("n_in", n_in), ("n_out", n_out)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise InputError(
                f"poincare_identity_init: argument '{name}': expected an integer >= 1, got {value!r}"
            )
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise InputError(
            f"poincare_identity_init: argument 'dtype': expected float32 or float64, got {dtype!r}"
        )
    Z = 0.5 * np.eye(int(n_in), int(n_out), dtype=dtype)
    return Z.astype(dtype), np.zeros(int(n_out), dtype=dtype)


# -- β-concatenation ---------------------------------------------------------------------
def beta_concat_ratio(piece_size: int, total_size: int) -> float:
    """``B(n/2, ½)/B(n_i/2, ½)`` (B the Beta function), from log-Gamma: no overflow for large n."""

    def log_beta_half(a: float) -> float:
        return math.lgamma(a) + math.lgamma(0.5) - math.lgamma(a + 0.5)

    return math.exp(log_beta_half(total_size / 2) - log_beta_half(piece_size / 2))


def _check_x_in_ball(arguments: Mapping[str, Any]) -> None:
    _require_inside_ball("x", arguments["x"], arguments["c"])


@op(
    inputs={"x": FloatArray("...", "k", "d"), "c": RealScalar(0, low_open=True)},
    outputs=("o",),
    differentiable=("x",),
    check=_check_x_in_ball,
)
def poincare_beta_concat(x, *, c=1.0):
    r"""HNN++ β-concatenation: k points of a d-dimensional ball to one point of the (k·d)-ball.

    Concatenating coordinates would leave the ball (k points of norm 0.9 give a vector of
    norm 0.9√k). β-concatenation concatenates the tangent vectors at the origin instead and
    rescales them so that the expected norm of a coordinate stays the same in the larger
    space (the ratio of Beta functions below is that of the mean absolute coordinate of a
    random unit vector in n versus n_i dimensions). Poincaré ResNet uses it to gather a
    k×k neighbourhood of pixels before its FC layer (:func:`poincare_conv2d`).

    Forward, with ``n = k·d`` and ``ρ = B(n/2, ½)/B(d/2, ½)`` (:func:`beta_concat_ratio`)::

        v_i = ρ · log_0(x_i)                   i = 1..k,   (d,) each
        o   = exp_0(concat(v_1, …, v_k))       (k·d,)

    Signature: the pieces are the second-to-last axis of one array, all of size d (the
    tensor form a convolution needs; the library's ``flatten`` and ``unfold`` are the same
    operation). Pieces of unequal sizes n_i would each get their own ``B(n/2, ½)/B(n_i/2, ½)``.
    For one piece (k = 1) ρ = 1 and o = x. As c → 0 the maps become the identity and o is
    the concatenation *scaled by ρ* (ρ ≈ 1/√k for large d; for d = 1, k = 2, ρ = 2/π), not
    the plain concatenation.

    Backward, by the chain rule through the three steps, with ``f, h`` the factors of the
    maps (``exp_0(V) = f_e V``, ``log_0(x_i) = f_l x_i``, see :func:`poincare_expmap0`)::

        V̄   = f_e ō + c h_e ⟨ō, V⟩ V                  (exp_0's VJP, on the (k·d)-vector)
        v̄_i = ρ · V̄[(i−1)d : i d]                      (the adjoint of concatenation is splitting)
        x̄_i = f_l v̄_i + c h_l ⟨v̄_i, x_i⟩ x_i            (log_0's VJP, per piece)

    Args:
        x: points, shape (..., k, d): k pieces of d coordinates, each inside the ball
            (``c‖x_i‖² < 1``), float32 or float64.
        c: curvature magnitude, > 0 (default 1).

    Returns:
        o: points of the ball, shape (..., k·d), same dtype.

    Reference: arXiv:2006.08210 (HNN++, β-concatenation); arXiv:2303.14027 and
    maxvanspengler/hyperbolic_learning_library (``PoincareBall.cat``/``flatten``/``unfold``).

    >>> import numpy as np, refimpl
    >>> refimpl.layers.poincare_beta_concat(np.array([[0.5], [0.5]])).round(6)  # ρ = 2/π
    array([0.323727, 0.323727])
    """
    c = float(c)
    *lead, k, d = x.shape
    rho = beta_concat_ratio(d, k * d)
    f_log, h_log = logmap0_factors(np.minimum(_c_squared_norm(x, c), _below_one(x.dtype)))
    tangent = (rho * (f_log * x)).reshape(*lead, k * d)
    f_exp, h_exp = expmap0_factors(_c_squared_norm(tangent, c))
    o = f_exp * tangent
    return o, (x, f_log, h_log, tangent, f_exp, h_exp, rho, c)


@poincare_beta_concat.defvjp
def poincare_beta_concat_backward(residuals, g_o):
    x, f_log, h_log, tangent, f_exp, h_exp, rho, c = residuals
    g_tangent = f_exp * g_o + c * h_exp * _sum_last(g_o * tangent) * tangent
    g_v = rho * g_tangent.reshape(x.shape)
    g_x = f_log * g_v + c * h_log * _sum_last(g_v * x) * x
    return (g_x,)


# -- convolution ------------------------------------------------------------------------
def _check_conv(arguments: Mapping[str, Any]) -> None:
    x, Z = arguments["x"], arguments["Z"]
    k, padding = int(arguments["kernel_size"]), int(arguments["padding"])
    _, height, width, n = x.shape
    if padding >= k:
        raise ArgumentError(
            "padding",
            f"padding < kernel_size = {k} (a wider border only adds windows that see no pixel of the image)",
            repr(padding),
        )
    if Z.shape[0] != k * k * n:
        raise ArgumentError(
            "Z",
            f"{k * k * n} rows (kernel_size² · n = {k}² · {n}: one per coordinate of a neighbourhood)",
            f"shape {tuple(Z.shape)}",
        )
    if height + 2 * padding < k or width + 2 * padding < k:
        raise ArgumentError(
            "kernel_size",
            f"a kernel no larger than the padded image ({height + 2 * padding} × {width + 2 * padding})",
            repr(k),
        )
    _require_inside_ball("x", x, arguments["c"])


def _output_size(size: int, kernel_size: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel_size) // stride + 1


@op(
    inputs={
        "x": FloatArray("B", "H", "W", "n"),
        "Z": FloatArray("K", "m"),
        "r": FloatArray("m"),
        "c": RealScalar(0, low_open=True),
        "kernel_size": IntScalar(1),
        "stride": IntScalar(1),
        "padding": IntScalar(0),
    },
    outputs=("y",),
    differentiable=("x", "Z", "r"),
    check=_check_conv,
)
def poincare_conv2d(x, Z, r, *, c=1.0, kernel_size, stride=1, padding=0):
    r"""Poincaré convolution: β-concatenate each k×k neighbourhood of pixels, apply ``poincare_fc``.

    A Euclidean convolution is a linear layer applied to every unfolded neighbourhood.
    Poincaré ResNet does the same with hyperbolic pieces: the ``k·k`` pixel points of a
    neighbourhood (each a point of the n-ball) are β-concatenated into one point of the
    ``k²n``-ball (:func:`poincare_beta_concat`) and mapped by :func:`poincare_fc` to the m
    output channels. Stride and padding are those of a Euclidean convolution; padding adds
    pixels at the origin (the hyperbolic zero).

    Forward (``ρ = B(k²n/2, ½)/B(n/2, ½)``; ``Ho = (H + 2·padding − k)//stride + 1``, same for W)::

        v[b, i, j]       = log_0(x[b, i, j])                      per pixel, (n,)
        v_pad            = v padded with zeros (log_0 of the origin)
        V[b, i, j]       = ρ · (v_pad[b, s i + di, s j + dj]  for di, dj = 0..k−1)   (k²n,)
        P                = exp_0(V)                               the β-concatenated neighbourhood
        y[b, i, j]       = poincare_fc(P[b, i, j], Z, r)           (m,)

    (β-concatenation maps every piece to the tangent space at 0 and back, so ``log_0`` is
    taken once per pixel rather than once per neighbourhood it appears in.)

    Layout (a convention, not the library's): x is channels-last (B, H, W, n) and a
    neighbourhood is ordered pixel-major, ``row = (di·k + dj)·n + channel`` of Z. The library
    (NCHW and ``torch.nn.functional.unfold``) orders it channel-major,
    ``channel·k² + di·k + dj``; permute Z's rows to move weights between the two. The output
    size is the Euclidean ``(H + 2p − k)//s + 1``, as in the library (``HConvolution2d``); the
    paper's own code (maxvanspengler/poincare-resnet, ``models/nn/modules/convolution.py``)
    computes ``(H − k + 1 + 2p)//s``, one fewer whenever ``s`` does not divide ``H + 2p − k``
    (``refimpl deviations --op poincare_conv2d``).

    Backward, by composition, in reverse order:

        (P̄, Z̄, r̄) = poincare_fc's VJP at (P, Z, r)
        V̄          = f_e P̄ + c h_e ⟨P̄, V⟩ V                  exp_0's VJP per neighbourhood
        v̄_pad      = fold(ρ V̄)                                the adjoint of unfold: every
                                                              window scatter-adds its k² slices
        v̄          = v̄_pad without the padding rows/columns  (the padding is a constant)
        x̄          = f_l v̄ + c h_l ⟨v̄, x⟩ x                  log_0's VJP per pixel

    Args:
        x: an image of points, shape (B, H, W, n), each pixel inside the ball, float32 or float64.
        Z: orientations (k²·n, m), pixel-major rows as above.
        r: offsets (m,).
        c: curvature magnitude, > 0 (default 1).
        kernel_size: k ≥ 1 (square kernels).
        stride: ≥ 1 (default 1).
        padding: pixels of the origin added on every side, 0 ≤ padding < kernel_size (default 0).

    Returns:
        y: shape (B, Ho, Wo, m), points of the m-ball, same dtype.

    Reference: arXiv:2303.14027 (Poincaré ResNet) and maxvanspengler/hyperbolic_learning_library
    (``HConvolution2d``, ``PoincareBall.unfold``); arXiv:2006.08210 (HNN++ convolution).

    A 1×1 kernel is ``poincare_fc`` on every pixel:

    >>> import numpy as np, refimpl
    >>> Z, r = refimpl.layers.poincare_identity_init(2, 2)
    >>> x = np.array([[[[0.1, 0.2], [0.0, -0.5]]]])          # B = H = 1, W = 2, n = 2
    >>> refimpl.layers.poincare_conv2d(x, Z, r, kernel_size=1).round(12)
    array([[[[ 0.1,  0.2],
             [ 0. , -0.5]]]])
    """
    c = float(c)
    k, s, pad = int(kernel_size), int(stride), int(padding)
    batch, height, width, n = x.shape
    out_height = _output_size(height, k, s, pad)
    out_width = _output_size(width, k, s, pad)
    rho = beta_concat_ratio(n, k * k * n)
    f_log, h_log = logmap0_factors(np.minimum(_c_squared_norm(x, c), _below_one(x.dtype)))
    v_pad = np.zeros((batch, height + 2 * pad, width + 2 * pad, n), dtype=x.dtype)
    v_pad[:, pad : pad + height, pad : pad + width] = f_log * x
    # unfold: window (i, j) takes rows s·i + di and columns s·j + dj
    windows = np.empty((batch, out_height, out_width, k, k, n), dtype=x.dtype)
    for di in range(k):
        for dj in range(k):
            windows[:, :, :, di, dj] = v_pad[:, di : di + s * out_height : s, dj : dj + s * out_width : s]
    tangent = rho * windows.reshape(batch, out_height, out_width, k * k * n)
    f_exp, h_exp = expmap0_factors(_c_squared_norm(tangent, c))
    points = f_exp * tangent
    y, fc_residuals = poincare_fc.forward(points, Z, r, c=c)
    return y, (x, f_log, h_log, tangent, f_exp, h_exp, fc_residuals, rho, k, s, pad, c)


@poincare_conv2d.defvjp
def poincare_conv2d_backward(residuals, g_y):
    x, f_log, h_log, tangent, f_exp, h_exp, fc_residuals, rho, k, s, pad, c = residuals
    batch, height, width, n = x.shape
    _, out_height, out_width, _ = g_y.shape
    g_points, g_Z, g_r = poincare_fc.backward(fc_residuals, g_y)
    g_tangent = f_exp * g_points + c * h_exp * _sum_last(g_points * tangent) * tangent
    g_windows = (rho * g_tangent).reshape(batch, out_height, out_width, k, k, n)
    # fold, the adjoint of unfold: each window adds its slices back where they came from
    g_v_pad = np.zeros((batch, height + 2 * pad, width + 2 * pad, n), dtype=x.dtype)
    for di in range(k):
        for dj in range(k):
            g_v_pad[:, di : di + s * out_height : s, dj : dj + s * out_width : s] += g_windows[
                :, :, :, di, dj
            ]
    g_v = g_v_pad[:, pad : pad + height, pad : pad + width]
    g_x = f_log * g_v + c * h_log * _sum_last(g_v * x) * x
    return g_x, g_Z, g_r


# -- activation and residual connection -------------------------------------------------------
def _tangent_relu_forward(x, c):
    f_log, h_log = logmap0_factors(np.minimum(_c_squared_norm(x, c), _below_one(x.dtype)))
    v = f_log * x
    active = v > 0
    a = np.where(active, v, np.zeros_like(v))
    f_exp, h_exp = expmap0_factors(_c_squared_norm(a, c))
    return f_exp * a, (x, f_log, h_log, active, a, f_exp, h_exp, c)


def _tangent_relu_backward(residuals, g_o):
    x, f_log, h_log, active, a, f_exp, h_exp, c = residuals
    g_a = f_exp * g_o + c * h_exp * _sum_last(g_o * a) * a
    g_v = np.where(active, g_a, np.zeros_like(g_a))
    return f_log * g_v + c * h_log * _sum_last(g_v * x) * x


@op(
    inputs={"x": FloatArray("...", "n"), "c": RealScalar(0, low_open=True)},
    outputs=("o",),
    differentiable=("x",),
    check=_check_x_in_ball,
)
def poincare_relu(x, *, c=1.0):
    r"""Hyperbolic ReLU of Poincaré ResNet: ReLU applied in the tangent space at the origin.

    ``o = exp_0(relu(log_0(x)))``. Since ``log_0(x) = f_l x`` with ``f_l > 0``, the ReLU zeroes
    exactly the non-positive coordinates of x; the kept ones are rescaled (dropping a
    coordinate shortens the tangent vector, and exp_0 is not linear): [0.5, −0.5] becomes
    [0.553, 0], not [0.5, 0].

    Forward, per point (``f``, ``h`` the factors of :func:`poincare_logmap0` and
    :func:`poincare_expmap0`)::

        v = log_0(x) = f_l x
        a = max(v, 0)
        o = exp_0(a) = f_e a

    Backward, in reverse (the ReLU passes cotangents where ``v > 0``; at ``v_j = 0`` exactly
    the subgradient 0 is used, as in PyTorch)::

        ā = f_e ō + c h_e ⟨ō, a⟩ a
        v̄ = ā ⊙ [v > 0]
        x̄ = f_l v̄ + c h_l ⟨v̄, x⟩ x

    The definition is the authors' library's ``HReLU``: ``op_in_tangent_space(relu)``,
    i.e. ``manifold.logmap(x=None, ·)`` (``logmap0``), ``torch.nn.functional.relu``,
    ``manifold.expmap`` of a tangent vector at the origin (``expmap0``)
    (``hypll/nn/modules/activation.py``, ``hypll/utils/layer_utils.py``). The library's
    ``expmap0`` also projects onto the ball of radius ``(1 − eps)/√c``; not done here.

    Args:
        x: points of the ball, (..., n), float32 or float64, ``c‖x‖² < 1``.
        c: curvature magnitude, > 0 (default 1).

    Returns:
        o: points of the ball, same shape and dtype.

    Reference: arXiv:2303.14027 (Poincaré ResNet) and maxvanspengler/hyperbolic_learning_library.

    >>> import numpy as np, refimpl
    >>> refimpl.layers.poincare_relu(np.array([0.5, -0.5])).round(6)  # tanh(artanh(√½)·½)
    array([0.55337, 0.     ])
    """
    c = float(c)
    return _tangent_relu_forward(x, c)


@poincare_relu.defvjp
def poincare_relu_backward(residuals, g_o):
    return (_tangent_relu_backward(residuals, g_o),)


ACTIVATIONS = ("tangent_relu", "none")


def _check_residual(arguments: Mapping[str, Any]) -> None:
    _require_inside_ball("fx", arguments["fx"], arguments["c"])
    _require_inside_ball("x", arguments["x"], arguments["c"])


@op(
    inputs={
        "fx": FloatArray("...", "n"),
        "x": FloatArray("...", "n"),
        "c": RealScalar(0, low_open=True),
        "activation": OneOf(*ACTIVATIONS),
    },
    outputs=("o",),
    differentiable=("fx", "x"),
    check=_check_residual,
)
def poincare_residual(fx, x, *, c=1.0, activation="tangent_relu"):
    r"""Poincaré ResNet's residual connection: ``act(F(x) ⊕ x)``.

    The Euclidean ``relu(F(x) + x)`` with Möbius addition in place of ``+`` and the tangent
    ReLU (:func:`poincare_relu`) as the activation. The branch output ``F(x)`` is an input
    (``fx``), so any branch (two convolutions with batch norms, in the paper) can be
    composed in front of it.

    Forward::

        h = fx ⊕ x                        (:func:`mobius_add`, F(x) on the left)
        o = exp_0(relu(log_0(h)))         activation = "tangent_relu" (default)
        o = h                             activation = "none"

    Backward: the activation's VJP (see :func:`poincare_relu`) gives ``h̄``, then
    :func:`mobius_add`'s VJP gives ``(f̄x, x̄)``.

    Pinned from the authors' library: the block ends with
    ``x = self.manifold.mobius_add(x, residual); x = self.relu(x)`` where ``x`` is the
    branch output and ``self.relu = hnn.HReLU`` (``tutorials/cifar10_resnet_tutorial.py``,
    ``PoincareResidualBlock.forward``), and HReLU is ReLU in the tangent space at the origin
    (``hypll/nn/modules/activation.py``). The paper's text leaves the activation implicit.
    The paper's own code agrees (maxvanspengler/poincare-resnet,
    ``models/resnets/hyperbolic.py``, ``ResidualBlock.forward``): it keeps activations as
    tangent vectors at 0, so its ``logmap0(expmap0(x) ⊕ expmap0(residual))`` followed by
    ``nn.ReLU`` is this op; its default ``skip_connection="fr"`` puts F(x) on the left, and
    its variant ``"rf"`` (``residual ⊕ F(x)``) is this op with the arguments swapped;
    ``act_layer=None`` is ``activation="none"``.

    Args:
        fx: the branch output F(x), points of the ball (..., n).
        x: the block input (the skip connection), same shape and dtype.
        c: curvature magnitude, > 0 (default 1).
        activation: "tangent_relu" (the library's HReLU, default) or "none".

    Returns:
        o: points of the ball, same shape and dtype.

    Reference: arXiv:2303.14027 (Poincaré ResNet) and maxvanspengler/hyperbolic_learning_library.

    >>> import numpy as np, refimpl
    >>> refimpl.layers.poincare_residual(np.array([0.5]), np.array([0.5]), activation="none")
    array([0.8])
    """
    c = float(c)
    h, add_residuals = mobius_add.forward(fx, x, c=c)
    if activation == "none":
        return h, (add_residuals, None)
    o, relu_residuals = _tangent_relu_forward(h, c)
    return o, (add_residuals, relu_residuals)


@poincare_residual.defvjp
def poincare_residual_backward(residuals, g_o):
    add_residuals, relu_residuals = residuals
    g_h = g_o if relu_residuals is None else _tangent_relu_backward(relu_residuals, g_o)
    return tuple(mobius_add.backward(add_residuals, g_h))


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
known_deviation(
    poincare_fc,
    name="poincare-resnet-linreg-lambda",
    source="maxvanspengler/poincare-resnet, models/manifolds/math/linreg.py, poincare_mlr (used by "
    "poincare_fully_connected)",
    official="writes the conformal factor as `lam = 2 * (1 - c‖x‖²)` instead of λ_x = 2/(1 − c‖x‖²): "
    "the identity layer (Z = ½·I, r = 0) does not return its input",
    paper="λ_x = 2/(1 − c‖x‖²) (HNN++)",
    example=Example(
        args=(np.array([[0.3, 0.4]]), 0.5 * np.eye(2), np.zeros(2)),
        kwargs={"c": 1.0},
        official={"y": [[0.2, 0.2667]]},
        reference={"y": [[0.3, 0.4]]},
    ),
)
known_deviation(
    poincare_fc,
    name="hypll-fc-sinh-overflow",
    source="hypll 0.1.1, hypll/manifolds/poincare_ball/math/linalg.py, poincare_fully_connected",
    official="computes w = sinh(√c v)/√c, then w/(1 + sqrt(1 + c‖w‖²)): once √c v > 710 (89 in float32) "
    "sinh overflows and the output is inf/inf = NaN",
    paper="the same point, finite: refimpl evaluates the last two steps without forming sinh of a large "
    "argument (the output is then within rounding of the boundary)",
    example=Example(
        args=(np.array([[0.999999, 0.0]]), np.array([[25.0], [0.0]]), np.zeros(1)),
        official={"y": [[float("nan")]]},
        reference={"y": [[1.0]]},
    ),
)
known_deviation(
    poincare_conv2d,
    name="poincare-resnet-conv-output-size",
    source="maxvanspengler/poincare-resnet, models/nn/modules/convolution.py (the output size)",
    official="output size (H − k + 1 + 2p)//s, one row and column fewer than the Euclidean convolution's "
    "whenever (H + 2p − k) is not a multiple of s",
    paper="(H + 2p − k)//s + 1, as PyTorch's conv2d and hypll's HConvolution2d",
    example=Example(
        args=(np.zeros((1, 5, 5, 1)), np.full((9, 1), 0.1), np.zeros(1)),
        kwargs={"kernel_size": 3, "stride": 2, "padding": 1},
        official={"y.shape": [1, 2, 2, 1]},
        reference={"y.shape": [1, 3, 3, 1]},
    ),
    convention=True,
)
