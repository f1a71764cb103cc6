"""Everything a routine's file imports: the op decorator, argument specs, the shared blocks.

A reference file (``refimpl/<family>/<paper>.py``) and its fast twins
(``backends/refimpl_numba/<family>/<paper>.py``, ``backends/refimpl_cupy/...``) import from
here and nowhere else in refimpl::

    import numpy as np

    from ..authoring import FloatArray, IntArray, OneOf, Paper, op, reduce_rows, row_weights

    PAPER = Paper("Grokking at the Edge of Numerical Stability", arxiv="2501.04697", year=2025,
                  code="LucasPrietoAl/grokking-at-the-edge-of-numerical-stability")

    @op(inputs={"z": FloatArray("B", "K"), "y": IntArray("B", low=0, high="K"),
                "reduction": OneOf("mean", "sum", "none")},
        outputs=("loss",), differentiable=("z",))
    def stablemax_cross_entropy(z, y, *, reduction="mean"):
        ...

The op's family is its folder and its paper the module's ``PAPER``: neither is written again.
The family package exports every op of its modules by itself (:func:`export_family`).

Argument specs say what an argument is: ``FloatArray("B", "K")``, ``IntArray("B", high="K")``,
``BoolArray(...)`` for arrays (symbols shared between arguments must agree), and
``RealScalar(0, low_open=True)``, ``IntScalar(1)``, ``OneOf("mean", "sum")``, ``Flag()`` for
hyperparameters (``optional=True``: the argument may be None, meaning "not given"). A domain
rule no spec can state goes in ``check``, raising :class:`ArgumentError`.

The blocks (``logsumexp``, ``log_softmax``, ``softmax`` and their VJPs, ``softplus``,
``sigmoid``, ``row_norm``, ``l2_normalize``, ``reduce_rows``/``row_weights`` for mean/sum/none) work on the
array library of their input, so NumPy and CuPy code share one rule.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._blocks import (
    l2_normalize,
    l2_normalize_backward,
    log_sigmoid,
    log_softmax,
    log_softmax_backward,
    logsumexp,
    reduce_rows,
    row_norm,
    row_weights,
    sigmoid,
    sigmoid_and_slope,
    softmax,
    softmax_backward,
    softplus,
)
from ._deviations import Example, known_deviation
from ._discover import collect_impls
from ._errors import InputError, RangeError
from ._op import Impl, Op, Paper, defop
from ._spec import (
    ArgumentError,
    BoolArray,
    Flag,
    FloatArray,
    FloatArrays,
    Function,
    IntArray,
    IntScalar,
    OneOf,
    RealScalar,
    Scalar,
    Spec,
    Tensor,
    TensorList,
    array_namespace,
    quiet_floating_point,
    validate,
)
from ._state_dict import StateDict

__all__ = [
    "quiet_floating_point",
    "validate",
    "ArgumentError",
    "BoolArray",
    "Example",
    "Flag",
    "FloatArray",
    "FloatArrays",
    "Function",
    "Impl",
    "InputError",
    "RangeError",
    "IntArray",
    "IntScalar",
    "OneOf",
    "Op",
    "Paper",
    "RealScalar",
    "Scalar",
    "StateDict",
    "Tensor",
    "TensorList",
    "array_namespace",
    "collect_impls",
    "export_family",
    "known_deviation",
    "l2_normalize",
    "l2_normalize_backward",
    "log_sigmoid",
    "log_softmax",
    "log_softmax_backward",
    "logsumexp",
    "op",
    "reduce_rows",
    "row_norm",
    "row_weights",
    "sigmoid",
    "sigmoid_and_slope",
    "softmax",
    "softmax_backward",
    "softplus",
]


def _family_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) < 3 or parts[0] != "refimpl":
        raise TypeError(
            f"an op defined in {module!r} has no family folder: define it in refimpl/<family>/<paper>.py "
            "or pass family=..."
        )
    return parts[1]


def op(
    *,
    inputs: Mapping[str, Spec],
    outputs: Sequence[str],
    differentiable: Sequence[str] = (),
    check: Callable[[Mapping[str, Any]], None] | None = None,
    allow_empty: Sequence[str] = (),
    nonfinite_outputs: Mapping[str, Sequence[str]] | None = None,
    custom_vjp: str | None = None,
    state_dict: StateDict | None = None,
    family: str | None = None,
    paper: Paper | None = None,
) -> Callable[[Callable[..., tuple[Any, Any]]], Op]:
    """Decorator: register ``forward(*inputs, **params) -> (outputs, residuals)`` as an op.

    The family is the folder the module sits in (``refimpl/losses/...`` -> "losses") and the
    paper the module's ``PAPER``; ``family=``/``paper=`` are only for ops defined elsewhere.
    Register the backward with ``@the_op.defvjp``.

    Finite inputs must give finite outputs and gradients: the op layer raises
    :class:`RangeError` otherwise. ``nonfinite_outputs`` names the outputs whose non-finite
    values carry a meaning (``{"temperature": ("inf",)}``).

    ``custom_vjp="why"`` declares a backward that is by design not the derivative of the
    forward (a straight-through estimator, a preconditioned gradient): the suite then checks
    it against the ``stated_vjp`` of the op's cases, an independent evaluation of the formula
    the paper states, instead of finite differences.

    ``state_dict=StateDict(...)`` lets a merging op defined on one parameter tensor take
    whole models (mappings of names to arrays) as well (see ``refimpl._state_dict``).
    """

    def register(forward: Callable[..., tuple[Any, Any]]) -> Op:
        module = sys.modules.get(forward.__module__)
        chosen_paper = paper if paper is not None else getattr(module, "PAPER", None)
        if not isinstance(chosen_paper, Paper):
            raise TypeError(
                f"op {forward.__name__}: its module {forward.__module__} defines no PAPER = Paper(...) "
                "before the op (or pass paper=...)"
            )
        return defop(
            family=family or _family_of(forward.__module__),
            paper=chosen_paper,
            inputs=inputs,
            outputs=outputs,
            differentiable=differentiable,
            check=check,
            allow_empty=allow_empty,
            nonfinite_outputs=nonfinite_outputs,
            custom_vjp=custom_vjp,
            state_dict=state_dict,
        )(forward)

    return register


def export_family(package: str) -> list[str]:
    """Import every module of the family ``package`` and export its ops (and the helpers a
    module lists in ``EXPORTS``) as attributes of the package; return the names for ``__all__``.

    ``refimpl/losses/__init__.py`` is ``__all__ = export_family(__name__)``: adding a module
    with an op to the folder adds the op to ``refimpl.losses``, with nothing else to edit.
    """
    family = sys.modules[package]
    names: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(family.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        for name, value in vars(module).items():
            if isinstance(value, Op) and value.__module__ == module.__name__:
                names[name] = value
        for name in getattr(module, "EXPORTS", ()):
            names[name] = getattr(module, name)
    for name, value in names.items():
        setattr(family, name, value)
    return sorted(names)
