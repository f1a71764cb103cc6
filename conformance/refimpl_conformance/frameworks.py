"""refimpl ops inside PyTorch and JAX training: :func:`to_torch` and :func:`to_jax`.

Both wrap a catalog op so that a training loop can call it on the framework's own arrays,
with the op's hand-derived backward as the framework's gradient (never autograd through the
reference)::

    loss_fn = refimpl.to_torch("stablemax_cross_entropy")
    loss = loss_fn(model(x), y)          # torch tensors in, a torch tensor out
    loss.backward()                      # runs the op's VJP

    loss_fn = refimpl.to_jax("stablemax_cross_entropy")
    grads = jax.jit(jax.grad(lambda w: loss_fn(x @ w, y)))(w)

Every op of the catalog is available through both; nothing here names an op. Arguments are
bound to the op's signature first, so keywords work as in a direct call, and the op layer
validates every call as it always does: bad input raises :class:`refimpl.InputError` with the
op's message, from inside autograd and (outside ``jax.jit``) from JAX unchanged.

Neither PyTorch nor JAX is imported by ``import refimpl``: each is imported when a wrapped
function is first called.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from refimpl import Backend, InputError, Op, UnsupportedOpError, get, set_check_finite, vjp
from refimpl import backend as _load_backend
from refimpl.authoring import Scalar, Tensor, TensorList, quiet_floating_point, validate

__all__ = ["ShapeInferenceError", "to_jax", "to_torch", "wrapper_overhead"]


class ShapeInferenceError(UnsupportedOpError):
    """Under ``jax.jit`` the output shapes of a callback must be known before it runs, and they
    could not be found (or they depend on the input values): call the function outside jit."""


# -- shared -----------------------------------------------------------------------------------
def _bind(op: Op, args: Sequence[Any], kwargs: Mapping[str, Any]) -> inspect.BoundArguments:
    """The call bound to the op's signature, defaults filled (a TypeError becomes the op layer's
    InputError, with the same message)."""
    try:
        bound = op.signature.bind(*args, **kwargs)
    except TypeError as error:
        raise InputError(f"{op.name}: {error}; signature is {op.name}{op.signature}") from None
    bound.apply_defaults()
    return bound


def _call_args(op: Op, arguments: Mapping[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword arguments of the op from a name -> value mapping."""
    bound = inspect.BoundArguments(op.signature, dict(arguments))  # type: ignore[arg-type]
    return bound.args, bound.kwargs


def _is_state_dict_call(op: Op, arguments: Mapping[str, Any]) -> bool:
    """Whether the call gives whole models (state dicts) instead of arrays."""
    return op.state_dict is not None and any(
        isinstance(value, Mapping)
        or (isinstance(value, list | tuple) and value and isinstance(value[0], Mapping))
        for value in arguments.values()
    )


def _as_tuple(op: Op, outputs: Any) -> tuple[Any, ...]:
    return (outputs,) if len(op.outputs) == 1 else tuple(outputs)


def _is_float(array: Any) -> bool:
    return hasattr(array, "dtype") and np.dtype(array.dtype).kind == "f"


