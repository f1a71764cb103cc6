"""refimpl_conformance: check any implementation of a catalog routine against the reference.

The suite has three kinds of checks, all driven by per-op cases (random samples rebuilt
from a seed, named edge cases, inputs that must be refused):

* the reference's backward against central finite differences in float64
  (:func:`check_finite_differences`);
* a backend (or a user's function wrapped as one) against the reference computed in
  float64, forward and VJP, per dtype (:func:`check_sample`);
* error cases: bad input must raise :class:`refimpl.InputError` naming the op and argument
  (:func:`check_errors`).

:func:`plan` and :func:`run` drive them over installed backends; ``refimpl check`` is the
command-line face of the same thing. :func:`check` and :func:`assert_conforms` check a
user's own NumPy / PyTorch / JAX / CuPy function the same way (see ``adapters.py``).
"""

from ._cases import (
    Bench,
    ErrorCase,
    OpCases,
    Sample,
    Tolerance,
    all_cases,
    cases_for,
    register,
)
from ._engine import (
    Result,
    check_errors,
    check_finite_differences,
    check_sample,
    compare,
    repro_command,
)
from ._runner import Plan, Report, plan, run
from .adapters import Binding, SignatureError, assert_conforms, check, wrap

__all__ = [
    "Bench",
    "Binding",
    "SignatureError",
    "ErrorCase",
    "OpCases",
    "Plan",
    "Report",
    "Result",
    "Sample",
    "Tolerance",
    "all_cases",
    "assert_conforms",
    "check",
    "cases_for",
    "check_errors",
    "check_finite_differences",
    "check_sample",
    "compare",
    "plan",
    "register",
    "repro_command",
    "run",
    "wrap",
]
