"""Error cases generated from an op's argument specs.

Most ways to call an op wrongly are already stated by its specs: a float array given as
integers or holding a NaN or an infinity, a Python list, an array of the wrong rank, a
dimension that disagrees with another argument, a label at the number of classes, a
hyperparameter out of its range, a choice that is not one, a missing argument.
:func:`generated_errors` takes a valid sample, breaks one argument at a time in each of those
ways, and returns the calls as :class:`ErrorCase` s that must raise
:class:`refimpl.InputError` naming that argument, on every backend. Hand-written error cases
keep only the rules no spec can state (a point outside the ball, a non-symmetric level set, a
repeated index).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

import refimpl
from refimpl import Op
from refimpl.authoring import Scalar, Tensor, TensorList

from ._cases import ErrorCase, OpCases, Sample

__all__ = ["generated_errors"]

ELLIPSIS = "..."


def _base_sample(cases: OpCases) -> Sample:
    """A valid call to break: the first random sample (dimensions as the seed draws them)."""
    return cases.random_sample(0)


def _dims_of(op: Op, arguments: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Each dimension symbol -> (the first argument that binds it, its size)."""
    first: dict[str, tuple[str, int]] = {}
    for name, spec in op.specs.items():
        value = arguments.get(name)
        if not isinstance(spec, Tensor) or not isinstance(value, np.ndarray):
            continue
        tail = spec.shape[1:] if spec.shape[:1] == (ELLIPSIS,) else spec.shape
        for symbol, size in zip(tail, value.shape[value.ndim - len(tail) :], strict=True):
            if isinstance(symbol, str):
                first.setdefault(symbol, (name, int(size)))
    return first


