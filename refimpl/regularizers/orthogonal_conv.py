"""The orthogonal-convolution regularizer L_orth (Existence, Stability and Scalability of
Orthogonal Convolutional Neural Networks)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, Example, FloatArray, IntScalar, OneOf, Paper, known_deviation, op

__all__ = ["PAPER", "kernel_autocorrelation", "l_orth"]

PAPER = Paper(
    "Existence, Stability and Scalability of Orthogonal Convolutional Neural Networks",
    arxiv="2108.05623",
    year=2022,
    code="deel-ai/deel-lip",
)


def _padding_and_lags(k: int, stride: int, variant: str) -> tuple[int, np.ndarray]:
    """Padding P and the lags ``a_u = u·S − P`` (u = 0 … h − 1) of ``conv2d(K, K, S, P)``."""
    padding = ((k - 1) // stride) * stride if variant == "achour" else 1
    h = (2 * padding) // stride + 1  # ⌊(k + 2P − k)/S⌋ + 1
    return padding, np.arange(h) * stride - padding


def _shifted(kernel_padded: np.ndarray, padding: int, lag_u: int, lag_v: int, k: int) -> np.ndarray:
    """``K[m, c, i + a_u, j + a_v]`` (0 outside the kernel), flattened to (M, C·k·k)."""
    rows = slice(padding + lag_u, padding + lag_u + k)
    cols = slice(padding + lag_v, padding + lag_v + k)
    return kernel_padded[:, :, rows, cols].reshape(kernel_padded.shape[0], -1)


def kernel_autocorrelation(kernel: np.ndarray, stride: int, variant: str = "achour") -> np.ndarray:
    """``Y = conv2d(K, K, stride=S, padding=P)``: (M, M, h, h).

    ``Y[m, m', u, v] = Σ_{c,i,j} K[m', c, i, j]·K[m, c, i + a_u, j + a_v]`` — the filters as a
    batch of C-channel images (index m) cross-correlated with the filters (index m').
    """
    m_out, _, k, _ = kernel.shape
    padding, lags = _padding_and_lags(k, stride, variant)
    padded = np.pad(kernel, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    flat = kernel.reshape(m_out, -1)
    h = lags.shape[0]
    y = np.empty((m_out, m_out, h, h), dtype=kernel.dtype)
    for u, lag_u in enumerate(lags):
        for v, lag_v in enumerate(lags):
            y[:, :, u, v] = _shifted(padded, padding, lag_u, lag_v, k) @ flat.T
    return y


def _check_kernel(arguments) -> None:
    k = arguments["kernel"].shape[-1]
    if k % 2 == 0:
        raise ArgumentError("kernel", "an odd spatial size k (1, 3, 5, …)", f"k = {k}")


@op(
    inputs={
        "kernel": FloatArray("M", "C", "k", "k"),
        "stride": IntScalar(1),
        "variant": OneOf("achour", "wang2020"),
    },
    outputs=("loss",),
    differentiable=("kernel",),
    check=_check_kernel,
)
def l_orth(kernel, *, stride=1, variant="achour"):
    r"""L_orth: how far a strided convolution is from orthogonal, from its kernel alone.

    A convolution with kernel K (M output channels, C input channels, k × k taps) and
    stride S is orthogonal (row- or column-orthogonal, depending on M vs S²C) exactly when
    the kernel's autocorrelation at the lags that are multiples of S is a Dirac: each filter
    has unit norm and is orthogonal to every other filter, and to every shift of every
    filter by a nonzero multiple of S. L_orth measures that from a small convolution of the
    kernel with itself, independently of the image size.

    Forward (paper / deel-lip, ``variant="achour"``)::

        P      = ⌊(k − 1)/S⌋·S,   h = 2P/S + 1,   lags a_u = u·S − P ∈ {−P, −P + S, …, P}
        Y      = conv2d(K, K, stride=S, padding=P)          (M, M, h, h)
        Y[m, m', u, v] = Σ_{c,i,j} K[m', c, i, j]·K[m, c, i + a_u, j + a_v]   (0 outside K)
        I_r0[m, m', u, v] = 1 iff m = m' and u = v = ⌊h/2⌋  (lag 0)
        L      = ‖Y − I_r0‖_F² − δ,     δ = max(0, M − S²C)

    δ > 0 only in the column-orthogonal case (M > S²C): there ``‖Y − I_r0‖²`` cannot go below
    M − S²C, and the paper subtracts that floor so an orthogonal convolution scores 0
    (e.g. a 1 × 1 kernel with orthonormal columns, M > C: ``‖KKᵀ − I‖² = M − C = δ``).

    Backward (derived by hand). With ``R = Y − I_r0`` and ``L = Σ R² − δ``, a cotangent ḡ
    on L gives ``Ȳ = 2ḡR``. Y is bilinear in K; differentiating
    ``Y[m, m', a] = Σ_{c,x} K[m', c, x]·K[m, c, x + a]`` (x = (i, j), a = (a_u, a_v)) w.r.t.
    ``K[q, c, x]`` hits the first factor when m' = q and the second when m = q (at
    ``x − a``)::

        ∂Y[m, m', a]/∂K[q, c, x] = δ_{m'q}·K[m, c, x + a] + δ_{mq}·K[m', c, x − a]

        K̄[q, c, x] = 2ḡ Σ_{m,a} R[m, q, a]·K[m, c, x + a]      (q filtered by the others)
                   + 2ḡ Σ_{m',a} R[q, m', a]·K[m', c, x − a]   (q as the image)

    Out-of-range kernel indices contribute 0 (the zero padding). When the lag set is
    symmetric (always for "achour"), ``Y[m, m', a] = Y[m', m, −a]`` and the same for R
    (I_r0 is symmetric), so the two sums are equal: ``K̄ = 4ḡ Σ_{m',a} R[q, m', a]·K[m', c,
    x − a]``, the paper's formula. The code evaluates both sums, which stays right for the
    asymmetric lag set of "wang2020" at S ≥ 3. Each sum is, per lag, a (M × M)·(M × Ck²)
    product with a shifted copy of K: the transposed convolution, written as shifts.

    ``variant="wang2020"`` (official code of Wang et al., *Orthogonal Convolutional Neural
    Networks*, CVPR 2020, ``deconv_orth_dist``): ``L = ‖Y − I‖_F`` (not squared) with padding
    1 for every stride, no δ, and the identity placed at index ``⌊h/2⌋`` of the output. At
    S = 1 that is lag 0 and only the lags ±1 are penalized; at S = 2 (their 3 × 3 stride-2
    layers) h = 2 with lags {−1, +1}: lag 0 is absent and the identity lands on lag +1. Do
    not use it as ground truth for strided layers. Its gradient is the above divided by
    ``2‖R‖_F``; at R = 0 (a kink) this op returns 0.

    Existence (paper): a row-orthogonal convolution (M ≤ S²C) exists iff M ≤ C·k²; a
    column-orthogonal one (M ≥ S²C) iff S ≤ k.

    Args:
        kernel: K (M, C, k, k) (out × in × height × width), float32 or float64, k odd.
        stride: the convolution's stride S ≥ 1 (default 1).
        variant: "achour" (default: the paper and deel-lip) or "wang2020".

    Returns:
        loss: L, a 0-d array in the dtype of ``kernel``.

    Reference: Achour, Malgouyres, Mamalet, *Existence, Stability and Scalability of
    Orthogonal Convolutional Neural Networks*, JMLR 2022, arXiv:2108.05623; deel-lip's
    ``LorthRegularizer``; Wang, Chen, Chakraborty, Yu, CVPR 2020 (arXiv:1911.12207), code
    samaonline/Orthogonal-Convolutional-Neural-Networks.

    >>> import numpy as np, refimpl
    >>> kernel = np.zeros((4, 4, 3, 3)); kernel[:, :, 1, 1] = np.eye(4)   # centre tap orthogonal
    >>> float(refimpl.regularizers.l_orth(kernel, stride=2))
    0.0
    >>> float(refimpl.regularizers.l_orth(kernel, stride=2, variant="wang2020"))   # ‖0 − I‖ at lag +1
    2.0
    """
    m_out, channels, k, _ = kernel.shape
    dtype = kernel.dtype.type
    y = kernel_autocorrelation(kernel, stride, variant)
    centre = y.shape[-1] // 2
    residual = y.copy()
    residual[np.arange(m_out), np.arange(m_out), centre, centre] -= 1  # R = Y − I_r0
    squared = (residual * residual).sum()
    if variant == "achour":
        delta = dtype(max(0, m_out - stride * stride * channels))
        loss = squared - delta
        scale = dtype(2)  # dL/dR = 2R
    else:
        norm = np.sqrt(squared)
        loss = norm
        scale = dtype(1) / norm if norm > 0 else dtype(0)  # d‖R‖/dR = R/‖R‖; 0 at the kink R = 0
    return np.asarray(loss, dtype=kernel.dtype), (kernel, residual, scale, stride, variant)


@l_orth.defvjp
def l_orth_backward(residuals, g_loss):
    kernel, residual, scale, stride, variant = residuals
    m_out, _, k, _ = kernel.shape
    padding, lags = _padding_and_lags(k, stride, variant)
    padded = np.pad(kernel, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    g_residual = residual * (scale * g_loss.astype(kernel.dtype))  # Ȳ = (dL/dR)·ḡ
    g_kernel = np.zeros((m_out, kernel[0].size), dtype=kernel.dtype)
    for u, lag_u in enumerate(lags):
        for v, lag_v in enumerate(lags):
            g_lag = g_residual[:, :, u, v]  # Ȳ[m, m', a]
            # K̄[q] += Σ_m Ȳ[m, q, a]·K[m, ·, x + a]   (through the factor K[m', c, x], m' = q)
            g_kernel += g_lag.T @ _shifted(padded, padding, lag_u, lag_v, k)
            # K̄[q] += Σ_m' Ȳ[q, m', a]·K[m', ·, x − a]  (through the factor K[m, c, x + a], m = q)
            g_kernel += g_lag @ _shifted(padded, padding, -lag_u, -lag_v, k)
    return (g_kernel.reshape(kernel.shape),)


# -- known deviations of the official code (``refimpl deviations``) -----------------------------------
def _centre_tap_kernel() -> np.ndarray:
    """A 3×3 kernel whose centre tap is an orthogonal 4×4 matrix (other taps 0): orthogonal at stride 2."""
    kernel = np.zeros((4, 4, 3, 3))
    kernel[:, :, 1, 1] = np.array([[0.0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, -1], [0, 0, 1, 0]])
    return kernel


known_deviation(
    l_orth,
    name="wang2020-orthconv-padding",
    source="samaonline/Orthogonal-Convolutional-Neural-Networks (Wang et al. 2020), the orthogonality "
    "regularizer",
    official="pads by 1 at every stride, takes ‖Y − I‖_F unsquared and drops δ: at stride 2 the lag-0 "
    "term is absent and the identity target lands on lag +1, so an orthogonal strided kernel is penalized",
    paper="padding ⌊(k − 1)/S⌋·S, ‖Y − I_r0‖²_F − δ (Achour et al.; deel-lip)",
    flag={"variant": "wang2020"},
    example=Example(
        args=(_centre_tap_kernel(),),
        kwargs={"stride": 2},
        official={"loss": 2.0},
        reference={"loss": 0.0},
    ),
)
