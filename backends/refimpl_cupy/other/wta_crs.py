"""WTA-CRS matrix product on CuPy: gathered columns and rows, one small cuBLAS product.

Mirrors ``refimpl/other/wta_crs.py``. The term weights α (1 on the |C| largest p, ties to the
lowest index; ``(1 − P_C)/(s·p_i)`` summed over the draws of i) are computed on the host
from p and the drawn indices (n and s numbers), in float64 as the reference; only the k'
terms with α_i ≠ 0 are gathered on the device:

* forward: ``Ŷ = (X[:, S]·α_S) Z[S, :]``;
* backward: ``X̄[:, S] = (Ȳ Z[S, :]ᵀ)·α_S`` and ``Z̄[S, :] = α_S·(X[:, S]ᵀ Ȳ)`` into
  zero-filled arrays (S holds no repeated index, so plain assignment scatters).

On the host the same functions run as plain NumPy.
"""

from __future__ import annotations

import numpy as np

from refimpl.authoring import Impl
from refimpl.other.wta_crs import term_weights

from .._fuse import xp_of


def wta_crs_matmul_forward(
    x, z, p, sampled, *, num_deterministic, official_longtail=False, official_first_iteration=False
):
    xp = xp_of(x)
    alpha = term_weights(p, sampled, num_deterministic, official_longtail, official_first_iteration)
    support_host = np.flatnonzero(alpha)  # the terms with a nonzero weight, ascending
    weights_host = alpha[support_host]
    support = xp.asarray(support_host)
    weights = xp.asarray(weights_host.astype(x.dtype))
    z_s = z[support]
    x_s = xp.take(x, support, axis=1) * weights
    y = x_s @ z_s
    return y.astype(x.dtype, copy=False), (x, z_s, support, weights, z.shape)


def wta_crs_matmul_backward(residuals, g_y):
    x, z_s, support, weights, z_shape = residuals
    xp = xp_of(x)
    g_x = xp.zeros(x.shape, dtype=x.dtype)
    g_z = xp.zeros(z_shape, dtype=x.dtype)
    if support.shape[0]:
        g_x[:, support] = (g_y @ z_s.T) * weights  # X̄ = Ȳ Zᵀ diag(α)
        g_z[support] = weights[:, None] * (xp.take(x, support, axis=1).T @ g_y)  # Z̄ = diag(α) Xᵀ Ȳ
    return g_x, g_z


IMPLS = {"wta_crs_matmul": Impl(wta_crs_matmul_forward, wta_crs_matmul_backward)}
