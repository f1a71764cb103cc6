"""The op layer's finiteness test, parallel: ``Σ (x − x)`` is 0 for finite entries and NaN
as soon as one is NaN or ±inf (``inf − inf`` is NaN), and it cannot overflow.

The op layer refuses non-finite float inputs (``refimpl.set_check_finite``); its default test
is NumPy's one-threaded ``sum``. This one splits the pass over Numba's threads. Only
``reassoc`` is allowed to the compiler: folding ``x − x`` to 0 would need the ``nnan`` and
``ninf`` flags, which are not given.
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ._jit import parallel_kernel


@parallel_kernel(fastmath={"reassoc"})
def _difference_sum(flat):
    total = 0.0
    for i in prange(flat.size):
        total += flat[i] - flat[i]
    return total


def all_finite(value) -> bool:
    """True when every entry of the float array is finite (False: look entry by entry)."""
    if isinstance(value, np.ndarray) and value.flags.c_contiguous and value.size >= 1 << 16:
        return math.isfinite(_difference_sum(value.reshape(-1)))
    with np.errstate(over="ignore", invalid="ignore"):
        return math.isfinite(float(np.sum(value)))
