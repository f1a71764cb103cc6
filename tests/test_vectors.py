"""Golden test vectors: the exported files follow the shipped schema, and checking against
them catches what the live suite catches — without running the reference."""

import json

import jsonschema
import numpy as np
import pytest

import refimpl
import refimpl_cupy
from refimpl import Backend, Impl
from refimpl.cli import main
from refimpl_conformance.vectors import INLINE_LIMIT, _decode, _encode, check_vectors, export_vectors, schema

OPS = ["layer_norm", "stablemax_cross_entropy", "lion_step", "pissa_init", "loss_based_sample_weights"]


@pytest.fixture(scope="module")
def vectors(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vectors")
    export_vectors(directory, OPS, seeds=range(3))
    return directory


def test_every_exported_file_follows_the_schema(vectors):
    for name in OPS:
        document = json.loads((vectors / f"{name}.json").read_text())
        jsonschema.validate(document, schema())
        assert document["algorithm"] == name and document["referenceVersion"] == refimpl.__version__
        tests = [t for g in document["testGroups"] for t in g["tests"]]
        assert len(tests) == document["numberOfTests"] == len({t["tcId"] for t in tests})
        for test in tests:  # every flag is explained
            assert set(test["flags"]) <= set(document["notes"])


def test_vectors_name_the_bug_each_flag_catches(vectors):
    document = json.loads((vectors / "stablemax_cross_entropy.json").read_text())
    flagged = {f for g in document["testGroups"] for t in g["tests"] for f in t["flags"]}
    assert {"LARGE_LOGITS", "KINK", "LOGIT_ONE_FLOAT32", "DTYPE_FLOAT32", "INVALID_INPUT"} <= flagged
    invalid = [t for g in document["testGroups"] if g["type"] == "invalid" for t in g["tests"]]
    assert invalid and all(t["result"] == "invalid" and t["expectedError"] == "InputError" for t in invalid)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cupy[host]"])
def test_backends_pass_the_exported_vectors(vectors, backend):
    target = refimpl_cupy.host_backend() if backend == "cupy[host]" else refimpl.backend(backend)
    report = check_vectors(vectors, target)
    assert report.ok, [(f.sample, f.detail) for f in report.failures][:3]
    assert {r.op for r in report.results} == set(OPS)


def test_a_wrong_vjp_fails_against_the_vectors(vectors):
    reference = refimpl.get("layer_norm")

    def backward(residuals, g_y):
        g_x, g_gamma, g_beta = reference.backward(residuals, g_y)
        return g_x, g_gamma, -g_beta

    mutant = Backend("mutant", {"layer_norm": Impl(reference.forward, backward)})
    failures = check_vectors(vectors, mutant).failures
    assert failures and {f.check for f in failures} == {"vjp"}
    assert all("beta" in f.detail for f in failures)


def test_an_implementation_that_accepts_invalid_input_fails(vectors):
    reference = refimpl.get("loss_based_sample_weights")
    lax = Backend("lax", {"loss_based_sample_weights": Impl(reference.forward)})
    lax.get = lambda name: lambda *a, **k: reference.forward(*a, **k)[0]  # no validation
    with np.errstate(divide="ignore", invalid="ignore"):  # the lax version divides by r = 0
        failures = check_vectors(vectors, lax).failures
    assert failures and all(f.check == "error" for f in failures)


def test_arrays_round_trip_including_non_finite_values_and_large_arrays():
    store = {}
    small = np.array([1.5, np.nan, np.inf, -np.inf, 1e-300], np.float64)
    large = np.arange(INLINE_LIMIT + 1, dtype=np.float32)
    encoded_small = _encode(small, "a", store)
    encoded_large = _encode(large, "b", store)
    assert "data" in encoded_small and encoded_large == {
        "dtype": "float32",
        "shape": [INLINE_LIMIT + 1],
        "npz": "b",
    }
    json.dumps(encoded_small)
    np.testing.assert_array_equal(_decode(json.loads(json.dumps(encoded_small)), store), small)
    np.testing.assert_array_equal(_decode(encoded_large, store), large)


def test_cli_exports_and_checks_a_torch_implementation_against_vectors(tmp_path, monkeypatch, capsys):
    assert main(["export-vectors", str(tmp_path / "v"), "--op", "layer_norm", "--seeds", "2"]) == 0
    assert "layer_norm.json" in capsys.readouterr().out
    (tmp_path / "user_ln.py").write_text(
        "import torch\n"
        "def layer_norm(x, gamma, beta, eps):\n"
        "    mu = x.mean(-1, keepdim=True)\n"
        "    return gamma * (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + eps) + beta\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code = main(
        [
            "check",
            "--vectors",
            str(tmp_path / "v"),
            "--impl",
            "user_ln:layer_norm",
            "--op",
            "layer_norm",
            "--framework",
            "torch",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert main(["check", "--vectors", str(tmp_path / "v"), "--backend", "numba"]) == 0


def test_an_op_with_a_function_argument_is_skipped_with_the_reason(tmp_path):
    skipped: dict[str, str] = {}
    written = export_vectors(tmp_path, ["greedy_soup", "z_loss"], seeds=range(1), skipped=skipped)
    assert [p.name for p in written] == ["z_loss.json"]
    assert skipped == {"greedy_soup": "it takes a function ('evaluate'), which a vector file cannot hold"}
