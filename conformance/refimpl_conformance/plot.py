"""A picture of a differentiable op: its forward and its gradient along one input coordinate.

The slice goes through a conformance sample (the random sample of seed 0, or the first
seed whose sample is a point where finite differences hold): one element ``x[k]`` of the
op's first differentiable input moves over an interval around its sampled value while
every other input stays put. The top panel draws the forward, reduced to a number: the op's
output itself when it is a scalar (a loss), otherwise ``⟨v, f⟩`` for a fixed random
cotangent ``v`` (the same projection the finite-difference check uses). The bottom panel
draws ``∂/∂x[k]`` of that number as the hand-derived VJP gives it (a line) and as central
differences of the forward give it (dots): where the two agree the picture is the check.
For an op whose backward is a stated surrogate (a straight-through estimator, a detached
term), the line is that surrogate, and the dots show the true derivative beside it.

``refimpl show OP --plot FILE`` draws it from the command line; the documentation site draws
one per differentiable op at build time. Needs matplotlib (the ``docs`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import refimpl
from refimpl import InputError

from ._cases import Sample, cases_for
from ._engine import _as_tuple, _cast_kwargs, cast_floats

__all__ = ["Slice", "plot_op", "slice_through"]

POINTS = 121
FD_POINTS = 13


@dataclass
class Slice:
    """The numbers behind the picture (also what the tests check)."""

    op: str
    sample: str  # the conformance sample's name
    input: str  # the moving input
    index: tuple[int, ...]  # the moving element
    center: float  # its sampled value
    t: np.ndarray  # the element's values along the slice
    value: np.ndarray  # the reduced forward at each value (NaN where the op refused it)
    grad: np.ndarray  # ∂/∂x[k] from the VJP
    fd_index: np.ndarray  # the points of ``t`` where central differences were taken
    fd_grad: np.ndarray  # their values
    scalar: bool  # the forward is a scalar (no projection)
    custom_vjp: bool
    curve: np.ndarray | None = None  # for a map into the Poincaré ball: an output row's path (points, 2)
    curve_row: int = 0
    radius: float = 1.0  # the ball's radius 1/√c

    @property
    def ylabel(self) -> str:
        return self.op if self.scalar else f"⟨v, {self.op}⟩"

    def caption(self) -> str:
        element = f"{self.input}[{', '.join(map(str, self.index))}]" if self.index else self.input
        what = (
            f"{self.op} (top)"
            if self.scalar
            else f"⟨v, {self.op}(…)⟩ for a fixed random cotangent v (top; the op's output is not a scalar)"
        )
        backward = (
            "the stated backward, which is by design not the derivative (line), and the derivative "
            "by central differences (dots)"
            if self.custom_vjp
            else "from the hand-derived VJP (line) and by central differences of the forward (dots)"
        )
        disk = (
            f" Right: the path of output row {self.curve_row} (its first two coordinates) on the "
            f"Poincaré disk of radius 1/√c = {self.radius:.3g} as {element} moves (dot: the sample)."
            if self.curve is not None
            else ""
        )
        return (
            f"{what} and its derivative with respect to {element} (bottom), {backward}, as "
            f"{element} moves from {self.t[0]:.3g} to {self.t[-1]:.3g} through the conformance "
            f"sample {self.sample} (dashed: its value there, {self.center:.3g}); every other input "
            f"is held at the sample's value.{disk}"
        )


def _first_fd_sample(name: str) -> Sample:
    cases = cases_for(name)
    first = None
    for seed in range(10):
        sample = cases.random_sample(seed)
        if "float64" not in sample.dtypes:
            continue
        first = first or sample
        if sample.fd:
            return sample
    return first if first is not None else cases.random_sample(0)


class _Evaluator:
    """The reduced forward ``⟨v, f(x)⟩`` and its derivative along one element."""

    def __init__(self, op: refimpl.Op, sample: Sample, name: str) -> None:
        self.op = op
        args = cast_floats(sample.args, "float64")
        kwargs = _cast_kwargs(sample.kwargs, "float64")
        self.bound = op.bind(args, kwargs)
        self.name = name
        self.position = op.differentiable.index(name)
        outputs = self._outputs(self.bound.arguments[name])
        self.float_outputs = [i for i, o in enumerate(outputs) if o.dtype.kind == "f"]
        self.scalar = len(self.float_outputs) == 1 and outputs[self.float_outputs[0]].size == 1
        rng = np.random.default_rng(0)
        draw = np.ones if self.scalar else rng.standard_normal
        self.v = [draw(o.shape) if i in self.float_outputs else None for i, o in enumerate(outputs)]

    def _bound_with(self, x: np.ndarray):
        arguments = dict(self.bound.arguments)
        arguments[self.name] = x
        return self.op.signature.bind(**arguments)

    def _outputs(self, x: np.ndarray) -> list[np.ndarray]:
        bound = self._bound_with(x)
        outputs, _ = self.op.forward(*bound.args, **bound.kwargs)
        return [np.asarray(o, dtype=np.float64) for o in _as_tuple(self.op, outputs)]

    def ball_row(self, x: np.ndarray, row: int) -> np.ndarray | None:
        """Row ``row`` of the first float output, for an op whose output lies in the ball."""
        out = self._outputs(x)[self.float_outputs[0]]
        if out.ndim == 0 or out.shape[-1] < 2:
            return None
        rows = out.reshape(-1, out.shape[-1])
        return rows[min(row, len(rows) - 1), :2]

    def value(self, x: np.ndarray) -> float:
        outputs = self._outputs(x)
        return float(sum(np.sum(self.v[i] * outputs[i]) for i in self.float_outputs))

    def pullback(self, x: np.ndarray) -> np.ndarray:
        """The VJP with ``v`` for the moving input at ``x``."""
        bound = self._bound_with(x)
        outputs, residuals = self.op.forward(*bound.args, **bound.kwargs)
        outs = _as_tuple(self.op, outputs)
        given = [np.zeros_like(np.asarray(o)) if v is None else v for v, o in zip(self.v, outs, strict=True)]
        grads = self.op.backward(residuals, given[0] if len(outs) == 1 else tuple(given))
        return np.asarray(tuple(grads)[self.position], dtype=np.float64)

    def valid(self, x: np.ndarray) -> bool:
        bound = self._bound_with(x)
        try:
            self.op.bind(bound.args, bound.kwargs)
            return bool(np.isfinite(self.value(x)))
        except (InputError, FloatingPointError, ValueError, ZeroDivisionError):
            return False


def slice_through(name: str, *, points: int = POINTS) -> Slice:
    """The forward and ∂/∂x[k] of ``name`` along the slice described in the module docstring.

    ``x[k]`` is the element of the first differentiable input where the gradient at the sample
    is largest in magnitude; it moves over ``x[k] ± δ``, with ``δ = max(1, |x[k]|)`` halved until
    both ends lie in the op's domain.
    """
    with np.errstate(all="ignore"):
        return _slice_through(name, points)


def _slice_through(name: str, points: int) -> Slice:
    op = refimpl.get(name)
    if not op.is_differentiable:
        raise ValueError(f"{name} is not differentiable: it has no gradient to plot")
    sample = _first_fd_sample(name)
    input_name = op.differentiable[0]
    evaluator = _Evaluator(op, sample, input_name)
    x0 = np.array(evaluator.bound.arguments[input_name], dtype=np.float64)
    gradient = evaluator.pullback(x0)
    index = np.unravel_index(int(np.argmax(np.abs(gradient))), gradient.shape) if gradient.size else ()
    index = tuple(int(i) for i in index)
    center = float(x0[index])

    def moved(value: float) -> np.ndarray:
        x = x0.copy()
        x[index] = value
        return x

    delta = max(1.0, abs(center))
    for _ in range(40):
        if evaluator.valid(moved(center - delta)) and evaluator.valid(moved(center + delta)):
            break
        delta /= 2
    t = np.linspace(center - delta, center + delta, points)
    value = np.full(points, np.nan)
    grad = np.full(points, np.nan)
    for j, tj in enumerate(t):
        x = moved(float(tj))
        if evaluator.valid(x):
            value[j] = evaluator.value(x)
            grad[j] = evaluator.pullback(x)[index]
    curve, row, radius = _ball_path(op, evaluator, moved, t, index)
    # central differences at every few points of the slice itself (the VJP line passes through them)
    fd_index = np.unique(np.linspace(0, points - 1, min(FD_POINTS, points) + 2)[1:-1].round().astype(int))
    fd_t = t[fd_index]
    h = 1e-6 * max(1.0, delta)
    fd_grad = np.full(fd_t.shape, np.nan)
    for j, tj in enumerate(fd_t):
        plus, minus = moved(float(tj) + h), moved(float(tj) - h)
        if evaluator.valid(plus) and evaluator.valid(minus):
            fd_grad[j] = (evaluator.value(plus) - evaluator.value(minus)) / (2 * h)
    return Slice(
        op=name,
        sample=sample.name,
        input=input_name,
        index=index,
        center=center,
        t=t,
        value=value,
        grad=grad,
        fd_index=fd_index,
        fd_grad=fd_grad,
        scalar=evaluator.scalar,
        custom_vjp=op.custom_vjp is not None,
        curve=curve,
        curve_row=row,
        radius=radius,
    )


#: outputs that are tangent vectors or numbers, not points of the ball
_NOT_BALL_POINTS = ("poincare_distance", "poincare_logmap", "poincare_logmap0")


def _ball_path(op, evaluator: _Evaluator, moved, t: np.ndarray, index: tuple[int, ...]):
    """For a map into the Poincaré ball (an op with curvature ``c`` whose output is a point):
    the path of the output row holding the moving element, else ``(None, 0, 1.0)``."""
    c = evaluator.bound.arguments.get("c")
    if c is None or not op.name.startswith(("poincare", "mobius")) or op.name in _NOT_BALL_POINTS:
        return None, 0, 1.0
    row = index[0] if len(index) > 1 else 0
    points = []
    for tj in t:
        x = moved(float(tj))
        p = evaluator.ball_row(x, row) if evaluator.valid(x) else None
        if p is None and not points:
            return None, 0, 1.0
        points.append(p if p is not None else np.full(2, np.nan))
    return np.array(points), row, float(1 / np.sqrt(float(c)))


def plot_op(name: str, path: str | Path, *, dpi: int = 110) -> Slice:
    """Draw :func:`slice_through` of ``name`` into ``path`` (PNG or SVG, by its suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = slice_through(name)
    element = f"{s.input}[{', '.join(map(str, s.index))}]" if s.index else s.input
    if s.curve is None:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 4.8), sharex=True, constrained_layout=True)
    else:
        fig = plt.figure(figsize=(9.6, 4.8), constrained_layout=True)
        grid = fig.add_gridspec(2, 2, width_ratios=(1.6, 1))
        top = fig.add_subplot(grid[0, 0])
        bottom = fig.add_subplot(grid[1, 0], sharex=top)
        disk = fig.add_subplot(grid[:, 1])
        disk.add_patch(plt.Circle((0, 0), s.radius, fill=False, color="0.3"))
        disk.plot(s.curve[:, 0], s.curve[:, 1], color="C3")
        middle = len(s.curve) // 2
        disk.plot(s.curve[middle, 0], s.curve[middle, 1], "o", color="C3", markersize=4)
        disk.set_xlim(-1.05 * s.radius, 1.05 * s.radius)
        disk.set_ylim(-1.05 * s.radius, 1.05 * s.radius)
        disk.set_aspect("equal")
        disk.set_title(f"output row {s.curve_row} on the Poincaré disk", fontsize=10)
    top.plot(s.t, s.value, color="C0")
    top.set_ylabel(s.ylabel)
    top.set_title(f"{name}: forward and gradient along {element}", fontsize=10)
    label = "stated backward" if s.custom_vjp else "hand-derived VJP"
    bottom.plot(s.t, s.grad, color="C1", label=label)
    bottom.plot(s.t[s.fd_index], s.fd_grad, "o", color="C2", markersize=4, label="central differences")
    bottom.set_ylabel(f"∂/∂{element}")
    bottom.set_xlabel(element)
    bottom.legend(fontsize=8, loc="best")
    for axis in (top, bottom):
        axis.axvline(s.center, color="0.5", linestyle="--", linewidth=0.8)
        axis.grid(alpha=0.3)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return s
