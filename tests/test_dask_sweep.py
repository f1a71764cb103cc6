"""Conformance sweeps on Dask (`refimpl check --dask`, `--seeds A:B`): on a real LocalCluster
of 2 workers, the report is the local run's — the same results in the same order, the same
summary and JSON — failures included."""

from __future__ import annotations

import json
import re
import sys

import pytest

import refimpl
from refimpl import Backend, Impl
from refimpl._op import _LOADED
from refimpl.cli import _parse_seeds, main
from refimpl_conformance import plan, run

pytest.importorskip("distributed")
import cloudpickle  # noqa: E402  (installed with distributed)

from refimpl.dask import ADDRESS_VARIABLE, cluster_client  # noqa: E402
from refimpl_conformance._dask import run_on_dask  # noqa: E402

pytestmark = pytest.mark.xdist_group("dask-cluster")

# the wrong backend below is registered on the workers: its functions travel by value, as
# the workers cannot import this test module
cloudpickle.register_pickle_by_value(sys.modules[__name__])

OPS = ["z_loss", "layer_norm", "facility_location_greedy"]  # a loss, a layer, a selection greedy


@pytest.fixture(scope="module")
def client():
    with cluster_client(n_workers=2) as dask_client:
        yield dask_client


def _negated_backward(residuals, g_p):
    return tuple(-g for g in refimpl.get("stablemax").backward(residuals, g_p))


def _install_wrong_backend() -> None:
    """A backend whose stablemax VJP has the wrong sign (here and on each worker)."""
    from refimpl._op import _LOADED  # imported here: a global would travel as a copy

    reference = refimpl.get("stablemax")
    _LOADED["wrong"] = Backend("wrong", {"stablemax": Impl(reference.forward, _negated_backward)})


def _remove_wrong_backend() -> None:
    from refimpl._op import _LOADED

    _LOADED.pop("wrong", None)


def _seeds_of(report: dict) -> set[int]:
    return {int(m.group(1)) for r in report["results"] if (m := re.match(r"random\[seed=(\d+)", r["sample"]))}


def test_a_sweep_on_dask_gives_the_local_report_result_for_result(client):
    the_plan = plan(backends=["numpy", "numba"], ops=OPS, seeds=range(12))
    local_ticks: list[str] = []
    # the workers have one thread each, so their Numba kernels run the one-thread build; here,
    # with more threads, a large sample (layer_norm's 2048 × 1024 edge) would take the threaded
    # build, whose sums round differently: the same verdicts, other last digits
    from refimpl_numba._jit import set_parallel_mode

    previous = set_parallel_mode("never")
    try:
        local = run(the_plan, progress=local_ticks.append)
    finally:
        set_parallel_mode(previous)
    dask_ticks: list[str] = []
    on_dask = run(the_plan, progress=dask_ticks.append, dask=client)
    assert {r.op for r in local.results} == set(OPS)
    assert {r.backend for r in local.results} >= {"numpy", "numba"}
    assert _seeds_of(json.loads(local.to_json())) == set(range(12))
    assert on_dask.to_json() == local.to_json()  # results in order, summary, notes: all of it
    assert on_dask.summary() == local.summary() and on_dask.ok == local.ok
    assert len(dask_ticks) == len(local_ticks)  # the progress bar ends where a local run's does
    # batches smaller than the seeds: 12 seeds in 5 + 5 + 2, cut in the middle of each op
    small = run_on_dask(the_plan, client, samples_per_task=5)
    assert json.dumps([r.to_dict() for r in small]) == json.dumps([r.to_dict() for r in local.results])


def test_a_failing_backend_is_reported_on_dask_as_in_a_local_run(client):
    _install_wrong_backend()
    client.run(_install_wrong_backend)
    try:
        the_plan = plan(backends=["wrong"], ops=["stablemax"], seeds=range(4))
        local = run(the_plan)
        on_dask = run(the_plan, dask=client)
    finally:
        client.run(_remove_wrong_backend)
        _remove_wrong_backend()
    assert any(r.check == "vjp" and r.backend == "wrong" for r in local.failures)
    assert not local.ok
    assert on_dask.to_json() == local.to_json()


