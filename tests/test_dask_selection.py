"""Dataset-scale selection on Dask: scores over row blocks, pruning, and the distributed
facility-location greedy — each equal to the in-memory reference, on a real LocalCluster."""

from __future__ import annotations

import numpy as np
import pytest

import refimpl
from refimpl import InputError

pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

from refimpl.dask import cluster_client, selection  # noqa: E402

pytestmark = pytest.mark.xdist_group("dask-cluster")

# this process's thread-pool variables before any cluster starts
ENVIRONMENT = {
    k: __import__("os").environ.get(k)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
}


@pytest.fixture(scope="module")
def client():
    with cluster_client(n_workers=2) as dask_client:
        yield dask_client


def _data(seed=0, R=2, n=700, K=6, H=4):  # noqa: N803
    rng = np.random.default_rng(seed)
    return rng.standard_normal((R, n, K)) * 2, rng.integers(0, K, n), rng.standard_normal((R, n, H))


@pytest.mark.parametrize("name", ["el2n_score", "margin_score", "grand_score_last_layer"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_scores_over_row_blocks_equal_the_in_memory_reference_bit_for_bit(name, dtype):
    z, y, h = _data()
    z, h = z.astype(dtype), h.astype(dtype)
    args = (z, y, h) if name == "grand_score_last_layer" else (z, y)
    # uneven blocks, and the arguments chunked differently (rechunked to the first one's rows)
    chunked = [da.from_array(z, chunks=(1, 97, 3)), da.from_array(y, chunks=250)]
    if name == "grand_score_last_layer":
        chunked.append(da.from_array(h, chunks=(2, 300, 4)))
    lazy = selection.scores(name, *chunked)
    assert lazy.chunks[0] == da.from_array(z, chunks=(1, 97, 3)).chunks[1]
    got = lazy.compute()
    expected = refimpl.get(name)(*args)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_scores_take_options_numpy_arguments_and_a_backend():
    z, y, _ = _data(1)
    got = selection.scores("margin_score", da.from_array(z, chunks=(2, 128, 6)), y, kind="sum").compute()
    np.testing.assert_array_equal(got, refimpl.data_selection.margin_score(z, y, kind="sum"))
    numba = refimpl.backend("numba").get("el2n_score")
    got = selection.scores("el2n_score", da.from_array(z, chunks=(2, 200, 6)), y, ord=1, backend="numba")
    np.testing.assert_array_equal(got.compute(), numba(z, y, ord=1))


def test_gradient_proxies_keep_their_rows():
    z, y, h = _data(2)
    got = selection.scores(
        "craig_gradient_proxy", da.from_array(z[0], chunks=(64, 6)), y, h=h[0], use_linear=True
    )
    assert got.shape == (700, 24)
    np.testing.assert_array_equal(
        got.compute(), refimpl.data_selection.craig_gradient_proxy(z[0], y, h=h[0], use_linear=True)
    )


def test_score_errors_name_the_op_and_the_argument():
    z, y, _ = _data(3)
    with pytest.raises(InputError, match="not a per-example score"):
        selection.scores("layer_norm", da.from_array(z[0]), y)
    with pytest.raises(InputError, match="disagree on the number of examples"):
        selection.scores("el2n_score", da.from_array(z), y[:-1])
    with pytest.raises(InputError, match="no argument of el2n_score is a Dask array"):
        selection.scores("el2n_score", z, y)
    bad = y.copy()
    bad[650] = 99  # an out-of-range label in the last block: the op's own check, when computed
    with pytest.raises(InputError, match=r"^el2n_score: argument 'y'"):
        selection.scores("el2n_score", da.from_array(z, chunks=(2, 100, 6)), bad).compute()


def test_pruning_on_lazy_scores_equals_the_reference(client):
    z, y, _ = _data(4)
    lazy = selection.scores("el2n_score", da.from_array(z, chunks=(2, 100, 6)), da.from_array(y, chunks=100))
    in_memory = refimpl.data_selection.el2n_score(z, y)
    for kwargs in ({"size": 300, "offset": 50}, {"size": 10, "offset": 5, "official_offset": True}):
        expected = refimpl.data_selection.score_based_pruning(in_memory, **kwargs)
        assert expected.shape == (kwargs["size"],)
        np.testing.assert_array_equal(selection.score_based_pruning(lazy, client=client, **kwargs), expected)
        # without a client: Dask's current scheduler
        np.testing.assert_array_equal(selection.score_based_pruning(lazy, **kwargs), expected)


def _greedy_data(seed=5, n=420, d=3):
    rng = np.random.default_rng(seed)
    # rounded proxies: duplicate points, hence exactly equal gains for the tie rule to break
    g = np.round(rng.standard_normal((n, d)), 1)
    return g, rng.integers(0, 3, n), np.array([6, 0, 4])


@pytest.mark.parametrize("kernel", ["submodlib_euclidean", "craig_max_minus_distance"])
@pytest.mark.parametrize("tie_break", ["lowest", "highest"])
def test_distributed_greedy_selects_what_the_reference_selects(client, kernel, tie_break):
    g, y, budgets = _greedy_data()
    expected = refimpl.data_selection.facility_location_greedy(
        g, y, budgets, kernel=kernel, tie_break=tie_break
    )
    for persist in (True, False):
        indices, gains = selection.facility_location_greedy(
            da.from_array(g, chunks=(100, 3)), y, budgets, kernel=kernel, tie_break=tie_break,
            block_rows=23, persist=persist, client=client,
        )  # fmt: skip
        np.testing.assert_array_equal(indices, expected[0])
        np.testing.assert_array_equal(gains, expected[1])


def test_distributed_greedy_breaks_exact_ties_by_the_rule():
    # two identical pairs: every first gain ties; "lowest" takes index 0, "highest" index 3
    g = np.array([[0.0], [0.0], [5.0], [5.0]])
    y, budgets = np.zeros(4, dtype=int), np.array([1])
    with cluster_client(n_workers=1) as one_worker:
        low, _ = selection.facility_location_greedy(g, y, budgets, block_rows=1, client=one_worker)
        high, _ = selection.facility_location_greedy(
            g, y, budgets, tie_break="highest", block_rows=1, client=one_worker
        )
    assert low.tolist() == [0] and high.tolist() == [3]


def test_distributed_greedy_float32_and_the_reference_checks(client):
    g, y, budgets = _greedy_data(6)
    g32 = g.astype(np.float32)
    indices, gains = selection.facility_location_greedy(g32, y, budgets, client=client)
    expected = refimpl.data_selection.facility_location_greedy(g32, y, budgets)
    np.testing.assert_array_equal(indices, expected[0])
    assert gains.dtype == np.float32
    np.testing.assert_array_equal(gains, expected[1])
    with pytest.raises(InputError, match="budgets"):
        selection.facility_location_greedy(g, y, np.array([10_000, 0, 0]), client=client)
    with pytest.raises(InputError, match="kernel"):
        selection.facility_location_greedy(g, y, budgets, kernel="precomputed", client=client)


def test_a_local_cluster_leaves_this_processs_environment_as_it_was(client):
    # Dask sets the workers' thread-pool sizes in the spawning process's environment; a Numba
    # here would then see NUMBA_NUM_THREADS change under its running threads and refuse to compile
    import os

    watched = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    assert {k: os.environ.get(k) for k in watched} == ENVIRONMENT
    sizes = client.run(lambda: __import__("os").environ.get("NUMBA_NUM_THREADS"))
    assert set(sizes.values()) == {str(max(1, len(os.sched_getaffinity(0)) // 2))}


def test_without_a_client_the_processs_own_client_is_used(client):
    # the module's client is this process's default: no second cluster is started for the call
    with cluster_client() as found:
        assert found is client
    with cluster_client(n_workers=1) as fresh:  # a size asked for: a cluster of that size
        assert fresh is not client and len(fresh.scheduler_info()["workers"]) == 1