# -- PyTorch ----------------------------------------------------------------------------------
def to_torch(name: str | Op, backend: str | Backend | None = None) -> Callable[..., Any]:
    """The op ``name`` as a function of torch tensors, differentiable by its hand-derived VJP.

    The function takes the op's arguments (positional or by keyword, as the op itself) with
    torch tensors in place of arrays and returns torch tensors: one, or a tuple when the op
    has several outputs. Outputs keep the op's dtype (float32 in, float32 out).

    Gradients: for a differentiable op, when an input requires grad, the call is a
    ``torch.autograd.Function`` whose forward runs :func:`refimpl.vjp` and keeps its pullback
    in the autograd context; ``backward`` hands the incoming gradients to that pullback (a
    gradient torch did not materialize counts as zero) and returns the op's cotangents for
    its differentiable inputs, and ``None`` for every other argument. Outputs that are not
    floating point (counts, indices, flags) are marked non-differentiable. The backward is
    not itself differentiable (no double backward). An input modified in place between the
    forward and the backward is refused by torch's version check, as for its own ops.

    Plain functions (no ``autograd.Function``: they convert in, call, convert out): ops with
    no differentiable input (selections, optimizer steps and other stateful updates),
    calls in which no differentiable input requires grad or grad mode is off, and calls with
    whole models (state dicts: tensors inside mappings and lists are converted, and the
    outputs come back as state dicts of tensors; no gradient flows through such a call).

    Where it runs: with ``backend=None``, CPU tensors run the NumPy reference and CUDA
    tensors the ``"cupy"`` backend; a name (``"numba"``, ``"cupy"``) forces that backend
    (one that does not implement the op raises :class:`refimpl.UnsupportedOpError` here).
    Tensors cross without copies: CPU ones through ``tensor.detach().numpy()`` (a view),
    CUDA ones through DLPack (``cupy.from_dlpack``), and the results back through
    ``torch.from_numpy`` / ``torch.from_dlpack``. A non-contiguous tensor (a transpose, a
    strided slice) is first made contiguous, which copies it once. A tensor on a device the
    backend does not compute on raises :class:`refimpl.InputError`.

    Other arguments pass through unchanged: labels and masks may be tensors (converted like
    any tensor) or arrays; numbers, strings, ``None``, callables and lists stay as given,
    except that a 0-d tensor given for a scalar hyperparameter is read with ``.item()``. A
    list of tensors (a ``FloatArrays`` argument, an MLP's weights) is converted item by item;
    such an argument is never differentiable (the op layer allows only single float arrays
    to be).
    """
    op = get(name)
    forced = None if backend is None else _load_backend(backend)
    if forced is not None:
        forced.impl(op)  # UnsupportedOpError now, not at the first call

    def call(*args: Any, **kwargs: Any) -> Any:
        import torch

        bound = _bind(op, args, kwargs)
        arguments = bound.arguments
        chosen = forced if forced is not None else _torch_default_backend(arguments, torch)
        differentiate = (
            op.is_differentiable
            and torch.is_grad_enabled()
            and not _is_state_dict_call(op, arguments)
            and any(
                isinstance(arguments[n], torch.Tensor) and arguments[n].requires_grad
                for n in op.differentiable
            )
        )
        if not differentiate:
            return _torch_plain(op, chosen, arguments, torch)
        names = tuple(arguments)
        outputs = _torch_function(torch).apply(op, chosen, names, *arguments.values())
        return outputs

    call.__name__ = op.name
    call.__qualname__ = f"to_torch({op.name!r})"
    call.__doc__ = f"{op.name} on torch tensors (refimpl.to_torch); the op's documentation:\n\n{op.__doc__}"
    call.__signature__ = op.signature  # type: ignore[attr-defined]
    return call


def _torch_default_backend(arguments: Mapping[str, Any], torch: Any) -> Backend:
    """ "cupy" when any tensor argument is on a CUDA device, else the NumPy reference."""

    def on_cuda(value: Any) -> bool:
        if isinstance(value, torch.Tensor):
            return value.device.type == "cuda"
        if isinstance(value, list | tuple):
            return any(on_cuda(v) for v in value)
        if isinstance(value, Mapping):
            return any(on_cuda(v) for v in value.values())
        return False

    return _load_backend("cupy" if any(on_cuda(v) for v in arguments.values()) else "numpy")


def _tensor_to_array(op: Op, name: str, tensor: Any, chosen: Backend) -> Any:
    """A torch tensor as the backend's array, sharing memory (contiguous first when needed)."""
    device = tensor.device.type
    wanted = "cuda" if chosen.array_library == "cupy" else "cpu"
    if device != wanted:
        move = ".cuda()" if wanted == "cuda" else ".cpu()"
        raise InputError(
            f"{op.name}: argument '{name}': expected a {wanted.upper()} tensor (backend "
            f"{chosen.name!r} computes on {chosen.array_library} arrays), got a tensor on {tensor.device}; "
            f"move it with {move} or leave backend=None to follow the tensors' device"
        )
    tensor = tensor.detach()
    if not tensor.is_contiguous():
        tensor = tensor.contiguous()  # the one copy: refimpl computes on C-contiguous arrays
    if tensor.is_conj() or tensor.is_neg():
        tensor = tensor.resolve_conj().resolve_neg()
    if wanted == "cuda":
        import cupy

        return cupy.from_dlpack(tensor)
    try:
        return tensor.numpy()
    except TypeError:  # bfloat16 and other dtypes NumPy has no type for
        raise InputError(
            f"{op.name}: argument '{name}': expected dtype float32 or float64 (or an integer or "
            f"bool dtype for labels and masks), got {tensor.dtype}; cast with .float() or .double()"
        ) from None


