"""MSBReg's multiview centroid and Brownian diffusive losses on CuPy: row norms, fused pieces.

Mirrors ``refimpl/losses/msbreg.py``. Norms come from ``row_norm`` (scaled where ``‖z‖²``
leaves the dtype's range); the squared chord ``‖ẑ − ĉ‖²`` and the two gradients,
``(2w/‖z‖)(δ − ẑ⟨ẑ, δ⟩)`` with ``δ = ẑ − ĉ`` and ``(w/‖z‖)(û − ẑ⟨ẑ, û⟩)``, are fused
elementwise kernels followed by row sums.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl, reduce_rows, row_norm, row_weights

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def difference(z, norm, c_hat):
        return z / norm - c_hat

    @fuse
    def tangent_grad(g_hat, z_hat, dot, scale):  # scale·(ĝ − ẑ⟨ẑ, ĝ⟩)
        return scale * (g_hat - z_hat * dot)

    return SimpleNamespace(difference=difference, tangent_grad=tangent_grad)


kernels_for = kernel_set(_kernels)


def _weights(g_loss, reduction, shape, dtype):
    g = g_loss.astype(dtype)
    return row_weights(g, reduction, shape[0] * shape[1]).reshape(shape + (1,))


def multiview_centroid_loss_forward(z, c, *, reduction="mean"):
    k = kernels_for(z)
    norm = row_norm(z)
    c_hat = c / row_norm(c)
    delta = k.difference(z, norm, c_hat[None])  # ẑ − ĉ
    per_entry = (delta * delta).sum(axis=-1)
    return reduce_rows(per_entry, reduction, z.dtype), (z, norm, delta, reduction)


def multiview_centroid_loss_backward(residuals, g_loss):
    z, norm, delta, reduction = residuals
    k = kernels_for(z)
    z_hat = z / norm
    w = _weights(g_loss, reduction, z.shape[:2], z.dtype)
    dot = (z_hat * delta).sum(axis=-1, keepdims=True)
    g_z = k.tangent_grad(delta, z_hat, dot, 2 * w / norm)
    return (g_z.astype(z.dtype, copy=False),)


def brownian_diffusive_loss_forward(z, u, *, reduction="mean"):
    xp = xp_of(z)
    norm = row_norm(z)
    u_hat = u / row_norm(u)
    cosine = (z / norm) @ u_hat
    return reduce_rows(cosine, reduction, z.dtype), (z, norm, u_hat, xp.expand_dims(cosine, -1), reduction)


def brownian_diffusive_loss_backward(residuals, g_loss):
    z, norm, u_hat, cosine, reduction = residuals
    k = kernels_for(z)
    w = _weights(g_loss, reduction, z.shape[:2], z.dtype)
    g_z = k.tangent_grad(u_hat, z / norm, cosine, w / norm)
    return (g_z.astype(z.dtype, copy=False),)


IMPLS = {
    "multiview_centroid_loss": Impl(multiview_centroid_loss_forward, multiview_centroid_loss_backward),
    "brownian_diffusive_loss": Impl(brownian_diffusive_loss_forward, brownian_diffusive_loss_backward),
}
