"""Model-scale merging (refimpl.dask.merge): every supported op, merged range by range from
.npy directories and safetensors files, equals its in-memory state-dict call bit for bit; bad
input is refused before anything is written; a 2-worker cluster gives the local result; and the
peak memory of a merge is bounded by a multiple of the chunk size, not the model size."""

import json
import struct

import numpy as np
import pytest

import refimpl

pytest.importorskip("dask")
from refimpl.dask.merging import (  # noqa: E402 - after the skip
    REFUSED,
    SUPPORTED,
    memory_bound,
    merge,
    merge_memory,
    open_state_dict,
    save_state_dict,
)

# the tests that start a cluster share one xdist worker with the other Dask tests
pytestmark = pytest.mark.xdist_group("dask-cluster")

# Several shapes, float32 and float64 tensors, a scalar, and buffers that are never merged.
SHAPES = {"encoder/w": (23, 7), "encoder.bias": (23,), "head.w": (5, 9), "scale": ()}
DTYPES = {"encoder/w": np.float32, "encoder.bias": np.float64, "head.w": np.float32, "scale": np.float64}
CHUNK_BYTES = 64  # 16 float32 or 8 float64 elements: every non-scalar tensor spans several chunks


def _model(rng, steps):
    model = {name: rng.standard_normal(shape).astype(DTYPES[name]) for name, shape in SHAPES.items()}
    model["bn.num_batches_tracked"] = np.array(steps, dtype=np.int64)
    model["mask"] = np.array([True, False, True])
    return model


@pytest.fixture(scope="module")
def models():
    """θ₀ (or model A) and three more models, in memory."""
    rng = np.random.default_rng(0)
    return [_model(rng, steps=10 + k) for k in range(4)]


def _per_tensor(rng, count, columns=None):
    shape = (count,) if columns is None else (count, columns)
    return {name: rng.standard_normal(shape).astype(DTYPES[name]) for name in SHAPES}


def _calls(models):
    """For each supported op: (name, args, kwargs) of a state-dict call."""
    rng = np.random.default_rng(1)
    base, k3 = models[0], models[1:]
    a = {name: rng.standard_normal((3, c)).astype(DTYPES[name]) for name, c in zip(SHAPES, (1, 3, 4, 2))}
    return {
        "uniform_soup": ("uniform_soup", (k3,), {}),
        "learned_soup": ("learned_soup", (k3, _per_tensor(rng, 3)), {}),
        "atlas_composition": ("atlas_composition", (base, k3, _per_tensor(rng, 3)), {}),
        "wise_ft_interpolate": ("wise_ft_interpolate", (base, k3[0]), {"alpha": 0.3}),
        "interpolate_params": ("interpolate_params", (base, k3[1]), {"lam": 0.7}),
        "sparse_ft_compose": ("sparse_ft_compose", (base, k3), {}),
        "rws_patch": ("rws_patch", (base, k3, _per_tensor(rng, 3)), {"official_squared_alpha": True}),
        "task_vector": ("task_vector", (k3[2], base), {}),
        "expert_merging": ("expert_merging", (base, k3, a), {}),
        "expert_merging even chunks": ("expert_merging", (base, k3, a), {"official_chunking": False}),
    }


def _to_files(value, files):
    """The same argument with every state dict replaced by its file-backed copy."""
    if isinstance(value, dict) and "bn.num_batches_tracked" in value:
        return files[id(value)]
    if isinstance(value, list):
        return [_to_files(v, files) for v in value]
    return value


def _saved(models, tmp_path, suffix):
    return {id(m): save_state_dict(tmp_path / f"model_{k}{suffix}", m) for k, m in enumerate(models)}


def test_supported_table_covers_every_elementwise_state_dict_op(models):
    assert set(_calls(models)[k][0] for k in _calls(models)) == set(SUPPORTED)
    for name in SUPPORTED:
        assert refimpl.get(name).state_dict is not None and not refimpl.get(name).state_dict.whole_model
    assert not set(SUPPORTED) & set(REFUSED)


@pytest.mark.parametrize("suffix", ["", ".safetensors"], ids=["npy", "safetensors"])
@pytest.mark.parametrize("label", list(_calls([_model(np.random.default_rng(0), 0)] * 4)))
def test_merge_from_files_equals_the_in_memory_state_dict_call(models, tmp_path, suffix, label):
    name, args, kwargs = _calls(models)[label]
    expected = refimpl.get(name)(*args, **kwargs)
    files = _saved(models, tmp_path, suffix)
    out = tmp_path / f"merged{suffix}"
    merged = merge(name, *_to_files(list(args), files), out=out, chunk_bytes=CHUNK_BYTES, **kwargs)
    assert sorted(merged) == sorted(expected)
    for tensor, value in expected.items():
        got = np.asarray(merged[tensor])
        assert got.dtype == value.dtype and got.shape == value.shape, tensor
        np.testing.assert_array_equal(got, value, err_msg=f"{label}: {tensor}")
    # the expected state dict holds the buffers too: copied from the first model of the call
    assert expected["mask"].dtype == np.bool_ and merged["bn.num_batches_tracked"].dtype == np.int64