def _to_arrays(op: Op, arguments: Mapping[str, Any], chosen: Backend, torch: Any) -> dict[str, Any]:
    """The arguments with every tensor (also inside lists and state dicts) as an array."""

    def convert(name: str, spec: Any, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            if isinstance(spec, Scalar) and value.dim() == 0:
                return value.item()
            return _tensor_to_array(op, name, value, chosen)
        if isinstance(value, list | tuple) and any(_contains_tensor(v, torch) for v in value):
            return type(value)(convert(f"{name}[{i}]", None, v) for i, v in enumerate(value))
        if isinstance(value, Mapping) and any(_contains_tensor(v, torch) for v in value.values()):
            return {k: convert(f"{name}[{k!r}]", None, v) for k, v in value.items()}
        return value

    return {name: convert(name, op.specs.get(name), value) for name, value in arguments.items()}


def _contains_tensor(value: Any, torch: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, list | tuple):
        return any(_contains_tensor(v, torch) for v in value)
    if isinstance(value, Mapping):
        return any(_contains_tensor(v, torch) for v in value.values())
    return False


def _array_to_tensor(value: Any, torch: Any) -> Any:
    """An output array as a tensor sharing its memory (dicts and lists converted item by item)."""
    if isinstance(value, Mapping):
        return {k: _array_to_tensor(v, torch) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_array_to_tensor(v, torch) for v in value)
    if type(value).__module__.split(".")[0] == "cupy":
        return torch.from_dlpack(value)
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)
        if not array.flags.writeable or any(stride < 0 for stride in array.strides):
            array = array.copy()  # torch.from_numpy takes neither read-only nor reversed arrays
        return torch.from_numpy(array)
    return value  # a Python number or None, as the op returned it


def _torch_plain(op: Op, chosen: Backend, arguments: Mapping[str, Any], torch: Any) -> Any:
    args, kwargs = _call_args(op, _to_arrays(op, arguments, chosen, torch))
    outputs = chosen.get(op)(*args, **kwargs)
    if len(op.outputs) == 1:
        return _array_to_tensor(outputs, torch)
    return tuple(_array_to_tensor(o, torch) for o in outputs)


_TORCH_FUNCTION: Any = None


def _torch_function(torch: Any) -> Any:
    """The one ``torch.autograd.Function`` every wrapped op goes through (built on first use,
    so that importing refimpl never imports torch)."""
    global _TORCH_FUNCTION
    if _TORCH_FUNCTION is not None:
        return _TORCH_FUNCTION

    class RefimplFunction(torch.autograd.Function):
        """Forward: ``refimpl.vjp``; backward: its pullback. ``apply(op, backend, names,
        *values)`` takes the call's arguments in signature order."""

        @staticmethod
        def forward(ctx: Any, op: Op, chosen: Backend, names: tuple[str, ...], *values: Any) -> Any:
            arguments = dict(zip(names, values, strict=True))
            args, kwargs = _call_args(op, _to_arrays(op, arguments, chosen, torch))
            outputs, pullback = vjp(op, *args, backend=chosen, **kwargs)
            outs = _as_tuple(op, outputs)
            tensors = tuple(_array_to_tensor(o, torch) for o in outs)
            ctx.set_materialize_grads(False)  # a gradient torch did not compute arrives as None
            ctx.mark_non_differentiable(
                *(t for t in tensors if isinstance(t, torch.Tensor) and not t.is_floating_point())
            )
            ctx.pullback = pullback
            ctx.float_outputs = tuple(isinstance(t, torch.Tensor) and t.is_floating_point() for t in tensors)
            # positions (in apply's arguments, after op, backend, names) of the differentiable inputs
            ctx.grad_positions = tuple(names.index(n) for n in op.differentiable)
            ctx.save_for_backward(*(v for v in values if isinstance(v, torch.Tensor)))  # version check
            return tensors[0] if len(tensors) == 1 else tensors

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx: Any, *grads: Any) -> Any:
            ctx.saved_tensors  # noqa: B018 - raises if an input was modified in place since the forward
            result: list[Any] = [None] * len(ctx.needs_input_grad)  # op, backend, names, *values
            wanted = [p for p in ctx.grad_positions if ctx.needs_input_grad[3 + p]]
            if not wanted or all(g is None for g in grads):
                return tuple(result)
            cotangents = []
            for grad, is_float in zip(grads, ctx.float_outputs, strict=True):
                if grad is None or not is_float:
                    cotangents.append(None)
                    continue
                if grad.device.type == "cuda":
                    import cupy

                    cotangents.append(cupy.from_dlpack(grad.detach().contiguous()))
                else:
                    cotangents.append(grad.detach().contiguous().numpy())
            given = cotangents[0] if len(cotangents) == 1 else tuple(cotangents)
            input_grads = ctx.pullback(given)
            for position, grad in zip(ctx.grad_positions, input_grads, strict=True):
                if ctx.needs_input_grad[3 + position] and grad is not None:
                    result[3 + position] = _array_to_tensor(grad, torch)
            return tuple(result)

    _TORCH_FUNCTION = RefimplFunction
    return RefimplFunction


