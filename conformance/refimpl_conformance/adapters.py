"""Checking a user's own implementation (NumPy, PyTorch, JAX or CuPy) against the reference.

::

    import refimpl_conformance as rc
    report = rc.check("layer_norm", my_torch_layer_norm, framework="torch")
    rc.assert_conforms("layer_norm", my_torch_layer_norm, framework="torch")

The user's function is wrapped as a backend: the suite's inputs (NumPy, float64 or
float32) are converted to the framework's arrays without changing their dtype, the
function runs, and its VJP is taken with the framework's own autograd (PyTorch, JAX) or
with the ``vjp`` the user passes (NumPy, CuPy, or a hand-written backward). Every sample of
the op's conformance cases is then compared with the reference computed in float64.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

import refimpl
from refimpl import Backend, Impl, Op

from ._cases import Sample, cases_for
from ._engine import FLOAT_DTYPES, Result, check_errors, check_sample
from ._runner import DEFAULT_SEEDS, Report

__all__ = ["FRAMEWORKS", "assert_conforms", "check", "load_function", "wrap"]

FRAMEWORKS = ("numpy", "torch", "jax", "cupy")


def load_function(spec: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (for the command line)."""
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise ValueError(f"expected PACKAGE.MODULE:FUNCTION, got {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    return target


def _call_user(
    op: Op, fn: Callable[..., Any], arguments: Mapping[str, Any], argmap: Mapping[str, str] | None
):
    """Call ``fn`` with the op's arguments by keyword, renamed through ``argmap``.

    ``argmap`` maps the op's argument names to the user's (``{"z": "logits", "y": "target"}``);
    an argument mapped to ``None`` is not passed (the user's function has no such parameter).
    """
    argmap = dict(argmap or {})
    kwargs = {}
    for name, value in arguments.items():
        target = argmap.get(name, name)
        if target is not None:
            kwargs[target] = value
    return fn(**kwargs)


class _Framework:
    """Conversions and autograd for one framework."""

    name = "numpy"

    def __init__(self, device: str | None = None) -> None:
        self.device = device

    def to(self, array: np.ndarray, requires_grad: bool = False) -> Any:
        return array

    def from_(self, value: Any) -> np.ndarray:
        return np.asarray(value)

    def vjp(self, outputs, inputs, cotangents):  # pragma: no cover - numpy has no autograd
        raise NotImplementedError


class _Torch(_Framework):
    name = "torch"

    def __init__(self, device: str | None = None) -> None:
        import torch

        super().__init__(device or "cpu")
        self.torch = torch

    def to(self, array, requires_grad=False):
        tensor = self.torch.from_numpy(np.require(array, requirements="C")).to(self.device)
        return tensor.requires_grad_(requires_grad)

    def from_(self, value):
        if isinstance(value, self.torch.Tensor):
            return value.detach().cpu().numpy()
        return np.asarray(value)

    def vjp(self, outputs, inputs, cotangents):
        pairs = [
            (o, c) for o, c in zip(outputs, cotangents, strict=True) if c is not None and o.requires_grad
        ]
        if not pairs:
            return [None] * len(inputs)
        grads = self.torch.autograd.grad(
            [o for o, _ in pairs],
            inputs,
            grad_outputs=[self.to(c).to(o.dtype) for o, c in pairs],
            allow_unused=True,
        )
        return list(grads)


class _Cupy(_Framework):
    name = "cupy"

    def __init__(self, device: str | None = None) -> None:
        import cupy

        super().__init__(device)
        self.cupy = cupy

    def to(self, array, requires_grad=False):
        return self.cupy.asarray(array)

    def from_(self, value):
        return self.cupy.asnumpy(value)


def _framework(name: str, device: str | None) -> _Framework:
    if name == "numpy":
        return _Framework(device)
    if name == "torch":
        return _Torch(device)
    if name == "cupy":
        return _Cupy(device)
    if name == "jax":
        return _Jax(device)
    raise ValueError(f"framework must be one of {', '.join(FRAMEWORKS)}, got {name!r}")


class _Jax(_Framework):
    name = "jax"

    def __init__(self, device: str | None = None) -> None:
        import jax

        jax.config.update("jax_enable_x64", True)  # float64 inputs stay float64
        super().__init__(device)
        self.jax = jax

    def to(self, array, requires_grad=False):
        return self.jax.numpy.asarray(array)

    def from_(self, value):
        return np.asarray(value)


def wrap(
    op: str | Op,
    fn: Callable[..., Any],
    *,
    framework: str = "numpy",
    vjp: Callable[..., Any] | None = None,
    argmap: Mapping[str, str | None] | None = None,
    device: str | None = None,
    name: str | None = None,
) -> Backend:
    """A Backend running ``fn`` (and its VJP) for ``op``, on NumPy inputs from the suite.

    ``fn`` is called with the op's arguments by keyword (renamed through ``argmap``) and
    returns the op's outputs (a tuple when there are several). Its VJP is taken with the
    framework's autograd (torch, jax) unless ``vjp`` is given:
    ``vjp(cotangents, **arguments) -> one cotangent per differentiable input`` (NumPy or
    the framework's arrays; the cotangents a single array, or a tuple for several outputs).
    """
    op = refimpl.get(op)
    frame = _framework(framework, device)
    differentiable = set(op.differentiable)
    single = len(op.outputs) == 1

    def forward(*args: Any, **kwargs: Any):
        bound = op.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        converted = {}
        for key, value in bound.arguments.items():
            if isinstance(value, np.ndarray):
                wants_grad = key in differentiable and vjp is None and frame.name == "torch"
                converted[key] = frame.to(value, requires_grad=wants_grad)
            else:
                converted[key] = value
        if frame.name == "jax" and vjp is None and op.is_differentiable:
            outputs, pullback = _jax_vjp(frame, op, fn, converted, argmap)
        else:
            outputs = _call_user(op, fn, converted, argmap)
            pullback = None
        outs = (outputs,) if single else tuple(outputs)
        numpy_outs = tuple(frame.from_(o) for o in outs)
        residuals = (converted, outs, pullback)
        return (numpy_outs[0] if single else numpy_outs), residuals

    def backward(residuals: Any, cotangents: Any):
        converted, outs, pullback = residuals
        given = (cotangents,) if single else tuple(cotangents)
        if vjp is not None:
            user_cotangents = tuple(frame.to(np.asarray(c)) for c in given)
            grads = vjp(user_cotangents[0] if single else user_cotangents, **_renamed(converted, argmap))
            grads = list(grads) if isinstance(grads, tuple | list) else [grads]
        elif pullback is not None:  # jax
            grads = list(pullback(tuple(frame.to(np.asarray(c)) for c in given)))
        elif frame.name == "torch":
            inputs = [converted[n] for n in op.differentiable]
            grads = frame.vjp(outs, inputs, [np.asarray(c) for c in given])
        else:
            raise TypeError(
                f"{op.name} is differentiable: pass vjp=... for a {frame.name} function "
                "(NumPy and CuPy have no autograd)"
            )
        result = []
        for input_name, grad in zip(op.differentiable, grads, strict=True):
            if grad is None:  # the function ignored the input: its cotangent is zero
                grad = np.zeros_like(np.asarray(frame.from_(converted[input_name])))
            result.append(frame.from_(grad))
        return tuple(result)

    qualname = getattr(fn, "__qualname__", "")
    importable = qualname and "<" not in qualname  # not a lambda or a local function
    spec = f"{getattr(fn, '__module__', '?')}:{qualname}"
    label = name or (f"impl:{frame.name}:{spec}" if importable else f"{frame.name}:{spec}")
    return Backend(
        label,
        {op.name: Impl(forward, backward if op.is_differentiable else None)},
        description=f"a user's {frame.name} implementation of {op.name}",
    )


def _renamed(converted: Mapping[str, Any], argmap: Mapping[str, str | None] | None) -> dict[str, Any]:
    argmap = dict(argmap or {})
    return {argmap.get(k, k): v for k, v in converted.items() if argmap.get(k, k) is not None}


def _jax_vjp(frame: _Jax, op: Op, fn, converted, argmap):
    jax = frame.jax
    names = list(op.differentiable)

    def partial(*values):
        arguments = dict(converted)
        arguments.update(zip(names, values, strict=True))
        return _call_user(op, fn, arguments, argmap)

    outputs, pullback = jax.vjp(partial, *[converted[n] for n in names])
    single = len(op.outputs) == 1

    def apply(cotangents):
        return pullback(cotangents[0] if single else tuple(cotangents))

    return outputs, apply


def check(
    op: str | Op,
    fn: Callable[..., Any],
    *,
    framework: str = "numpy",
    vjp: Callable[..., Any] | None = None,
    dtypes: Sequence[str] = FLOAT_DTYPES,
    argmap: Mapping[str, str | None] | None = None,
    supports: Callable[[Sample], bool] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    device: str | None = None,
    errors: bool = False,
    sample_name: str | None = None,
    dims: Mapping[str, int] | None = None,
) -> Report:
    """Check ``fn`` against the reference on every sample of ``op``'s conformance cases.

    ``supports(sample) -> bool`` declares which samples the implementation covers (e.g.
    ``lambda s: s.kwargs.get("reduction", "mean") == "mean"``); the others are reported as
    skipped, never as passed. ``errors=True`` also runs the error cases (only meaningful
    when ``fn`` validates its input like refimpl does). ``seeds`` picks the random samples
    (``dims`` fixes their dimensions instead of drawing them from the seed) and
    ``sample_name`` narrows the run to one sample (a repro).
    """
    op = refimpl.get(op)
    backend = wrap(op, fn, framework=framework, vjp=vjp, argmap=argmap, device=device)
    cases = cases_for(op.name)
    report = Report()
    samples = cases.samples(seeds, dims)
    if sample_name is not None:
        samples = [s for s in samples if s.name == sample_name]
    for sample in samples:
        for dtype in dtypes:
            if supports is not None and not supports(sample):
                report.results.append(
                    Result(
                        op.name,
                        backend.name,
                        dtype,
                        sample.name,
                        "forward",
                        "skip",
                        detail="not supported by this implementation (declared)",
                    )
                )
                continue
            report.results.extend(check_sample(op, cases, backend, sample, dtype))
    if errors:
        report.results.extend(check_errors(op, backend, cases.errors()))
    return report


def assert_conforms(op: str | Op, fn: Callable[..., Any], **options: Any) -> Report:
    """Like :func:`check`, but raise ``AssertionError`` listing each failure with its numbers."""
    report = check(op, fn, **options)
    if report.failures:
        lines = [
            f"{r.check} [{r.dtype}] sample {r.sample!r}: max abs {r.max_abs:.3g}, max rel {r.max_rel:.3g}"
            f" — {r.detail}"
            for r in report.failures
        ]
        raise AssertionError(
            f"{len(report.failures)} of {len(report.results)} checks of {refimpl.get(op).name} failed:\n"
            + "\n".join(lines)
        )
    return report
