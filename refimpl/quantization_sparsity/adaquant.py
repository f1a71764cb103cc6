"""AdaQuant: the fake quantizer with its straight-through estimator, the layer-wise calibration
loss, bit allocation by integer programming and bias correction (Improving Post Training Neural
Quantization, Hubara et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Example,
    Flag,
    FloatArray,
    IntArray,
    IntScalar,
    Paper,
    known_deviation,
    op,
)
from .layer_adaptive_pruning import check_menus, multiple_choice_knapsack

__all__ = [
    "PAPER",
    "adaquant_fake_quantize",
    "adaquant_layer_loss",
    "bit_allocation_knapsack",
    "quantization_bias_correction",
]

PAPER = Paper(
    "Improving Post Training Neural Quantization: Layer-wise Calibration and Integer Programming",
    arxiv="2006.10518",
    year=2020,
    code="itayhubara/CalibTIP",
)

RANGE_MIN, RANGE_MAX = 1e-6, 1e5  # the official clamp of the range (models/modules/quantize.py)
MAX_BITS = 16  # the grid's integers and x/s must stay exact enough in float32 (24-bit significand)


def quantization_grid(num_bits: int, signed: bool) -> tuple[int, int]:
    """``(qmin, qmax)``: ``[−2^{b−1}, 2^{b−1} − 1]`` signed, ``[0, 2^b − 1]`` unsigned."""
    qmin = -(2 ** (num_bits - 1)) if signed else 0
    return qmin, qmin + 2**num_bits - 1


def fake_quantize(x, range_, zero_point, qmin, qmax):
    """The quantizer on rows of ``x`` (C, K) with per-row ``range_``/``zero_point`` (C, 1) or
    per-tensor (1, 1); returns ``x̂`` and what the straight-through backward needs."""
    dtype = x.dtype.type
    span = dtype(qmax - qmin)
    range_free = (range_ >= RANGE_MIN) & (range_ <= RANGE_MAX)  # the clamp passes the gradient
    s = np.clip(range_, dtype(RANGE_MIN), dtype(RANGE_MAX)) / span
    zero_point_grid = np.rint(dtype(qmin) - zero_point / s)  # half to even, like torch.round
    zero_point_free = (zero_point_grid >= qmin) & (zero_point_grid <= qmax)
    r_z = np.clip(zero_point_grid, qmin, qmax)  # the integer zero point, inside the grid
    u = x / s + r_z
    inside = (u >= qmin) & (u <= qmax)  # torch.clamp's gradient mask: both ends included
    q = np.rint(np.clip(u, qmin, qmax))  # round half to even (np.rint), never half away from 0
    x_hat = (s * (q - r_z)).astype(x.dtype, copy=False)
    return x_hat, (x, s, r_z, q, inside, zero_point, zero_point_free, range_free, span)


def fake_quantize_backward(g_x_hat, parts, per_tensor):
    """The straight-through VJP: ``(x̄, range̅, zero_point̅)``, the last two (C,) or (1,)."""
    x, s, r_z, q, inside, zero_point, zero_point_free, range_free, span = parts
    dtype = x.dtype
    g_x = np.where(inside, g_x_hat, 0)
    # ∂x̂/∂s: (q − r_z) − x/s inside; (q − r_z) − zero_point/s outside while r_z is free
    outside_term = np.where(zero_point_free, zero_point / s, 0)
    d_s = (q - r_z) - np.where(inside, x / s, outside_term)
    d_zero_point = np.where(inside, 0, zero_point_free.astype(dtype))
    g_s = (g_x_hat * d_s).sum(axis=1, keepdims=True)
    g_zero_point = (g_x_hat * d_zero_point).sum(axis=1, keepdims=True)
    if per_tensor:
        g_s, g_zero_point = g_s.sum(axis=0, keepdims=True), g_zero_point.sum(axis=0, keepdims=True)
    g_range = np.where(range_free, g_s / span, 0)
    return (
        g_x.astype(dtype, copy=False),
        g_range[:, 0].astype(dtype, copy=False),
        g_zero_point[:, 0].astype(dtype, copy=False),
    )


def _check_channels(rows, rows_name, params, names) -> None:
    for name in names:
        size = params[name].shape[0]
        if size not in (1, rows):
            raise ArgumentError(
                name,
                f"one value per tensor (length 1) or per row of '{rows_name}' (length {rows})",
                f"length {size}",
            )


def _check_fake_quantize(arguments) -> None:
    _check_channels(arguments["x"].shape[0], "x", arguments, ("range", "zero_point"))


@op(
    inputs={
        "x": FloatArray("C", "K"),
        "range": FloatArray("G"),
        "zero_point": FloatArray("G"),
        "num_bits": IntScalar(1, MAX_BITS),
        "signed": Flag(),
    },
    outputs=("x_hat",),
    differentiable=("x", "range", "zero_point"),
    check=_check_fake_quantize,
    custom_vjp="straight-through estimator: the two roundings pass their cotangent through as if "
    "they were the identity (the forward is piecewise constant, its derivative 0 almost everywhere)",
)
def adaquant_fake_quantize(x, range, zero_point, *, num_bits, signed=False):  # `range`: the official name
    r"""AdaQuant's fake quantizer: uniform quantization with a learnable range and an integer
    zero point, differentiated by a straight-through estimator.

    A tensor is mapped to ``2^b`` evenly spaced levels spanning ``range`` from ``zero_point``
    (its minimum, from min/max calibration), rounded, and mapped back ("fake" quantization:
    the values stay floats). AdaQuant calibrates ``range`` and ``zero_point`` (and the
    weights) by gradient descent through this function, so its backward is a
    straight-through estimator: each rounding passes its cotangent on unchanged.

    Forward, per channel (a row of x; one (range, zero point) per row or one for the tensor),
    with ``qmin, qmax = −2^{b−1}, 2^{b−1} − 1`` (signed) or ``0, 2^b − 1`` (unsigned)::

        s   = clamp(range, 1e−6, 1e5) / (qmax − qmin)
        r_z = clamp(round(qmin − zero_point/s), qmin, qmax)          (the integer zero point)
        u   = x/s + r_z
        q   = round(clamp(u, qmin, qmax))
        x̂   = s·(q − r_z)

    ``round`` is round half to even (``np.rint``, as ``torch.round``): 0.5 → 0, 1.5 → 2,
    2.5 → 2, −0.5 → −0; never C's half-away-from-zero ``round()``. The official code computes
    ``(x + qmin·s − z')/s`` with ``z' = (qmin − r_z)·s`` and dequantizes as
    ``q·s + z' − qmin·s``: algebraically the same ``u`` and ``x̂``. (That is ``QZP = True``,
    the repository's setting; an earlier commit left the zero point unrounded, capped at 0.)

    Backward (straight-through: ``round`` is treated as the identity, ``clamp`` passes the
    cotangent where ``lo ≤ v ≤ hi``, both ends included). Write ``x̂ = s·(Q − R)`` with
    ``R = clamp(round(qmin − zero_point/s))`` and ``Q = round(clamp(x/s + R))``. Where
    ``R``'s clamp is inactive, ``∂R/∂zero_point = −1/s`` and ``∂R/∂s = zero_point/s²``
    (else both 0). Inside (``qmin ≤ u ≤ qmax``), ``∂Q = ∂u = ∂x/s − x ∂s/s² + ∂R``::

        ∂x̂/∂x = s·(1/s) = 1
        ∂x̂/∂s = (Q − R) + s·(−x/s² + ∂R/∂s − ∂R/∂s) = (q − r_z) − x/s
        ∂x̂/∂zero_point = s·(∂R/∂zp − ∂R/∂zp) = 0

    Outside, ``Q`` is a constant (``qmin`` or ``qmax``)::

        ∂x̂/∂x = 0
        ∂x̂/∂s = (q − r_z) − s·∂R/∂s = (q − r_z) − zero_point/s     (q − r_z if R is clamped)
        ∂x̂/∂zero_point = −s·∂R/∂zero_point = 1                     (0 if R is clamped)

    and ``∂/∂range = (∂/∂s)/(qmax − qmin)`` where ``1e−6 ≤ range ≤ 1e5`` (0 where the range
    clamp holds it). The code sums ``x̄̂ ⊙ ∂x̂/∂s`` and ``x̄̂ ⊙ ∂x̂/∂zero_point`` over each
    channel (over the whole tensor for one (range, zero point)).

    Args:
        x: the tensor (C, K), float32 or float64: a weight with its output channels as rows
            (reshape a convolution's (O, I, kh, kw) to (O, I·kh·kw)), or activations.
        range: the range (G,), G = C (per channel, weights) or G = 1 (per tensor, activations).
        zero_point: the zero point (G,) (the minimum of min/max calibration; real-valued, the
            forward rounds it onto the grid).
        num_bits: the bit width b, 1 ≤ b ≤ 16 (required; AdaQuant's results use 2 to 8).
        signed: the signed grid (default False: the official ``quantize_with_grad`` default).

    Returns:
        x_hat: the fake-quantized tensor (C, K), in the dtype of x.

    Reference: Hubara, Nahshan, Hanani, Banner, Soudry, *Improving Post Training Neural
    Quantization: Layer-wise Calibration and Integer Programming*, arXiv:2006.10518; official
    code itayhubara/CalibTIP (``models/modules/quantize.py``,
    ``quantize_with_grad`` with ``QZP = True``, the ``Round`` straight-through function).

    >>> import numpy as np, refimpl
    >>> x = np.array([[0.25, 0.75, 1.25, 2.0]])  # s = 1.5/3 = 0.5: u = 0.5, 1.5, 2.5, 4
    >>> refimpl.quantization_sparsity.adaquant_fake_quantize(  # ties to even; 4 clamps to 3
    ...     x, np.array([1.5]), np.array([0.0]), num_bits=2)
    array([[0. , 1. , 1. , 1.5]])
    """
    qmin, qmax = quantization_grid(num_bits, signed)
    x_hat, parts = fake_quantize(x, range[:, None], zero_point[:, None], qmin, qmax)
    per_tensor = range.shape[0] == 1 and x.shape[0] != 1
    return x_hat, (parts, per_tensor)


@adaquant_fake_quantize.defvjp
def adaquant_fake_quantize_backward(residuals, g_x_hat):
    parts, per_tensor = residuals
    return fake_quantize_backward(g_x_hat, parts, per_tensor)


# -- the layer-wise calibration loss ------------------------------------------------------------------
def _check_layer_loss(arguments) -> None:
    _check_channels(arguments["W"].shape[0], "W", arguments, ("w_range", "w_zero_point"))


@op(
    inputs={
        "X": FloatArray("B", "N"),
        "Y": FloatArray("B", "M"),
        "W": FloatArray("M", "N"),
        "V": FloatArray("M", "N"),
        "b": FloatArray("M"),
        "w_range": FloatArray("G"),
        "w_zero_point": FloatArray("G"),
        "x_range": FloatArray(1),
        "x_zero_point": FloatArray(1),
        "num_bits_weight": IntScalar(1, MAX_BITS),
        "num_bits_input": IntScalar(1, MAX_BITS),
        "signed": Flag(),
        "relu": Flag(),
    },
    outputs=("loss",),
    differentiable=("V", "b", "w_range", "w_zero_point", "x_range", "x_zero_point"),
    check=_check_layer_loss,
    custom_vjp="both fake quantizers are differentiated by their straight-through estimator (rounding "
    "treated as the identity); the rest of the chain rule is exact",
)
def adaquant_layer_loss(  # noqa: N803 - the paper's X, Y, W, V
    X,
    Y,
    W,
    V,
    b,
    w_range,
    w_zero_point,
    x_range,
    x_zero_point,
    *,
    num_bits_weight,
    num_bits_input,
    signed=False,
    relu=False,
):
    r"""AdaQuant's layer-wise calibration loss: the mean squared error between a linear layer's
    full-precision outputs and its quantized outputs, minimized over a weight perturbation,
    both quantizers' parameters and the bias.

    Post-training quantization without fine-tuning only sets ranges. AdaQuant instead fits each
    layer separately on a small calibration set: with the layer's cached inputs X and
    full-precision outputs ``Y = X Wᵀ + b₀``, it minimizes::

        L(V, Δ_w, Δ_x, b) = mean( (Y − Q_{Δ_w}(W + V) applied to Q_{Δ_x}(X) − b)² )

    over the weight perturbation V, the weight quantizer's (range, zero point) (per output
    channel), the input quantizer's (per tensor) and the bias b. Q is
    :func:`adaquant_fake_quantize`; with ``relu=True`` both sides pass through a ReLU first
    (a layer followed by one). Forward::

        X̂ = Q(X; x_range, x_zero_point, num_bits_input)                 (B, N)
        Ŵ = Q(W + V; w_range, w_zero_point, num_bits_weight)           (M, N)
        Ŷ = X̂ Ŵᵀ + b                                                    (B, M)
        E = Ŷ − Y    (relu: E = max(Ŷ, 0) − max(Y, 0))
        L = Σ E² / (B·M)

    Backward (the quantizers by their straight-through VJP, everything else exact)::

        Ŷ̄ = L̄ · 2E/(B·M)          (relu: times 1[Ŷ > 0], torch.relu's mask)
        b̄ = Σ_rows Ŷ̄,   Ŵ̄ = Ŷ̄ᵀ X̂,   X̂̄ = Ŷ̄ Ŵ
        (V̄, w_range̅, w_zero_point̅) = STE of Q at W + V, with cotangent Ŵ̄   (∂(W + V)/∂V = I)
        (·, x_range̅, x_zero_point̅) = STE of Q at X, with cotangent X̂̄

    The official optimizer (``utils/adaquant.py``): Adam with learning rates 1e−5 (weights),
    1e−3 (bias), 1e−1 (input quantizer), 1e−3 (weight quantizer), batches of 50 calibration
    rows drawn afresh each iteration, 100 iterations (``adaquant``'s default; ``optimize_layer``
    calls it with 1000); "tuned for 8 bit", other bit widths unverified. Its layer also rounds the bias to a
    (num_bits_weight + num_bits_input)-bit grid; here b is a free offset.

    Args:
        X: the layer's cached calibration inputs (B, N) (im2col rows for a convolution).
        Y: the full-precision layer's outputs on them (B, M).
        W: the full-precision weights (M, N).
        V: the weight perturbation (M, N) (zeros at the start).
        b: the bias (M,).
        w_range: the weight quantizer's range (G,), G = M (per output channel) or 1.
        w_zero_point: the weight quantizer's zero point (G,).
        x_range: the input quantizer's range (1,) (per tensor).
        x_zero_point: the input quantizer's zero point (1,).
        num_bits_weight: the weights' bit width (required).
        num_bits_input: the inputs' bit width (required).
        signed: both grids signed (default False, as the official quantizer).
        relu: compare after a ReLU on both sides (default False).

    Returns:
        loss: the mean squared error, a scalar in the dtype of the inputs.

    Reference: Hubara et al., *Improving Post Training Neural Quantization: Layer-wise
    Calibration and Integer Programming*, arXiv:2006.10518 (AdaQuant); official code
    itayhubara/CalibTIP (``utils/adaquant.py``, ``adaquant``; ``QLinear`` in
    ``models/modules/quantize.py``).

    >>> import numpy as np, refimpl
    >>> X, W = np.array([[1.0, 2.0]]), np.array([[0.5, 0.25]])
    >>> zero = np.zeros(1)  # 2 bits: s = 3/3 = 1 for X, 0.75/3 = 0.25 for W: both on their grids
    >>> refimpl.quantization_sparsity.adaquant_layer_loss(
    ...     X, np.array([[1.5]]), W, np.zeros_like(W), zero, np.array([0.75]), zero,
    ...     np.array([3.0]), zero, num_bits_weight=2, num_bits_input=2)  # Ŷ = X̂Ŵᵀ = 1: (1.5 − 1)²
    array(0.25)
    """
    dtype = X.dtype
    w_min, w_max = quantization_grid(num_bits_weight, signed)
    x_min, x_max = quantization_grid(num_bits_input, signed)
    w_hat, w_parts = fake_quantize(W + V, w_range[:, None], w_zero_point[:, None], w_min, w_max)
    x_hat, x_parts = fake_quantize(X, x_range[:, None], x_zero_point[:, None], x_min, x_max)
    y_hat = x_hat @ w_hat.T + b
    if relu:
        error = np.maximum(y_hat, 0) - np.maximum(Y, 0)
    else:
        error = y_hat - Y
    loss = np.asarray((error * error).mean(), dtype=dtype)
    per_tensor_w = w_range.shape[0] == 1 and W.shape[0] != 1
    return loss, (w_hat, x_hat, y_hat, error, w_parts, x_parts, per_tensor_w, relu)


@adaquant_layer_loss.defvjp
def adaquant_layer_loss_backward(residuals, g_loss):
    w_hat, x_hat, y_hat, error, w_parts, x_parts, per_tensor_w, relu = residuals
    dtype = error.dtype
    g_y_hat = (g_loss.astype(dtype) * dtype.type(2.0 / error.size)) * error
    if relu:
        g_y_hat = np.where(y_hat > 0, g_y_hat, 0)
    g_b = g_y_hat.sum(axis=0)
    g_w_hat = g_y_hat.T @ x_hat
    g_x_hat = g_y_hat @ w_hat
    g_V, g_w_range, g_w_zero_point = fake_quantize_backward(g_w_hat, w_parts, per_tensor_w)
    _, g_x_range, g_x_zero_point = fake_quantize_backward(g_x_hat, x_parts, per_tensor=True)
    return g_V, g_b.astype(dtype, copy=False), g_w_range, g_w_zero_point, g_x_range, g_x_zero_point


# -- bit allocation -----------------------------------------------------------------------------------
def _check_knapsack(arguments) -> None:
    check_menus(
        arguments["degradation"], arguments["saved"], arguments["budget"], ("degradation", "saved", "budget")
    )


@op(
    inputs={
        "degradation": FloatArray("L", "K", allow=("inf",)),
        "saved": IntArray("L", "K", low=0),
        "budget": IntScalar(0),
    },
    outputs=("choice", "total_degradation", "total_saved"),
    check=_check_knapsack,
)
def bit_allocation_knapsack(degradation, saved, *, budget):
    r"""AdaQuant's bit allocation: one bit width per layer, the least summed degradation under a
    compression budget (the integer program, solved exactly by dynamic programming).

    Each layer l can be kept at the base precision or quantized to one of a few lower bit
    widths; quantizing it alone to option k costs a measured degradation ``ΔL_{l,k}`` (loss
    increase or accuracy drop, 0 for the base precision) and saves ``saved_{l,k}`` (memory in
    bits or bit-operations, 0 for the base precision). The paper's integer program, with binary
    indicators ``I_{l,k}``::

        min Σ_{l,k} I_{l,k} ΔL_{l,k}    s.t.   Σ_k I_{l,k} = 1 per layer,
                                               Σ_{l,k} I_{l,k} saved_{l,k} ≥ budget

    assumes the degradations add up across layers. It is a multiple-choice knapsack: the
    savings are integers on a common grid (divide by a grid step and round down: the budget
    then still holds for the undivided savings), and a dynamic program over that grid solves
    it exactly::

        D[0][0] = 0,  D[0][c > 0] = +inf
        D[l][c] = min_k D[l−1][c − saved_{l,k}] + ΔL_{l,k}

    then ``c* =`` the smallest ``c ≥ budget`` with the least ``D[L][c]``, and backtracking from
    the last layer takes the lowest option index attaining each ``D[l][c]``. Ties: among
    optimal allocations, the smallest total saving, then the lowest index in the last layer,
    then in the one before, and so on. O(L·|C|·K) time; degradations summed in float64.
    Options a layer lacks are padded with ``ΔL = +inf``.

    Args:
        degradation: ``ΔL_{l,k}`` (L, K), float32 or float64, finite or +inf (a missing
            option). The official script floors measured degradations at 1e−6; pass them
            as measured or floored, as wanted.
        saved: ``saved_{l,k}`` (L, K), non-negative integers in units of the budget grid.
        budget: the total saving to reach (required), an integer ≥ 0 the options can reach.

    Returns:
        choice: (L,) int64, the option chosen for every layer.
        total_degradation: ``Σ_l ΔL_{l,choice_l}``, a scalar in the dtype of ``degradation``.
        total_saved: ``Σ_l saved_{l,choice_l}`` (≥ budget), a scalar int64.

    Reference: Hubara et al., *Improving Post Training Neural Quantization: Layer-wise
    Calibration and Integer Programming*, arXiv:2006.10518 (the integer program); official
    code itayhubara/CalibTIP (``mpip_compression_pytorch_multi.py``, an ILP solved
    with PuLP: the same optimum, its own choice among ties).

    >>> import numpy as np, refimpl
    >>> degradation = np.array([[0.0, 0.2, 0.9], [0.0, 0.5, 0.6]])  # 8, 4, 2 bits per layer
    >>> saved = np.array([[0, 4, 6], [0, 4, 6]])  # bits saved per weight, 1 weight per layer
    >>> choice, total, saved_total = refimpl.quantization_sparsity.bit_allocation_knapsack(
    ...     degradation, saved, budget=8)
    >>> choice.tolist(), round(float(total), 6), int(saved_total)  # next best: 4 and 2 bits, 0.8
    ([1, 1], 0.7, 8)
    """
    choice, total, saved_total = multiple_choice_knapsack(degradation, saved, budget)
    return (
        choice,
        np.asarray(total, dtype=degradation.dtype),
        np.asarray(saved_total, dtype=np.int64),
    ), None


# -- bias correction ----------------------------------------------------------------------------------
def _check_bias_correction(arguments) -> None:
    y_fp, bias = arguments["y_fp"], arguments["bias"]
    if y_fp.ndim < 2:
        raise ArgumentError(
            "y_fp",
            "outputs of rank >= 2 with the channels on axis 1: (B, C) or (B, C, H, W)",
            f"shape {tuple(y_fp.shape)}",
        )
    if y_fp.shape[1] != bias.shape[0]:
        raise ArgumentError(
            "y_fp",
            f"{bias.shape[0]} channels on axis 1 (C, from 'bias')",
            f"shape {tuple(y_fp.shape)}",
        )


@op(
    inputs={"bias": FloatArray("C"), "y_fp": FloatArray("..."), "y_q": FloatArray("...")},
    outputs=("bias_corrected",),
    check=_check_bias_correction,
)
def quantization_bias_correction(bias, y_fp, y_q):
    r"""Bias correction: shift each output channel's bias by the mean error quantization adds.

    Quantizing weights and activations shifts the mean of a layer's outputs (the rounding
    errors do not average out per channel); adding the mean difference between the
    full-precision and the quantized outputs, measured on calibration data, to the bias
    removes that shift::

        b_c ← b_c + mean_{all axes but 1} (y_fp − y_q)[:, c, …]

    The difference is taken before the mean (no cancellation between two large means).

    Args:
        bias: the layer's bias (C,), float32 or float64.
        y_fp: the full-precision layer's outputs (B, C, …), channels on axis 1 (a linear
            layer's (B, C), a convolution's (B, C, H, W)).
        y_q: the quantized layer's outputs on the same inputs, the shape of y_fp.

    Returns:
        bias_corrected: (C,), in the dtype of the inputs.

    Reference: Hubara et al., *Improving Post Training Neural Quantization: Layer-wise
    Calibration and Integer Programming*, arXiv:2006.10518 (the bias tuning of its
    pipelines); official code itayhubara/CalibTIP (per-channel output means collected in
    ``trainer.py``, ``save_activation``; the correction in ``utils/correct_bias.py``).

    >>> import numpy as np, refimpl
    >>> y_fp = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> y_q = np.array([[0.5, 2.0], [2.5, 5.0]])  # channel 0 reads 0.5 low, channel 1 0.5 high
    >>> refimpl.quantization_sparsity.quantization_bias_correction(np.zeros(2), y_fp, y_q)
    array([ 0.5, -0.5])
    """
    axes = (0, *range(2, y_fp.ndim))
    correction = (y_fp - y_q).mean(axis=axes)
    return (bias + correction).astype(bias.dtype, copy=False), None


known_deviation(
    quantization_bias_correction,
    name="calibtip-bias-correction-tenth",
    source="itayhubara/CalibTIP, utils/correct_bias.py (correct_bias)",
    official="subtracts (mean_q − mean_fp)/10 from the bias: a tenth of the measured shift "
    "(per-batch means summed, divided by their count times 10)",
    paper="b ← b + E[y_fp − y_q]: the whole measured shift",
    example=Example(
        args=(np.zeros(1), np.array([[1.0], [3.0]]), np.array([[0.0], [2.0]])),
        official={"bias_corrected": [0.1]},
        reference={"bias_corrected": [1.0]},
    ),
    convention=True,
)
