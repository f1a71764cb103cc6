"""Conformance cases: per-op sample generators, named edge cases, error cases, tolerances.

Each op registers one :class:`OpCases`. Random samples are rebuilt from a seed (the seed
draws the dimensions and the values), so a failure report can name the seed and anyone
can rebuild the exact arrays.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "Bench",
    "ErrorCase",
    "Known",
    "OpCases",
    "Sample",
    "Tolerance",
    "all_cases",
    "cases_for",
    "register",
    "standardized_rows",
]


@dataclass(frozen=True)
class Tolerance:
    """An explicit extra allowance, for the few samples where the measured rounding spread
    is not the whole story (an iterative solver's own stopping tolerance, say).

    Allows ``atol·max(1, max|expected|) + rtol·|expected|`` elementwise, on top of (never
    instead of) the allowed error derived from the computation's conditioning
    (:mod:`refimpl_conformance._accuracy`). ``reason`` must say why the derived one is not
    enough: an override without a reason is refused when the cases are registered.
    """

    rtol: float
    atol: float
    reason: str = ""


@dataclass
class Sample:
    """One input point: positional ``args`` and keyword ``kwargs`` of the op, in float64.

    ``flags`` name what the sample probes (LARGE_LOGITS, BALL_BOUNDARY, ...). ``fd`` says
    whether finite differences are meaningful here (not at a kink or a boundary);
    ``fd_step`` overrides the central-difference step and ``fd_rtol`` their tolerance.
    ``dtypes`` limits the float dtypes the sample is run in (a point 1e-7 from the ball's
    boundary does not exist in float32);
    ``tolerances`` widens the allowed error of this sample alone (each with its ``reason``).
    """

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    comment: str = ""
    fd: bool = True
    fd_step: float = 1e-6
    fd_rtol: float = 1e-6
    dtypes: tuple[str, ...] = ("float64", "float32")
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    seed: int | None = None
    dims: dict[str, int] | None = None  # set when the dimensions were given, not drawn from the seed


@dataclass
class ErrorCase:
    """Inputs that must raise :class:`refimpl.InputError` whose message matches ``match``."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    match: str = ""


@dataclass
class Known:
    """A published or hand-derived value of the op at one input, checked on every backend.

    ``values`` maps an output name (or ``"cotangent of 'z'"``, the VJP at ``cotangent``,
    all ones by default) to the value as written in ``source`` (a paper's table, the
    catalog, a derivation by hand). Compared in float64 with ``rtol`` (the digits written)
    and ``atol``: it pins the reference itself, where the backend comparison cannot (a wrong
    constant agrees with itself on every backend).
    """

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    cotangent: Any = None
    rtol: float = 1e-7
    atol: float = 0.0


@dataclass(frozen=True)
class Bench:
    """How ``refimpl bench`` times the op, declared beside its cases.

    ``sizes`` are the sampler's dimensions at benchmark scale; the strings ``"rows"`` and
    ``"cols"`` take the two sizes of ``refimpl bench --shape ROWSxCOLS``. ``make(rng, rows,
    cols) -> Sample`` replaces the sampler where it cannot scale. Every option is timed at its
    default unless ``kwargs`` names it. ``torch(torch, args, kwargs, cotangent) -> step`` is
    the PyTorch baseline, given only where PyTorch computes the same function (``torch_label``
    says how): ``step()`` runs its forward and backward and returns the forward's output(s)
    as tensors, which the tests compare with the reference's. ``bytes_moved(args, kwargs) ->
    int`` overrides the default traffic count (float inputs and cotangents read once, outputs
    and gradients written once).

    The roofline ``refimpl bench`` sets each time against: ``bytes_moved`` at the copy
    bandwidth, plus ``transcendentals(args, kwargs) -> int`` (the exp/log/tanh-class
    evaluations one forward+backward needs, each value computed once) at NumPy's one-thread
    ``exp`` rate split over the threads, plus, for an op built on matrix products,
    ``blas(args, kwargs) -> step``: the same products through NumPy's BLAS, timed in the run.
    """

    sizes: Mapping[str, int | str] = field(default_factory=dict)
    make: Callable[..., Sample] | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    torch: Callable[..., Callable[[], None]] | None = None
    torch_label: str = ""
    bytes_moved: Callable[[tuple[Any, ...], dict[str, Any]], int] | None = None
    transcendentals: Callable[[tuple[Any, ...], dict[str, Any]], int] | None = None
    blas: Callable[[tuple[Any, ...], dict[str, Any]], Callable[[], Any]] | None = None


@dataclass
class OpCases:
    """Everything the suite needs to check one op.

    ``random(rng, **dims)`` builds a sample from a generator and dimension sizes drawn
    from ``dims`` (inclusive ranges). ``edges()`` lists named edge cases and ``errors()``
    the inputs that must be refused for a rule no argument spec states (what the specs state
    is generated: :meth:`all_errors`). ``tolerances`` widens the derived allowed error for every
    sample of the op, per dtype (each with its ``reason``; rarely needed).
    """

    op: str
    dims: Mapping[str, tuple[int, int]]
    random: Callable[..., Sample]
    edges: Callable[[], Sequence[Sample]] = lambda: ()
    errors: Callable[[], Sequence[ErrorCase]] = lambda: ()
    tolerances: Mapping[str, Tolerance] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)  # flag -> what bug it catches
    compare_as: Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]] | None = None
    bench: Bench | None = None  # how `refimpl bench` times it (required when a fast backend implements it)
    known: Callable[[], Sequence[Known]] = lambda: ()  # published values (docstring examples run too)
    # every optional argument's default as the catalog states it (the ``defaults`` check);
    # ops registered before this field have theirs in refimpl_conformance/defaults.py
    defaults: Mapping[str, Any] | None = None
    # for an op declared with custom_vjp: ``stated_vjp(args, kwargs, cotangents) -> gradients``,
    # the stated backward evaluated independently (float64), checked in place of differences
    stated_vjp: Callable[[tuple[Any, ...], dict[str, Any], list[Any]], Sequence[Any]] | None = None

    def all_errors(self) -> list[ErrorCase]:
        """The hand-written error cases, then those generated from the op's specs."""
        from ._generated_errors import generated_errors

        return list(self.errors()) + generated_errors(self.op, self)

    def draw_dims(self, rng: np.random.Generator) -> dict[str, int]:
        return {name: int(rng.integers(low, high + 1)) for name, (low, high) in self.dims.items()}

    def random_sample(self, seed: int, dims: Mapping[str, int] | None = None) -> Sample:
        """The random sample rebuilt from ``seed`` (dimensions drawn from it unless given)."""
        rng = np.random.default_rng(seed)
        chosen = self.draw_dims(rng) if dims is None else dict(dims)
        sample = self.random(rng, **chosen)
        sample.seed = seed
        sample.dims = None if dims is None else dict(dims)
        at_defaults = seed % DEFAULTS_EVERY == 0 and _use_defaults(self.op, sample)
        if sample.name == "random":
            shape = ",".join(f"{k}={v}" for k, v in chosen.items())
            sample.name = f"random[seed={seed}; {shape}{'; defaults' if at_defaults else ''}]"
        return sample

    def samples(self, seeds: Sequence[int], dims: Mapping[str, int] | None = None) -> list[Sample]:
        return [self.random_sample(seed, dims) for seed in seeds] + list(self.edges())


