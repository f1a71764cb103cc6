"""NormGrad saliency on CuPy: float64 channel reductions and one fused product.

Mirrors ``refimpl/other/normgrad.py``: the channel sums of squares (``Σ_c x²``, ``Σ_c ∇x²``,
or ``Σ_c max(x·∇x, 0)²`` for the selective map) are float64 reductions over axis 1; the map
``√s₁·√s₂`` is one fused kernel. For the conv version ``‖unfold(a)_p‖²`` is the k×k window
sum (zero padding, stride, dilation) of the padded ``Σ_c a²``, a loop of k² strided slices.
On the host the same functions run as plain NumPy.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl
from refimpl.other.normgrad import conv_output_size

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def norm_product(first_squares, second_squares):
        return xp.sqrt(first_squares) * xp.sqrt(second_squares)

    @fuse
    def positive_product_squared(x, g):
        product = xp.maximum(x * g, 0.0)
        return product * product

    return SimpleNamespace(norm_product=norm_product, positive_product_squared=positive_product_squared)


kernels_for = kernel_set(_kernels)


def _channel_squares(x, xp):
    x64 = x.astype(xp.float64)
    return (x64 * x64).sum(axis=1, keepdims=True)


def normgrad_saliency_forward(x, grad, *, variant="identity", kernel_size=1, stride=1, padding=0, dilation=1):
    xp = xp_of(x)
    k = kernels_for(x)
    if variant == "identity":
        saliency = k.norm_product(_channel_squares(x, xp), _channel_squares(grad, xp))
    elif variant == "selective":
        squares = k.positive_product_squared(x.astype(xp.float64), grad.astype(xp.float64)).sum(
            axis=1, keepdims=True
        )
        saliency = xp.sqrt(squares)
    else:
        a_squares = _channel_squares(x, xp)[:, 0]
        padded = xp.pad(a_squares, ((0, 0), (padding, padding), (padding, padding)))
        height = conv_output_size(x.shape[2], kernel_size, stride, padding, dilation)
        width = conv_output_size(x.shape[3], kernel_size, stride, padding, dilation)
        window = xp.zeros((x.shape[0], height, width))
        for i in range(kernel_size):
            for j in range(kernel_size):
                rows = slice(i * dilation, i * dilation + stride * (height - 1) + 1, stride)
                cols = slice(j * dilation, j * dilation + stride * (width - 1) + 1, stride)
                window += padded[:, rows, cols]
        saliency = k.norm_product(_channel_squares(grad, xp), window[:, None])
    return saliency.astype(x.dtype), None


IMPLS = {"normgrad_saliency": Impl(normgrad_saliency_forward)}
