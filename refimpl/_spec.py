"""Argument specifications and the shared validation every backend goes through.

An op declares each argument as a :class:`Tensor` (an array with a symbolic shape and a
dtype kind) or a :class:`Scalar` (a hyperparameter with a domain). :func:`validate` checks
a call against those declarations once, in the op layer, so a NumPy, Numba or CuPy
implementation rejects the same inputs with the same message.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._errors import InputError

__all__ = [
    "ArgumentError",
    "BoolArray",
    "Flag",
    "FloatArray",
    "FloatArrays",
    "Function",
    "IntArray",
    "IntScalar",
    "OneOf",
    "RealScalar",
    "Scalar",
    "Tensor",
    "TensorList",
    "array_library",
    "array_namespace",
    "check_finite_enabled",
    "set_check_finite",
    "validate",
]

ELLIPSIS = "..."


class ArgumentError(Exception):
    """Raised by an op's domain check; the op layer turns it into an :class:`InputError`.

    ``ArgumentError("x", "points inside the ball ‖x‖ < 1/√c = 1", "‖x‖ = 1.2 in row 3")``
    becomes ``"mobius_add: argument 'x': expected points inside ..., got ‖x‖ = 1.2 in row 3"``.
    """

    def __init__(self, argument: str, expected: str, got: str) -> None:
        super().__init__(argument, expected, got)
        self.argument, self.expected, self.got = argument, expected, got


@dataclass(frozen=True)
class Tensor:
    """An array argument.

    ``shape`` is a tuple of dimension symbols (``"B"``, ``"K"``), literal sizes, and at most
    one leading ``"..."`` for any number of batch dimensions. A symbol seen twice must have
    the same size everywhere. ``kind`` is ``"float"`` (float32 or float64, the same dtype for
    every float argument of a call), ``"int"`` or ``"bool"``. For an int tensor, ``low`` and
    ``high`` bound the values (``low <= v < high``; ``high`` may be a dimension symbol).
    """

    shape: tuple[str | int, ...]
    kind: str = "float"
    optional: bool = False
    low: int | None = None
    high: int | str | None = None
    allow: tuple[str, ...] = ()  # non-finite values that mean something here: "nan", "inf", "-inf"

    def describe(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"({dims}{',' if len(self.shape) == 1 else ''})"


NONFINITE = ("nan", "inf", "-inf")


def FloatArray(  # noqa: N802 - reads as a type
    *shape: str | int, optional: bool = False, allow: Sequence[str] = ()
) -> Tensor:
    """A float32/float64 array of the given symbolic shape (``optional``: may be None).

    Its values must be finite (NaN and ±inf are refused, naming the first bad index) unless
    ``allow`` names the non-finite values that carry a meaning for the op, e.g.
    ``allow=("-inf",)`` for a log-weight where −inf stands for "weight 0". The check can be
    switched off process-wide for speed: :func:`set_check_finite`.
    """
    unknown = [v for v in allow if v not in NONFINITE]
    if unknown:
        raise TypeError(f"FloatArray(allow=...): expected values among {NONFINITE}, got {unknown}")
    return Tensor(tuple(shape), "float", optional, allow=tuple(allow))


def IntArray(  # noqa: N802
    *shape: str | int, low: int | None = None, high: int | str | None = None, optional: bool = False
) -> Tensor:
    """An integer array (labels, indices); values in ``[low, high)`` when given (``high`` may
    be a dimension symbol: labels below the number of classes)."""
    return Tensor(tuple(shape), "int", optional, low, high)


def BoolArray(*shape: str | int, optional: bool = False) -> Tensor:  # noqa: N802
    """A boolean mask."""
    return Tensor(tuple(shape), "bool", optional)


@dataclass(frozen=True)
class Scalar:
    """A scalar hyperparameter: a real or integer number in a range, a choice or a flag."""

    kind: str  # "real" | "integer" | "choice" | "flag"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[Any, ...] = field(default=())
    optional: bool = False  # None is accepted (and means "not given": the op's default rule)

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "flag":
            return "a bool"
        if self.kind == "function":
            return "a callable"
        noun = "a finite real number" if self.kind == "real" else "an integer"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return noun + (" " + " and ".join(bounds) if bounds else "")


def RealScalar(  # noqa: N802
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> Scalar:
    """A finite real number in ``[low, high]`` (ends open when asked; ``optional``: may be None)."""
    return Scalar("real", low, high, low_open, high_open, optional=optional)


def IntScalar(low: int | None = None, high: int | None = None, *, optional: bool = False) -> Scalar:  # noqa: N802
    """A Python or NumPy integer in ``[low, high]`` (bools are refused; ``optional``: may be None)."""
    return Scalar("integer", low, high, optional=optional)


def OneOf(*choices: Any) -> Scalar:  # noqa: N802
    """One of a fixed set of values (strategy names, reductions)."""
    return Scalar("choice", choices=tuple(choices))


def Flag() -> Scalar:  # noqa: N802
    """A boolean switch."""
    return Scalar("flag")


def Function() -> Scalar:  # noqa: N802
    """A callable (an evaluation oracle such as a held-out accuracy; never differentiated)."""
    return Scalar("function")


@dataclass(frozen=True)
class TensorList:
    """A list (or tuple) of float arrays of one rank and possibly different shapes: the
    weight matrices of an MLP, layer by layer. ``length`` binds a dimension symbol (or a
    literal) to the number of arrays. Each array obeys the float rules of :class:`Tensor`
    (float32/float64 like the call's other float arguments, finite values)."""

    rank: int
    length: str | int | None = None
    optional: bool = False
    kind: str = "float"

    def describe(self) -> str:
        count = f"{self.length} " if self.length is not None else ""
        return f"a list of {count}float arrays of rank {self.rank}"


def FloatArrays(rank: int, length: str | int | None = None, *, optional: bool = False) -> TensorList:  # noqa: N802
    """A list of float32/float64 arrays of rank ``rank`` (``length``: how many, a symbol or a number)."""
    return TensorList(rank, length, optional)


Spec = Tensor | Scalar | TensorList


def array_library(x: Any) -> str:
    """The top-level package an array type comes from: ``"numpy"``, ``"cupy"``, ..."""
    return type(x).__module__.split(".")[0]


def array_namespace(x: Any) -> Any:
    """The array module of ``x`` (NumPy for NumPy arrays, CuPy for CuPy arrays).

    Domain checks use it so they run on the caller's device without importing CuPy here.
    """
    namespace = getattr(x, "__array_namespace__", None)
    return namespace() if namespace is not None else np


def _describe_value(value: Any) -> str:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        library = array_library(value)
        kind = f"{library} array" if library in ("numpy", "cupy") else f"a {library}.{type(value).__name__}"
        return f"{kind} of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 60 else text[:57] + '...'}"


def _check_scalar(name: str, spec: Scalar, value: Any) -> None:
    if value is None and spec.optional:
        return
    if spec.kind == "function":
        if not callable(value):
            raise ArgumentError(name, "a callable", _describe_value(value))
        return
    if spec.kind == "choice":
        if not any(value == c and type(value) is type(c) for c in spec.choices):
            raise ArgumentError(name, spec.describe(), repr(value))
        return
    if spec.kind == "flag":
        if not isinstance(value, bool | np.bool_):
            raise ArgumentError(name, "a bool", _describe_value(value))
        return
    if isinstance(value, bool | np.bool_) or hasattr(value, "shape") and value.shape != ():
        raise ArgumentError(name, spec.describe(), _describe_value(value))
    if spec.kind == "integer":
        if not isinstance(value, numbers.Integral):
            raise ArgumentError(name, spec.describe(), _describe_value(value))
    elif not isinstance(value, numbers.Real):
        raise ArgumentError(name, spec.describe(), _describe_value(value))
    number = float(value)
    if not math.isfinite(number):
        raise ArgumentError(name, spec.describe(), repr(value))
    too_low = spec.low is not None and (number <= spec.low if spec.low_open else number < spec.low)
    too_high = spec.high is not None and (number >= spec.high if spec.high_open else number > spec.high)
    if too_low or too_high:
        raise ArgumentError(name, spec.describe(), repr(value))


class Switch:
    """A process-wide setting, used like a function and as a context manager::

        setting(False)          # from now on
        with setting(False):    # inside the block only
            ...

    Each subclass holds its own state in the class attribute ``enabled``.
    """

    enabled: bool = True

    def __init__(self, enabled: bool) -> None:
        cls = type(self)
        self.previous = cls.enabled
        cls.enabled = bool(enabled)

    def __enter__(self) -> Switch:
        return self

    def __exit__(self, *exc: object) -> None:
        type(self).enabled = self.previous


class set_check_finite(Switch):  # noqa: N801 - used like a function, and as a context manager
    """Turn the finiteness check of float inputs on or off, process-wide.

    Every op refuses NaN and ±inf in its float inputs by default (SciPy's ``check_finite``
    rule), because a non-finite input gives a non-finite answer that says nothing about the
    routine. The check is one reduction per float input (a sum: NaN and ±inf propagate into
    it; only when the sum itself overflows are the values looked at one by one); switching it
    off saves that pass on inputs known to be finite::

        refimpl.set_check_finite(False)          # from now on
        with refimpl.set_check_finite(False):    # inside the block only
            ...

    The environment variable ``REFIMPL_CHECK_FINITE=0`` sets the initial state.
    """

    enabled = os.environ.get("REFIMPL_CHECK_FINITE", "1").strip().lower() not in ("0", "false", "no", "off")


def check_finite_enabled() -> bool:
    """Whether ops refuse non-finite float inputs (see :class:`set_check_finite`)."""
    return set_check_finite.enabled


def quiet_floating_point() -> np.errstate:
    """NumPy's floating-point warnings off: a stable formula may evaluate a branch it discards
    (exp of a large argument in np.where), and a domain check may form the out-of-range
    intermediate it exists to catch; a result really out of range is refused with a message."""
    return np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore")


def _sum_is_finite(value: Any, xp: Any) -> bool:
    """True when the sum of the entries is finite, which proves that none is NaN or ±inf (a NaN
    or an infinity propagates into any sum); False also when finite entries overflowed it.

    One pass, no temporary array. (A BLAS matrix-vector product with ones is faster alone, but
    its threads keep spinning afterwards and slow a multithreaded kernel that follows.)
    """
    with np.errstate(over="ignore", invalid="ignore"):
        return math.isfinite(float(xp.sum(value)))


def check_finite_array(
    name: str, value: Any, allow: Sequence[str] = (), all_finite: Callable[[Any], bool] | None = None
) -> None:
    """Raise :class:`ArgumentError` naming ``name`` and the first NaN/±inf of a float array
    that ``allow`` does not name (a no-op while the check is switched off)."""
    if set_check_finite.enabled:
        _check_finite_values(name, Tensor((), allow=tuple(allow)), value, all_finite)


def _check_finite_values(
    name: str, spec: Tensor, value: Any, all_finite: Callable[[Any], bool] | None = None
) -> None:
    """Refuse NaN/±inf in a float input (those ``spec.allow`` does not name), with the first
    bad index. Fast path: a finite sum proves every entry finite (``all_finite``: a backend's
    faster test with the same meaning; False only sends the array to the exact search)."""
    if not value.size:
        return
    xp = array_namespace(value)
    if not spec.allow and (all_finite(value) if all_finite is not None else _sum_is_finite(value, xp)):
        return
    bad = ~xp.isfinite(value)
    if "nan" in spec.allow:
        bad &= ~xp.isnan(value)
    if "inf" in spec.allow:
        bad &= ~(value == xp.inf)
    if "-inf" in spec.allow:
        bad &= ~(value == -xp.inf)
    if not bool(xp.any(bad)):
        return
    index = tuple(int(i) for i in xp.argwhere(bad)[0])
    bad_value = float(value[index]) if index else float(value)
    shown = "nan" if math.isnan(bad_value) else ("inf" if bad_value > 0 else "-inf")
    where = f" at index {index if len(index) != 1 else index[0]}" if index else ""
    allowed = f"; {', '.join(spec.allow)} allowed" if spec.allow else ""
    raise ArgumentError(
        name,
        f"finite values (NaN and ±inf are refused{allowed}; refimpl.set_check_finite(False) "
        "turns the check off)",
        f"{shown}{where}",
    )


_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_FRAMEWORK_ARRAYS = ("torch", "jax", "jaxlib", "tensorflow", "mlx")  # tensors of autograd frameworks


def _check_tensor_dtype(name: str, spec: Tensor, value: Any) -> None:
    dtype = np.dtype(value.dtype)
    if spec.kind == "float":
        if dtype not in _FLOAT_DTYPES:
            hint = (
                "; integer labels belong in an int argument"
                if dtype.kind in "iu"
                else "; cast with .astype(numpy.float32) or .astype(numpy.float64)"
            )
            raise ArgumentError(name, "dtype float32 or float64" + hint, f"dtype {dtype}")
    elif spec.kind == "int":
        if dtype.kind not in "iu":
            raise ArgumentError(name, "an integer dtype (labels, indices)", f"dtype {dtype}")
    elif spec.kind == "bool" and dtype != np.dtype(bool):
        raise ArgumentError(name, "dtype bool (a mask)", f"dtype {dtype}")


def _check_tensor_list(
    name: str,
    spec: TensorList,
    value: Any,
    dims: dict[str, Any],
    sources: dict[str, str],
    library: str | None,
    float_dtype: tuple[str, Any] | None,
) -> tuple[str, Any] | None:
    """A list of float arrays: a list or tuple, each item a float array of the spec's rank
    and the call's float dtype; the count bound to ``spec.length``. Returns the float dtype."""
    if not isinstance(value, list | tuple):
        raise ArgumentError(name, spec.describe(), _describe_value(value))
    for i, item in enumerate(value):
        label = f"{name}[{i}]"
        if (
            not (hasattr(item, "shape") and hasattr(item, "dtype"))
            or array_library(item) in _FRAMEWORK_ARRAYS
        ):
            raise ArgumentError(label, f"an array of rank {spec.rank}", _describe_value(item))
        if library is not None and array_library(item) != library:
            raise ArgumentError(
                label, f"a {library} array (this backend computes on {library} arrays)", _describe_value(item)
            )
        _check_tensor_dtype(label, Tensor(()), item)
        if float_dtype is None:
            float_dtype = (name, item.dtype)
        elif item.dtype != float_dtype[1]:
            raise ArgumentError(
                label,
                f"dtype {float_dtype[1]} like '{float_dtype[0]}' (nothing is cast)",
                f"dtype {item.dtype}",
            )
        if item.ndim != spec.rank:
            raise ArgumentError(label, f"an array of rank {spec.rank}", f"shape {tuple(item.shape)}")
        if 0 in item.shape:
            raise ArgumentError(label, "a non-empty array", f"shape {tuple(item.shape)}")
    length = spec.length
    if isinstance(length, int) and len(value) != length:
        raise ArgumentError(name, spec.describe(), f"{len(value)} arrays")
    if isinstance(length, str):
        if length in dims and dims[length] != len(value):
            raise ArgumentError(
                name, f"{dims[length]} arrays ({length}, from '{sources[length]}')", f"{len(value)} arrays"
            )
        if not value:
            raise ArgumentError(name, f"{spec.describe()} with {length} >= 1", "an empty list")
        dims.setdefault(length, len(value))
        sources.setdefault(length, name)
    return float_dtype


def _bind_shape(
    name: str,
    spec: Tensor,
    shape: tuple[int, ...],
    dims: dict[str, Any],
    sources: dict[str, str],
    allow_empty: Sequence[str],
) -> None:
    pattern = spec.shape
    has_ellipsis = bool(pattern) and pattern[0] == ELLIPSIS
    tail = pattern[1:] if has_ellipsis else pattern
    expected = spec.describe()
    if (has_ellipsis and len(shape) < len(tail)) or (not has_ellipsis and len(shape) != len(tail)):
        need = f"at least {len(tail)}" if has_ellipsis else f"{len(tail)}"
        raise ArgumentError(name, f"shape {expected} ({need} dimension(s))", f"shape {tuple(shape)}")
    if has_ellipsis:
        lead = tuple(shape[: len(shape) - len(tail)])
        if ELLIPSIS in dims and dims[ELLIPSIS] != lead:
            raise ArgumentError(
                name,
                f"leading (batch) dimensions {dims[ELLIPSIS]} like '{sources[ELLIPSIS]}'"
                " (nothing is broadcast)",
                f"shape {tuple(shape)}",
            )
        dims.setdefault(ELLIPSIS, lead)
        sources.setdefault(ELLIPSIS, name)
        if ELLIPSIS not in allow_empty and 0 in lead:
            raise ArgumentError(name, "non-empty batch dimensions", f"shape {tuple(shape)}")
    for symbol, size in zip(tail, shape[len(shape) - len(tail) :], strict=True):
        if isinstance(symbol, int):
            if size != symbol:
                raise ArgumentError(name, f"shape {expected}", f"shape {tuple(shape)}")
            continue
        if symbol in dims:
            if dims[symbol] != size:
                raise ArgumentError(
                    name,
                    f"shape {expected} with {symbol} = {dims[symbol]} (from '{sources[symbol]}')",
                    f"shape {tuple(shape)}",
                )
            continue
        if size == 0 and symbol not in allow_empty:
            raise ArgumentError(name, f"shape {expected} with {symbol} >= 1", f"shape {tuple(shape)}")
        dims[symbol] = size
        sources[symbol] = name


def validate(
    op_name: str,
    specs: Mapping[str, Spec],
    arguments: Mapping[str, Any],
    *,
    library: str | None = None,
    allow_empty: Sequence[str] = (),
    check: Callable[[Mapping[str, Any]], None] | None = None,
    all_finite: Callable[[Any], bool] | None = None,
) -> dict[str, Any]:
    """Check ``arguments`` against ``specs``; return the bound dimension sizes.

    ``library`` is the array package the backend computes with (``"numpy"``, ``"cupy"``);
    arrays from another package are refused rather than copied behind the caller's back.
    ``check`` is the op's own domain check, run last on the already shape-checked arguments.
    ``all_finite`` is the backend's fast test for the finiteness check (see
    :class:`set_check_finite`).
    Every failure is an :class:`InputError` naming the op and the argument.
    """
    dims: dict[str, Any] = {}
    sources: dict[str, str] = {}
    float_dtype: tuple[str, Any] | None = None
    try:
        for name, spec in specs.items():
            value = arguments[name]
            if isinstance(spec, Scalar):
                _check_scalar(name, spec, value)
                continue
            if value is None:
                if spec.optional:
                    continue
                raise ArgumentError(name, "an array", "None")
            if isinstance(spec, TensorList):
                float_dtype = _check_tensor_list(name, spec, value, dims, sources, library, float_dtype)
                continue
            if array_library(value) in _FRAMEWORK_ARRAYS:
                raise ArgumentError(
                    name,
                    "a NumPy (or CuPy) array: refimpl's ops compute on those; convert a tensor with "
                    ".detach().cpu().numpy() (torch) or numpy.asarray (jax), or check a framework "
                    "function against this op with refimpl_conformance.check(op, fn, framework=...)",
                    _describe_value(value),
                )
            if not (hasattr(value, "shape") and hasattr(value, "dtype")):
                raise ArgumentError(
                    name,
                    f"an array of shape {spec.describe()} (wrap Python data in numpy.asarray)",
                    _describe_value(value),
                )
            if library is not None and array_library(value) != library:
                raise ArgumentError(
                    name,
                    f"a {library} array (this backend computes on {library} arrays)",
                    _describe_value(value),
                )
            _check_tensor_dtype(name, spec, value)
            if spec.kind == "float":
                if float_dtype is None:
                    float_dtype = (name, value.dtype)
                elif value.dtype != float_dtype[1]:
                    raise ArgumentError(
                        name,
                        f"dtype {float_dtype[1]} like '{float_dtype[0]}' (nothing is cast)",
                        f"dtype {value.dtype}",
                    )
            _bind_shape(name, spec, tuple(value.shape), dims, sources, allow_empty)
        for name, spec in specs.items():
            value = arguments[name]
            is_float = isinstance(spec, Tensor) and spec.kind == "float" and value is not None
            if is_float and set_check_finite.enabled:
                _check_finite_values(name, spec, value, all_finite)
            if isinstance(spec, TensorList) and value is not None and set_check_finite.enabled:
                for i, item in enumerate(value):
                    _check_finite_values(f"{name}[{i}]", Tensor(()), item, all_finite)
            if isinstance(spec, Tensor) and spec.kind == "int" and value is not None and value.size:
                high = dims.get(spec.high, spec.high) if isinstance(spec.high, str) else spec.high
                low, largest = int(value.min()), int(value.max())
                if (spec.low is not None and low < spec.low) or (high is not None and largest >= high):
                    span = f"[{spec.low if spec.low is not None else '-inf'}, {high})"
                    raise ArgumentError(name, f"values in {span}", f"values in [{low}, {largest}]")
        if check is not None:
            with quiet_floating_point():
                check(arguments)
    except ArgumentError as error:
        raise InputError(
            f"{op_name}: argument '{error.argument}': expected {error.expected}, got {error.got}"
        ) from None
    return dims