def test_merge_accepts_state_dicts_in_memory_and_in_files_together(models, tmp_path):
    files = _saved(models[:2], tmp_path, "")
    mixed = [files[id(models[0])], models[1], models[2]]
    merged = merge("uniform_soup", mixed, out=tmp_path / "soup", chunk_bytes=CHUNK_BYTES, threads=2)
    expected = refimpl.merging.uniform_soup(models[:3])
    for tensor in expected:
        np.testing.assert_array_equal(np.asarray(merged[tensor]), expected[tensor])


def test_safetensors_output_reads_back_with_safe_open(models, tmp_path):
    safetensors = pytest.importorskip("safetensors")
    files = _saved(models, tmp_path, ".safetensors")
    out = tmp_path / "soup.safetensors"
    merge("uniform_soup", [files[id(m)] for m in models[1:]], out=out, chunk_bytes=CHUNK_BYTES)
    expected = refimpl.merging.uniform_soup(models[1:])
    with safetensors.safe_open(str(out), framework="numpy") as opened:
        assert sorted(opened.keys()) == sorted(expected)
        for tensor in opened.keys():
            np.testing.assert_array_equal(opened.get_tensor(tensor), expected[tensor])
    (length,) = struct.unpack("<Q", out.read_bytes()[:8])
    header = json.loads(out.read_bytes()[8 : 8 + length])
    assert header["encoder/w"] == {
        "dtype": "F32",
        "shape": [23, 7],
        "data_offsets": header["encoder/w"]["data_offsets"],
    }
    assert (8 + length) % 8 == 0  # the data starts aligned


def test_open_state_dict_reads_files_written_by_safetensors_and_numpy(tmp_path):
    numpy_io = pytest.importorskip("safetensors.numpy")
    state = {"a.weight": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, 2], dtype=np.int16)}
    numpy_io.save_file(state, str(tmp_path / "model.safetensors"))
    opened = open_state_dict(tmp_path / "model.safetensors")
    assert opened["a.weight"].shape == (3, 4) and opened["b"].dtype == np.int16
    np.testing.assert_array_equal(opened["a.weight"].read(5, 9), np.arange(5, 9, dtype=np.float32))
    folder = tmp_path / "npy"
    folder.mkdir()
    np.save(folder / "x%2Fy.npy", np.arange(6.0).reshape(2, 3))  # the tensor "x/y"
    np.save(folder / "big.npy", np.arange(4, dtype=">f8"))  # big-endian: read as native float64
    opened = open_state_dict(folder)
    assert list(opened) == ["big", "x/y"]
    np.testing.assert_array_equal(opened["x/y"].read(1, 4), [1.0, 2.0, 3.0])
    assert opened["big"].read().dtype == np.float64 and opened["big"].read().tolist() == [0.0, 1.0, 2.0, 3.0]


def test_tensor_names_with_slashes_and_percent_signs_round_trip(tmp_path):
    state = {"a/b%2Fc": np.ones(3), "a%b": np.zeros(2), "plain.weight": np.full(1, 2.0)}
    opened = save_state_dict(tmp_path / "model", state)
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "a%25b.npy",
        "a%2Fb%252Fc.npy",
        "plain.weight.npy",
    ]
    assert {k: np.asarray(v).tolist() for k, v in opened.items()} == {k: v.tolist() for k, v in state.items()}
    np.testing.assert_array_equal(np.load(tmp_path / "model" / "a%2Fb%252Fc.npy"), np.ones(3))


def test_expert_merging_state_dict_call_equals_the_per_tensor_calls(models):
    rng = np.random.default_rng(5)
    base, experts = models[0], models[1:]
    taus = [refimpl.merging.task_vector(expert, base) for expert in experts]
    a = {name: rng.standard_normal((3, 2)).astype(DTYPES[name]) for name in SHAPES}
    merged = refimpl.merging.expert_merging(base, taus, a)
    assert list(merged) == list(base)
    for name in SHAPES:
        tau = np.stack([t[name] for t in taus], axis=-1)
        np.testing.assert_array_equal(tau[..., 0], experts[0][name] - base[name])
        np.testing.assert_array_equal(merged[name], refimpl.merging.expert_merging(base[name], tau, a[name]))
    assert int(merged["bn.num_batches_tracked"]) == 10 and taus[0]["mask"].tolist() == [True, False, True]