# -- JAX --------------------------------------------------------------------------------------
def to_jax(name: str | Op, backend: str | Backend | None = None) -> Callable[..., Any]:
    """The op ``name`` as a JAX function, differentiable by its hand-derived VJP.

    The function takes the op's arguments (positional or by keyword) with JAX (or NumPy)
    arrays in place of arrays and returns JAX arrays: one, or a tuple for several outputs.
    The op runs on the host, in the reference (``backend=None``) or the named backend
    (``"numba"``; ``"cupy"`` copies the host arrays to the GPU and back). It works eagerly,
    under ``jax.jit``, ``jax.grad``/``jax.vjp`` and (one example at a time) ``jax.vmap``.

    How: for a differentiable op the function is a ``jax.custom_vjp`` whose backward is the
    op's pullback. Called on concrete arrays (eagerly) the op runs directly and the pullback
    of the forward is kept for the backward. Under a transformation that traces (``jit``,
    ``vmap``) the forward and the backward are ``jax.pure_callback`` calls, and the backward
    runs the forward again (a callback cannot hand a pullback to a later one): a jitted
    training step costs two forwards and one backward of the op.

    Arguments: arrays of the op's array arguments (and the items of a list of arrays) are
    traced; numbers, strings, ``None`` and callables are static (fixed when traced, as
    ``nondiff_argnums`` would make them); a JAX scalar given for a hyperparameter is traced
    too and read with ``.item()`` on the host. Only the op's differentiable inputs get
    gradients: other float arrays (a target, a mask) and traced hyperparameters get zero
    cotangents, integer and boolean arrays (labels) ``float0`` ones, as JAX expects.

    Output shapes under ``jit``: a callback's result shapes must be known before it runs, and
    refimpl declares no output shapes. They are found by running the reference forward,
    unvalidated, on two probes of the traced inputs' shapes and dtypes (floats drawn in
    (0.1, 0.9), then standard normal; integers at their lower bound; masks all true), after the
    op layer has checked the shapes, dtypes and static arguments (a bad one raises
    :class:`refimpl.InputError` at trace time). When both probes fail, or they disagree (the
    shapes depend on the values: a selection, a solver's residual history), jit raises
    :class:`ShapeInferenceError`, as when the probes give an empty output from non-empty
    inputs (an empty selection: XLA may skip a callback whose results are all empty); when the
    real inputs give other shapes than the probes, the callback raises it when the jitted
    function runs. Such ops work eagerly (including
    ``jax.grad`` outside ``jit``). Bad values (a label out of range, a NaN) are found by the
    op layer inside the callback: eagerly the :class:`refimpl.InputError` propagates
    unchanged; under ``jit`` JAX re-raises it as its runtime error, with the message.

    Whole models (state dicts of JAX arrays, for the merging ops that take them) run eagerly
    only, with no gradient.

    Without ``jax_enable_x64`` JAX has no float64 or int64: give float32 arrays; integer
    outputs come back as int32.
    """
    op = get(name)
    chosen = _load_backend("numpy" if backend is None else backend)
    chosen.impl(op)  # UnsupportedOpError now, not at the first call

    def call(*args: Any, **kwargs: Any) -> Any:
        import jax

        arguments = dict(_bind(op, args, kwargs).arguments)
        if _is_state_dict_call(op, arguments):
            return _jax_state_dict_call(op, chosen, arguments, jax)
        values, paths, static = _jax_leaves(op, arguments, jax)
        return _jax_function(op, chosen, static, paths, values, jax)(*values)

    call.__name__ = op.name
    call.__qualname__ = f"to_jax({op.name!r})"
    call.__doc__ = f"{op.name} on JAX arrays (refimpl.to_jax); the op's documentation:\n\n{op.__doc__}"
    call.__signature__ = op.signature  # type: ignore[attr-defined]
    return call


