"""VAR's multi-scale residual quantizer loss (Visual Autoregressive Modeling, Tian et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, Flag, FloatArray, IntArray, Paper, RealScalar, op
from .residual_vq import nearest_codewords

__all__ = ["PAPER", "multiscale_residual_quantize", "multiscale_vq_loss"]

PAPER = Paper(
    "Visual Autoregressive Modeling: Scalable Image Generation via Next-Scale Prediction",
    arxiv="2404.02905",
    year=2024,
    code="FoundationVision/VAR",
)


@op(
    inputs={
        "f": FloatArray("B", "C", "H", "W"),
        "f_hats": FloatArray("K", "B", "C", "H", "W"),
        "beta": RealScalar(0),
    },
    outputs=("loss",),
    differentiable=("f", "f_hats"),
    custom_vjp="stop-gradients: the β term moves only f (sg[f̂_k]) and the other only f̂_k (sg[f]), "
    "so the backward is not the derivative of the value (1 + β)·mean‖f̂_k − f‖²",
)
def multiscale_vq_loss(f, f_hats, *, beta=0.25):
    r"""VAR's quantizer loss: commitment and codebook MSE averaged over the K scales.

    VAR's multi-scale quantizer rebuilds the encoder feature map f step by step: after scale
    k the partial reconstruction is ``f̂_k`` (the sum of the upsampled, φ-refined codes of
    scales 1..k). Each partial reconstruction enters a VQ-VAE style loss: the commitment
    term (weight β) pulls the encoder output f towards the frozen reconstruction, the other
    term pulls the reconstruction (codebook and φ convolutions) towards the frozen f::

        L = (1/K) Σ_k [ β·MSE(sg[f̂_k], f) + MSE(f̂_k, sg[f]) ]
          = ((1 + β)/(K n)) Σ_k ‖f̂_k − f‖²                 (the value; n = B·C·H·W)

    (official ``VectorQuantizer2.forward``, ``models/quant.py``: ``F.mse_loss(f_hat.data, f)
    .mul_(beta) + F.mse_loss(f_hat, f_no_grad)`` accumulated per scale, times ``1/SN``).

    Backward (custom: each term differentiates one side only). With ``L̄`` the cotangent and
    ``δ_k = f̂_k − f``, ``∂MSE(a, b)/∂a = (2/n)(a − b)``::

        f̄    = (2β L̄ / (K n)) Σ_k (f − f̂_k)       (commitment terms)
        f̂̄_k = (2 L̄ / (K n)) (f̂_k − f)            (codebook terms)

    The straight-through output ``f̂_ST = sg[f̂ − f] + f`` of the quantizer carries the
    decoder's gradient to f separately.

    Args:
        f: encoder features f (B, C, H, W), float32/float64.
        f_hats: the partial reconstructions f̂_1..f̂_K (K, B, C, H, W), same dtype.
        beta: commitment weight β ≥ 0 (default 0.25, official ``VectorQuantizer2(beta=0.25)``).

    Returns:
        loss: a scalar in the dtype of f.

    Reference: Tian et al., *Visual Autoregressive Modeling: Scalable Image Generation via
    Next-Scale Prediction*, NeurIPS 2024, arXiv:2404.02905, §3.2 and Algorithm 1; official
    FoundationVision/VAR ``models/quant.py``.

    >>> import numpy as np, refimpl
    >>> f = np.zeros((1, 1, 1, 2))
    >>> f_hats = np.array([[[[[1.0, 1.0]]]], [[[[0.0, 2.0]]]]])   # K = 2
    >>> float(refimpl.quantization_sparsity.multiscale_vq_loss(f, f_hats))   # 1.25·(1 + 2)/2
    1.875
    """
    dtype = f.dtype
    scales, size = f_hats.shape[0], f.size
    delta = f_hats - f[None]
    squares = np.einsum("i,i->", delta.ravel().astype(np.float64), delta.ravel().astype(np.float64))
    loss = (1.0 + beta) / (scales * size) * squares
    return np.asarray(loss, dtype=dtype), (delta, beta)


@multiscale_vq_loss.defvjp
def multiscale_vq_loss_backward(residuals, g_loss):
    delta, beta = residuals
    dtype = delta.dtype
    scales, size = delta.shape[0], delta[0].size
    scale = 2.0 * float(np.asarray(g_loss)) / (scales * size)
    g_f = (-beta * scale * delta.sum(axis=0, dtype=np.float64)).astype(dtype)
    g_f_hats = (dtype.type(scale) * delta).astype(dtype, copy=False)
    return g_f, g_f_hats


# -- multiscale_residual_quantize --------------------------------------------------------------
#: VAR's scales pn_1..pn_K (official ``VQVAE(v_patch_nums=(1, 2, 3, 4, 5, 6, 8, 10, 13, 16))``,
#: ``models/vqvae.py``; ``--pn 1_2_3_4_5_6_8_10_13_16`` in ``utils/arg_util.py``)
VAR_PATCH_NUMS = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)

#: PyTorch's bicubic parameter (``get_cubic_upsample_coefficients``: ``A = -0.75``)
CUBIC_A = -0.75


def area_matrix(size_in, size_out):
    """1-D ``F.interpolate(mode="area")`` = adaptive average pooling as a (size_out, size_in)
    matrix: output i averages inputs ``[⌊i·n/m⌋, ⌈(i+1)·n/m⌉)`` (PyTorch
    ``AdaptiveAveragePooling``: ``start_index``/``end_index``; windows overlap when m ∤ n)."""
    matrix = np.zeros((size_out, size_in))
    for i in range(size_out):
        start = (i * size_in) // size_out
        end = -((-(i + 1) * size_in) // size_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def _cubic_weights(t):
    """The four weights of taps ``⌊x⌋ − 1 .. ⌊x⌋ + 2`` at fraction t (PyTorch
    ``cubic_convolution2(t + 1)``, ``cubic_convolution1(t)``, ``cubic_convolution1(1 − t)``,
    ``cubic_convolution2(2 − t)``; Keys' kernel with A = −0.75)."""
    a = CUBIC_A

    def near(x):  # |x| ≤ 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 ≤ |x| ≤ 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)


def bicubic_matrix(size_in, size_out):
    """1-D ``F.interpolate(mode="bicubic", align_corners=False)`` as a (size_out, size_in)
    matrix. Source coordinate ``x = (n/m)(j + ½) − ½`` (not clamped at 0 for cubic:
    ``area_pixel_compute_source_index(..., cubic=True)``), taps ``⌊x⌋ − 1 .. ⌊x⌋ + 2``
    clamped to ``[0, n − 1]`` (``upsample_get_value_bounded``): a clamped tap adds its weight
    to the border pixel."""
    matrix = np.zeros((size_out, size_in))
    scale = size_in / size_out
    for j in range(size_out):
        x = scale * (j + 0.5) - 0.5
        base = int(np.floor(x))
        for offset, weight in zip(range(-1, 3), _cubic_weights(x - base), strict=True):
            matrix[j, min(max(base + offset, 0), size_in - 1)] += weight
    return matrix


def resize(x, matrix):
    """Apply a separable 1-D resampling matrix (m, n) along H and W of x (..., n, n)."""
    return np.einsum("yp,...pq,xq->...yx", matrix, x, matrix)


def resize_adjoint(y, matrix):
    """The adjoint of :func:`resize`: ``Mᵀ y M`` along H and W, (..., m, m) → (..., n, n);
    ⟨resize(x, M), y⟩ = ⟨x, resize_adjoint(y, M)⟩."""
    return np.einsum("yp,...yx,xq->...pq", matrix, y, matrix)


def conv3x3(h, weight, bias):
    """``nn.Conv2d(C, C, 3, stride=1, padding=1)``: out[o] = b[o] + Σ_{i,dy,dx} W[o,i,dy,dx]·
    h[i, y+dy−1, x+dx−1] (cross-correlation, zero padding)."""
    padded = np.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))  # (B,C,H,W,3,3)
    return np.einsum("bihwyx,oiyx->bohw", windows, weight) + bias[None, :, None, None]


