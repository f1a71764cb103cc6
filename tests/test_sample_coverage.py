"""The random samples exercise every default and draw every hyperparameter over its range.

A default the samples never use is never computed by the suite (only declared); a
hyperparameter drawn at one value (z_loss's ε was 0 in every sample) leaves the rest of its
range unchecked.
"""

import inspect

import numpy as np
import pytest

import refimpl
from refimpl_conformance import all_cases

SEEDS = range(20)

# arguments a sampler may hold at one value, with the reason (none today)
ONE_VALUE: set[str] = set()


def _scalar_values(op, samples):
    """For each non-array argument: the values the samples give it (defaults included)."""
    values: dict[str, set[str]] = {}
    omitted: dict[str, bool] = {}
    arrays: set[str] = set()
    for sample in samples:
        bound = op.signature.bind(*sample.args, **sample.kwargs)
        for name, parameter in op.signature.parameters.items():
            if name in bound.arguments:
                value = bound.arguments[name]
                if isinstance(value, np.ndarray) and value.ndim > 0:
                    arrays.add(name)  # an array input (an optional one may be None elsewhere)
                    continue
                values.setdefault(name, set()).add(
                    repr(np.asarray(value).item() if hasattr(value, "shape") else value)
                )
            else:
                omitted[name] = True
                values.setdefault(name, set()).add(repr(parameter.default))
    return {k: v for k, v in values.items() if k not in arrays}, omitted


@pytest.mark.parametrize("op_name", sorted(all_cases()))
def test_random_samples_use_every_default_and_several_values(op_name):
    op, cases = refimpl.get(op_name), all_cases()[op_name]
    samples = [cases.random_sample(seed) for seed in SEEDS]
    values, omitted = _scalar_values(op, samples)
    for name, parameter in op.signature.parameters.items():
        if name not in values:
            continue  # an array input
        if parameter.default not in (inspect.Parameter.empty, None):
            assert omitted.get(name), f"{op_name}: no random sample leaves {name} at its default"
        if f"{op_name}.{name}" not in ONE_VALUE:
            assert len(values[name]) >= 2, (
                f"{op_name}: {name} takes one value in every sample: {values[name]}"
            )