def _is_array(value: Any) -> bool:
    library = type(value).__module__.split(".")[0]
    return hasattr(value, "shape") and hasattr(value, "dtype") and library in ("numpy", "jax", "jaxlib")


def _is_traced(values: Sequence[Any], jax: Any) -> bool:
    return any(isinstance(v, jax.core.Tracer) for v in values)


Path = tuple[str, int | None]  # an argument's name, and the item's index in a list argument


def _jax_leaves(op: Op, arguments: dict[str, Any], jax: Any) -> tuple[list[Any], list[Path], dict[str, Any]]:
    """Split the call into traced arrays (with where each goes) and static arguments."""
    values: list[Any] = []
    paths: list[Path] = []
    static = dict(arguments)
    for name, spec in op.specs.items():
        value = arguments[name]
        if isinstance(spec, Tensor) and _is_array(value):
            values.append(value)
            paths.append((name, None))
        elif isinstance(spec, TensorList) and isinstance(value, list | tuple) and all(map(_is_array, value)):
            values.extend(value)
            paths.extend((name, i) for i in range(len(value)))
            static[name] = list(value)
        elif isinstance(spec, Scalar) and isinstance(value, jax.Array):
            if isinstance(value, jax.core.Tracer):
                values.append(value)
                paths.append((name, None))
            else:
                static[name] = value.item()
    return values, paths, static


def _rebuild(
    op: Op, static: Mapping[str, Any], paths: Sequence[Path], values: Sequence[Any], chosen: Backend
):
    """The op's arguments on the host: the static ones and the traced ones, given as NumPy
    arrays by the callback, as the backend's arrays (numbers for hyperparameters)."""
    arguments = dict(static)
    for (name, index), value in zip(paths, values, strict=True):
        if isinstance(op.specs[name], Scalar):
            arguments[name] = np.asarray(value).item()
        elif index is None:
            arguments[name] = chosen.asarray(np.asarray(value))
        else:
            arguments[name] = list(arguments[name])
            arguments[name][index] = chosen.asarray(np.asarray(value))
    return arguments


def _host_outputs(op: Op, outputs: Any, chosen: Backend) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(chosen.to_numpy(o)) for o in _as_tuple(op, outputs))


def _jax_function(
    op: Op, chosen: Backend, static: dict[str, Any], paths: list[Path], values: list[Any], jax: Any
) -> Callable[..., Any]:
    """The call as a function of its traced arrays: a custom_vjp for a differentiable op."""
    import jax.numpy as jnp

    single = len(op.outputs) == 1
    # the traced arrays that are differentiable inputs, by their index in ``values``
    differentiable = [
        k for k, (name, index) in enumerate(paths) if name in op.differentiable and index is None
    ]

    def host_forward(*host: Any) -> tuple[np.ndarray, ...]:
        args, kwargs = _call_args(op, _rebuild(op, static, paths, host, chosen))
        return _host_outputs(op, chosen.get(op)(*args, **kwargs), chosen)

    def forward(traced: Sequence[Any]) -> Any:
        if not _is_traced(traced, jax):
            outs = tuple(jnp.asarray(o) for o in host_forward(*(np.asarray(v) for v in traced)))
        else:
            structs = _jax_output_structs(op, static, paths, traced, jax)
            outs = tuple(
                jax.pure_callback(
                    _checked(op, host_forward, structs), structs, *traced, vmap_method="sequential"
                )
            )
        return outs[0] if single else outs

    if not differentiable:
        return lambda *traced: forward(traced)

    stash: dict[str, Any] = {}  # the eager forward's pullback, for the eager backward

    def host_vjp(host: Sequence[Any]):
        args, kwargs = _call_args(op, _rebuild(op, static, paths, host, chosen))
        return vjp(op, *args, backend=chosen, **kwargs)

    @jax.custom_vjp
    def function(*traced: Any) -> Any:
        return forward(traced)

    def function_fwd(*traced: Any) -> Any:
        if _is_traced(traced, jax):
            return forward(traced), traced
        outputs, pullback = host_vjp([np.asarray(v) for v in traced])
        stash["pullback"], stash["outputs"] = pullback, _as_tuple(op, outputs)
        outs = tuple(jnp.asarray(o) for o in _host_outputs(op, outputs, chosen))
        return (outs[0] if single else outs), traced

    def function_bwd(traced: Any, cotangents: Any) -> tuple[Any, ...]:
        given = (cotangents,) if single else tuple(cotangents)
        keep = tuple(c.dtype != jax.dtypes.float0 for c in given)  # float0: an integer output
        floats = [c for c, kept in zip(given, keep, strict=True) if kept]
        structs = tuple(jax.ShapeDtypeStruct(traced[k].shape, traced[k].dtype) for k in differentiable)
        eager = not _is_traced([*traced, *floats], jax)

        def host_backward(*host: Any) -> tuple[np.ndarray, ...]:
            host_values, host_cotangents = host[: len(traced)], iter(host[len(traced) :])
            if eager and "pullback" in stash:
                pullback, outputs = stash["pullback"], stash["outputs"]
            else:
                outputs, pullback = host_vjp(host_values)
                outputs = _as_tuple(op, outputs)
            chosen_cotangents = [
                chosen.asarray(np.asarray(next(host_cotangents)).astype(output.dtype, copy=False))
                if kept
                else None
                for output, kept in zip(outputs, keep, strict=True)
            ]
            grads = dict(
                zip(
                    op.differentiable,
                    pullback(chosen_cotangents[0] if single else tuple(chosen_cotangents)),
                    strict=True,
                )
            )
            return tuple(
                np.asarray(chosen.to_numpy(grads[paths[k][0]])).astype(struct.dtype, copy=False)
                for k, struct in zip(differentiable, structs, strict=True)
            )

        if eager:
            grads = tuple(jnp.asarray(g) for g in host_backward(*map(np.asarray, [*traced, *floats])))
        else:
            grads = tuple(
                jax.pure_callback(host_backward, structs, *traced, *floats, vmap_method="sequential")
            )
        result = []
        for k, value in enumerate(traced):
            if k in differentiable:
                result.append(grads[differentiable.index(k)])
            elif np.dtype(value.dtype).kind == "f":
                result.append(jnp.zeros(value.shape, value.dtype))  # not differentiable: zero
            else:
                result.append(np.zeros(value.shape, jax.dtypes.float0))  # labels, masks
        return tuple(result)

    function.defvjp(function_fwd, function_bwd)
    return function