def phi_positions(scales, convs):
    """Which of the P φ convolutions each scale uses (official ``PhiPartiallyShared`` /
    ``PhiNonShared.__getitem__``): ticks ``linspace(1/(3P), 1 − 1/(3P), P)`` if P = 4 else
    ``linspace(1/(2P), 1 − 1/(2P), P)``; scale k (0-based) takes the tick nearest to
    ``k/(K − 1)`` (first on ties). P = 1 is ``PhiShared``. K = 1: position 0 (the official
    ``si/(SN − 1)`` divides by zero)."""
    if convs == 4:
        ticks = np.linspace(1 / 3 / convs, 1 - 1 / 3 / convs, convs)
    else:
        ticks = np.linspace(1 / 2 / convs, 1 - 1 / 2 / convs, convs)
    return [int(np.argmin(np.abs(ticks - (k / (scales - 1) if scales > 1 else 0.0)))) for k in range(scales)]


def _nearest_cosine(z, codebook):
    """argmax_v of cos(z, E_v) with ``F.normalize`` (x / max(‖x‖, 1e-12)); first on ties."""
    z_unit = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    codes_unit = codebook / np.maximum(np.linalg.norm(codebook, axis=1, keepdims=True), 1e-12)
    return np.argmax(z_unit @ codes_unit.T, axis=1)


