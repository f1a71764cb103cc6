"""``parallel_kernel``: a row-parallel Numba kernel whose parallel build is compiled only when
an input is large enough to use it.

Numba's ``parallel=True`` build of a kernel costs about three times the compile time of the
plain build (the ``prange`` loops are outlined into a threaded function, which is compiled
and wrapped on its own): 0.8 s against 0.25 s for LayerNorm's forward on this project's
2-core test machine. A conformance check calls every kernel on small samples, where threads
do not pay for their start-up, so compiling the parallel builds there would be most of the
first run's time for no gain.

``@parallel_kernel(...)`` therefore keeps two lazily compiled builds of one source:

* ``serial``: ``prange`` runs as ``range``; compiled on the first small call;
* ``parallel``: ``parallel=True``; compiled on the first call whose array arguments hold at
  least ``PARALLEL_MIN_ELEMENTS`` elements in all.

Both come from the same source and are cached on disk under different names. The choice
follows ``REFIMPL_NUMBA_PARALLEL``: ``auto`` (the default, by size), ``always`` (every call
takes the parallel build: how the tests check it) or ``never``; with one Numba thread the
parallel build is never used. ``set_parallel_mode`` changes it at run time.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

__all__ = [
    "PARALLEL_MIN_ELEMENTS",
    "parallel_kernel",
    "parallel_mode",
    "reduction_chunks",
    "set_parallel_mode",
]

# ~64 K elements: below it one thread finishes (a few tens of microseconds) before the
# thread pool's start-up and join would have paid off
PARALLEL_MIN_ELEMENTS = 1 << 16

_MODES = ("auto", "always", "never")
_mode = os.environ.get("REFIMPL_NUMBA_PARALLEL", "auto").strip().lower() or "auto"
if _mode not in _MODES:
    raise ValueError(f"REFIMPL_NUMBA_PARALLEL: expected one of {', '.join(_MODES)}, got {_mode!r}")


def reduction_chunks(rows: int, rows_per_chunk: int = 128, most: int = 64) -> int:
    """How many partial sums a reduction over ``rows`` rows keeps (one per block of rows,
    summed at the end): a function of the rows alone, never of the thread count, so that a
    gradient summed over rows has the same bits with any ``NUMBA_NUM_THREADS``, on any
    machine, in a worker process of a cluster or here. ``most`` caps the partials' memory;
    ``rows_per_chunk`` keeps a chunk long enough to be worth a thread."""
    return max(1, min(most, -(-rows // rows_per_chunk)))


def parallel_mode() -> str:
    """The current choice between the two builds: ``auto``, ``always`` or ``never``."""
    return _mode


def set_parallel_mode(mode: str) -> str:
    """Set ``auto`` | ``always`` | ``never``; returns the previous mode."""
    global _mode
    if mode not in _MODES:
        raise ValueError(f"set_parallel_mode: expected one of {', '.join(_MODES)}, got {mode!r}")
    previous, _mode = _mode, mode
    return previous


def _renamed(fn: Callable, suffix: str) -> Callable:
    """A copy of ``fn`` under another qualified name: Numba names its on-disk cache after the
    function's qualified name (and its index key does not hold the ``parallel`` flag), so the
    two builds must not share it."""
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = f"{fn.__qualname__}{suffix}"
    copy.__module__ = fn.__module__
    copy.__doc__ = fn.__doc__
    return copy


class ParallelKernel:
    """Two builds of one ``prange`` kernel, chosen per call by the size of its array arguments."""

    def __init__(
        self, fn: Callable, options: dict[str, Any], min_elements: int = PARALLEL_MIN_ELEMENTS
    ) -> None:
        self.py_func = fn
        self.min_elements = min_elements
        self.__name__ = fn.__name__
        self.__qualname__ = fn.__qualname__
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        self._options = options
        self.serial = numba.njit(cache=True, nogil=True, **options)(fn)
        self._parallel = None

    @property
    def parallel(self):
        """The ``parallel=True`` build (created on first use; compiled per signature on call)."""
        if self._parallel is None:
            self._parallel = numba.njit(parallel=True, cache=True, **self._options)(
                _renamed(self.py_func, "__parallel")
            )
        return self._parallel

    def __call__(self, *args: Any) -> Any:
        if _mode == "never" or numba.config.NUMBA_NUM_THREADS == 1:
            return self.serial(*args)
        if _mode == "always":
            return self.parallel(*args)
        elements = 0
        for a in args:
            if isinstance(a, np.ndarray):
                elements += a.size
        if elements >= self.min_elements:
            return self.parallel(*args)
        return self.serial(*args)

    def __repr__(self) -> str:
        return f"<parallel_kernel {self.__qualname__}>"


def parallel_kernel(
    *, min_elements: int = PARALLEL_MIN_ELEMENTS, **options: Any
) -> Callable[[Callable], ParallelKernel]:
    """Decorate a kernel written with ``prange``: ``@parallel_kernel(fastmath={"reassoc"})``.

    ``options`` go to ``numba.njit`` for both builds (``cache=True`` is always set);
    ``min_elements`` moves the size from which ``auto`` takes the parallel build. Call the
    kernel from Python only: Numba code calls plain ``@njit`` helpers.
    """

    def decorate(fn: Callable) -> ParallelKernel:
        return ParallelKernel(fn, options, min_elements)

    return decorate
