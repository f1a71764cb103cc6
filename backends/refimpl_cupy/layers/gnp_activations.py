"""MaxMin, GroupSort and Householder activations on CuPy.

Mirrors ``refimpl/layers/gnp_activations.py``. MaxMin is one fused kernel on the two members
of every pair (strict ``b > a``: a tie is not a swap), forward and backward; GroupSort is a
stable ``argsort`` of ``−x`` per group (ties keep their order) and a scatter back;
Householder takes ``s = z v`` and ``vᵀȳ`` as matrix-vector products and fuses the
elementwise branch selection.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def sort_pair(a, b, g_a, g_b):
        swap = b > a  # a tie keeps the first member in the max position
        return xp.where(swap, g_b, g_a), xp.where(swap, g_a, g_b)

    @fuse
    def reflect_where(z, v, s):
        return xp.where(s > 0, z, z - 2 * s * v)

    return SimpleNamespace(sort_pair=sort_pair, reflect_where=reflect_where)


kernels_for = kernel_set(_kernels)


def _pairs(x, pairing):
    if pairing == "adjacent":
        return x[..., 0::2], x[..., 1::2]
    half = x.shape[-1] // 2
    return x[..., :half], x[..., half:]


def _join(first, second, pairing):
    xp = xp_of(first)
    if pairing == "adjacent":
        return xp.stack([first, second], axis=-1).reshape(*first.shape[:-1], 2 * first.shape[-1])
    return xp.concatenate([first, second], axis=-1)


def maxmin_activation_forward(x, *, pairing="adjacent"):
    a, b = _pairs(x, pairing)
    high, low = kernels_for(x).sort_pair(a, b, a, b)
    return _join(high, low, pairing), (x, pairing)


def maxmin_activation_backward(residuals, g_y):
    x, pairing = residuals
    a, b = _pairs(x, pairing)
    g_first, g_second = _pairs(g_y, pairing)
    g_a, g_b = kernels_for(x).sort_pair(a, b, g_first, g_second)  # the swap is its own inverse
    return (_join(g_a, g_b, pairing),)


def groupsort_activation_forward(x, *, group_size):
    xp = xp_of(x)
    groups = x.reshape(*x.shape[:-1], x.shape[-1] // group_size, group_size)
    order = xp.argsort(-groups, axis=-1, kind="stable" if xp is np else None)  # CuPy: always stable
    y = xp.take_along_axis(groups, order, axis=-1).reshape(x.shape)
    return y, order


def groupsort_activation_backward(order, g_y):
    xp = xp_of(g_y)
    g_x = xp.empty(order.shape, dtype=g_y.dtype)
    xp.put_along_axis(g_x, order, g_y.reshape(order.shape), axis=-1)  # x̄ = Pᵀ ȳ
    return (g_x.reshape(g_y.shape),)


def householder_activation_forward(z, v):
    s = (z @ v)[..., None]
    return kernels_for(z).reflect_where(z, v, s), (z, v, s)


def householder_activation_backward(residuals, g_y):
    z, v, s = residuals
    xp = xp_of(z)
    v_dot_g = (g_y @ v)[..., None]
    reflected = (s <= 0).astype(z.dtype)
    g_z = g_y - (2 * reflected * v_dot_g) * v
    d = v.shape[0]
    weight_g = (reflected * s).reshape(-1)  # rows on the identity side contribute nothing
    weight_z = (reflected * v_dot_g).reshape(-1)
    g_v = -2 * (weight_g @ g_y.reshape(-1, d) + weight_z @ z.reshape(-1, d))
    return g_z, xp.asarray(g_v, dtype=v.dtype)


IMPLS = {
    "maxmin_activation": Impl(maxmin_activation_forward, maxmin_activation_backward),
    "groupsort_activation": Impl(groupsort_activation_forward, groupsort_activation_backward),
    "householder_activation": Impl(householder_activation_forward, householder_activation_backward),
}