def test_a_task_that_raises_on_a_worker_becomes_one_failure_in_its_place(client):
    reference = refimpl.get("stablemax")
    _LOADED["only_here"] = Backend("only_here", {"stablemax": Impl(reference.forward, reference.backward)})
    try:  # registered in this process only: each of its tasks raises on the workers
        the_plan = plan(backends=["numpy", "only_here"], ops=["stablemax"], seeds=range(3))
        local = run(the_plan)
        on_dask = run(the_plan, dask=client)
    finally:
        del _LOADED["only_here"]
    assert local.ok
    failed = [r for r in on_dask.results if r.backend == "only_here"]
    # one per task: its known values, and per dtype the batch of 3 seeds and the edge cases' batch
    assert len(failed) == 1 + 2 * 2
    assert all(r.check == "worker" and r.status == "fail" for r in failed)
    assert "cannot run on this worker" in failed[0].detail
    assert [r.dtype for r in failed] == ["-", "float64", "float32", "float64", "float32"]
    assert [r.sample for r in failed[1:]] == ["seeds 0..2", "seeds 0..2", "edge cases", "edge cases"]
    numpy_results = [r.to_dict() for r in local.results if r.backend != "only_here"]
    assert [r.to_dict() for r in on_dask.results if r.backend != "only_here"] == numpy_results


def test_cli_check_on_dask_sweeps_a_slice_of_seeds(client, tmp_path, capsys, monkeypatch):
    address = client.scheduler.address
    on_dask, local = tmp_path / "dask.json", tmp_path / "local.json"
    argv = ["check", "--op", "z_loss", "--backend", "numpy", "--seeds", "3:7", "--quiet"]
    assert main([*argv, "--dask", address, "--json", str(on_dask)]) == 0
    out = capsys.readouterr().out
    assert f"dask: scheduler {address}, 2 worker(s), 1 thread(s) each" in out
    report = json.loads(on_dask.read_text())
    assert _seeds_of(report) == {3, 4, 5, 6}
    assert main([*argv, "-j", "1", "--json", str(local)]) == 0
    assert on_dask.read_text() == local.read_text()
    # --dask with no address: $REFIMPL_DASK_ADDRESS names the cluster
    monkeypatch.setenv(ADDRESS_VARIABLE, address)
    assert main([*argv, "--dask"]) == 0
    assert f"dask: scheduler {address}" in capsys.readouterr().out


def test_seeds_take_a_count_or_a_slice():
    assert _parse_seeds("5") == 5  # seeds 0..4, as before
    assert _parse_seeds("0") == 0  # the edge cases only
    assert _parse_seeds("3:7") == range(3, 7)
    assert _parse_seeds("0:10000") == range(10000)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("7:3", "it names no seed"),
        ("3:3", "it names no seed"),
        ("-2:3", "a seed is never negative"),
        ("a:b", "got 'a:b'"),
        ("1:2:3", "got '1:2:3'"),
        ("ten", "got 'ten'"),
        ("-1", "N >= 0"),
    ],
)
def test_malformed_seeds_exit_2_with_what_was_expected(text, why, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--op", "z_loss", f"--seeds={text}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --seeds" in err and "A:B" in err and why in err


def test_dask_without_distributed_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    assert main(["check", "--op", "z_loss", "--dask", "--quiet"]) == 2
    assert "pip install 'refimpl[dask]'" in capsys.readouterr().out


def test_dask_workers_without_dask_is_refused(capsys):
    assert main(["check", "--op", "z_loss", "--dask-workers", "2", "--quiet"]) == 2
    assert "--dask-workers sizes the local cluster of --dask" in capsys.readouterr().out


def test_bench_dask_reports_the_sweep_the_score_and_the_merge(tmp_path, capsys):
    path = tmp_path / "dask.json"
    argv = ["bench", "--dask", "--dask-workers", "1", "--sweep-seeds", "3", "--score-examples", "20000"]
    argv += ["--merge-model-mib", "8", "--merge-chunk-mib", "1", "--merge-limit-mib", "256"]
    argv += ["--json", str(path)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "conformance sweep" in text and "uniform soup" in text
    assert "el2n_score over 20,000 examples" in text
    report = json.loads(path.read_text())
    assert [r["workers"] for r in report["sweep"]] == [1] and report["sweep"][0]["ok"]
    assert report["score"][0]["examples"] == 20_000 and report["score"][0]["seconds"] > 0
    assert report["merge"]["checked"] and 0 < report["merge"]["peak_bytes"] <= report["merge"]["bound_bytes"]
