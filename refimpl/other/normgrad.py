"""NormGrad saliency (There and Back Again: Revisiting Backpropagation Saliency Methods,
Rebuffi, Fong, Ji and Vedaldi)."""

from __future__ import annotations

import numpy as np

from ..authoring import ArgumentError, FloatArray, IntScalar, OneOf, Paper, op

__all__ = ["PAPER", "normgrad_saliency"]

PAPER = Paper(
    "There and Back Again: Revisiting Backpropagation Saliency Methods",
    arxiv="2004.02866",
    year=2020,
    code="facebookresearch/TorchRay",
)


def conv_output_size(size: int, kernel_size: int, stride: int, padding: int, dilation: int) -> int:
    """The spatial size of a convolution's output (PyTorch's ``Conv2d`` formula)."""
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1


def _check(arguments) -> None:
    x, grad = arguments["x"], arguments["grad"]
    if arguments["variant"] != "conv":
        if grad.shape != x.shape:
            raise ArgumentError(
                "grad",
                f"the gradient of the activation x, of x's shape {tuple(x.shape)} (variant "
                f"{arguments['variant']!r}; the layer's input and output gradient need variant='conv')",
                f"shape {tuple(grad.shape)}",
            )
        return
    k, s, p, d = (arguments[name] for name in ("kernel_size", "stride", "padding", "dilation"))
    out = tuple(conv_output_size(n, k, s, p, d) for n in x.shape[2:])
    if min(out) < 1:
        raise ArgumentError(
            "kernel_size", f"a kernel that fits the padded input {tuple(x.shape[2:])}", f"output size {out}"
        )
    if grad.shape[0] != x.shape[0] or tuple(grad.shape[2:]) != out:
        raise ArgumentError(
            "grad",
            f"the gradient of the layer's output, (B, C_out, {out[0]}, {out[1]}) with B = {x.shape[0]} "
            f"(kernel {k}, stride {s}, padding {p}, dilation {d})",
            f"shape {tuple(grad.shape)}",
        )


def channel_norm(x: np.ndarray) -> np.ndarray:
    """‖x_p‖₂ over the channels (axis 1) at every location, in float64, keeping the axis."""
    x64 = x.astype(np.float64)
    return np.sqrt((x64 * x64).sum(axis=1, keepdims=True))


def unfold_norm(a: np.ndarray, kernel_size: int, stride: int, padding: int, dilation: int) -> np.ndarray:
    """‖unfold(a)_p‖₂ at every output location p (B, 1, H', W'), in float64.

    The patch of location (h, w) holds ``a[:, c, h·s + i·d − pad, w·s + j·d − pad]`` for every
    channel c and offsets i, j < k (zero outside the input); its squared norm is the window sum
    of the channel sums of squares, so the patches are never materialized.
    """
    a64 = a.astype(np.float64)
    squares = np.pad((a64 * a64).sum(axis=1), ((0, 0), (padding, padding), (padding, padding)))
    height = conv_output_size(a.shape[2], kernel_size, stride, padding, dilation)
    width = conv_output_size(a.shape[3], kernel_size, stride, padding, dilation)
    total = np.zeros((a.shape[0], height, width))
    for i in range(kernel_size):
        for j in range(kernel_size):
            rows = slice(i * dilation, i * dilation + stride * (height - 1) + 1, stride)
            cols = slice(j * dilation, j * dilation + stride * (width - 1) + 1, stride)
            total += squares[:, rows, cols]
    return np.sqrt(total)[:, None]


