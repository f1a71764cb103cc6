"""Sparse envelope function, k-support prox and WGSEF penalty on CuPy: a row sort, prefix sums
and fused elementwise kernels.

Mirrors ``refimpl/regularizers/sparse_envelope.py``: the magnitudes are sorted descending per
row (``xp.sort``), the tail levels of every split ``r`` come from one suffix sum, and the split
is the first ``r`` whose inequality holds (``argmax`` of the condition); the gradient
``sign(x) max(|x|, θ)`` is one fused kernel.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def envelope_grad(x, theta, weight):
        return weight * xp.sign(x) * xp.maximum(abs(x), theta)

    @fuse
    def prox_shrink(x, theta, gamma):
        magnitude = abs(x)
        shrunk = xp.where(
            magnitude > (1 + gamma) * theta,
            magnitude / (1 + gamma),
            xp.maximum(magnitude - gamma * theta, 0.0),
        )
        return xp.sign(x) * shrunk

    return SimpleNamespace(envelope_grad=envelope_grad, prox_shrink=prox_shrink)


kernels_for = kernel_set(_kernels)


def _sorted_magnitudes(x):
    xp = xp_of(x)
    return -xp.sort(-abs(x.astype(xp.float64)), axis=-1)


def _envelope_level(a, k):
    """θ and r per row of descending magnitudes ``a`` (the reference's ``envelope_level``)."""
    xp = xp_of(a)
    splits = xp.arange(k)
    tail_start = k - splits - 1
    suffix = xp.cumsum(a[..., ::-1], axis=-1)[..., ::-1]
    level = suffix[..., tail_start] / (splits + 1)
    before = xp.where(tail_start >= 1, a[..., xp.maximum(tail_start - 1, 0)], xp.inf)
    found = before > level
    found[..., k - 1] = True
    r = xp.argmax(found, axis=-1)
    return xp.take_along_axis(level, r[..., None], axis=-1)[..., 0], r


def _envelope_value(a, theta, r, k):
    xp = xp_of(a)
    head_count = k - r - 1
    squares = xp.cumsum(a * a, axis=-1)
    head = xp.take_along_axis(squares, xp.maximum(head_count - 1, 0)[..., None], axis=-1)[..., 0]
    head = xp.where(head_count > 0, head, 0.0)
    return 0.5 * (head + (r + 1) * theta * theta)


def sparse_envelope_function_forward(x, *, k):
    xp = xp_of(x)
    a = _sorted_magnitudes(x)
    theta, r = _envelope_level(a, k)
    return xp.asarray(_envelope_value(a, theta, r, k), dtype=x.dtype), (x, theta)


def sparse_envelope_function_backward(residuals, g_value):
    x, theta = residuals
    xp = xp_of(x)
    weight = xp.asarray(g_value, dtype=xp.float64)[..., None]
    g_x = kernels_for(x).envelope_grad(x.astype(xp.float64), theta[..., None], weight)
    return (g_x.astype(x.dtype),)


def _prox_level(z, k, gamma):
    """θ per row of descending magnitudes ``z`` (the reference's ``prox_level``)."""
    xp = xp_of(z)
    n, rows = z.shape[-1], z.shape[:-1]
    theta = xp.zeros(rows)
    settled = xp.zeros(rows, dtype=bool)
    for r in range(k):
        start = k - r - 1
        tail = z[..., start:]
        count = xp.arange(1, n - start + 1)
        level = xp.cumsum(tail, axis=-1) / (r + 1 + gamma * count)
        after = xp.concatenate([tail[..., 1:], xp.full(rows + (1,), -xp.inf)], axis=-1)
        last = xp.argmax(after <= gamma * level, axis=-1)
        level_r = xp.take_along_axis(level, last[..., None], axis=-1)[..., 0]
        before = z[..., start - 1] / (1 + gamma) if start >= 1 else xp.full(rows, xp.inf)
        take = ~settled & ((before > level_r) | (r == k - 1))
        theta = xp.where(take, level_r, theta)
        settled |= take
    return theta


def k_support_squared_prox_forward(x, *, k, gamma):
    xp = xp_of(x)
    theta = _prox_level(_sorted_magnitudes(x), k, float(gamma))
    prox = kernels_for(x).prox_shrink(x.astype(xp.float64), theta[..., None], float(gamma))
    return prox.astype(x.dtype), None


def wgsef_penalty_forward(x, weights, *, k, composition):
    xp = xp_of(x)
    norms = xp.sqrt((x.astype(xp.float64) ** 2).sum(axis=-1))
    u = weights.astype(xp.float64) * norms
    a = -xp.sort(-u)
    theta, r = _envelope_level(a, k)
    value = _envelope_value(a, theta, r, k)
    if composition == "envelope_minus_half_norm":
        value = value - 0.5 * (u * u).sum()
    return xp.asarray(value, dtype=x.dtype), (x, weights, norms, u, theta, composition)


def wgsef_penalty_backward(residuals, g_penalty):
    x, weights, norms, u, theta, composition = residuals
    xp = xp_of(x)
    if composition == "envelope_minus_half_norm":
        slope = xp.maximum(theta - u, 0.0)
    else:
        slope = xp.maximum(u, theta)
    nonzero = norms > 0
    g = xp.asarray(g_penalty, dtype=xp.float64)
    factor = xp.where(nonzero, g * slope * weights / xp.where(nonzero, norms, 1.0), 0.0)
    return ((factor[:, None] * x).astype(x.dtype),)


IMPLS = {
    "wgsef_penalty": Impl(wgsef_penalty_forward, wgsef_penalty_backward),
    "k_support_squared_prox": Impl(k_support_squared_prox_forward),
    "sparse_envelope_function": Impl(sparse_envelope_function_forward, sparse_envelope_function_backward),
}
