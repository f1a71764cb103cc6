"""pytest plugin: run the conformance suite inside pytest.

Installed with refimpl (entry point ``pytest11``). Choose the backends with
``--refimpl-backend NAME`` (repeatable) or ``REFIMPL_BACKEND=name[,name]``; by default
every installed backend is checked (a GPU backend without a GPU is checked through its
host variant). Run the whole suite with::

    pytest --pyargs refimpl_conformance.suite --refimpl-backend numba

The ``refimpl_check`` fixture checks a user's own implementation from their test suite.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("refimpl")
    group.addoption(
        "--refimpl-backend",
        action="append",
        default=None,
        help="backend(s) the refimpl conformance suite checks (default: all installed; env REFIMPL_BACKEND)",
    )


def selected_backends(config: pytest.Config) -> list[str] | None:
    chosen = config.getoption("--refimpl-backend", default=None)
    if chosen:
        return [name for value in chosen for name in value.split(",")]
    env = os.environ.get("REFIMPL_BACKEND")
    return [name for name in env.split(",") if name] if env else None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "refimpl_target" in metafunc.fixturenames:
        from ._runner import plan

        the_plan = plan(backends=selected_backends(metafunc.config), ops=[])
        metafunc.parametrize(
            "refimpl_target", [b for _, b in the_plan.targets], ids=[n for n, _ in the_plan.targets]
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, keep each op's conformance tests on one worker (``--dist loadgroup``):
    the reference's expected values and allowed errors of a sample are then computed once and
    reused for every backend and check of that op, instead of once per backend."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        callspec = getattr(item, "callspec", None)
        op_name = callspec.params.get("op_name") if callspec is not None else None
        suite = getattr(getattr(item, "function", None), "__module__", "") == "refimpl_conformance.suite"
        if suite and isinstance(op_name, str):
            item.add_marker(pytest.mark.xdist_group(name=f"refimpl-{op_name}"))


@pytest.fixture
def refimpl_check():
    """``refimpl_check(op, fn, framework=..., **options)``: assert that ``fn`` conforms.

    The same as ``refimpl_conformance.assert_conforms``: raises with each failing check, its
    sample and its error, and returns the report.
    """
    from .adapters import assert_conforms

    return assert_conforms
