"""DCC gradient matching on CuPy: fused elementwise kernels + row sums.

Mirrors ``refimpl/data_selection/dcc.py``: the row products ``a·b``, ``a²``, ``b²`` in one
fused kernel, summed per row; ``D = Σ_r (1 − dot/(‖a‖‖b‖ + ε))``; the backward is one fused
kernel ``ḡ_b = along_b·b − a/den·ḡ`` per element.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def products(a, b):
        return a * b, a * a, b * b

    @fuse
    def grad(a, b, along_b, along_a):
        return along_b * b + along_a * a

    return SimpleNamespace(products=products, grad=grad)


kernels_for = kernel_set(_kernels)


def _distance(a, b, eps):
    xp = xp_of(a)
    k = kernels_for(a)
    a, b = a.astype(xp.float64), b.astype(xp.float64)  # float32 squares overflow past 1e19
    products, squares_a, squares_b = k.products(a, b)
    dot = products.sum(axis=-1)
    norm_a = xp.sqrt(squares_a.sum(axis=-1))
    norm_b = xp.sqrt(squares_b.sum(axis=-1))
    denominator = norm_a * norm_b + eps
    distance = (1 - dot / denominator).sum()
    return distance, (a, b, dot, norm_a, norm_b, denominator)


def _backward(terms, g):
    a, b, dot, norm_a, norm_b, denominator = terms
    xp = xp_of(a)
    k = kernels_for(a)
    safe_norm_b = xp.where(norm_b > 0, norm_b, 1)
    along_b = xp.where(norm_b > 0, g * (dot / denominator) * norm_a / (safe_norm_b * denominator), 0)
    return k.grad(a, b, along_b[:, None], (-g / denominator)[:, None])


def gradient_matching_distance_forward(g_real, g_syn, *, eps=1e-6):
    xp = xp_of(g_syn)
    dtype = g_syn.dtype
    if g_syn.ndim == 1:  # a 1-D parameter contributes 0
        return xp.zeros((), dtype=dtype), (None, g_syn.shape, dtype)
    rows = g_syn.shape[0]
    distance, terms = _distance(g_real.reshape(rows, -1), g_syn.reshape(rows, -1), eps)
    return xp.asarray(distance, dtype=dtype), (terms, g_syn.shape, dtype)


def gradient_matching_distance_backward(residuals, g_distance):
    terms, shape, dtype = residuals
    xp = xp_of(g_distance)
    if terms is None:
        return (xp.zeros(shape, dtype=dtype),)
    return (_backward(terms, g_distance.astype(xp.float64)).reshape(shape).astype(dtype),)


def dcc_contrastive_gradient_forward(g_real, g_syn, *, contrast=True, eps=1e-6):
    xp = xp_of(g_syn)
    dtype = g_syn.dtype
    if g_syn.ndim == 2:  # per-class 1-D parameters contribute 0
        return xp.zeros((), dtype=dtype), (None, g_syn.shape, dtype, contrast)
    if contrast:  # the class means, in float64
        rows = g_syn.shape[1]
        a = g_real.mean(axis=0, dtype=xp.float64).reshape(rows, -1)
        b = g_syn.mean(axis=0, dtype=xp.float64).reshape(rows, -1)
    else:
        rows = g_syn.shape[0] * g_syn.shape[1]
        a, b = g_real.reshape(rows, -1), g_syn.reshape(rows, -1)
    distance, terms = _distance(a, b, eps)
    return xp.asarray(distance, dtype=dtype), (terms, g_syn.shape, dtype, contrast)


def dcc_contrastive_gradient_backward(residuals, g_distance):
    terms, shape, dtype, contrast = residuals
    xp = xp_of(g_distance)
    if terms is None:
        return (xp.zeros(shape, dtype=dtype),)
    g = g_distance.astype(xp.float64)
    if contrast:  # every class gets (1/C) of the mean's cotangent
        g_mean = _backward(terms, g / shape[0]).reshape(shape[1:])
        return (xp.broadcast_to(g_mean, shape).astype(dtype),)
    return (_backward(terms, g).reshape(shape).astype(dtype),)


IMPLS = {
    "gradient_matching_distance": Impl(
        gradient_matching_distance_forward, gradient_matching_distance_backward
    ),
    "dcc_contrastive_gradient": Impl(dcc_contrastive_gradient_forward, dcc_contrastive_gradient_backward),
}
