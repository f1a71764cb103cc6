"""Whole models: merging ops called with state dicts (mappings of parameter names to arrays).

A merging op is defined, and checked by the conformance suite, on single arrays: one
parameter tensor at a time. Declared with ``@op(..., state_dict=StateDict(...))`` it also
accepts whole models, the form a user has them in::

    refimpl.merging.uniform_soup([model_1, model_2, model_3])   # K state dicts in, one out

How each argument is given then (``StateDict.inputs``):

* ``"tensor"`` — one state dict (``{name: array}``), e.g. the pretrained θ₀;
* ``"models"`` — a list of K state dicts; per parameter name they are stacked on a new
  LAST axis of length K, the array form of the argument (``FloatArray("...", "K")``, as
  expert_merging's task vectors);
* ``"per_tensor"`` — one value per parameter tensor, as a mapping with the same names (aTLAS's
  blockwise coefficients), or a single array shared by every tensor;
* ``"models_flat"`` — a list of K state dicts for a WHOLE-model op (a greedy soup accepts or
  rejects an ingredient as a whole): each model is flattened into one vector (its float
  tensors in name order) and the op runs once on the (n, K) stack;
* ``"function_flat"`` — a callable taking a state dict (an evaluation oracle), handed to a
  whole-model op as a function of the flat vector.

Arguments not named (scalars, coefficients such as a learned soup's α) are shared by every
tensor; in :func:`refimpl.vjp`, the gradient of a shared array is the sum over tensors (a
learned soup's ᾱ for the whole model). The outputs named in ``StateDict.outputs`` come back as
state dicts with the models' names, in the first model's order.

Rules, checked before anything runs (``InputError`` otherwise): every state dict has the same
names; the float tensors of one name have the same shape in every model (the op's own checks
then run per tensor, and their messages name the tensor). Entries that are not floating point
(integer buffers such as batch norm's step counter, boolean masks) are never averaged: they
are copied, unchanged, from the FIRST state dict given (the pretrained model, model A, the
first soup ingredient) into every output state dict.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._errors import InputError

__all__ = ["StateDict"]

_MODES = ("tensor", "models", "per_tensor", "models_flat", "function_flat")


@dataclass(frozen=True)
class StateDict:
    """How a merging op takes whole models: ``inputs`` maps argument names to a mode (see the
    module docstring), ``outputs`` names the outputs that are parameters."""

    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Sequence[str] = ()

    def __post_init__(self) -> None:
        unknown = {m for m in self.inputs.values() if m not in _MODES}
        if unknown:
            raise TypeError(f"StateDict: unknown modes {sorted(unknown)}; expected among {_MODES}")

    @property
    def whole_model(self) -> bool:
        return any(m.endswith("_flat") for m in self.inputs.values())

    def validate_for(self, op_name: str, parameters: Sequence[str], outputs: Sequence[str]) -> None:
        """Called once when the op is defined: the names must be the op's."""
        for name in self.inputs:
            if name not in parameters:
                raise TypeError(f"op {op_name}: state_dict names no argument {name!r}")
        for name in self.outputs:
            if name not in outputs:
                raise TypeError(f"op {op_name}: state_dict names no output {name!r}")
        if not self.whole_model and set(self.outputs) != set(outputs):
            raise TypeError(f"op {op_name}: a per-tensor op returns every output per tensor")


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_models(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(m, Mapping) for m in value)


