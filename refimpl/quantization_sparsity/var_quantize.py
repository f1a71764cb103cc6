"""VAR's multi-scale residual quantizer loss (Visual Autoregressive Modeling, Tian et al.)."""

from __future__ import annotations

import numpy as np

from ..authoring import FloatArray, Paper, RealScalar, op

__all__ = ["PAPER", "multiscale_vq_loss"]

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
