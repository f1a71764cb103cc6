"""refimpl: reference implementations of numerical routines from deep-learning papers.

Every routine is an :class:`Op` with a NumPy forward and, where differentiable, a
hand-derived backward. Quick tour::

    import refimpl
    op = refimpl.get("layer_norm")
    y = op(x, gamma, beta, eps=1e-5)                        # reference forward
    y, pullback = refimpl.vjp(op, x, gamma, beta, eps=1e-5)
    g_x, g_gamma, g_beta = pullback(g_y)
    refimpl.vjp("layer_norm", x, gamma, beta, backend="numba")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import (
    adapters,
    data_selection,
    layers,
    losses,
    merging,
    optim,
    other,
    quantization_sparsity,
    regularizers,
    reweighting,
    solvers,
    structure_learning,
    transport,
)
from ._deviations import Deviation, Example, deviations, known_deviation
from ._errors import InputError, NotDifferentiableError, RangeError, UnknownOpError, UnsupportedOpError
from ._op import (
    Backend,
    Impl,
    Op,
    Paper,
    UnknownBackendError,
    backend,
    backends,
    get,
    install_hint,
    ops,
    set_check_results,
    vjp,
)
from ._spec import check_finite_enabled, set_check_finite

__version__ = "0.1.0"

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def to_torch(name: str | Op, backend: str | Backend | None = None) -> Callable[..., Any]:
    """The op ``name`` as a function of torch tensors (see :func:`refimpl_conformance.frameworks.to_torch`).

    Imported on call, so that ``import refimpl`` never imports torch."""
    from refimpl_conformance.frameworks import to_torch

    return to_torch(name, backend)


def to_jax(name: str | Op, backend: str | Backend | None = None) -> Callable[..., Any]:
    """The op ``name`` as a JAX function (see :func:`refimpl_conformance.frameworks.to_jax`).

    Imported on call, so that ``import refimpl`` never imports jax."""
    from refimpl_conformance.frameworks import to_jax

    return to_jax(name, backend)


__all__ = [
    "Backend",
    "Deviation",
    "Example",
    "Impl",
    "InputError",
    "NotDifferentiableError",
    "Op",
    "Paper",
    "RangeError",
    "UnknownBackendError",
    "UnknownOpError",
    "UnsupportedOpError",
    "adapters",
    "data_selection",
    "deviations",
    "backend",
    "backends",
    "check_finite_enabled",
    "get",
    "install_hint",
    "known_deviation",
    "layers",
    "losses",
    "merging",
    "ops",
    "optim",
    "other",
    "quantization_sparsity",
    "regularizers",
    "reweighting",
    "solvers",
    "structure_learning",
    "transport",
    "set_check_finite",
    "set_check_results",
    "to_jax",
    "to_torch",
    "vjp",
]
