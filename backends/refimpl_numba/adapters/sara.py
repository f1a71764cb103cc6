"""SaRA's sparse reparameterization: one fused Numba pass each way.

Mirrors ``refimpl/adapters/sara.py``. The op is a masked select, memory-bound: the forward
reads W0, M and Θ once and writes W (``W = where(M, Θ, W0)``), the backward reads M and W̄
and writes Θ̄ (``Θ̄ = where(M, W̄, 0)``). Any shape: the arrays are walked flat. Serial: on
the 2 shared cores it was measured on, the select over 8M float32 entries took 32 ms serial,
44 ms with ``parallel=True`` and 41 ms for ``np.where``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from refimpl.authoring import Impl


@njit(cache=True)
def _select(M, Theta, W0, W):
    for i in range(W.size):
        W[i] = Theta[i] if M[i] else W0[i]


@njit(cache=True)
def _masked(M, g_W, g_Theta):
    for i in range(g_W.size):
        g_Theta[i] = g_W[i] if M[i] else 0.0


def _flat(array):
    return np.ascontiguousarray(array).reshape(-1)


def sara_sparse_reparam_forward(W0, M, Theta):
    W = np.empty(W0.shape, dtype=W0.dtype)
    _select(_flat(M), _flat(Theta), _flat(W0), W.reshape(-1))
    return W, M


def sara_sparse_reparam_backward(M, g_W):
    g_Theta = np.empty(g_W.shape, dtype=g_W.dtype)
    _masked(_flat(M), _flat(g_W), g_Theta.reshape(-1))
    return (g_Theta,)


IMPLS = {"sara_sparse_reparam": Impl(sara_sparse_reparam_forward, sara_sparse_reparam_backward)}
