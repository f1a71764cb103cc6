"""LR+GD and normalized LR+GD steps on CuPy: ``cupy.matmul`` for ``Ax`` and ``Aᵀc``, fused weights.

Mirrors ``refimpl/optim/logistic_gd.py``: the per-row logistic weight (and its log-space
forms for the normalized step) is one fused elementwise kernel; the reductions over rows
are CuPy reductions. On the host it runs as plain NumPy (fusion off).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def slope_times_label(m, y):  # σ(−m)·y, exp only of −|m|
        e = xp.exp(-abs(m))
        return xp.where(m <= 0, 1 / (1 + e), e / (1 + e)) * y

    @fuse
    def log_slope(m):  # log σ(−m) = −softplus(m)
        return -(xp.maximum(m, 0) + xp.log1p(xp.exp(-abs(m))))

    @fuse
    def log_softplus(t):
        u = xp.exp(xp.minimum(t, 0))
        safe = xp.where(u > 0, u, 1)
        ratio = xp.where(u > 0, xp.log1p(safe) / safe, 1)
        positive = xp.maximum(t, 0) + xp.log1p(xp.exp(-abs(t)))
        return xp.where(t > 0, xp.log(positive), t + xp.log(ratio))

    return SimpleNamespace(
        slope_times_label=slope_times_label, log_slope=log_slope, log_softplus=log_softplus
    )


kernels_for = kernel_set(_kernels)


def logistic_gd_step_forward(data, labels, x, *, lr):
    xp = xp_of(x)
    y = labels.astype(x.dtype)
    m = y * xp.matmul(data, x)
    grad = -xp.matmul(data.T, kernels_for(x).slope_times_label(m, y)) / data.shape[0]
    return x - x.dtype.type(lr) * grad, None


def normalized_logistic_gd_step_forward(data, labels, x, *, lr, normalizer):
    xp = xp_of(x)
    k = kernels_for(x)
    y = labels.astype(x.dtype)
    m = y * xp.matmul(data, x)
    log_w = k.log_slope(m)
    if normalizer == "loss":
        log_s = k.log_softplus(-m)
        top = log_s.max()
        shift = top + xp.log(xp.exp(log_s - top).sum())
    else:
        shift = log_w.max()
    v = xp.matmul(data.T, xp.exp(log_w - shift) * y)
    if normalizer == "grad_norm":
        norm = float(xp.sqrt(xp.sum(v.astype(xp.float64) ** 2)))
        if norm == 0:
            return x.copy(), None
        v = v / x.dtype.type(norm)
    return (x + x.dtype.type(lr) * v).astype(x.dtype), None


IMPLS = {
    "logistic_gd_step": Impl(logistic_gd_step_forward),
    "normalized_logistic_gd_step": Impl(normalized_logistic_gd_step_forward),
}