#: Every DEFAULTS_EVERY-th seed (seed 0 among them) leaves out each optional argument whose
#: default the drawn inputs accept, so the random samples exercise the defaults themselves.
DEFAULTS_EVERY = 5


def _use_defaults(op_name: str, sample: Sample) -> bool:
    """Drop, one by one, each keyword of ``sample`` that has a default, where the reference
    still accepts the call (a drawn point may need its drawn curvature); True if any went."""
    import inspect

    import refimpl

    op = refimpl.get(op_name)
    dropped = False
    for name in list(sample.kwargs):
        parameter = op.signature.parameters.get(name)
        if parameter is None or parameter.default in (inspect.Parameter.empty, None):
            continue  # None selects per input (poincare_project's margin per dtype): not one value
        trial = {k: v for k, v in sample.kwargs.items() if k != name}
        try:
            op(*sample.args, **trial)
        except refimpl.InputError:
            continue
        sample.kwargs, dropped = trial, True
    return dropped


_CASES: dict[str, OpCases] = {}
_LOADED = False


def standardized_rows(x: np.ndarray) -> np.ndarray:
    """Each row of a (B, D) draw centered and scaled to unit spread (D > 1; D = 1 unchanged).

    For samplers of row-normalizing ops (layer norm, Z-loss): a chance near-constant row makes
    the row's σ tiny, where the curvature grows like 1/σ², central differences lose their
    digits and float32 keeps few; that regime is an edge case of its own, not a random draw.
    """
    if x.shape[-1] == 1:
        return x
    return (x - x.mean(axis=1, keepdims=True)) / np.maximum(x.std(axis=1, keepdims=True), 1e-3)


def _require_reasons(cases: OpCases) -> None:
    """Every explicit tolerance must say why the derived allowed error is not enough."""
    overrides = [("the op", t) for t in cases.tolerances.values()]
    overrides += [(f"sample {s.name!r}", t) for s in cases.edges() for t in s.tolerances.values()]
    for where, tolerance in overrides:
        if not tolerance.reason.strip():
            raise TypeError(
                f"conformance cases for {cases.op}: {where} widens the allowed error without a "
                "reason; give Tolerance(..., reason=...) or drop it (the derived one follows the "
                "conditioning of each sample)"
            )


def register(cases: OpCases) -> OpCases:
    _require_reasons(cases)
    if cases.op in _CASES:
        raise TypeError(f"conformance cases for {cases.op} are registered twice")
    _CASES[cases.op] = cases
    return cases


def _load_all() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from . import cases as package

    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(info.name)


def cases_for(op: str) -> OpCases:
    """The registered cases of ``op`` (KeyError when the op has none yet)."""
    _load_all()
    return _CASES[op]


def all_cases() -> dict[str, OpCases]:
    _load_all()
    return dict(sorted(_CASES.items()))