def applies(op: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> bool:
    """Whether this call gives whole models (a state dict where the op takes one)."""
    rule: StateDict | None = op.state_dict
    if rule is None:
        return False
    try:
        bound = op.signature.bind_partial(*args, **kwargs)
    except TypeError:
        return False
    for name, mode in rule.inputs.items():
        value = bound.arguments.get(name)
        if mode == "tensor" and _is_state_dict(value):
            return True
        if mode in ("models", "models_flat") and _is_models(value):
            return True
    return False


def _is_float(value: Any) -> bool:
    return hasattr(value, "dtype") and np.dtype(value.dtype).kind == "f"


class _Models:
    """The state dicts of one call: their names, float tensors and buffers, checked."""

    def __init__(self, op_name: str, rule: StateDict, arguments: dict[str, Any]) -> None:
        self.op_name = op_name
        given: list[tuple[str, Mapping[str, Any]]] = []
        for name, mode in rule.inputs.items():
            value = arguments.get(name)
            if mode == "tensor":
                if not _is_state_dict(value):
                    raise InputError(
                        f"{op_name}: argument '{name}': expected a state dict (a mapping of names to "
                        f"arrays) like the other models of this call, got {type(value).__name__}"
                    )
                given.append((f"'{name}'", value))
            elif mode in ("models", "models_flat"):
                if not _is_models(value):
                    raise InputError(
                        f"{op_name}: argument '{name}': expected a list of state dicts (mappings of "
                        f"names to arrays), got {type(value).__name__}"
                    )
                given += [(f"'{name}'[{k}]", m) for k, m in enumerate(value)]
        self.first_label, first = given[0]
        self.names = list(first)
        self.float_names = [k for k in self.names if _is_float(first[k])]
        self.buffers = {k: first[k] for k in self.names if k not in self.float_names}
        if not self.float_names:
            raise InputError(f"{op_name}: the state dict {self.first_label} holds no floating-point tensor")
        for label, model in given[1:]:
            self.check_names(label, model.keys())
            for k in self.float_names:
                if not _is_float(model[k]):
                    raise InputError(
                        f"{op_name}: {label}: tensor '{k}' is not floating point, but it is in "
                        f"{self.first_label} (buffers and parameters must agree across models)"
                    )
                if tuple(model[k].shape) != tuple(first[k].shape):
                    raise InputError(
                        f"{op_name}: {label}: tensor '{k}' has shape {tuple(model[k].shape)}, "
                        f"{self.first_label} has {tuple(first[k].shape)}"
                    )
        self.shapes = {k: tuple(first[k].shape) for k in self.float_names}

    def check_names(self, label: str, names: Any, floats_only: bool = False) -> None:
        expected = set(self.float_names if floats_only else self.names)
        missing, extra = sorted(expected - set(names)), sorted(set(names) - expected)
        if missing or extra:
            raise InputError(
                f"{self.op_name}: {label} does not have the parameter names of {self.first_label}: "
                f"missing {missing}, unexpected {extra}"
            )

    def assemble(self, per_name: Mapping[str, Any]) -> dict[str, Any]:
        """A state dict in the first model's order: the computed tensors and the buffers."""
        return {k: (per_name[k] if k in per_name else self.buffers[k]) for k in self.names}

    # -- the flat view of a whole-model op --------------------------------------------
    def flatten(self, model: Mapping[str, Any]) -> Any:
        xp = _namespace(model[self.float_names[0]])
        return xp.concatenate([xp.reshape(model[k], (-1,)) for k in self.float_names])

    def unflatten(self, flat: Any) -> dict[str, Any]:
        out, start = {}, 0
        for k in self.float_names:
            size = int(np.prod(self.shapes[k], dtype=np.int64))
            out[k] = flat[start : start + size].reshape(self.shapes[k])
            start += size
        return self.assemble(out)


def _namespace(x: Any) -> Any:
    namespace = getattr(x, "__array_namespace__", None)
    return namespace() if namespace is not None else np


def _bind(op: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    try:
        bound = op.signature.bind(*args, **kwargs)
    except TypeError as error:
        raise InputError(f"{op.name}: {error}; signature is {op.name}{op.signature}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def _split(op: Any, arguments: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    args, kwargs = [], {}
    for name, parameter in op.signature.parameters.items():
        if parameter.kind == inspect.Parameter.KEYWORD_ONLY:
            kwargs[name] = arguments[name]
        else:
            args.append(arguments[name])
    return args, kwargs


def _per_tensor_arguments(op: Any, models: _Models, arguments: dict[str, Any], tensor: str) -> dict[str, Any]:
    rule: StateDict = op.state_dict
    call = dict(arguments)
    for name, mode in rule.inputs.items():
        value = arguments[name]
        if mode == "tensor":
            call[name] = value[tensor]
        elif mode == "models":
            call[name] = _namespace(value[0][tensor]).stack([m[tensor] for m in value], axis=-1)
        elif mode == "per_tensor" and _is_state_dict(value):
            call[name] = value[tensor]
    return call


def _check_per_tensor_mappings(op: Any, models: _Models, arguments: dict[str, Any]) -> None:
    for name, mode in op.state_dict.inputs.items():
        if mode == "per_tensor" and _is_state_dict(arguments[name]):
            models.check_names(f"argument '{name}'", arguments[name].keys(), floats_only=True)


def _run(tensor: str, function: Callable[..., Any], op: Any, call: dict[str, Any]) -> Any:
    args, kwargs = _split(op, call)
    try:
        return function(*args, **kwargs)
    except InputError as error:
        raise InputError(f"{error} (parameter tensor '{tensor}')") from None


def call(op: Any, function: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """Run ``function`` (the op, or a backend's op, on arrays) over whole models."""
    arguments = _bind(op, args, kwargs)
    models = _Models(op.name, op.state_dict, arguments)
    if op.state_dict.whole_model:
        flat = _flat_arguments(op, models, arguments)
        outputs = _run("all, flattened", function, op, flat)
        return _unflatten_outputs(op, models, outputs)
    _check_per_tensor_mappings(op, models, arguments)
    results = {
        k: _outputs(op, _run(k, function, op, _per_tensor_arguments(op, models, arguments, k)))
        for k in models.float_names
    }
    assembled = tuple(models.assemble({k: results[k][i] for k in results}) for i in range(len(op.outputs)))
    return assembled[0] if len(op.outputs) == 1 else assembled


def vjp(op: Any, vjp_function: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]):
    """``refimpl.vjp`` over whole models: state dicts of outputs, and a pullback taking state
    dicts of cotangents; the gradient of a shared argument is summed over the tensors."""
    arguments = _bind(op, args, kwargs)
    models = _Models(op.name, op.state_dict, arguments)
    rule: StateDict = op.state_dict
    if rule.whole_model:
        raise InputError(f"{op.name}: a whole-model op has no pullback over state dicts")
    _check_per_tensor_mappings(op, models, arguments)
    pullbacks, results = {}, {}
    for k in models.float_names:
        call_k = _per_tensor_arguments(op, models, arguments, k)
        out_k, pullbacks[k] = _run(k, vjp_function, op, call_k)
        results[k] = _outputs(op, out_k)
    single = len(op.outputs) == 1
    assembled = tuple(models.assemble({k: results[k][i] for k in results}) for i in range(len(op.outputs)))

    def pullback(cotangents: Any) -> tuple[Any, ...]:
        given = (cotangents,) if single else tuple(cotangents)
        for label, cotangent in zip(op.outputs, given, strict=True):
            if cotangent is not None and not _is_state_dict(cotangent):
                raise InputError(
                    f"{op.name}: the cotangent of '{label}' must be a state dict like the output"
                )
            if cotangent is not None:
                extra = sorted(set(cotangent) - set(models.names))
                if extra:
                    raise InputError(f"{op.name}: the cotangent of '{label}' has unknown names {extra}")
        per_tensor = {}
        for k in models.float_names:
            pieces = [None if c is None else c.get(k) for c in given]
            per_tensor[k] = pullbacks[k](pieces[0] if single else tuple(pieces))
        grads = []
        for i, name in enumerate(op.differentiable):
            mode = rule.inputs.get(name)
            value = arguments[name]
            by_tensor = {k: per_tensor[k][i] for k in models.float_names}
            if mode == "tensor" or (mode == "per_tensor" and _is_state_dict(value)):
                grads.append(models.assemble(by_tensor) if mode == "tensor" else by_tensor)
            elif mode == "models":
                count = len(value)
                grads.append([{k: by_tensor[k][..., j] for k in models.float_names} for j in range(count)])
            else:  # shared by every tensor: the gradients add up
                total = None
                for k in models.float_names:
                    total = by_tensor[k] if total is None else total + by_tensor[k]
                grads.append(total)
        return tuple(grads)

    return (assembled[0] if single else assembled), pullback


def _outputs(op: Any, outputs: Any) -> tuple[Any, ...]:
    return (outputs,) if len(op.outputs) == 1 else tuple(outputs)


def _flat_arguments(op: Any, models: _Models, arguments: dict[str, Any]) -> dict[str, Any]:
    call = dict(arguments)
    for name, mode in op.state_dict.inputs.items():
        value = arguments[name]
        if mode == "tensor":
            call[name] = models.flatten(value)
        elif mode in ("models", "models_flat"):
            dtypes = sorted({str(m[k].dtype) for m in value for k in models.float_names})
            if len(dtypes) > 1:
                raise InputError(
                    f"{op.name}: argument '{name}': a whole-model op needs one float dtype across the "
                    f"float tensors of every model, got {dtypes}"
                )
            flats = [models.flatten(m) for m in value]
            call[name] = _namespace(flats[0]).stack(flats, axis=-1)
        elif mode == "function_flat":
            user = value
            if not callable(user):
                raise InputError(
                    f"{op.name}: argument '{name}': expected a callable, got {type(user).__name__}"
                )
            call[name] = lambda flat, user=user: user(models.unflatten(flat))
    return call


def _unflatten_outputs(op: Any, models: _Models, outputs: Any) -> Any:
    outs = list(_outputs(op, outputs))
    for i, name in enumerate(op.outputs):
        if name in op.state_dict.outputs:
            outs[i] = models.unflatten(outs[i])
    return outs[0] if len(op.outputs) == 1 else tuple(outs)
