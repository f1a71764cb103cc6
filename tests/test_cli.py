"""The `refimpl` command line."""

import json

import numpy as np

import refimpl
from refimpl import Backend, Impl
from refimpl._op import _LOADED
from refimpl.cli import main
from refimpl_conformance.bench import bench


def test_list_shows_every_op_and_backend(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for op in refimpl.ops():
        assert op.name in out
    assert "numba" in out


def test_show_prints_paper_derivation_and_source(capsys):
    assert main(["show", "layer_norm"]) == 0
    out = capsys.readouterr().out
    assert "arXiv:1607.06450" in out and "Backward" in out and "refimpl/layers/layer_norm.py" in out


def test_show_unknown_op_exits_2(capsys):
    assert main(["show", "stablemaxx"]) == 2
    assert "did you mean" in capsys.readouterr().out


def test_check_passes_and_writes_json(tmp_path, capsys):
    report = tmp_path / "report.json"
    code = main(["check", "--op", "stablemax", "--backend", "numba", "--quiet", "--json", str(report)])
    assert code == 0
    data = json.loads(report.read_text())
    assert data["ok"] and any(row["backend"] == "numba" for row in data["summary"])
    assert "0 failed" in capsys.readouterr().out


def test_check_exits_1_and_prints_a_repro_on_failure(capsys):
    reference = refimpl.get("stablemax")

    def wrong_backward(residuals, g_p):
        return tuple(-g for g in reference.backward(residuals, g_p))

    _LOADED["wrong"] = Backend("wrong", {"stablemax": Impl(reference.forward, wrong_backward)})
    try:
        assert main(["check", "--op", "stablemax", "--backend", "wrong", "--quiet"]) == 1
    finally:
        del _LOADED["wrong"]
    out = capsys.readouterr().out
    assert "FAIL vjp wrong stablemax" in out
    assert "repro: refimpl check --op stablemax --backend wrong" in out


def test_check_repro_by_seed_shows_the_arrays(capsys):
    assert (
        main(["check", "--op", "layer_norm", "--backend", "numba", "--seed", "3", "--show", "--quiet"]) == 0
    )
    out = capsys.readouterr().out
    assert "random[seed=3" in out and "gamma (float64) = array(" in out


def test_a_suite_repro_line_rebuilds_the_drawn_dimensions_and_the_host_backend(capsys):
    """The suite draws dimensions apart from the seed: its repro line carries them
    (``--dims``), and names ``cupy[host]`` when it checked the CuPy code on NumPy."""
    from refimpl_conformance import cases_for
    from refimpl_conformance._engine import repro_command

    sample = cases_for("layer_norm").random_sample(3, {"B": 2, "D": 1})
    line = repro_command("layer_norm", "cupy[host]", "float32", sample)
    assert line.endswith("--dtype float32 --seed 3 --dims B=2,D=1 --show")
    argv = line.split()[1:]
    argv[argv.index("'cupy[host]'")] = "cupy[host]"  # what the shell's quoting removes
    assert main([*argv, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "random[seed=3; B=2,D=1]" in out and "cupy[host]" in out and "1 failed" not in out


def test_check_rejects_malformed_dims(capsys):
    import pytest

    with pytest.raises(SystemExit):
        main(["check", "--op", "layer_norm", "--seed", "3", "--dims", "B=two"])
    assert "expected NAME=INT" in capsys.readouterr().err


def test_bench_reports_time_ratios_and_bandwidth():
    report = bench(["layer_norm"], ["numpy", "numba"], shape=(64, 32), repeat=2, torch_baseline=False)
    assert report.copy_gbps > 0
    rows = {r.backend: r for r in report.results}
    assert set(rows) == {"numpy", "numba", "numba (out=)"}
    assert rows["numpy"].vs_numpy == 1.0
    assert all(r.median_ms > 0 and r.gbps > 0 and r.bytes_moved == 4 * 64 * 32 * 4 for r in rows.values())
    assert np.isfinite(rows["numba"].fraction_of_copy)


def test_pytest_plugin_runs_the_suite_for_a_chosen_backend(tmp_path):
    import subprocess
    import sys

    command = [
        sys.executable,
        "-m",
        "pytest",
        "--pyargs",
        "refimpl_conformance.suite",
        "-q",
        "--refimpl-backend",
        "numba",
        "-k",
        "stablemax and not cross",
        "-p",
        "no:cacheprovider",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:]
    assert (
        "[numba-"
        in subprocess.run(
            command + ["--collect-only"], cwd=tmp_path, capture_output=True, text=True, timeout=600
        ).stdout
    )
