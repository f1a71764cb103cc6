"""The `refimpl` command line."""

import importlib.metadata
import json
import subprocess
import sys

import numpy as np
import pytest

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


def test_show_leaves_numpys_print_options_alone(capsys):
    before = np.get_printoptions()
    assert main(["check", "--op", "z_loss", "--backend", "numpy", "--seed", "1", "--show", "--quiet"]) == 0
    assert np.get_printoptions() == before


def test_version_and_python_dash_m():
    result = subprocess.run(
        [sys.executable, "-m", "refimpl", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"refimpl {refimpl.__version__}"
    assert importlib.metadata.version("refimpl") == refimpl.__version__


def test_a_backend_that_does_not_import_names_the_extra_to_install(monkeypatch):
    assert refimpl.install_hint("cupy-raw") == "pip install 'refimpl[cupy]'"
    assert refimpl.install_hint("numba") == "pip install 'refimpl[numba]'"

    def broken(name):
        if name == "numba":
            raise ImportError("No module named 'numba'")
        return original(name)

    from refimpl_conformance import _runner

    original = refimpl.backend
    monkeypatch.setattr(_runner.refimpl, "backend", broken)
    plan = _runner.plan(backends=["numba"], ops=["z_loss"])
    assert any("pip install 'refimpl[numba]'" in note for note in plan.notes)


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


# -- checking a user's implementation from the shell ------------------------------------------
PORT = """
import torch

def kd_loss(student_logits, teacher_logits, T):
    K = student_logits.shape[-1]
    log_q = torch.log_softmax(student_logits / T, dim=-1).reshape(-1, K)
    log_p = torch.log_softmax(teacher_logits / T, dim=-1).reshape(-1, K)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean() * T * T

def kd_detached(student_logits, teacher_logits, T):
    return kd_loss(student_logits, teacher_logits.detach(), T)

def kd_renamed(student, teacher, temp=1.0):
    return kd_loss(student, teacher, temp)

def bad_layer_norm(x, gamma, beta, eps):
    mu = x.mean(-1, keepdim=True)
    return gamma * (x - mu) / (torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True)) + eps) + beta
"""


@pytest.fixture
def port_dir(tmp_path, monkeypatch):
    (tmp_path / "my_port.py").write_text(PORT)
    monkeypatch.chdir(tmp_path)  # the current folder is on the import path, as with `python -m`
    yield tmp_path
    import sys

    sys.modules.pop("my_port", None)


def test_impl_from_the_current_folder_with_natural_names(port_dir, capsys):
    assert (
        main(["check", "--impl", "my_port:kd_loss", "--op", "distillation_kl", "--framework", "torch"]) == 0
    )
    out = capsys.readouterr().out
    assert "err/allowed f64" in out and "failed" in out
    assert "skipped" in out and "needs scale='none'; kd_loss takes no 'scale'" in out


def test_impl_argmap_and_no_grad_flags(port_dir, capsys):
    args = ["check", "--impl", "my_port:kd_renamed", "--op", "distillation_kl", "--framework", "torch"]
    assert main([*args, "--argmap", "temperature=temp"]) == 0
    capsys.readouterr()
    detached = ["check", "--impl", "my_port:kd_detached", "--op", "distillation_kl", "--framework", "torch"]
    assert main(detached) == 1
    assert "no_grad=['z_teacher']" in capsys.readouterr().out
    assert main([*detached, "--no-grad", "z_teacher"]) == 0


def test_impl_errors_are_one_line(port_dir, capsys):
    assert main(["check", "--impl", "no_such_module:f", "--op", "layer_norm", "--framework", "torch"]) == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith("refimpl: cannot import module 'no_such_module'") and "\n" not in out
    assert main(["check", "--impl", "my_port:missing", "--op", "layer_norm", "--framework", "torch"]) == 2
    out = capsys.readouterr().out.strip()
    assert "module 'my_port' has no 'missing'; it defines" in out and "kd_loss" in out and "\n" not in out
    assert main(["check", "--impl", "my_port:kd_loss", "--op", "layer_norm", "--argmap", "nope=x"]) == 1
    assert "argmap names 'nope', which layer_norm does not take" in capsys.readouterr().out


def test_impl_seed_narrows_the_run_to_that_draw_and_show_prints_cotangents(port_dir, capsys):
    args = ["check", "--impl", "my_port:bad_layer_norm", "--op", "layer_norm", "--framework", "torch"]
    assert main([*args, "--seed", "3", "--dtype", "float64", "--show"]) == 1
    out = capsys.readouterr().out
    assert "random[seed=3;" in out and "constant row" not in out  # that draw only, no edge cases
    assert "cotangent of output 'y' (float64) = " in out
    assert "reference cotangent of 'x' = " in out and "allowed error up to" in out
    assert "repro: refimpl check --op layer_norm --impl my_port:bad_layer_norm --framework torch" in out
