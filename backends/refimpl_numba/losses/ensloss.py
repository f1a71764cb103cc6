"""EnsLoss surrogate: NumPy's sorts + fused Numba kernels.

Mirrors ``refimpl/losses/ensloss.py``. The two sorts (the sampled derivatives, and the stable
argsort of the margins) are NumPy's; ``BoxCox⁻¹_λ(ε)`` is the reference's own function. One
parallel pass then places the clipped derivatives by rank, applies the tail division for
``s > 1`` and the ``−1e−6`` offset, and writes each ``g_i·s_i`` for the loss (summed in
float64). The backward is the stated ``ḡ·g/n``: one scaling.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from refimpl.authoring import Impl
from refimpl.losses.ensloss import DERIVATIVE_FLOOR, DERIVATIVE_OFFSET, box_cox_inverse

from .._jit import parallel_kernel


@parallel_kernel()
def _place(s, order, b_ascending, floor, offset, g, products):
    n = s.shape[0]
    for j in prange(n):
        i = order[j]
        d = max(-np.float64(b_ascending[n - 1 - j]), floor)  # the j-th smallest of −b, clipped
        margin = np.float64(s[i])
        if margin > 1.0:  # superlinear tail
            d = d / margin
        d -= offset
        g[i] = d
        products[i] = np.float64(g[i]) * margin


def ensloss_surrogate_forward(s, eps, *, lam=0.0):
    work = np.ascontiguousarray(s)
    b_ascending = np.sort(box_cox_inverse(eps, lam))
    order = np.argsort(work, kind="stable")
    g = np.empty_like(work)
    products = np.empty(work.shape[0], dtype=np.float64)
    _place(work, order, b_ascending, DERIVATIVE_FLOOR, DERIVATIVE_OFFSET, g, products)
    return s.dtype.type(products.sum() / work.shape[0]), (g,)


def ensloss_surrogate_backward(residuals, g_loss):
    (g,) = residuals
    return (g * g.dtype.type(np.float64(g_loss) / g.shape[0]),)


IMPLS = {"ensloss_surrogate": Impl(ensloss_surrogate_forward, ensloss_surrogate_backward)}
