"""Residual vector quantization with a straight-through output, and its codebook and
commitment loss (the tokenizer of ResGen, Kim et al.; the loss of VQ-VAE)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, IntArray, OneOf, Paper, RealScalar, op

__all__ = ["PAPER", "residual_vector_quantize", "vq_codebook_commitment_loss"]

PAPER = Paper(
    "Efficient Generative Modeling with Residual Vector Quantization-Based Tokens",
    arxiv="2412.10208",
    year=2024,
)


def nearest_codewords(residual, codebook):
    """Index of the nearest codeword of each row, by squared distances computed as direct
    differences ``Σ_c (r_c − e_c)²`` (no ``‖r‖² − 2r·e + ‖e‖²`` cancellation); ties go to
    the lowest index (``argmin`` returns the first minimum). The differences and their squares
    are taken in float64 for every input dtype: float32 squares overflow at |r − e| ~ 2e19,
    where every distance would compare as inf."""
    difference = residual[:, None, :].astype(np.float64) - codebook[None, :, :]  # (N, K, C), float64
    distances = np.einsum("nkc,nkc->nk", difference, difference)
    return np.argmin(distances, axis=1)


@op(
    inputs={
        "z": FloatArray("N", "C"),
        "codebooks": FloatArray("D", "K", "C"),
    },
    outputs=("indices", "z_q", "residuals"),
    differentiable=("z",),
    custom_vjp="straight-through output ẑ_ST = z + sg[ẑ − z]: the quantized vectors pass their "
    "cotangent to z unchanged, though ẑ is piecewise constant in z",
)
def residual_vector_quantize(z, codebooks):
    r"""Residual vector quantization (RVQ): quantize, subtract, quantize what is left, D times.

    One codebook of K vectors gives coarse codes; RVQ refines them by quantizing the
    residual error with a second codebook, and so on for D codebooks (the depth). Each
    vector becomes D indices, and its reconstruction is the sum of the chosen codewords.
    Training passes gradients through the quantizer straight through: the decoder sees ẑ,
    the encoder receives ẑ's gradient as if the quantizer were the identity.

    Forward, for each row z (C,) and codebooks ``E⁽ᵈ⁾`` (K, C), d = 1..D::

        r_0 = z
        k_d = argmin_k ‖r_{d−1} − E⁽ᵈ⁾_k‖²       (direct differences; ties: lowest index)
        q_d = E⁽ᵈ⁾_{k_d},   r_d = r_{d−1} − q_d
        ẑ   = Σ_d q_d                            (summed in depth order)

    The distances are sums of squared differences, not the expanded
    ``‖r‖² − 2 r·E_k + ‖E_k‖²``, which cancels catastrophically in float32 when codes are
    nearly equal. The forward value of the straight-through output ``ẑ_ST = z + sg[ẑ − z]``
    is ẑ. The residual norm need not decrease with depth (it does only when each codebook
    holds the zero vector).

    Backward (custom). The indices are piecewise constant in z, so almost everywhere
    ``∂r_{d−1}/∂z = I`` (each residual is z minus codewords chosen by z's cell) and
    ``∂ẑ/∂z = 0``. The straight-through estimator replaces the latter by the identity::

        z̄ = ẑ̄ + Σ_{d=1..D} r̄_{d−1}

    (the residuals' part is the exact derivative, the ẑ part the straight-through one).
    The codebooks get no gradient here: they learn from
    :func:`vq_codebook_commitment_loss`, whose residual cotangents flow back to z through
    this VJP.

    Args:
        z: vectors (N, C), float32/float64.
        codebooks: E (D, K, C): D codebooks of K codewords, same dtype.

    Returns:
        indices: (N, D) int64, the codeword chosen at each depth.
        z_q: ẑ (N, C), the reconstruction (the value of the straight-through output).
        residuals: (D, N, C), ``r_{d−1}``: the residual each depth quantized (r_0 = z);
            the last error is ``r_D = residuals[D−1] − E⁽ᴰ⁾[indices[:, D−1]]``.

    Reference: Kim, Moon, Lee, Cho, *Efficient Generative Modeling with Residual Vector
    Quantization-Based Tokens*, arXiv:2412.10208 (ResGen's RVQ tokenizer); Zeghidour et al.,
    *SoundStream*, 2021 (RVQ); van den Oord et al., *Neural Discrete Representation
    Learning*, 2017 (the straight-through estimator).

    >>> import numpy as np, refimpl
    >>> z = np.array([[1.25, -0.5]])
    >>> E = np.array([[[1.0, 0.0], [0.0, 1.0]], [[0.25, -0.5], [0.0, 0.0]]])
    >>> indices, z_q, residuals = refimpl.quantization_sparsity.residual_vector_quantize(z, E)
    >>> indices, z_q  # depth 1: (1, 0); the residual (0.25, −0.5) is codeword 0 at depth 2
    (array([[0, 0]]), array([[ 1.25, -0.5 ]]))
    """
    depth = codebooks.shape[0]
    residual = z
    z_q = np.zeros_like(z)
    indices = np.empty((z.shape[0], depth), dtype=np.int64)
    residuals = np.empty((depth, *z.shape), dtype=z.dtype)
    for d in range(depth):
        residuals[d] = residual
        chosen = nearest_codewords(residual, codebooks[d])
        quantized = codebooks[d][chosen]
        indices[:, d] = chosen
        z_q = z_q + quantized
        residual = residual - quantized
    return (indices, z_q, residuals), z.dtype


@residual_vector_quantize.defvjp
def residual_vector_quantize_backward(dtype, cotangents):
    _, g_z_q, g_residuals = cotangents
    # straight through ẑ, identity through every residual r_{d−1} = z − (chosen codewords)
    g_z = np.asarray(g_z_q, dtype=dtype) + np.asarray(g_residuals, dtype=dtype).sum(axis=0)
    return (g_z.astype(dtype, copy=False),)


@op(
    inputs={
        "residuals": FloatArray("D", "N", "C"),
        "codebooks": FloatArray("D", "K", "C"),
        "indices": IntArray("N", "D", low=0, high="K"),
        "beta": RealScalar(0),
        "reduction": OneOf("mean", "sum"),
    },
    outputs=("loss",),
    differentiable=("residuals", "codebooks"),
    custom_vjp="stop-gradients: the codebook term ‖sg[r] − q‖² moves only the codewords and the "
    "commitment term β‖r − sg[q]‖² only the residuals, so the backward is not the derivative of "
    "the value (1 + β)‖r − q‖²",
)
def vq_codebook_commitment_loss(residuals, codebooks, indices, *, beta=0.25, reduction="mean"):
    r"""VQ codebook and commitment loss of residual quantization, summed over the depths.

    The quantizer's argmin has no useful gradient, so the codewords and the encoder are
    trained by two squared errors with stop-gradients: the codebook term pulls each chosen
    codeword toward the residual it quantized, the commitment term (weight β) keeps the
    residual close to its codeword so the encoder's outputs do not drift away from the
    codebook. With RVQ, each depth contributes both terms for its own residual.

    Forward, with ``q_d = E⁽ᵈ⁾[indices[:, d]]`` (N, C) and ``r_{d−1} = residuals[d]``::

        L = Σ_d  s·‖sg[r_{d−1}] − q_d‖² + β·s·‖r_{d−1} − sg[q_d]‖²
          = (1 + β) s Σ_d ‖r_{d−1} − q_d‖²                 (the value)

    with ``s = 1/(N·C)`` for reduction="mean" (each depth's term a mean over its N·C
    entries, like VQ-VAE's ``F.mse_loss``) and ``s = 1`` for "sum".

    Backward (custom: sg blocks one of the two paths in each term). With ``L̄`` the
    cotangent and ``δ_d = r_{d−1} − q_d``::

        r̄_{d−1}   = 2β s L̄ δ_d                                 (commitment term only)
        q̄_d       = −2 s L̄ δ_d                                 (codebook term only)
        Ē⁽ᵈ⁾_k    = Σ_{n: indices[n, d] = k} q̄_d[n]            (scatter-add to the codewords)

    Pass ``r̄`` to the pullback of :func:`residual_vector_quantize` (its ``residuals``
    cotangent) to reach the encoder.

    Args:
        residuals: (D, N, C), the residual each depth quantized (the ``residuals`` output of
            :func:`residual_vector_quantize`), float32/float64.
        codebooks: E (D, K, C), same dtype.
        indices: (N, D) chosen codewords, integers in [0, K).
        beta: commitment weight β ≥ 0 (default 0.25, VQ-VAE's value, §3.2 of van den Oord
            et al.).
        reduction: "mean" (default; per depth over N·C entries) or "sum".

    Returns:
        loss: a scalar in the dtype of the inputs.

    Reference: van den Oord, Vinyals, Kavukcuoglu, *Neural Discrete Representation
    Learning*, 2017 (the loss, β = 0.25); Kim, Moon, Lee, Cho, *Efficient Generative
    Modeling with Residual Vector Quantization-Based Tokens*, arXiv:2412.10208 (RVQ
    tokenizer).

    >>> import numpy as np, refimpl
    >>> r = np.array([[[1.0, 2.0]]])            # D = 1, N = 1, C = 2
    >>> E = np.array([[[0.0, 0.0], [1.0, 1.0]]])
    >>> float(refimpl.quantization_sparsity.vq_codebook_commitment_loss(r, E, np.array([[1]])))
    0.625
    """
    dtype = residuals.dtype
    depth, rows, width = residuals.shape
    scale = 1.0 / (rows * width) if reduction == "mean" else 1.0
    quantized = np.stack([codebooks[d][indices[:, d]] for d in range(depth)])  # (D, N, C)
    delta = residuals - quantized
    squares = np.sum(delta * delta)
    loss = dtype.type((1.0 + beta) * scale) * squares
    return np.asarray(loss, dtype=dtype), (delta, indices, codebooks.shape, beta, scale)


@vq_codebook_commitment_loss.defvjp
def vq_codebook_commitment_loss_backward(residuals, g_loss):
    delta, indices, codebook_shape, beta, scale = residuals
    dtype = delta.dtype
    g = float(np.asarray(g_loss))
    g_residuals = dtype.type(2.0 * beta * scale * g) * delta
    g_quantized = dtype.type(-2.0 * scale * g) * delta
    g_codebooks = np.zeros(codebook_shape, dtype=dtype)
    for d in range(codebook_shape[0]):
        np.add.at(g_codebooks[d], indices[:, d], g_quantized[d])
    return g_residuals.astype(dtype, copy=False), g_codebooks