def _check_multiscale(bound):
    f, patch_nums = bound["f"], bound["patch_nums"]
    if patch_nums is not None and not (int(patch_nums[-1]) == f.shape[2] == f.shape[3]):
        raise ArgumentError(
            "patch_nums",
            f"the last scale equal to H = W of f ({f.shape[2]}, {f.shape[3]})",
            f"last scale {int(patch_nums[-1])}",
        )
    if patch_nums is None and not (f.shape[2] == f.shape[3] == VAR_PATCH_NUMS[-1]):
        raise ArgumentError(
            "f",
            f"H = W = {VAR_PATCH_NUMS[-1]} for the default patch_nums {VAR_PATCH_NUMS}",
            f"(H, W) = ({f.shape[2]}, {f.shape[3]})",
        )


@op(
    inputs={
        "f": FloatArray("B", "C", "H", "W"),
        "codebook": FloatArray("V", "C"),
        "phi_weights": FloatArray("P", "C", "C", 3, 3),
        "phi_biases": FloatArray("P", "C"),
        "patch_nums": IntArray("K", low=1, optional=True),
        "quant_resi": RealScalar(0),
        "using_znorm": Flag(),
    },
    outputs=("indices", "f_hat", "f_hats"),
    differentiable=("f", "codebook", "phi_weights", "phi_biases"),
    check=_check_multiscale,
    custom_vjp="straight-through output f̂_ST = sg[f̂ − f] + f: its cotangent goes to f unchanged "
    "(and not to the codebook or φ), though f̂ is piecewise constant in f",
)
def multiscale_residual_quantize(
    f, codebook, phi_weights, phi_biases, *, patch_nums=None, quant_resi=0.5, using_znorm=False
):
    r"""VAR's multi-scale residual quantizer: quantize f coarse to fine, K token maps.

    VAR tokenizes a feature map into K token maps of growing size pn_k × pn_k. Each scale
    area-downsamples what is still unexplained (the residual), picks the nearest code of a
    shared codebook per position, upsamples the chosen codes back to H × W (bicubic),
    refines them with a 3×3 convolution φ and subtracts the result from the residual. The
    sum of the refined maps is the reconstruction f̂; the encoder learns through the
    straight-through output ``f̂_ST = sg[f̂ − f] + f``, the codebook and φ through the loss
    on the partial reconstructions (:func:`multiscale_vq_loss`).

    Forward (official ``VectorQuantizer2.forward`` / ``f_to_idxBl_or_fhat``, models/quant.py),
    with ``A_k`` the area matrix (pn_k, H) and ``U_k`` the bicubic matrix (H, pn_k)::

        r_0 = f,  f̂_0 = 0
        for k = 1..K:
            z_k   = A_k r_{k−1} A_kᵀ                  (per channel; z_K = r_{K−1}: no resize)
            idx_k = argmin_v ‖z_k[b,:,y,x] − E_v‖²     (direct differences; ties: lowest v)
                    (using_znorm: argmax_v cos(z_k[b,:,y,x], E_v))
            e_k   = E[idx_k]                           (B, C, pn_k, pn_k)
            h_k   = U_k e_k U_kᵀ                       (h_K = e_K)
            φ_k(h) = (1 − ρ) h + ρ (Conv3×3(h; W_p, b_p)),   p = p(k)
            f̂_k  = f̂_{k−1} + φ_k(h_k),   r_k = r_{k−1} − φ_k(h_k)

    so ``f̂_k + r_k = f`` after every scale. ``A_k``: ``F.interpolate(mode="area")``, i.e.
    adaptive average pooling (overlapping windows when pn_k ∤ H). ``U_k``: PyTorch's bicubic
    with ``align_corners=False``, A = −0.75, source ``x = (n/m)(j + ½) − ½`` and taps clamped
    to the border (``aten/src/ATen/native/UpSample.h``: ``area_pixel_compute_source_index``,
    ``get_cubic_upsample_coefficients``, ``upsample_get_value_bounded``). The conv choice
    p(k) is the official ``PhiPartiallyShared`` rule (P = 4 convs, ``share_quant_resi=4``;
    P = 1 is ``PhiShared``, P = K ``PhiNonShared``): see :func:`phi_positions`. The
    distances are direct differences (``nearest_codewords`` of residual_vq), not the
    official expanded ``‖z‖² + ‖e‖² − 2z·e`` (``addmm_``), which loses digits in float32
    when codes nearly tie; the search runs in float64 for every input dtype.

    Backward. The indices are piecewise constant in every input, so for fixed indices the
    partial reconstructions ``f̂_k = Σ_{j≤k} φ_j(U_j E[idx_j] U_jᵀ)`` depend on E, W, b only
    (the official r_0 is ``f.detach()``: f gets nothing from them), and f gets the
    straight-through cotangent of f̂_ST. With cotangents ``f̂̄_ST`` and ``f̂̄_k``:

    1. f̄ = f̂̄_ST (straight through; E and φ get nothing from f̂_ST, official ``f_hat.data``).
    2. φ_j(h_j) enters every f̂_k with k ≥ j: its cotangent is ``s_j = Σ_{k≥j} f̂̄_k``.
    3. φ is affine in h and in (W, b) (cross-correlation with zero padding):
       ``b̄_p += ρ Σ_{b,y,x} s_j``;
       ``W̄_p[o,i,dy,dx] += ρ Σ_{b,y,x} s_j[b,o,y,x] h_j[b,i,y+dy−1,x+dx−1]``;
       ``h̄_j = (1 − ρ) s_j + ρ Σ_{o,dy,dx} W_p[o,i,2−dy,2−dx] s_j[b,o,y+dy−1,x+dx−1]``
       (the transposed convolution: the same correlation with the kernel flipped and
       its channel axes swapped).
    4. h_j = U_j e_j U_jᵀ is linear: ``ē_j = U_jᵀ h̄_j U_j`` (the hand-written adjoint of
       the bicubic resize, :func:`resize_adjoint`).
    5. e_j gathers rows of E: ``Ē_v += Σ_{(b,y,x): idx_j = v} ē_j[b,:,y,x]`` (scatter-add).

    Args:
        f: encoder features (B, C, H, W), float32/float64, H = W = pn_K.
        codebook: the shared codebook E (V, C), same dtype.
        phi_weights: the P φ convolutions' weights (P, C, C, 3, 3) (``Phi``: a
            ``nn.Conv2d(C, C, 3, padding=1)``).
        phi_biases: their biases (P, C).
        patch_nums: the scales pn_1..pn_K (K,) ints ≥ 1, last = H (default None: VAR's
            (1, 2, 3, 4, 5, 6, 8, 10, 13, 16), official ``v_patch_nums``; needs H = W = 16).
        quant_resi: ρ ≥ 0 (default 0.5, official ``VQVAE(quant_resi=0.5)``: "0.5 means
            φ(x) = 0.5conv(x) + (1 − 0.5)x"; ρ = 0 is the identity φ).
        using_znorm: nearest code by cosine instead of distance (default False, official
            ``VQVAE(using_znorm=False)``).

    Returns:
        indices: (B, L) int64, L = Σ pn_k², the token maps concatenated coarse to fine, each
            row-major over (y, x) (official ``idx_Bl``).
        f_hat: f̂ = f̂_K (B, C, H, W), the value of the straight-through output.
        f_hats: (K, B, C, H, W), the partial reconstructions f̂_1..f̂_K (the input of
            :func:`multiscale_vq_loss`).

    The Numba and CuPy backends take the resizes and the 3×3 convolutions as BLAS products
    (the resizes are the linear maps ``area_matrix``/``bicubic_matrix``) and search the nearest
    code in a kernel with the same float64 differences and tie rule, so their indices equal
    these exactly.

    Reference: Tian et al., *Visual Autoregressive Modeling: Scalable Image Generation via
    Next-Scale Prediction*, NeurIPS 2024, arXiv:2404.02905, §3.2, Algorithm 1; official
    FoundationVision/VAR ``models/quant.py`` (``VectorQuantizer2.forward``,
    ``f_to_idxBl_or_fhat``, ``Phi``, ``PhiPartiallyShared``) and ``models/vqvae.py``
    (defaults).

    >>> import numpy as np, refimpl
    >>> f = np.array([[[[1.0, 3.0], [1.0, 3.0]]]])                # B = C = 1, H = W = 2
    >>> E = np.array([[2.0], [-1.0], [1.0]])
    >>> W, b = np.zeros((1, 1, 1, 3, 3)), np.zeros((1, 1))
    >>> idx, f_hat, f_hats = refimpl.quantization_sparsity.multiscale_residual_quantize(
    ...     f, E, W, b, patch_nums=np.array([1, 2]), quant_resi=0.0)
    >>> idx   # scale 1: mean 2 → code 0; scale 2: residual (−1, 1) per row → codes 1, 2
    array([[0, 1, 2, 1, 2]])
    >>> f_hat[0, 0]
    array([[1., 3.],
           [1., 3.]])
    """
    dtype = f.dtype
    batch, channels, height, _ = f.shape
    scales = VAR_PATCH_NUMS if patch_nums is None else tuple(int(n) for n in patch_nums)
    count = len(scales)
    positions = phi_positions(count, phi_weights.shape[0])
    codes = codebook.astype(np.float64)
    weights, biases = phi_weights.astype(np.float64), phi_biases.astype(np.float64)
    rest = f.astype(np.float64)  # r_0 = f (detached: no gradient from f_hats to f)
    f_hat = np.zeros_like(rest)
    f_hats = np.empty((count, *f.shape), dtype=dtype)
    indices, chosen, upsampled, matrices = [], [], [], []
    for k, size in enumerate(scales):
        last = k == count - 1
        z = rest if last else resize(rest, area_matrix(height, size))  # (B, C, pn, pn)
        z_rows = z.transpose(0, 2, 3, 1).reshape(-1, channels)  # (B·pn·pn, C), row-major (b, y, x)
        idx = _nearest_cosine(z_rows, codes) if using_znorm else nearest_codewords(z_rows, codes)
        e = codes[idx].reshape(batch, size, size, channels).transpose(0, 3, 1, 2)
        matrix = None if last else bicubic_matrix(size, height)
        h = e if last else resize(e, matrix)
        p = positions[k]
        refined = (1.0 - quant_resi) * h + quant_resi * conv3x3(h, weights[p], biases[p])
        f_hat = f_hat + refined
        rest = rest - refined
        f_hats[k] = f_hat
        indices.append(idx.reshape(batch, size * size))
        chosen.append(idx)
        upsampled.append(h)
        matrices.append(matrix)
    residuals = (chosen, upsampled, matrices, positions, weights, quant_resi, codebook.shape, dtype)
    return (np.concatenate(indices, axis=1).astype(np.int64), f_hats[-1].copy(), f_hats), residuals


