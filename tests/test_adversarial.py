"""The adversarial sweep as a test: every op on every backend that runs here, driven with
non-finite entries, extreme magnitudes, huge integers, every memory layout, and checked for
in-place changes and determinism (``python -m refimpl_conformance.adversarial``).

A finding of any kind fails: a crash, a silent non-finite result, a wrong answer at a
magnitude the op accepts, memory beyond the ceiling, a layout that changes a bit, an input
modified in place, two calls that differ. In eight parts, each swept in its own worker process
(a memory ceiling and a time limit per op); about 2 minutes of CPU in all.
"""

import pytest

import refimpl
from refimpl_conformance import all_cases
from refimpl_conformance.adversarial import SweepReport, sweep, sweep_op

CHUNKS = 8  # parts of the sweep, spread over pytest-xdist's workers
OPS = sorted(all_cases())


@pytest.mark.parametrize("part", range(CHUNKS))
def test_the_sweep_finds_nothing_on_any_backend(part):
    ops = OPS[part::CHUNKS]
    report = sweep(ops, workers=1)
    assert report.calls > 10_000 // CHUNKS  # every op of the part, every backend, every kind of input
    assert not report.findings, "\n".join(str(f) for f in report.findings)
    # the sweep exercised each kind of input it exists for
    outcomes = report.outcomes
    for kind in ("refused: non-finite entry", "computed: layout", "computed: extreme magnitude"):
        assert outcomes[kind] > 100 // CHUNKS, outcomes


def test_the_sweep_reports_a_backend_that_modifies_its_input(monkeypatch):
    layer_norm = refimpl.get("layer_norm")
    original = layer_norm.forward

    def forward(x, gamma, beta, *, eps=1e-5):
        outputs = original(x, gamma, beta, eps=eps)
        x[...] = 0  # the bug: the caller's buffer is overwritten
        return outputs

    forward.__doc__ = original.__doc__
    backend = refimpl.Backend("mutant", {"layer_norm": refimpl.Impl(forward, layer_norm.backward)})
    installed = refimpl.backend
    monkeypatch.setattr(refimpl, "backend", lambda name: backend if name == "mutant" else installed(name))
    report = SweepReport()
    report.merge(sweep_op("layer_norm", ["mutant"]))
    assert "inplace" in {f.kind for f in report.findings}, report.findings
