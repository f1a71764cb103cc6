"""The op contract, the catalog registry, backends and ``vjp``.

An op is a forward function and, when it is differentiable, a backward function, in the
style of a custom VJP::

    forward(*inputs, **params) -> (outputs, residuals)
    backward(residuals, cotangents) -> one cotangent per differentiable input

The reference (NumPy) defines both; a backend supplies its own pair for the ops it
implements. Whatever runs, the arguments are validated once here, against the op's
declared specs, so every backend rejects bad input identically.
"""

from __future__ import annotations

import difflib
import functools
import importlib.metadata
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from . import _state_dict
from ._errors import InputError, NotDifferentiableError, RangeError, UnknownOpError, UnsupportedOpError
from ._spec import (
    ArgumentError,
    Scalar,
    Spec,
    Switch,
    Tensor,
    TensorList,
    array_library,
    array_namespace,
    check_finite_array,
    check_finite_enabled,
    quiet_floating_point,
    validate,
)
from ._state_dict import StateDict

__all__ = [
    "Backend",
    "Impl",
    "Op",
    "Paper",
    "UnknownBackendError",
    "backend",
    "backends",
    "defop",
    "get",
    "ops",
    "vjp",
]

ENTRY_POINT_GROUP = "refimpl.backends"


class UnknownBackendError(KeyError):
    """No installed backend has that name."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Paper:
    """Where a routine comes from."""

    title: str
    arxiv: str | None = None
    year: int | None = None
    code: str | None = None  # the official repository, when there is one

    def __str__(self) -> str:
        parts = [self.title]
        if self.arxiv:
            parts.append(f"arXiv:{self.arxiv}")
        if self.year:
            parts.append(str(self.year))
        return ", ".join(parts)


class Impl(NamedTuple):
    """One implementation of an op: ``forward`` and (if differentiable) ``backward``."""

    forward: Callable[..., tuple[Any, Any]]
    backward: Callable[[Any, Any], tuple[Any, ...]] | None = None


class Op:
    """A catalog routine: metadata, argument specs and the reference implementation.

    Calling an op runs the reference forward and returns its outputs; ``refimpl.vjp``
    returns the outputs and a pullback. ``op.forward``/``op.backward`` are the raw
    reference functions (no validation) that backends mirror.
    """

    def __init__(
        self,
        forward: Callable[..., tuple[Any, Any]],
        *,
        family: str,
        paper: Paper,
        inputs: Mapping[str, Spec],
        outputs: Sequence[str],
        differentiable: Sequence[str] = (),
        check: Callable[[Mapping[str, Any]], None] | None = None,
        allow_empty: Sequence[str] = (),
        nonfinite_outputs: Mapping[str, Sequence[str]] | None = None,
        custom_vjp: str | None = None,
        state_dict: StateDict | None = None,
    ) -> None:
        self.name: str = forward.__name__
        self.family = family
        self.paper = paper
        self.forward = forward
        self.backward: Callable[[Any, Any], tuple[Any, ...]] | None = None
        self.signature = inspect.signature(forward)
        self.specs: dict[str, Spec] = dict(inputs)
        self.outputs: tuple[str, ...] = tuple(outputs)
        self.differentiable: tuple[str, ...] = tuple(differentiable)
        self.check = check
        self.allow_empty = tuple(allow_empty)
        # outputs whose non-finite values mean something (a temperature of +inf: no reweighting)
        self.nonfinite_outputs = {k: tuple(v) for k, v in (nonfinite_outputs or {}).items()}
        # a backward that is by design NOT the derivative of the forward (a straight-through
        # estimator, TrAct's preconditioned weight gradient): why, in a sentence
        self.custom_vjp = custom_vjp
        if custom_vjp is not None and not differentiable:
            raise TypeError(f"op {self.name}: custom_vjp given but no differentiable inputs")
        unknown = set(self.nonfinite_outputs) - set(self.outputs)
        if unknown:
            raise TypeError(f"op {self.name}: nonfinite_outputs names no output: {sorted(unknown)}")
        # how the op takes whole models (state dicts) besides single arrays: refimpl._state_dict
        self.state_dict = state_dict
        if state_dict is not None:
            state_dict.validate_for(self.name, list(self.signature.parameters), self.outputs)
        self.__doc__ = forward.__doc__
        self.__module__ = forward.__module__
        self.__wrapped__ = forward
        self.__signature__ = self.signature
        declared = list(self.signature.parameters)
        if sorted(declared) != sorted(self.specs):
            raise TypeError(
                f"op {self.name}: specs {sorted(self.specs)} do not match the forward signature {declared}"
            )
        self.specs = {name: self.specs[name] for name in declared}  # signature order
        for name in self.differentiable:
            spec = self.specs.get(name)
            if not (isinstance(spec, Tensor) and spec.kind == "float"):
                raise TypeError(f"op {self.name}: differentiable input {name!r} is not a float tensor")

    # -- metadata ---------------------------------------------------------------------
    @property
    def is_differentiable(self) -> bool:
        return bool(self.differentiable)

    @property
    def tensor_inputs(self) -> tuple[str, ...]:
        return tuple(n for n, s in self.specs.items() if isinstance(s, Tensor))

    @property
    def scalar_params(self) -> tuple[str, ...]:
        return tuple(n for n, s in self.specs.items() if isinstance(s, Scalar))

    @property
    def deviations(self) -> list[Any]:
        """The known deviations of this op's official code (:mod:`refimpl._deviations`)."""
        from ._deviations import deviations

        return deviations(self)

    @property
    def source_file(self) -> str:
        return inspect.getsourcefile(self.forward) or "?"

    def defvjp(self, backward: Callable[[Any, Any], tuple[Any, ...]]):
        """Decorator: register the reference backward ``backward(residuals, cotangents)``."""
        if not self.differentiable:
            raise TypeError(f"op {self.name} declares no differentiable inputs")
        self.backward = backward
        return backward

    def impl(self) -> Impl:
        return Impl(self.forward, self.backward)

    # -- calling ----------------------------------------------------------------------
    def bind(
        self,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        library: str | None = None,
        all_finite: Callable[[Any], bool] | None = None,
    ):
        """Bind a call to the signature, fill defaults and validate; return the binding."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as error:
            raise InputError(f"{self.name}: {error}; signature is {self.name}{self.signature}") from None
        bound.apply_defaults()
        validate(
            self.name,
            self.specs,
            bound.arguments,
            library=library,
            allow_empty=self.allow_empty,
            check=self.check,
            all_finite=all_finite,
        )
        for name, spec in self.specs.items():  # a NumPy float64 scalar would promote float32 math
            value = bound.arguments[name]
            if isinstance(spec, TensorList) and value is not None:
                bound.arguments[name] = [array_namespace(v).ascontiguousarray(v) for v in value]
                continue
            if isinstance(spec, Tensor) and value is not None and not value.flags.c_contiguous:
                # one memory layout for every implementation: a Fortran-ordered or strided
                # input gives the same bits as its C-contiguous copy (reductions keep their order)
                bound.arguments[name] = array_namespace(value).ascontiguousarray(value)
                continue
            if isinstance(spec, Scalar) and value is None:
                continue  # an optional scalar not given
            if isinstance(spec, Scalar) and spec.kind == "real":
                bound.arguments[name] = float(bound.arguments[name])
            elif isinstance(spec, Scalar) and spec.kind == "integer":
                bound.arguments[name] = int(bound.arguments[name])
        return bound

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.state_dict is not None and _state_dict.applies(self, args, kwargs):
            return _state_dict.call(self, self, args, kwargs)
        return _call(self, self.impl(), args, kwargs, library=None)

    def __repr__(self) -> str:
        return f"<refimpl op {self.name} ({self.family}) — {self.paper.title}>"


def _call(op: Op, impl: Impl, args, kwargs, *, library: str | None, all_finite=None) -> Any:
    bound = op.bind(args, kwargs, library=library, all_finite=all_finite)
    with quiet_floating_point():
        outputs, _ = impl.forward(*bound.args, **bound.kwargs)
    _check_results(op, bound, zip(op.outputs, _outputs_tuple(op, outputs), strict=True), all_finite)
    return outputs


def _outputs_tuple(op: Op, outputs: Any) -> tuple[Any, ...]:
    return (outputs,) if len(op.outputs) == 1 else tuple(outputs)


class set_check_results(Switch):  # noqa: N801 - used like a function, and as a context manager
    """Turn the op layer's check of results on or off (on by default).

    refimpl's implementations are verified, so a NaN or an infinity they return for finite
    inputs means the inputs lie beyond what the dtype can compute the op at, and the op layer
    raises :class:`RangeError`. The conformance suite turns this off while it runs an
    implementation under test: there a non-finite result is the implementation's to answer
    for, and is compared with the reference instead. ``set_check_finite(False)`` turns it off
    too.
    """


def _check_results(op: Op, bound, results, all_finite=None) -> None:
    """Finite inputs must give finite results: an output or gradient that is NaN or ±inf
    (and not a value the op declares meaningful) means the inputs lie beyond what the dtype
    can compute this op at. Raise :class:`RangeError` saying so, instead of returning it."""
    if not (set_check_results.enabled and check_finite_enabled()):
        return
    for label, value in results:
        if value is None or not hasattr(value, "dtype") or np.dtype(value.dtype).kind != "f":
            continue
        allow = op.nonfinite_outputs.get(label, ())
        try:
            check_finite_array(label, value, allow=allow, all_finite=all_finite)
        except ArgumentError as error:
            largest = []
            for name, spec in op.specs.items():
                given = bound.arguments.get(name)
                if isinstance(spec, Tensor) and spec.kind == "float" and given is not None and given.size:
                    xp = array_namespace(given)
                    largest.append(f"{float(xp.max(xp.abs(given))):.3g} in '{name}'")
            dtype = np.dtype(value.dtype)
            advice = "rescale the inputs" + (" or compute in float64" if dtype != np.float64 else "")
            raise RangeError(
                f"{op.name}: {label} is {error.got} for finite inputs: at these magnitudes an "
                f"intermediate or the result exceeds what {dtype} represents (largest |value|: "
                f"{', '.join(largest) or 'none'}); {advice}"
            ) from None


# -- the registry ---------------------------------------------------------------------
_OPS: dict[str, Op] = {}


def defop(
    *,
    family: str,
    paper: Paper,
    inputs: Mapping[str, Spec],
    outputs: Sequence[str],
    differentiable: Sequence[str] = (),
    check: Callable[[Mapping[str, Any]], None] | None = None,
    allow_empty: Sequence[str] = (),
    nonfinite_outputs: Mapping[str, Sequence[str]] | None = None,
    custom_vjp: str | None = None,
    state_dict: StateDict | None = None,
) -> Callable[[Callable[..., tuple[Any, Any]]], Op]:
    """Decorator turning a reference forward function into a registered :class:`Op`."""

    def register(forward: Callable[..., tuple[Any, Any]]) -> Op:
        op = Op(
            forward,
            family=family,
            paper=paper,
            inputs=inputs,
            outputs=outputs,
            differentiable=differentiable,
            check=check,
            allow_empty=allow_empty,
            nonfinite_outputs=nonfinite_outputs,
            custom_vjp=custom_vjp,
            state_dict=state_dict,
        )
        if op.name in _OPS:
            raise TypeError(f"op {op.name} is defined twice")
        _OPS[op.name] = op
        return op

    return register


def get(name: str | Op) -> Op:
    """The op called ``name``; unknown names raise :class:`UnknownOpError` with close matches."""
    if isinstance(name, Op):
        return name
    try:
        return _OPS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_OPS), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `refimpl list` shows them all"
        raise UnknownOpError(f"no op named {name!r} in the catalog{hint}") from None


def ops(family: str | None = None) -> list[Op]:
    """All ops (or one family's), sorted by family then name."""
    chosen = [op for op in _OPS.values() if family is None or op.family == family]
    return sorted(chosen, key=lambda op: (op.family, op.name))


# -- backends -------------------------------------------------------------------------
class Backend:
    """A set of implementations of catalog ops with the reference's calling convention.

    ``impls`` maps op names to :class:`Impl` pairs. A backend claims exactly what it
    implements (``supports``) and never falls back to the reference: asking for another op
    raises :class:`UnsupportedOpError`. ``array_library`` names the array package its
    functions take ("numpy" or "cupy"); ``asarray``/``to_numpy`` move test data in and out.

    A backend that cannot run on this machine (CuPy without a GPU) reports why through
    ``available()``; ``host_variant()`` may then give the same code running on NumPy
    inputs, and ``self_checks`` names checks that still run here (compiling CUDA sources).
    ``device_only`` maps each piece of code that only the device runs (a CUDA kernel, and
    where its source is) to the ops that use it, so a check without the device can say what
    it did not run.
    ``all_finite(array) -> bool`` may give the op layer's finiteness check a faster test on
    this backend's arrays (True only when every entry is finite).
    """

    def __init__(
        self,
        name: str,
        impls: Mapping[str, Impl],
        *,
        array_library: str = "numpy",
        description: str = "",
        asarray: Callable[[np.ndarray], Any] | None = None,
        to_numpy: Callable[[Any], np.ndarray] | None = None,
        available: Callable[[], tuple[bool, str]] | None = None,
        host_variant: Callable[[], Backend] | None = None,
        self_checks: Mapping[str, Callable[[], None]] | None = None,
        all_finite: Callable[[Any], bool] | None = None,
        device_only: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.name = name
        self.all_finite = all_finite
        self.array_library = array_library
        self.description = description
        self._asarray = asarray or (lambda a: a)
        self._to_numpy = to_numpy or np.asarray
        self._available = available or (lambda: (True, ""))
        self.host_variant = host_variant
        self.self_checks = dict(self_checks or {})
        self.device_only = {code: tuple(ops) for code, ops in (device_only or {}).items()}
        self._impls: dict[str, Impl] = {}
        for op_name, impl in impls.items():
            op = get(op_name)
            if op.is_differentiable and impl.backward is None:
                raise TypeError(f"backend {name}: {op_name} is differentiable but has no backward")
            self._impls[op.name] = Impl(*impl)

    def __repr__(self) -> str:
        return f"<refimpl backend {self.name}: {len(self._impls)} ops>"

    @property
    def ops(self) -> frozenset[str]:
        return frozenset(self._impls)

    def supports(self, name: str | Op) -> bool:
        return get(name).name in self._impls

    def available(self) -> tuple[bool, str]:
        """Whether this backend can run here, and why not (e.g. no GPU)."""
        return self._available()

    def impl(self, name: str | Op) -> Impl:
        op = get(name)
        try:
            return self._impls[op.name]
        except KeyError:
            raise UnsupportedOpError(
                f"backend {self.name!r} does not implement {op.name}; it implements "
                f"{len(self._impls)} ops (`refimpl list` shows coverage). Use the reference "
                f"with refimpl.get({op.name!r}) or backend='numpy'."
            ) from None

    def get(self, name: str | Op) -> Callable[..., Any]:
        """The op as a validated function with the reference's signature."""
        op = get(name)
        impl = self.impl(op)

        @functools.wraps(op.forward)
        def call(*args: Any, **kwargs: Any) -> Any:
            if op.state_dict is not None and _state_dict.applies(op, args, kwargs):
                return _state_dict.call(op, call, args, kwargs)
            return _call(op, impl, args, kwargs, library=self.array_library, all_finite=self.all_finite)

        return call

    def asarray(self, array: np.ndarray) -> Any:
        return self._asarray(array)

    def to_numpy(self, array: Any) -> np.ndarray:
        return self._to_numpy(array)


@functools.cache
def _reference_backend() -> Backend:
    return Backend(
        "numpy",
        {op.name: op.impl() for op in _OPS.values()},
        description="the NumPy reference (ground truth)",
    )


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return {entry.name: entry for entry in sorted(found, key=lambda e: e.name)}


def backends() -> list[str]:
    """Names of the installed backends, ``"numpy"`` (the reference) first."""
    return ["numpy", *(name for name in _entry_points() if name != "numpy")]


def install_hint(name: str) -> str:
    """What to install for the backend ``name`` to load: refimpl's own backends name the
    extra that pulls their dependencies (``cupy-raw`` comes with ``cupy``); a third-party
    backend names the distribution that provides its entry point."""
    entry = _entry_points().get(name)
    dist = getattr(entry, "dist", None)
    if dist is not None and dist.metadata["Name"] != "refimpl":
        return f"pip install '{dist.metadata['Name']}' and its dependencies"
    extras = set(importlib.metadata.metadata("refimpl").get_all("Provides-Extra") or ())
    for extra in (name, name.split("-")[0]):
        if extra in extras:
            return f"pip install 'refimpl[{extra}]'"
    return "install its dependencies"


_LOADED: dict[str, Backend] = {}


def backend(name: str | Backend) -> Backend:
    """The backend called ``name`` (loaded through its ``refimpl.backends`` entry point)."""
    if isinstance(name, Backend):
        return name
    if name == "numpy":
        return _reference_backend()
    if name not in _LOADED:
        entries = _entry_points()
        if name not in entries:
            raise UnknownBackendError(
                f"no backend named {name!r}; installed: {', '.join(backends())}"
                " (extras: pip install 'refimpl[numba]' or 'refimpl[cupy]')"
            )
        loaded = entries[name].load()
        loaded = loaded() if callable(loaded) and not isinstance(loaded, Backend) else loaded
        if not isinstance(loaded, Backend):
            raise TypeError(f"entry point {name!r} did not give a refimpl.Backend")
        _LOADED[name] = loaded
    return _LOADED[name]


# -- vjp ------------------------------------------------------------------------------
def _check_cotangent(
    op: Op, name: str, output: Any, cotangent: Any, all_finite: Callable[[Any], bool] | None = None
) -> Any:
    if cotangent is None:
        return None
    if not (hasattr(cotangent, "shape") and hasattr(cotangent, "dtype")):
        raise InputError(
            f"{op.name}: cotangent of output '{name}': expected an array of shape "
            f"{tuple(output.shape)}, got {type(cotangent).__name__}"
        )
    if array_library(cotangent) != array_library(output):
        raise InputError(
            f"{op.name}: cotangent of output '{name}': expected a {array_library(output)} array, "
            f"got a {array_library(cotangent)} array"
        )
    if tuple(cotangent.shape) != tuple(output.shape) or cotangent.dtype != output.dtype:
        raise InputError(
            f"{op.name}: cotangent of output '{name}': expected shape {tuple(output.shape)} "
            f"and dtype {output.dtype} (like the output), got shape {tuple(cotangent.shape)} "
            f"and dtype {cotangent.dtype}"
        )
    if np.dtype(cotangent.dtype).kind == "f":
        try:
            check_finite_array(name, cotangent, all_finite=all_finite)
        except ArgumentError as error:
            raise InputError(
                f"{op.name}: cotangent of output '{name}': expected {error.expected}, got {error.got}"
            ) from None
    if not cotangent.flags.c_contiguous:
        cotangent = array_namespace(cotangent).ascontiguousarray(cotangent)
    return cotangent


def vjp(op: str | Op, *args: Any, backend: str | Backend | None = None, **kwargs: Any):
    """Run ``op`` forward and return ``(outputs, pullback)``.

    ``pullback(cotangents)`` takes one cotangent per output (a single array when the op
    has one output, else a tuple in which ``None`` stands for zero) and returns a tuple
    with one cotangent per differentiable input, in the op's input order.
    """
    op = get(op)
    chosen = _reference_backend() if backend is None else globals()["backend"](backend)
    if not op.is_differentiable:
        raise NotDifferentiableError(
            f"{op.name} has no differentiable inputs (it is compared on outputs only); "
            f"call it directly instead of through vjp"
        )
    if op.state_dict is not None and _state_dict.applies(op, args, kwargs):
        return _state_dict.vjp(op, lambda *a, **k: vjp(op, *a, backend=chosen, **k), args, kwargs)
    impl = chosen.impl(op)
    bound = op.bind(args, kwargs, library=chosen.array_library, all_finite=chosen.all_finite)
    with quiet_floating_point():
        outputs, residuals = impl.forward(*bound.args, **bound.kwargs)
    _check_results(op, bound, zip(op.outputs, _outputs_tuple(op, outputs), strict=True), chosen.all_finite)
    single = len(op.outputs) == 1

    def pullback(cotangents: Any) -> tuple[Any, ...]:
        outs = (outputs,) if single else tuple(outputs)
        given = (cotangents,) if single else tuple(cotangents)
        if len(given) != len(outs):
            raise InputError(
                f"{op.name}: pullback expected {len(outs)} cotangents (one per output "
                f"{', '.join(op.outputs)}), got {len(given)}"
            )
        checked = []
        for name, output, cotangent in zip(op.outputs, outs, given, strict=True):
            cotangent = _check_cotangent(op, name, output, cotangent, chosen.all_finite)
            if cotangent is None:
                cotangent = output * 0
            checked.append(cotangent)
        with quiet_floating_point():
            grads = tuple(impl.backward(residuals, checked[0] if single else tuple(checked)))
        labels = [f"the cotangent of '{name}'" for name in op.differentiable]
        _check_results(op, bound, zip(labels, grads, strict=False), chosen.all_finite)
        return grads

    return outputs, pullback
