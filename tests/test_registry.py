"""Guardrails over the whole registry: what every op must have, checked for every op.

Adding a routine adds it to every test here with nothing else to edit; a routine that misses
one of the pieces fails with its name.
"""

import doctest
import importlib
import inspect
import pkgutil
import re

import pytest

import refimpl
import refimpl_cupy
from refimpl_conformance import all_cases
from refimpl_conformance.bench import bench_case

OPS = [op.name for op in refimpl.ops()]
MODULES = sorted(m.name for m in pkgutil.walk_packages(refimpl.__path__, "refimpl."))
FAST_BACKENDS = [refimpl.backend("numba"), refimpl_cupy.host_backend(), refimpl.backend("cupy-raw")]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module):
    result = doctest.testmod(
        importlib.import_module(module),
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        report=False,
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {module} failed"


@pytest.mark.parametrize("name", OPS)
def test_the_op_is_exported_by_its_family_and_defined_in_its_folder(name):
    op = refimpl.get(name)
    assert getattr(importlib.import_module(f"refimpl.{op.family}"), name) is op
    assert op.forward.__module__.startswith(f"refimpl.{op.family}.")
    assert op.paper is importlib.import_module(op.forward.__module__).PAPER


@pytest.mark.parametrize("name", OPS)
def test_the_docstring_teaches_the_op(name):
    op = refimpl.get(name)
    doc = op.__doc__ or ""
    assert ">>>" in doc, f"{name}: no example"
    assert "Reference" in doc or "arXiv" in doc, f"{name}: no reference"
    if op.is_differentiable:  # the derivation of the backward, not only its result
        assert re.search(r"(?i)\b(backward|vjp)\b", doc), f"{name}: no derivation of the backward"
    assert "the catalog" not in doc.lower(), f"{name}: cites a file outside the repository"


@pytest.mark.parametrize("name", OPS)
def test_the_op_has_cases_error_cases_and_a_benchmark_where_a_fast_backend_claims_it(name):
    cases = all_cases()[name]
    assert cases.edges(), f"{name}: no named edge cases"
    assert cases.all_errors(), f"{name}: no error cases"
    if refimpl.get(name).custom_vjp is not None:
        assert cases.stated_vjp is not None, f"{name}: a custom VJP needs its stated formula in the cases"
    if any(backend.supports(name) for backend in FAST_BACKENDS):
        assert bench_case(name) is not None, (
            f"{name}: a fast backend implements it, but no benchmark is declared"
        )


@pytest.mark.parametrize("backend", FAST_BACKENDS, ids=lambda b: b.name)
def test_backend_forward_signatures_equal_the_references(backend):
    for name in sorted(backend.ops):
        op, impl = refimpl.get(name), backend.impl(name)
        reference = [(p.name, p.kind, p.default) for p in op.signature.parameters.values()]
        fast = [
            (p.name, p.kind, p.default)
            for p in inspect.signature(impl.forward).parameters.values()
            if p.name != "out"
        ]
        assert fast == reference, f"{backend.name} {name}: {fast} != {reference}"


def test_no_file_of_the_reference_or_the_backends_imports_a_private_module_of_refimpl():
    from pathlib import Path

    root = Path(refimpl.__file__).parent.parent
    offenders = []
    for folder in [root / "refimpl", root / "backends", root / "conformance"]:
        for path in folder.rglob("*.py"):
            if path.parent == root / "refimpl" or ".venv" in path.parts:
                continue  # the private modules themselves and the package root
            text = path.read_text()
            if re.search(
                r"from \.\._(op|spec|blocks|deviations|discover|errors) import"
                r"|refimpl\._(op|spec|blocks|discover)\b",
                text,
            ):
                offenders.append(str(path.relative_to(root)))
    assert not offenders, f"import refimpl.authoring instead: {offenders}"
