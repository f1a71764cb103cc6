"""EQ-Net's weight distribution regularization (WDR): kurtosis and skewness of each layer's weights."""

from __future__ import annotations

import numpy as np

from ..authoring import (
    ArgumentError,
    Flag,
    FloatArray,
    IntArray,
    Paper,
    RealScalar,
    array_namespace,
    op,
    row_norm,
)

__all__ = ["PAPER", "segment_offsets", "wdr_loss"]

PAPER = Paper(
    "EQ-Net: Elastic Quantization Neural Networks", arxiv="2308.07650", year=2023, code="xuke225/EQ-Net"
)


def segment_offsets(sizes) -> np.ndarray:
    """``[0, n_1, n_1 + n_2, ...]``: where each tensor of a flattened list starts and ends."""
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(np.asarray(sizes, dtype=np.int64), out=offsets[1:])
    return offsets


def _check(arguments) -> None:
    w, sizes, exclude_first = arguments["w"], arguments["sizes"], arguments["exclude_first"]
    xp = array_namespace(w)
    sizes = np.asarray(sizes.get() if hasattr(sizes, "get") else sizes)
    if int(sizes.sum()) != w.shape[0]:
        raise ArgumentError(
            "sizes",
            f"tensor sizes that add up to the length of w ({w.shape[0]})",
            f"sizes adding up to {int(sizes.sum())}",
        )
    first = 1 if exclude_first else 0
    if sizes.shape[0] <= first:
        raise ArgumentError(
            "sizes", "at least two tensors when exclude_first=True (the first is left out)", "one"
        )
    offsets = segment_offsets(sizes)
    for layer in range(first, sizes.shape[0]):
        if sizes[layer] < 2:
            raise ArgumentError(
                "sizes",
                "tensors of n >= 2 entries (the unbiased std divides by n − 1)",
                f"n = {sizes[layer]} for tensor {layer}",
            )
        piece = w[offsets[layer] : offsets[layer + 1]]
        if bool(xp.all(piece == piece[0])):
            raise ArgumentError(
                "w",
                "tensors with at least two different weights (s = 0 divides)",
                f"tensor {layer} is constant",
            )


