"""The ℓ1 matrix-sensing loss and one SubGM step on CuPy: cuBLAS products and fused passes.

Mirrors ``refimpl/solvers/subgm.py``: ``r = A_flat · vec(UUᵀ) − y``, ``f = mean |r|``; the
sub-gradient ``G = (S + Sᵀ)U/m`` with ``S = sign(r)ᵀ A_flat`` (sign(0) = 0), the symmetrization
and scaling in one fused kernel.
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set, xp_of


def _kernels(xp, fuse):
    @fuse
    def symmetrize(s, s_t, scale):
        return (s + s_t) * scale

    @fuse
    def step(u, eta, g):
        return u - eta * g

    return SimpleNamespace(symmetrize=symmetrize, step=step)


kernels_for = kernel_set(_kernels)


def _residuals(U, A, y):  # noqa: N803
    m, d, _ = A.shape
    a_flat = A.reshape(m, d * d)
    return a_flat, a_flat @ (U @ U.T).reshape(d * d) - y


def _subgradient(U, a_flat, signs):  # noqa: N803
    k = kernels_for(U)
    d = U.shape[0]
    s = (signs @ a_flat).reshape(d, d)
    return k.symmetrize(s, s.T, U.dtype.type(1 / a_flat.shape[0])) @ U


def robust_matrix_sensing_l1_loss_forward(U, A, y):  # noqa: N803
    xp = xp_of(U)
    a_flat, residuals = _residuals(U, A, y)
    loss = xp.abs(residuals).mean()
    return xp.asarray(loss, dtype=U.dtype), (U, a_flat, xp.sign(residuals))


def robust_matrix_sensing_l1_loss_backward(residuals, g_loss):
    U, a_flat, signs = residuals  # noqa: N806
    g_u = _subgradient(U, a_flat, signs) * g_loss.astype(U.dtype)
    return (g_u.astype(U.dtype, copy=False),)


def subgm_step_forward(U, A, y, *, eta0, rho, t, normalization):  # noqa: N803
    xp = xp_of(U)
    a_flat, residuals = _residuals(U, A, y)
    loss = xp.abs(residuals).mean()
    g = _subgradient(U, a_flat, xp.sign(residuals))
    eta = eta0 * rho**t
    if normalization == "frobenius":
        norm = float(xp.linalg.norm(g))
        eta = eta / norm if norm > 0 else 0.0
    u_new = kernels_for(U).step(U, U.dtype.type(eta), g)
    return (u_new.astype(U.dtype, copy=False), xp.asarray(loss, dtype=U.dtype)), None


IMPLS = {
    "robust_matrix_sensing_l1_loss": Impl(
        robust_matrix_sensing_l1_loss_forward, robust_matrix_sensing_l1_loss_backward
    ),
    "subgm_step": Impl(subgm_step_forward),
}