def _checked(op: Op, host_forward: Callable[..., tuple[np.ndarray, ...]], structs: Sequence[Any]):
    """The host forward, its outputs checked against the shapes declared at trace time."""

    def run(*host: Any) -> tuple[np.ndarray, ...]:
        outputs = host_forward(*host)
        for label, output, struct in zip(op.outputs, outputs, structs, strict=True):
            if tuple(output.shape) != tuple(struct.shape):
                raise ShapeInferenceError(
                    f"{op.name}: under jax.jit output '{label}' was declared with shape "
                    f"{tuple(struct.shape)} (from probe inputs of the traced shapes), but these inputs "
                    f"give shape {tuple(output.shape)}: its shape depends on the input values, which jit "
                    "cannot express; call the function outside jax.jit"
                )
        return tuple(o.astype(s.dtype, copy=False) for o, s in zip(outputs, structs, strict=True))

    return run


def _probe_value(spec: Any, shape: tuple[int, ...], dtype: np.dtype, fill: Callable[..., np.ndarray], rng):
    """A stand-in for a traced argument, valid as far as its spec says without values."""
    if isinstance(spec, Scalar):
        if spec.kind == "flag":
            return False
        low, high = spec.low, spec.high
        if spec.kind == "integer":
            return int(low) if low is not None else int(min(1, high if high is not None else 1))
        if low is not None and high is not None:
            return (low + high) / 2
        if low is not None:
            return low + 0.5
        return high - 0.5 if high is not None else 0.5
    if dtype.kind == "f":
        return fill(rng, shape).astype(dtype)
    if dtype.kind == "b":
        return np.ones(shape, bool)
    low = spec.low if isinstance(spec, Tensor) and spec.low is not None else 0
    return np.full(shape, low, dtype)


_FILLS: tuple[Callable[..., np.ndarray], ...] = (
    lambda rng, shape: rng.uniform(0.1, 0.9, shape),
    lambda rng, shape: rng.standard_normal(shape),
)


