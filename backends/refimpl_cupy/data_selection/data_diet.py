"""Data Diet scores (EL2N, last-layer GraNd, margin) on CuPy: fused elementwise kernels + row reductions.

Mirrors ``refimpl/data_selection/data_diet.py``: the softmax with its row max subtracted, the
error ``e = p − onehot(y)`` with ``e_y = −Σ_{k≠y} p_k`` (no 1 − p_y cancellation), norms from
``row_norm`` (rescaled where a square underflows), the mean over the runs. The EL2N backward is
one fused kernel, ``z̄ = (ḡ/R)·p (s − ⟨s, p⟩)``.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, row_norm

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def shifted_exp(z, m):
        return xp.exp(z - m)  # the row max is subtracted: exp cannot overflow

    @fuse
    def error(p, is_label, rest):
        return xp.where(is_label, -rest, p)

    @fuse
    def unit_error(e, norm):
        return xp.where(norm > 0, e / xp.where(norm > 0, norm, 1), 0)

    @fuse
    def el2n_grad(p, s, inner, weight):
        return weight * p * (s - inner)

    return SimpleNamespace(shifted_exp=shifted_exp, error=error, unit_error=unit_error, el2n_grad=el2n_grad)


kernels_for = kernel_set(_kernels)


def _probabilities_and_errors(z, y):
    xp = xp_of(z)
    k = kernels_for(z)
    exponentials = k.shifted_exp(z, z.max(axis=-1, keepdims=True))
    p = exponentials / exponentials.sum(axis=-1, keepdims=True)
    is_label = xp.arange(z.shape[-1])[None, :] == y.astype(xp.int64)[:, None]
    rest = xp.where(is_label, 0, p).sum(axis=-1, keepdims=True)
    return p, k.error(p, is_label, rest).astype(z.dtype), is_label


def el2n_score_forward(z, y, *, ord=2):
    xp = xp_of(z)
    p, e, _ = _probabilities_and_errors(z, y)
    norms = row_norm(e)[..., 0] if ord == 2 else xp.abs(e).sum(axis=-1)
    return norms.mean(axis=0).astype(z.dtype), (p, e, norms, ord)


def el2n_score_backward(residuals, g_scores):
    p, e, norms, ord = residuals
    xp = xp_of(p)
    k = kernels_for(p)
    s = k.unit_error(e, norms[..., None]) if ord == 2 else xp.sign(e)
    inner = (s * p).sum(axis=-1, keepdims=True)
    weight = (g_scores.astype(p.dtype) / p.shape[0])[None, :, None]
    return (k.el2n_grad(p, s, inner, weight).astype(p.dtype),)


def grand_score_last_layer_forward(z, y, h, *, bias=True):
    xp = xp_of(z)
    _, e, _ = _probabilities_and_errors(z, y)
    feature_norm = row_norm(h)[..., 0]
    if bias:
        feature_norm = xp.hypot(feature_norm, 1)  # sqrt(‖h‖² + 1) without squaring ‖h‖
    return (row_norm(e)[..., 0] * feature_norm).mean(axis=0).astype(z.dtype), None


def margin_score_forward(z, y, *, kind="max"):
    xp = xp_of(z)
    p, _, is_label = _probabilities_and_errors(z, y)
    p_label = xp.where(is_label, p, 0).sum(axis=-1)
    if kind == "max":
        margins = xp.where(is_label, -xp.inf, p).max(axis=-1) - p_label
    else:
        margins = xp.where(is_label, 0, p).sum(axis=-1) - (z.shape[-1] - 1) * p_label
    return margins.mean(axis=0).astype(z.dtype), None


IMPLS = {
    "el2n_score": Impl(el2n_score_forward, el2n_score_backward),
    "grand_score_last_layer": Impl(grand_score_last_layer_forward),
    "margin_score": Impl(margin_score_forward),
}