@op(
    inputs={
        "x": FloatArray("B", "C", "H", "W"),
        "grad": FloatArray("B", "D", "Hg", "Wg"),
        "variant": OneOf("identity", "selective", "conv"),
        "kernel_size": IntScalar(1),
        "stride": IntScalar(1),
        "padding": IntScalar(0),
        "dilation": IntScalar(1),
    },
    outputs=("saliency",),
    check=_check,
)
def normgrad_saliency(x, grad, *, variant="identity", kernel_size=1, stride=1, padding=0, dilation=1):
    r"""NormGrad: the saliency of a location is the norm of its contribution to a weight gradient.

    The gradient of a layer's weight is a sum over the spatial locations p of one term per
    location. NormGrad scores p by the Frobenius norm of that term: locations whose term is
    large "matter for training". For a convolution with weight (C_out, C_in, k, k) the term is
    the outer product ``g_p ⊗ unfold(a)_p`` of the output gradient and the input patch, and
    ``‖u ⊗ v‖_F = ‖u‖‖v‖``. Inserting a virtual 1×1 identity layer at an activation x gives
    the identity version, ``‖x_p‖·‖∇x_p‖``; the selective version keeps only the positive
    elementwise products ``x ⊙ ∇x`` (TorchRay's ``norm_grad_selective``).

    Forward (norms over channels, float64 accumulation, the map rounded to x's dtype)::

        identity  : s_p = ‖x_p‖₂ · ‖∇x_p‖₂                   x, ∇x: (B, C, H, W)
        selective : s_p = ‖max(x_p ⊙ ∇x_p, 0)‖₂
        conv      : s_p = ‖g_p‖₂ · ‖unfold(a)_p‖₂            a = x: (B, C_in, H, W),
                                                             g = grad: (B, C_out, H', W')

    ``unfold(a)_p`` is the zero-padded k×k (dilated, strided) input patch read by output
    location p, with ``H' = ⌊(H + 2·pad − d(k − 1) − 1)/s⌋ + 1``; its squared norm is a window
    sum of ``Σ_c a²``. With k = 1, s = 1, pad = 0 the conv version is the identity version
    of the layer's input and output gradient. No gradient is defined: a saliency map
    (reference-only: a one-off measurement on a layer's activations and gradients).

    Args:
        x: the activation x (identity, selective), or the conv layer's input a (conv); float
            (B, C, H, W).
        grad: ∇x, the gradient of the score w.r.t. x, same shape as x (identity, selective);
            or g, the gradient w.r.t. the conv layer's output (B, C_out, H', W') (conv).
        variant: "identity" (default, TorchRay's ``norm_grad``), "selective"
            (``norm_grad_selective``) or "conv".
        kernel_size, stride, padding, dilation: the conv layer's geometry (square, as one
            int each; defaults 1, 1, 0, 1: a 1×1 layer); used by variant="conv" only.

    Returns:
        saliency: the map (B, 1, H, W) for identity/selective, (B, 1, H', W') for conv (the
        channel axis kept, as TorchRay does), x's dtype.

    Reference: Rebuffi, Fong, Ji, Vedaldi, *There and Back Again: Revisiting Backpropagation
    Saliency Methods*, CVPR 2020, arXiv:2004.02866 (Section 3, NormGrad). Official code:
    facebookresearch/TorchRay, ``torchray/attribution/norm_grad.py``
    (``gradient_to_norm_grad_saliency``: norms over dim 1, keepdim;
    ``gradient_to_norm_grad_selective_saliency``: ``norm(clamp(x·∇x, min=0), 2, 1)``).

    >>> import numpy as np, refimpl
    >>> x = np.array([3.0, 4.0]).reshape(1, 2, 1, 1)           # ‖x_p‖ = 5
    >>> grad = np.array([0.0, -2.0]).reshape(1, 2, 1, 1)       # ‖∇x_p‖ = 2
    >>> refimpl.other.normgrad_saliency(x, grad)               # 5·2
    array([[[[10.]]]])
    """
    if variant == "identity":
        saliency = channel_norm(x) * channel_norm(grad)
    elif variant == "selective":
        # clamp(x ⊙ ∇x, min=0), then the norm over channels (products in float64)
        saliency = channel_norm(np.maximum(x.astype(np.float64) * grad.astype(np.float64), 0.0))
    else:
        saliency = channel_norm(grad) * unfold_norm(x, kernel_size, stride, padding, dilation)
    return saliency.astype(x.dtype), None
