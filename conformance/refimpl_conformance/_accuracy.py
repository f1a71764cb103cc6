"""How accurately can a correct implementation compute this op, here, in this dtype?

A correct implementation in float32 differs from the float64 reference by its rounding
errors, amplified by the conditioning of the computation: ``1 − ‖x‖²`` near a ball's
boundary, ``x − μ`` with a large mean, a cotangent divided by ``√ε`` in a layer norm over one
feature. A fixed table of tolerances is too tight for those samples (and rejects PyTorch's own
kernels) and far too loose for the well-conditioned ones (and lets real bugs through).

The allowed error is measured instead, per sample and per output element, by **Monte Carlo
arithmetic** (Parker, 1997; the method behind Verificarlo): the reference runs again, in
float64, on arrays whose every inexact NumPy operation is perturbed by one rounding of the
target dtype, in a random direction:

* an elementwise operation (``+ − × ÷ exp log sqrt …``, SciPy's special functions):
  ``y·(1 + ρu)``, the standard model of one correctly rounded operation;
* an addition or subtraction: each *computed* operand (the result of an earlier inexact
  operation, not an input) is moved by one rounding at its own size as well: a cancellation
  loses the digits of its operands' roundings whichever stable formula computed them, while
  the difference of two inputs stays exact, as a correct implementation can keep it;
* a sum (``np.sum``, ``mean``, ``cumsum``): ``y + ρu·Σ|xᵢ|``, one rounding at the size of the
  largest partial sum, whatever order an implementation adds in;
* a matrix product (``@``, ``einsum``, ``dot``): ``y + ρu·(|A|·|B|)``, the same per dot product;
* a factorization or solve (``np.linalg``): the input perturbed by ``ρu·max|A|`` (the backward
  error of a stable factorization), so the result moves by the problem's condition number;
* exact operations (``max``, ``abs``, comparisons, ``floor``, copies, indexing) untouched.

``u`` is the unit roundoff of the target dtype (2⁻²⁴ for float32, 2⁻⁵³ for float64) and
``ρ`` uniform in [−1, 1], drawn anew for every element of every operation (not ±1: two
perturbations of ±1 cancel exactly half the time, and the spread would read 0). The spread of the
perturbed outputs around the unperturbed ones, ``e`` per element (the largest over a few
runs), is the rounding error this computation suffers at that precision: it includes every
intermediate cancellation, because the intermediates themselves are perturbed. The allowed
error (:func:`allowed_error`) is then ``SAFETY·(e + rms(e) + tiny) + 2u·|expected|``: a
margin for summation orders, fused multiply-adds and stable reformulations; the array's
typical rounding level as a floor for elements whose own estimate came out small by chance;
the target dtype's underflow threshold; and the final rounding of the output to that dtype.

Only the precision of the arithmetic is simulated: the inputs are exactly the rounded inputs
the implementation sees, so an ill-conditioned *input* is not a license to be wrong.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = [
    "SAFETY",
    "RUNS",
    "allowed_error",
    "rounding_errors",
    "unit_roundoff",
]

#: The margin over the measured rounding spread. A correct implementation may add in another
#: order, fuse multiply-adds, or use a different stable formula. Measured over 100 seeds and
#: every edge case: PyTorch's, JAX's, peft's, optax's, lion-pytorch's, scikit-learn's and the
#: Numba and CuPy kernels never erred by more than 31·e (0.24 of this margin); the only code
#: that did was a right formula that loses digits (geoopt's artanh as a difference of logs).
SAFETY = 128.0
#: The smallest unit simulated in float64 arithmetic (float64's own is scaled from it).
SIMULATED_UNIT = 2.0**-40
#: Perturbed runs per sample: the spread is the largest deviation seen over them.
RUNS = 3

# operations whose result is exact (or a selection among inputs): never perturbed
_EXACT = frozenset(
    {
        "absolute",
        "fabs",
        "negative",
        "positive",
        "sign",
        "copysign",
        "maximum",
        "minimum",
        "fmax",
        "fmin",
        "floor",
        "ceil",
        "trunc",
        "rint",
        "fmod",
        "remainder",
        "floor_divide",
        "divmod",
        "modf",
        "frexp",
        "ldexp",
        "nextafter",
        "spacing",
        "heaviside",
        "signbit",
        "isnan",
        "isinf",
        "isfinite",
        "equal",
        "not_equal",
        "less",
        "less_equal",
        "greater",
        "greater_equal",
        "logical_and",
        "logical_or",
        "logical_xor",
        "logical_not",
        "conjugate",
        "clip",
    }
)
_PRODUCTS = frozenset({"matmul", "vecdot", "matvec", "vecmat"})
_SUMS = frozenset({"add", "subtract"})
_ARRAY_PRODUCTS = ("dot", "einsum", "tensordot", "inner", "vdot")


def unit_roundoff(dtype: str | np.dtype) -> float:
    """Half the machine epsilon: the largest relative error of one rounding to ``dtype``."""
    return float(np.finfo(np.dtype(dtype)).eps) / 2


class _Noise:
    def __init__(self, unit: float, seed: int) -> None:
        self.unit = unit
        self.rng = np.random.default_rng(seed)

    def rho(self, values: Any) -> np.ndarray:
        """ρ uniform in [−1, 1), drawn anew for every element of every operation.

        Independent draws, even for equal values: an implementation may compute two equal
        quantities by different paths (a teacher's softmax from ``exp(log_softmax)``, a
        student's inside the log-softmax backward), and their roundings differ. Uniform, not
        ±1: two perturbations of ±1 cancel exactly half the time, and the spread would read 0.
        """
        return self.rng.uniform(-1.0, 1.0, size=np.shape(values))


_NOISE: contextvars.ContextVar[_Noise | None] = contextvars.ContextVar("refimpl_noise", default=None)


@contextlib.contextmanager
def _noise(unit: float, seed: int) -> Iterator[None]:
    token = _NOISE.set(_Noise(unit, seed))
    try:
        yield
    finally:
        _NOISE.reset(token)


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def _raw(value: Any) -> Any:
    return value.view(np.ndarray) if isinstance(value, Perturbed) else value


def _computed(value: Any) -> bool:
    return bool(getattr(value, "computed", False))


def _wrap(value: Any, computed: bool = False) -> Any:
    """Float results become :class:`Perturbed` (0-d included); anything else as it is."""
    if isinstance(value, np.floating | np.complexfloating):
        value = np.asarray(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc":
        wrapped = value.view(Perturbed)
        wrapped.computed = computed
        return wrapped
    return value


def _nudge(value: Any, magnitude: Any, noise: _Noise) -> Any:
    """``value + ρ·u·magnitude`` (in place when ``value`` is an array that can take it)."""
    if not (isinstance(value, np.ndarray | np.floating) and value.dtype.kind == "f"):
        return value
    size = (
        np.abs(magnitude) if isinstance(magnitude, np.ndarray) else np.abs(np.asarray(magnitude, np.float64))
    )
    shape = value.shape if size.shape == value.shape else np.broadcast_shapes(value.shape, size.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        shift = noise.rng.uniform(-noise.unit, noise.unit, size=shape)
        shift *= size
        if not np.isfinite(shift).all():  # ±inf (a mask, say) stays what it is
            shift[~np.isfinite(shift)] = 0.0
        if (
            isinstance(value, np.ndarray)
            and value.ndim > 0
            and value.flags.writeable
            and shape == value.shape
        ):
            value += shift.astype(value.dtype, copy=False)
            return value
        return np.asarray(value + shift, dtype=value.dtype)


class Perturbed(np.ndarray):
    """A float64 array whose inexact NumPy operations each round once more, at random.

    Only active inside :func:`rounding_errors`; elsewhere it behaves like its base array.
    ``computed`` marks the result of an inexact operation (as opposed to an input, or an exact
    selection from inputs): only those carry a rounding of their own into a later sum.
    """

    computed = False

    def __array_finalize__(self, obj: Any) -> None:
        self.computed = _computed(obj)  # views and slices keep their parent's provenance

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        noise = _NOISE.get()
        name = ufunc.__name__
        computed = name not in _EXACT or any(_computed(x) for x in inputs)
        raw_inputs = [_raw(x) for x in inputs]
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_raw(o) for o in out)
        if noise is not None and ufunc.signature is not None and name not in _PRODUCTS:
            raw_inputs = [_backward_error(x, ufunc.signature, noise) for x in raw_inputs]
        result = getattr(ufunc, method)(*raw_inputs, **kwargs)
        if noise is not None and name in _SUMS and method == "__call__":
            result = _operand_roundings(name, inputs, raw_inputs, result, noise)
        if noise is not None and name not in _EXACT and method != "at":
            result = _perturb(ufunc, method, raw_inputs, kwargs, result, noise)
        elif noise is not None and method == "at" and name not in _EXACT:
            target, index = raw_inputs[0], raw_inputs[1]
            target[index] = _nudge(np.array(target[index]), target[index], noise)
        if method == "at":
            return None
        if out is not None:
            for o in out:
                if isinstance(o, Perturbed):
                    o.computed = computed
            return out[0] if len(out) == 1 else out
        if isinstance(result, tuple):
            return tuple(_wrap(r, computed) for r in result)
        return _wrap(result, computed)

    def __array_function__(self, func: Callable[..., Any], types: Any, args: Any, kwargs: Any) -> Any:
        flat = [x for a in args for x in (a if isinstance(a, list | tuple) else (a,))]
        computed = func.__name__ in _ARRAY_PRODUCTS or any(_computed(x) for x in flat)
        raw_args = [_raw(a) for a in args]
        raw_args = [list(map(_raw, a)) if isinstance(a, list | tuple) else a for a in raw_args]
        raw_kwargs = {k: _raw(v) for k, v in kwargs.items()}
        result = func(*raw_args, **raw_kwargs)
        noise = _NOISE.get()
        if noise is not None and func.__name__ in _ARRAY_PRODUCTS:
            absolute = [np.abs(a) if isinstance(a, np.ndarray) else a for a in raw_args]
            result = _nudge(np.asarray(result), func(*absolute, **raw_kwargs), noise)
        if isinstance(result, tuple):
            return tuple(_wrap(r, computed) for r in result)
        if isinstance(result, list):
            return [_wrap(r, computed) for r in result]
        return _wrap(result, computed)


def _operand_roundings(
    name: str, inputs: Sequence[Any], raw: Sequence[Any], result: Any, noise: _Noise
) -> Any:
    """``a ± b`` moved by ``ρu·|a|`` for a computed ``a`` (and the same for ``b``).

    A computed operand carries a rounding at its own size, which the cancellation exposes
    whichever stable formula computed it (``(m + log Σ) − z_y``); an input, or an exact
    selection from inputs, is exact, and so is its difference. Where the two operands cancel
    exactly (``max(d) − d`` at the maximum) they are the same number in any implementation:
    the result stays exactly 0 there.
    """
    if len(raw) != 2 or not isinstance(result, np.ndarray | np.floating):
        return result
    a, b = (  # complex operands (a Fourier layer's spectra) keep their imaginary parts
        np.asarray(v, dtype=np.complex128 if np.iscomplexobj(v) else np.float64)
        if isinstance(v, np.ndarray | np.floating | np.complexfloating)
        else v
        for v in raw
    )
    size = 0.0
    for operand, original in zip((a, b), inputs, strict=True):
        if isinstance(operand, np.ndarray) and _computed(original):
            size = size + np.where(np.isfinite(operand), np.abs(operand), 0.0)
    if np.isscalar(size) and size == 0.0:
        return result
    with np.errstate(invalid="ignore"):
        cancels = (a == b) if name == "subtract" else (a == -b)
    return _nudge(result, np.where(cancels, 0.0, size), noise)


def _backward_error(x: Any, signature: str, noise: _Noise) -> Any:
    """A factorization's input moved by ρ·u·max|A| per element (a stable algorithm's backward error)."""
    if not (isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.ndim >= 2 and x.size):
        return x
    scale = np.max(np.abs(x), axis=(-2, -1), keepdims=True)
    return x + noise.rho(x) * noise.unit * scale


def _perturb(ufunc: np.ufunc, method: str, inputs: Sequence[Any], kwargs: dict, result: Any, noise: _Noise):
    name = ufunc.__name__
    if isinstance(result, tuple):  # frexp, modf, divmod are exact; others: each output once
        return tuple(_nudge(r, r, noise) for r in result)
    if method == "__call__" and name in _PRODUCTS:
        absolute = [np.abs(x) if isinstance(x, np.ndarray) else abs(x) for x in inputs]
        bound_kwargs = {k: v for k, v in kwargs.items() if k != "out"}
        return _nudge(result, ufunc(*absolute, **bound_kwargs), noise)
    if method in ("reduce", "accumulate") and name == "add":
        bound_kwargs = {k: v for k, v in kwargs.items() if k != "out"}
        if "initial" in bound_kwargs:
            bound_kwargs["initial"] = abs(bound_kwargs["initial"])
        bound = getattr(ufunc, method)(np.abs(inputs[0]), **bound_kwargs)
        return _nudge(result, bound, noise)
    if ufunc.signature is not None:  # a factorization's outputs: normwise
        if isinstance(result, np.ndarray) and result.ndim >= 2 and result.size:
            return _nudge(result, np.max(np.abs(result), axis=(-2, -1), keepdims=True), noise)
    return _nudge(result, result, noise)


# -- the estimate -------------------------------------------------------------------------------
def perturbable(value: Any) -> Any:
    """A float array as a :class:`Perturbed` float64 array (rounds at random only inside
    :func:`rounding_errors`); anything else unchanged."""
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return value.astype(np.float64).view(Perturbed)
    return value


def rounded_input(value: Any) -> Any:
    """A float input as :class:`Perturbed`, moved by one rounding: ``x·(1 + ρu)``.

    A stable algorithm is allowed the result of slightly different inputs (backward error):
    ``log Σ exp`` rounded at the size of the largest logit, ``z/T`` computed as ``z·(1/T)``.
    """
    value = perturbable(value)
    noise = _NOISE.get()
    if isinstance(value, Perturbed) and noise is not None:
        raw = value.view(np.ndarray)
        size = np.where(np.isfinite(raw), np.abs(raw), 0.0)
        raw += noise.rho(raw) * noise.unit * size
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, np.ndarray | np.generic):
        return np.array(value, copy=True).view(np.ndarray)
    return value


def _spread(clean: Sequence[np.ndarray], runs: Sequence[Sequence[np.ndarray]]) -> list[np.ndarray]:
    spreads = []
    for i, reference in enumerate(clean):
        reference = np.asarray(reference)
        if reference.dtype.kind != "f":
            spreads.append(np.zeros(reference.shape))
            continue
        worst = np.zeros(reference.shape)
        for run in runs:
            value = np.asarray(run[i], dtype=np.float64)
            if value.shape != reference.shape:
                continue
            with np.errstate(invalid="ignore", over="ignore"):
                deviation = np.abs(value - reference)
            # where a perturbed run turns non-finite, no digit of the result is reliable
            deviation = np.where(np.isfinite(deviation), deviation, np.abs(reference))
            worst = np.maximum(worst, np.where(np.isfinite(reference), deviation, 0.0))
        spreads.append(worst)
    return spreads


def rounding_errors(
    evaluate: Callable[[dict[str, Any]], tuple[Sequence[np.ndarray], Sequence[np.ndarray]]],
    arguments: dict[str, Any],
    clean: tuple[Sequence[np.ndarray], Sequence[np.ndarray]],
    dtype: str,
    *,
    moved: Collection[str] = (),
    runs: int = RUNS,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The rounding spread ``e`` of each output and each cotangent of ``evaluate``.

    ``evaluate(arguments) -> (outputs, cotangents)`` runs the reference (forward and
    backward) on float64 arrays; ``clean`` is its unperturbed result. The inputs named in
    ``moved`` (the differentiable ones) are moved by one rounding as well — a stable
    algorithm's backward error; the others (labels, bin borders, masks) stay exact, since a
    correct implementation makes the same exact comparisons on them. Returns one array of
    spreads per output and per cotangent, in float64, shaped like them.
    """
    target = unit_roundoff(dtype)
    # float64's own rounding would swallow perturbations of its unit roundoff: simulate at
    # 2⁻⁴⁰ (still small enough to act linearly) and scale the spread down to float64's unit
    unit = max(target, SIMULATED_UNIT)
    perturbed_runs: list[tuple[list[np.ndarray], list[np.ndarray]]] = []
    attempted = 0
    for k in range(runs):
        with _noise(unit, seed + k), np.errstate(all="ignore"):
            given = {n: rounded_input(v) if n in moved else perturbable(v) for n, v in arguments.items()}
            try:
                outputs, grads = evaluate(given)
            except Exception:  # a perturbation pushed an ill-posed step over an edge: no estimate
                continue
        outputs = _plain(list(outputs))
        attempted += 1
        if not _same_discrete_outputs(clean[0], outputs):
            continue  # another branch (a flipped tie): integer outputs are compared exactly
        perturbed_runs.append((outputs, _plain(list(grads))))
    if attempted and not perturbed_runs and _has_discrete(clean[0]):
        # every perturbed run took another branch: the sample sits on an exact tie, where the
        # float outputs hang on which way a rounding breaks it. Their rounding cannot be
        # measured on the branch that counts, so they are not held to a measured allowance
        # (the integer outputs are still compared exactly): a correct implementation is not
        # failed for rounding the reference's arithmetic order alone would reproduce.
        unknown = [np.full(np.shape(c), np.inf) for c in clean[0]]
        return unknown, [np.full(np.shape(g), np.inf) for g in clean[1]]
    scale = target / unit
    out_spread = [scale * e for e in _spread(clean[0], [r[0] for r in perturbed_runs])]
    grad_spread = [scale * e for e in _spread(clean[1], [r[1] for r in perturbed_runs])]
    return out_spread, grad_spread