def _tensor_mutations(
    op: Op, name: str, spec: Tensor, value: np.ndarray, dims, first_float: str | None
) -> list[tuple[str, Any]]:
    mutations: list[tuple[str, Any]] = []
    if value.size:
        mutations.append(("given as a Python list", value.tolist()))
    if not spec.optional:
        mutations.append(("given as None", None))
    if spec.kind == "float":
        mutations.append(("with an integer dtype", value.astype(np.int64)))
        mutations.append(("in float16", value.astype(np.float16)))
        if first_float is not None and first_float != name:  # nothing is cast to agree
            other = np.float32 if value.dtype == np.float64 else np.float64
            mutations.append(
                (f"in {np.dtype(other)} beside a {value.dtype} '{first_float}'", value.astype(other))
            )
    elif spec.kind == "int":
        mutations.append(("with a float dtype", value.astype(np.float64)))
    else:
        mutations.append(("with an integer dtype", value.astype(np.int64)))
    has_ellipsis = spec.shape[:1] == (ELLIPSIS,)
    tail = spec.shape[1:] if has_ellipsis else spec.shape
    if not has_ellipsis:
        mutations.append(("with an extra axis", value[None]))
    elif tail and value.ndim == len(tail):
        mutations.append(("missing an axis", value[..., 0] if value.shape[-1] else value.sum(axis=-1)))
    elif tail and value.size:
        mutations.append(("as a 0-d array", np.asarray(value.reshape(-1)[0])))
    for axis, symbol in enumerate(tail):  # an empty axis the op does not allow
        if isinstance(symbol, str) and symbol not in op.allow_empty and dims.get(symbol, (name,))[0] == name:
            empty = np.take(value, [], axis=value.ndim - len(tail) + axis)
            mutations.append((f"with no entries along {symbol}", empty))
            break
    offset = value.ndim - len(tail)
    for axis, symbol in enumerate(tail):
        if not isinstance(symbol, str) or symbol not in dims or dims[symbol][0] == name:
            continue
        grown = (
            np.concatenate([value, np.take(value, [0], axis=offset + axis)], axis=offset + axis)
            if value.shape[offset + axis]
            else np.zeros(
                tuple(1 if i == offset + axis else s for i, s in enumerate(value.shape)), value.dtype
            )
        )
        mutations.append((f"one longer along {symbol} than '{dims[symbol][0]}' says", grown))
    if spec.kind == "float" and value.size:  # refused unless the spec allows that value
        for text, number in (("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf)):
            if text not in spec.allow:
                bad = value.copy()
                bad.flat[-1] = number
                mutations.append((f"with a {text} entry", bad))
    if spec.kind == "int" and value.size:
        if spec.low is not None:
            low = value.copy()
            low.flat[0] = spec.low - 1
            mutations.append((f"with a value below {spec.low}", low))
        high = dims.get(spec.high, (None, None))[1] if isinstance(spec.high, str) else spec.high
        if high is not None:
            above = value.copy()
            above.flat[-1] = high
            mutations.append((f"with a value at the upper bound {high}", above))
    return mutations


def _list_mutations(spec: TensorList, value: list[np.ndarray], longer: bool) -> list[tuple[str, Any]]:
    first = value[0]
    bad = first.copy()
    bad.flat[-1] = math.nan
    mutations: list[tuple[str, Any]] = [
        ("given as one array, not a list", first),
        ("with an integer array", [first.astype(np.int64), *value[1:]]),
        ("with an array of another rank", [first[None], *value[1:]]),
        ("with a nan entry", [bad, *value[1:]]),
    ]
    if not spec.optional:
        mutations.append(("given as None", None))
    if isinstance(spec.length, int) or longer:
        mutations.append(("one array longer", [*value, value[-1]]))
    return mutations


def _scalar_mutations(spec: Scalar, value: Any) -> list[tuple[str, Any]]:
    mutations: list[tuple[str, Any]] = []
    if spec.kind == "choice":
        mutations.append(("not one of the choices", "not-a-choice"))
    elif spec.kind == "function":
        mutations.append(("not callable", 1.0))
    elif spec.kind == "flag":
        mutations.append(("a string, not a bool", "yes"))
    else:
        if spec.low is not None:
            mutations.append(
                (
                    f"below its range ({'>' if spec.low_open else '>='} {spec.low:g})",
                    spec.low - (0 if spec.low_open else 1),
                )
            )
        if spec.high is not None:
            mutations.append(
                (
                    f"above its range ({'<' if spec.high_open else '<='} {spec.high:g})",
                    spec.high + (0 if spec.high_open else 1),
                )
            )
        if spec.kind == "real":
            mutations.append(("NaN", math.nan))
        else:
            mutations.append(("a float, not an integer", 1.5))
        mutations.append(("an array, not a scalar", np.ones(2)))
    if not spec.optional:
        mutations.append(("given as None", None))
    return mutations


def generated_errors(op: Op | str, cases: OpCases) -> list[ErrorCase]:
    """One :class:`ErrorCase` per way the specs say an argument of a valid call can be wrong."""
    op = refimpl.get(op)
    sample = _base_sample(cases)
    bound = op.signature.bind(*sample.args, **sample.kwargs)
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    dims = _dims_of(op, arguments)
    first_float = next(
        (
            n
            for n, spec in op.specs.items()
            if isinstance(spec, Tensor) and spec.kind == "float" and isinstance(arguments.get(n), np.ndarray)
        ),
        None,
    )
    generated: list[ErrorCase] = []
    list_lengths: set[Any] = set()
    for name, spec in op.specs.items():
        value = arguments[name]
        if isinstance(spec, Tensor):
            if not isinstance(value, np.ndarray):
                continue
            mutations = _tensor_mutations(op, name, spec, value, dims, first_float)
        elif isinstance(spec, TensorList):
            if not isinstance(value, list | tuple) or not value:
                continue
            # a longer list is blamed on the list that disagrees with the first to bind the length
            bound_before = spec.length is not None and spec.length in list_lengths
            list_lengths.add(spec.length)
            mutations = _list_mutations(spec, list(value), longer=bound_before)
        else:
            if value is None:
                continue
            mutations = _scalar_mutations(spec, value)
        for what, broken in mutations:
            call = dict(arguments)
            call[name] = broken
            args, kwargs = _split(op, call)
            match = rf"argument '{name}(\[\d+\])?'" if isinstance(spec, TensorList) else f"argument '{name}'"
            generated.append(ErrorCase(f"generated: '{name}' {what}", args, kwargs, match=match))
    required = [
        n
        for n, p in op.signature.parameters.items()
        if p.default is inspect.Parameter.empty and p.kind == p.POSITIONAL_OR_KEYWORD
    ]
    if required:
        args, kwargs = _split(op, {k: v for k, v in arguments.items() if k != required[-1]})
        generated.append(
            ErrorCase(
                f"generated: '{required[-1]}' missing", args, kwargs, match="missing a required argument"
            )
        )
    return generated


def _split(op: Op, arguments: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional-or-keyword arguments positionally (up to the first absent one), the rest by keyword."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    positional = True
    for name, parameter in op.signature.parameters.items():
        if name not in arguments:
            positional = False
            continue
        if positional and parameter.kind == parameter.POSITIONAL_OR_KEYWORD:
            args.append(arguments[name])
        else:
            kwargs[name] = arguments[name]
    return tuple(args), kwargs