# -- bad input --------------------------------------------------------------------------------------
def test_missing_tensor_is_refused(models, tmp_path):
    partial = dict(models[2])
    del partial["head.w"]
    files = [save_state_dict(tmp_path / "a", models[1]), save_state_dict(tmp_path / "b", partial)]
    with pytest.raises(refimpl.InputError, match=r"uniform_soup: 'thetas'\[1\].*missing \['head.w'\]"):
        merge("uniform_soup", files, out=tmp_path / "soup")
    assert not (tmp_path / "soup").exists()


def test_shape_mismatch_is_refused(models, tmp_path):
    other = dict(models[2], **{"head.w": np.zeros((9, 5), dtype=np.float32)})
    files = [save_state_dict(tmp_path / "a.safetensors", models[1]), save_state_dict(tmp_path / "b", other)]
    with pytest.raises(refimpl.InputError, match=r"tensor 'head.w' has shape \(9, 5\).*\(5, 9\)"):
        merge("interpolate_params", *files, out=tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("name", ["greedy_soup", "robust_weight_signature", "apply_permutation", "z_loss"])
def test_unsupported_ops_are_refused(models, tmp_path, name):
    with pytest.raises(refimpl.InputError, match=f"merge: argument 'name'.*got '{name}'"):
        merge(name, models[1:], out=tmp_path / "out")


def test_unknown_op_and_bad_arguments_are_refused(models, tmp_path):
    with pytest.raises(refimpl.InputError, match="uniform_sop.*did you mean uniform_soup"):
        merge("uniform_sop", models[1:], out=tmp_path / "out")
    with pytest.raises(refimpl.InputError, match="'chunk_bytes': expected a positive integer, got 0"):
        merge("uniform_soup", models[1:], out=tmp_path / "out", chunk_bytes=0)
    files = save_state_dict(tmp_path / "a", models[1])
    with pytest.raises(refimpl.InputError, match="'out'.*holds one of the inputs"):
        merge("wise_ft_interpolate", files, models[2], out=tmp_path / "a")


def test_a_bad_coefficient_is_refused_with_the_tensor_named_before_writing(models, tmp_path):
    alpha = {name: np.zeros(3, dtype=np.float64) for name in SHAPES}  # float64 for float32 tensors
    with pytest.raises(refimpl.InputError, match=r"learned_soup.*alpha.*parameter tensor 'encoder/w'"):
        merge("learned_soup", models[1:], alpha, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_non_finite_value_deep_in_a_file_is_refused_with_the_tensor_named(models, tmp_path):
    broken = dict(models[2], **{"encoder/w": models[2]["encoder/w"].copy()})
    broken["encoder/w"][20, 3] = np.nan  # element 143: in the 9th chunk, not the first
    files = [save_state_dict(tmp_path / "a", models[1]), save_state_dict(tmp_path / "b", broken)]
    with pytest.raises(refimpl.InputError, match=r"finite.*parameter tensor 'encoder/w'"):
        merge("uniform_soup", files, out=tmp_path / "soup", chunk_bytes=CHUNK_BYTES)


def test_fortran_order_npy_files_are_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    np.save(folder / "w.npy", np.asfortranarray(np.ones((3, 2))))
    with pytest.raises(refimpl.InputError, match="Fortran order"):
        open_state_dict(folder)


# -- a cluster ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    from refimpl.dask import cluster_client

    with cluster_client(n_workers=2) as client:
        yield client


def test_merge_on_a_two_worker_cluster_equals_the_local_merge(models, tmp_path, client):
    name, args, kwargs = _calls(models)["expert_merging"]
    files = _saved(models, tmp_path, "")
    args = _to_files(list(args), files)
    local = merge(name, *args, out=tmp_path / "local.safetensors", chunk_bytes=CHUNK_BYTES, **kwargs)
    remote = merge(name, *args, out=tmp_path / "remote", chunk_bytes=CHUNK_BYTES, client=client, **kwargs)
    assert sorted(local) == sorted(remote)
    for tensor in local:
        np.testing.assert_array_equal(np.asarray(remote[tensor]), np.asarray(local[tensor]))
    assert len(client.scheduler_info()["workers"]) == 2


# -- memory -----------------------------------------------------------------------------------------
def test_peak_memory_is_bounded_by_the_chunk_size_not_the_model_size(tmp_path):
    model_bytes, chunk_bytes = 3 * 64 * 2**20, 4 * 2**20  # 3 tensors of 64 MiB per model
    measured = merge_memory(model_bytes, chunk_bytes, models=3, threads=2, folder=tmp_path)
    assert measured["checked"]
    assert measured["bound_bytes"] == memory_bound(3, chunk_bytes, 2) == 2 * 7 * chunk_bytes + 32 * 2**20
    assert 0 < measured["peak_bytes"] <= measured["bound_bytes"], measured
    assert measured["peak_bytes"] < model_bytes / 2, measured  # the inputs are 3 × 192 MiB