def _jax_output_structs(
    op: Op, static: Mapping[str, Any], paths: Sequence[Path], traced: Sequence[Any], jax: Any
) -> tuple[Any, ...]:
    """The output shapes and dtypes for ``jax.pure_callback``, from probe calls of the raw
    reference forward on stand-ins of the traced arguments (see :func:`to_jax`)."""
    found: list[tuple[tuple[int, ...], np.dtype] | None] = []
    failures: list[str] = []
    for number, fill in enumerate(_FILLS):
        rng = np.random.default_rng(0)
        probe = [
            _probe_value(op.specs[name], tuple(v.shape), np.dtype(v.dtype), fill, rng)
            for (name, _), v in zip(paths, traced, strict=True)
        ]
        arguments = _rebuild(op, static, paths, probe, _load_backend("numpy"))
        for name, spec in op.specs.items():  # the op layer's own conversions of numbers
            value = arguments[name]
            if isinstance(spec, Scalar) and value is not None and spec.kind in ("real", "integer"):
                arguments[name] = float(value) if spec.kind == "real" else int(value)
        if number == 0:  # shapes, dtypes and static arguments: the op layer's message, at trace time
            with set_check_finite(False):
                validate(op.name, op.specs, arguments, library="numpy", allow_empty=op.allow_empty)
        args, kwargs = _call_args(op, arguments)
        try:
            with quiet_floating_point(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                outputs, _ = op.forward(*args, **kwargs)
            found.append(tuple((tuple(np.shape(o)), np.asarray(o).dtype) for o in _as_tuple(op, outputs)))
        except Exception as error:  # noqa: BLE001 - a probe outside the op's domain may fail anyhow
            failures.append(f"{type(error).__name__}: {error}")
            found.append(None)
    shapes = [f for f in found if f is not None]
    if not shapes:
        raise ShapeInferenceError(
            f"{op.name}: under jax.jit the output shapes must be known before the op runs, and the "
            f"reference forward failed on probe inputs of the traced shapes ({'; '.join(failures)}); "
            "call the function outside jax.jit"
        )
    if any(s != shapes[0] for s in shapes):
        raise ShapeInferenceError(
            f"{op.name}: under jax.jit the output shapes must be known before the op runs, and they "
            f"depend on the input values (probe inputs gave {shapes[0]} and {shapes[1]}); call the "
            "function outside jax.jit"
        )
    empty = [label for label, (shape, _) in zip(op.outputs, shapes[0], strict=True) if 0 in shape]
    if empty and not any(0 in tuple(v.shape) for v in traced):
        # XLA may skip a pure callback whose results are all empty: refuse rather than return
        # the probes' empty selection as if it were the answer
        raise ShapeInferenceError(
            f"{op.name}: under jax.jit the output shapes must be known before the op runs; from "
            f"non-empty inputs the probes gave empty {', '.join(map(repr, empty))}, a sign that the "
            "shapes depend on the input values (a selection); call the function outside jax.jit"
        )
    return tuple(
        jax.ShapeDtypeStruct(shape, jax.dtypes.canonicalize_dtype(dtype)) for shape, dtype in shapes[0]
    )


def _jax_state_dict_call(op: Op, chosen: Backend, arguments: Mapping[str, Any], jax: Any) -> Any:
    """Whole models (state dicts of JAX arrays): converted, run eagerly, converted back."""
    import jax.numpy as jnp

    def to_host(value: Any) -> Any:
        if isinstance(value, jax.core.Tracer):
            raise ShapeInferenceError(
                f"{op.name}: a call with whole models (state dicts) runs eagerly only; call it "
                "outside jax.jit and jax.grad, or call it per parameter array"
            )
        if isinstance(value, jax.Array):
            return chosen.asarray(np.asarray(value))
        if isinstance(value, Mapping):
            return {k: to_host(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(to_host(v) for v in value)
        return value

    def to_jax_array(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: to_jax_array(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(to_jax_array(v) for v in value)
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            return jnp.asarray(np.asarray(chosen.to_numpy(value)))
        return value

    args, kwargs = _call_args(op, {k: to_host(v) for k, v in arguments.items()})
    outputs = chosen.get(op)(*args, **kwargs)
    return to_jax_array(outputs) if len(op.outputs) == 1 else tuple(to_jax_array(o) for o in outputs)


# -- overhead ---------------------------------------------------------------------------------
def wrapper_overhead(
    name: str = "layer_norm",
    sizes: Sequence[tuple[int, ...]] = ((8, 16), (4096, 1024)),
    repeat: int = 20,
    dtype: str = "float32",
    frameworks: Sequence[str] = ("torch", "jax"),
    min_time: float = 0.2,
) -> list[dict[str, Any]]:
    """Per-call time of one forward+backward through :func:`to_torch` and :func:`to_jax`
    against the same work on NumPy arrays (``refimpl.vjp`` then the pullback).

    The inputs are those ``refimpl bench`` times for the op at each ``ROWSxCOLS`` size (from
    its conformance cases, so ``refimpl_conformance`` must be installed), the cotangents all
    ones. Timed like ``refimpl bench`` (median after warm-up, at least ``repeat`` runs and
    ``min_time`` seconds). ``"torch"``: the wrapped op on CPU tensors, differentiable inputs
    requiring grad, then ``torch.autograd.backward``; ``"jax"``: ``jax.jit`` of the wrapped
    op's ``jax.vjp`` and pullback (two pure callbacks; the backward one runs the forward
    again), with the result blocked on. One row per (framework, size): ``median_s``, the
    reference's ``numpy_s``, ``overhead_s`` (their difference: conversions, binding, autograd
    and callback machinery) and ``ratio``.
    """
    from refimpl_conformance.bench import _time, bench_case

    op = get(name)
    if not op.is_differentiable:
        raise UnsupportedOpError(f"{op.name} is not differentiable: wrapper_overhead times forward+backward")
    case = bench_case(op.name)
    if case is None:
        raise UnsupportedOpError(f"{op.name} declares no benchmark in its conformance cases (Bench)")
    rows: list[dict[str, Any]] = []
    for size in sizes:
        args, kwargs, cotangent = case.make(tuple(size), dtype, np.random.default_rng(0))
        bound = _bind(op, args, kwargs)
        arguments = dict(bound.arguments)
        cotangents = cotangent if isinstance(cotangent, tuple) else (cotangent,)

        def numpy_step(args: Any = args, kwargs: Any = kwargs, cotangent: Any = cotangent) -> None:
            _, pullback = vjp(op, *args, **kwargs)
            pullback(cotangent)

        reference = _time(numpy_step, repeat, min_time=min_time).median
        steps: dict[str, Callable[[], Any]] = {}
        if "torch" in frameworks:
            steps["torch"] = _torch_step(op, arguments, cotangents)
        if "jax" in frameworks:
            steps["jax"] = _jax_step(op, arguments, cotangents)
        for framework, step in steps.items():
            median = _time(step, repeat, min_time=min_time).median
            rows.append(
                {
                    "op": op.name,
                    "framework": framework,
                    "shape": "x".join(map(str, size)),
                    "dtype": dtype,
                    "median_s": median,
                    "numpy_s": reference,
                    "overhead_s": median - reference,
                    "ratio": median / reference,
                }
            )
    return rows


def _torch_step(op: Op, arguments: Mapping[str, Any], cotangents: Sequence[Any]) -> Callable[[], Any]:
    import torch

    function = to_torch(op)
    given = {
        n: (
            torch.from_numpy(np.ascontiguousarray(v)).requires_grad_(n in op.differentiable)
            if _is_array(v)
            else v
        )
        for n, v in arguments.items()
    }
    grads = [None if c is None else torch.from_numpy(np.ascontiguousarray(c)) for c in cotangents]
    leaves = [given[n] for n in op.differentiable if isinstance(given[n], torch.Tensor)]

    def step() -> None:
        outs = function(**given)
        outs = (outs,) if len(op.outputs) == 1 else outs
        pairs = [(o, g) for o, g in zip(outs, grads, strict=True) if g is not None and o.requires_grad]
        torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
        for leaf in leaves:
            leaf.grad = None

    return step


def _jax_step(op: Op, arguments: Mapping[str, Any], cotangents: Sequence[Any]) -> Callable[[], Any]:
    import jax
    import jax.numpy as jnp

    function = to_jax(op)
    names = [n for n in op.differentiable if _is_array(arguments[n])]
    others = {n: (jnp.asarray(v) if _is_array(v) else v) for n, v in arguments.items() if n not in names}
    primals = [jnp.asarray(arguments[n]) for n in names]
    given = [None if c is None else jnp.asarray(c) for c in cotangents]

    @jax.jit
    def forward_backward(primals: list[Any], given: list[Any]) -> Any:
        outputs, pullback = jax.vjp(
            lambda *p: function(**dict(zip(names, p, strict=True)), **others), *primals
        )
        outs = (outputs,) if len(op.outputs) == 1 else tuple(outputs)
        full = tuple(jnp.zeros_like(o) if g is None else g for o, g in zip(outs, given, strict=True))
        return outputs, pullback(full[0] if len(op.outputs) == 1 else full)

    return lambda: jax.block_until_ready(forward_backward(primals, given))