def conv3x3_input_adjoint(s, weight):
    """The adjoint of :func:`conv3x3` in h (bias aside): the correlation of s with the kernel
    flipped in (dy, dx) and its channel axes swapped."""
    padded = np.pad(s, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    return np.einsum("bohwyx,oiyx->bihw", windows, weight[:, :, ::-1, ::-1])


@multiscale_residual_quantize.defvjp
def multiscale_residual_quantize_backward(residuals, cotangents):
    chosen, upsampled, matrices, positions, weights, quant_resi, codebook_shape, dtype = residuals
    _, g_f_hat, g_f_hats = cotangents
    count = len(chosen)
    shape = upsampled[-1].shape
    g_f = np.zeros(shape) if g_f_hat is None else np.asarray(g_f_hat, dtype=np.float64)  # 1. ST
    g_codebook = np.zeros(codebook_shape)
    g_weights = np.zeros_like(weights)
    g_biases = np.zeros(weights.shape[:2])
    if g_f_hats is not None:
        g_f_hats = np.asarray(g_f_hats, dtype=np.float64)
        # 2. s_j = Σ_{k ≥ j} f̂̄_k: reverse cumulative sum over the scales
        g_refined = np.flip(np.cumsum(np.flip(g_f_hats, axis=0), axis=0), axis=0)
        for j in range(count):
            s, h, p = g_refined[j], upsampled[j], positions[j]
            # 3. φ(h) = (1 − ρ)h + ρ(conv(h; W_p) + b_p)
            g_biases[p] += quant_resi * s.sum(axis=(0, 2, 3))
            padded = np.pad(h, ((0, 0), (0, 0), (1, 1), (1, 1)))
            windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
            g_weights[p] += quant_resi * np.einsum("bohw,bihwyx->oiyx", s, windows)
            g_h = (1.0 - quant_resi) * s + quant_resi * conv3x3_input_adjoint(s, weights[p])
            # 4. adjoint of the bicubic upsampling (identity at the last scale)
            g_e = g_h if matrices[j] is None else resize_adjoint(g_h, matrices[j])
            # 5. scatter-add into the chosen codewords
            rows = g_e.transpose(0, 2, 3, 1).reshape(-1, codebook_shape[1])
            np.add.at(g_codebook, chosen[j], rows)
    return tuple(g.astype(dtype, copy=False) for g in (g_f, g_codebook, g_weights, g_biases))