@op(
    inputs={
        "w": FloatArray("P"),
        "sizes": IntArray("L", low=1),
        "kurt_rate": RealScalar(0),
        "skew_rate": RealScalar(0),
        "kurtosis_target": RealScalar(),
        "exclude_first": Flag(),
    },
    outputs=("loss",),
    differentiable=("w",),
    check=_check,
)
def wdr_loss(w, sizes, *, kurt_rate=0.015, skew_rate=1.0, kurtosis_target=1.8, exclude_first=True):
    r"""EQ-Net weight distribution regularization: pull each layer's weights toward a uniform shape.

    Quantizing a layer at several bit widths works best when its weights are spread like a
    uniform distribution (no heavy tails that waste quantization levels, no lopsidedness).
    WDR measures the shape of each Conv/Linear weight tensor by its standardized fourth and
    third moments, the kurtosis ``K`` and skewness ``S``, and penalizes the distance of ``K``
    from 1.8 (the kurtosis of a uniform distribution) and of ``S`` from 0. Both moments are
    invariant to ``W → aW + b`` (a > 0), so the penalty acts on the shape only.

    The list of weight tensors is passed flattened: ``w`` is the concatenation of the raveled
    tensors and ``sizes`` their numbers of entries (``w = np.concatenate([W.ravel() for W in
    weights])``, ``sizes = [W.size for W in weights]``); the moments only see each tensor's
    entries, never its shape.

    Forward, per included tensor ``W`` of ``n`` entries::

        μ = mean W,  d = W − μ,  v = Σ d²/(n − 1),  s = √v       (unbiased std, torch.std)
        z = d/s
        K = mean z⁴,  S = mean z³
        L = κ · mean_layers (K − K*)² + ς · mean_layers S²

    with ``K* = kurtosis_target``; the first tensor is left out (``exclude_first``, the
    official ``del KurtosisList[0]``). The code standardizes before the powers: ``d⁴`` of
    weights of size 1e10 overflows in float32, ``z⁴`` does not; ``s`` is the norm of ``d``
    (computed scaled where ``Σd²`` overflows) over ``√(n − 1)``.

    Backward. ``∂μ/∂W_j = 1/n``, ``∂d_i/∂W_j = δ_ij − 1/n``, and ``∂v/∂W_j = 2 d_j/(n − 1)``
    (the ``−1/n`` terms multiply ``Σ_i d_i = 0``). With ``M4 = mean d⁴``, ``m3 = mean d³``,
    ``m2 = mean d²``::

        ∂M4/∂W_j = (4/n) Σ_i d_i³ (δ_ij − 1/n) = (4/n)(d_j³ − m3)
        K = M4/v²:      ∂K/∂W_j = (4/n)(d_j³ − m3)/v² − (2 M4/v³) · 2 d_j/(n − 1)
        S = m3/v^{3/2}: ∂S/∂W_j = (3/n)(d_j² − m2)/v^{3/2} − (3/2)(m3/v^{5/2}) · 2 d_j/(n − 1)

    Dividing through by powers of ``s`` (``d = s z``, ``M4 = K v²``, ``m3 = S v^{3/2}``)::

        ∂K/∂W_j = [(4/n)(z_j³ − S) − (4/(n − 1)) K z_j]/s
        ∂S/∂W_j = [(3/n)(z_j² − mean z²) − (3/(n − 1)) S z_j]/s

    and, with ``m`` included layers and the loss cotangent ``ḡ``::

        W̄ = ḡ · [2κ(K − K*) ∂K/∂W + 2ς S ∂S/∂W]/m

    The excluded first tensor gets a zero cotangent. Each tensor's gradient sums to 0 (shift
    invariance) and is orthogonal to ``z`` (scale invariance).

    Args:
        w: the weight tensors, raveled and concatenated (P,), float32 or float64.
        sizes: the number of entries of each tensor (L,), adding up to P; every included
            tensor has n ≥ 2 entries and is not constant.
        kurt_rate: κ ≥ 0, the kurtosis term's weight (default 0.015, ``CRITERION.kurt_rate``
            of the official configs, used in ``runner/trainer.py``).
        skew_rate: ς ≥ 0, the skewness term's weight (default 1.0, ``CRITERION.skew_rate``).
        kurtosis_target: K* (default 1.8, the kurtosis of a uniform distribution;
            ``KurtosisLossCalc(kurtosis_target=1.8)`` in ``runner/criterion.py``).
        exclude_first: leave the first tensor out (default True, ``del KurtosisList[0]`` in
            the official ``KurtosisLoss``/``SkewnessLoss``: the first layer stays at full
            precision).

    Returns:
        loss: a scalar in the dtype of ``w``.

    Reference: Xu et al., *EQ-Net: Elastic Quantization Neural Networks*, ICCV 2023,
    arXiv:2308.07650; official code xuke225/EQ-Net, ``runner/criterion.py``
    (``KurtosisLossCalc``, ``SkewnessLossCalc``, ``KurtosisLoss``, ``SkewnessLoss``).

    >>> import numpy as np, refimpl
    >>> w = np.array([0.0, 1.0])  # one tensor of n = 2: z = ±1/√2, so K = 1/4 and S = 0
    >>> round(float(refimpl.regularizers.wdr_loss(w, np.array([2]), exclude_first=False)), 10)
    0.0360375
    """
    dtype = w.dtype
    offsets = segment_offsets(sizes)
    first = 1 if exclude_first else 0
    layers = range(first, len(offsets) - 1)
    per_layer = []  # (start, stop, z, s, K, S)
    kurtosis_terms, skewness_terms = [], []
    for layer in layers:
        start, stop = int(offsets[layer]), int(offsets[layer + 1])
        weights = w[start:stop]
        n = stop - start
        d = weights - weights.mean()  # two passes: no E[W²] − μ² cancellation
        # s = ‖d‖/√(n − 1), the norm scaled where Σd² overflows (float32 weights beyond ~1e19)
        s = row_norm(d)[0] / np.sqrt(dtype.type(n - 1))
        z = d / s  # standardize before the powers: z⁴ cannot overflow where d⁴ would
        z_squared = z * z
        kurtosis = (z_squared * z_squared).mean()
        skewness = (z_squared * z).mean()
        per_layer.append((start, stop, z, s, kurtosis, skewness))
        kurtosis_terms.append((kurtosis - dtype.type(kurtosis_target)) ** 2)
        skewness_terms.append(skewness * skewness)
    m = len(per_layer)
    loss = dtype.type(kurt_rate) * (sum(kurtosis_terms) / m) + dtype.type(skew_rate) * (
        sum(skewness_terms) / m
    )
    residuals = (w.shape, dtype, per_layer, kurt_rate, skew_rate, kurtosis_target)
    return np.asarray(loss, dtype=dtype), residuals


@wdr_loss.defvjp
def wdr_loss_backward(residuals, g_loss):
    shape, dtype, per_layer, kurt_rate, skew_rate, kurtosis_target = residuals
    g = np.asarray(g_loss, dtype=np.float64)
    m = len(per_layer)
    g_w = np.zeros(shape, dtype=dtype)
    for start, stop, z, s, kurtosis, skewness in per_layer:
        n = stop - start
        z_squared = z * z
        dkurtosis = ((4 / n) * (z_squared * z - skewness) - (4 / (n - 1)) * kurtosis * z) / s
        dskewness = ((3 / n) * (z_squared - z_squared.mean()) - (3 / (n - 1)) * skewness * z) / s
        coefficient_k = g * 2 * kurt_rate * (float(kurtosis) - kurtosis_target) / m
        coefficient_s = g * 2 * skew_rate * float(skewness) / m
        g_w[start:stop] = coefficient_k * dkurtosis + coefficient_s * dskewness
    return (g_w,)