def _has_discrete(clean: Sequence[np.ndarray]) -> bool:
    return any(np.asarray(c).dtype.kind not in "fc" for c in clean)


def _same_discrete_outputs(clean: Sequence[np.ndarray], run: Sequence[np.ndarray]) -> bool:
    """Whether a perturbed run's integer (and boolean) outputs equal the clean run's.

    They are compared exactly with an implementation's, so a run that changes them took a
    branch (an assignment, a selection) that no passing implementation can take, and its
    float outputs say nothing about the rounding on the branch that counts.
    """
    for reference, value in zip(clean, run, strict=True):
        reference = np.asarray(reference)
        if reference.dtype.kind not in "fc" and not np.array_equal(reference, np.asarray(value)):
            return False
    return True


def allowed_error(expected: np.ndarray, spread: np.ndarray, dtype: str, safety: float = SAFETY) -> np.ndarray:
    """The largest error a correct ``dtype`` implementation may make, per element.

    ``safety·(e + rms(e) + tiny) + 2u·|expected|``: the measured rounding spread with a
    margin, the array's typical spread as a floor, ``dtype``'s smallest normal number (what
    underflows to zero there, which float64 arithmetic does not simulate), and the last
    rounding of the result to ``dtype``.
    """
    expected = np.asarray(expected, dtype=np.float64)
    spread = np.asarray(spread, dtype=np.float64)
    finite = np.where(np.isfinite(expected), np.abs(expected), 0.0)
    with np.errstate(over="ignore"):  # a spread beyond 1e154 squares to inf: then so is the floor
        typical = float(np.sqrt(np.mean(spread**2))) if spread.size else 0.0
    tiny = float(np.finfo(np.dtype(dtype)).tiny)
    return np.asarray(safety * (spread + typical + tiny) + 2 * unit_roundoff(dtype) * finite)


# -- a cache shared by every backend checked on the same sample ------------------------------
class _Cache:
    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self.entries: OrderedDict[str, Any] = OrderedDict()

    @staticmethod
    def key(*parts: Any) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for part in parts:
            _feed(digest, part)
        return digest.hexdigest()

    def get(self, key: str) -> Any:
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        return None

    def put(self, key: str, value: Any) -> None:
        self.entries[key] = value
        self.entries.move_to_end(key)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)


def _feed(digest: Any, part: Any) -> None:
    if isinstance(part, np.ndarray):
        digest.update(f"{part.dtype}{part.shape}".encode())
        digest.update(np.ascontiguousarray(part).tobytes())
    elif isinstance(part, dict):
        for k in sorted(part):
            digest.update(str(k).encode())
            _feed(digest, part[k])
    elif isinstance(part, list | tuple):
        digest.update(b"[")
        for p in part:
            _feed(digest, p)
        digest.update(b"]")
    else:
        digest.update(repr(part).encode())


CACHE = _Cache()
