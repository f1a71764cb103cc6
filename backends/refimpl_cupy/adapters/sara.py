"""SaRA's sparse reparameterization on CuPy: one fused select each way.

Mirrors ``refimpl/adapters/sara.py``: ``W = where(M, Θ, W0)`` and ``Θ̄ = where(M, W̄, 0)``,
each a single fused elementwise kernel (memory-bound: every array read once, written once).
"""

from __future__ import annotations

from types import SimpleNamespace

from refimpl.authoring import Impl

from .._fuse import kernel_set


def _kernels(xp, fuse):
    @fuse
    def select(M, Theta, W0):
        return xp.where(M, Theta, W0)

    @fuse
    def masked(M, g_W):
        return xp.where(M, g_W, 0.0)

    return SimpleNamespace(select=select, masked=masked)


kernels_for = kernel_set(_kernels)


def sara_sparse_reparam_forward(W0, M, Theta):
    return kernels_for(W0).select(M, Theta, W0), M


def sara_sparse_reparam_backward(M, g_W):
    return (kernels_for(g_W).masked(M, g_W),)


IMPLS = {"sara_sparse_reparam": Impl(sara_sparse_reparam_forward, sara_sparse_reparam_backward)}
