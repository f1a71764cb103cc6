"""The Numba backend's two builds of each row-parallel kernel (``refimpl_numba._jit``)."""

import numpy as np
import pytest

import refimpl
from refimpl_conformance import plan, run
from refimpl_numba import _jit
from refimpl_numba.layers.layer_norm import _backward_rows, _forward_rows

NUMBA = refimpl.backend("numba")


@pytest.fixture
def mode():
    previous = _jit.parallel_mode()
    yield _jit.set_parallel_mode
    _jit.set_parallel_mode(previous)


def test_the_two_builds_are_cached_under_different_names():
    assert _forward_rows.serial.py_func.__qualname__ == "_forward_rows"
    assert _forward_rows.parallel.py_func.__qualname__ == "_forward_rows__parallel"
    assert _forward_rows.parallel.targetoptions.get("parallel") is True
    assert not _forward_rows.serial.targetoptions.get("parallel", False)


def test_auto_takes_the_parallel_build_only_for_large_inputs(mode, monkeypatch):
    mode("auto")
    monkeypatch.setattr(_jit.numba.config, "NUMBA_NUM_THREADS", 2)
    calls = []

    class Spy:
        def __init__(self, label):
            self.label = label

        def __call__(self, *args):
            calls.append(self.label)

    kernel = _jit.ParallelKernel(lambda x: None, {})
    kernel.serial, kernel._parallel = Spy("serial"), Spy("parallel")
    kernel(np.zeros(_jit.PARALLEL_MIN_ELEMENTS - 1), 3.0)
    kernel(np.zeros(_jit.PARALLEL_MIN_ELEMENTS // 2), np.zeros(_jit.PARALLEL_MIN_ELEMENTS // 2))
    mode("never")
    kernel(np.zeros(_jit.PARALLEL_MIN_ELEMENTS))
    mode("always")
    kernel(np.zeros(1))
    assert calls == ["serial", "parallel", "serial", "parallel"]
    monkeypatch.setattr(_jit.numba.config, "NUMBA_NUM_THREADS", 1)
    kernel(np.zeros(1))
    assert calls[-1] == "serial"  # one thread: never the parallel build


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="expected one of auto, always, never, got 'fast'"):
        _jit.set_parallel_mode("fast")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_both_builds_give_the_same_layer_norm(mode, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 257)).astype(dtype)  # above the size threshold
    gamma, beta = rng.standard_normal(257).astype(dtype), rng.standard_normal(257).astype(dtype)
    g_y = rng.standard_normal(x.shape).astype(dtype)
    results = {}
    for build in ("never", "always"):
        mode(build)
        y, pullback = refimpl.vjp("layer_norm", x, gamma, beta, backend=NUMBA)
        results[build] = (y, *pullback(g_y))
    for serial, parallel in zip(results["never"], results["always"], strict=True):
        np.testing.assert_array_equal(serial, parallel)  # rows are split, each row's arithmetic is not


def test_the_kernels_are_called_through_both_builds():
    assert isinstance(_forward_rows, _jit.ParallelKernel) and isinstance(_backward_rows, _jit.ParallelKernel)


def test_a_check_in_two_processes_reports_what_one_process_does():
    ops = ["layer_norm", "stablemax_cross_entropy", "lion_step"]
    one = run(plan(backends=["numba"], ops=ops, seeds=[0]), jobs=1)
    two = run(plan(backends=["numba"], ops=ops, seeds=[0]), jobs=2)
    assert one.ok and two.ok
    assert [(r.op, r.backend, r.dtype, r.sample, r.check, r.status) for r in one.results] == [
        (r.op, r.backend, r.dtype, r.sample, r.check, r.status) for r in two.results
    ]
    # the workers' BLAS runs on fewer threads, which may move the reference's last bits
    np.testing.assert_allclose(
        [r.max_abs for r in two.results], [r.max_abs for r in one.results], rtol=1e-3, atol=1e-14
    )


@pytest.mark.slow
@pytest.mark.parametrize("op_name", sorted(op.name for op in refimpl.ops() if NUMBA.supports(op)))
def test_every_kernel_passes_the_conformance_check_in_its_parallel_build(mode, op_name):
    mode("always")
    report = run(plan(backends=["numba"], ops=[op_name], seeds=[0, 1]))
    assert report.ok, [r for r in report.results if not r.passed][:3]


def test_the_kernel_cache_is_keyed_by_every_file_of_the_package(tmp_path):
    from refimpl_numba import _cache

    locator = type(_forward_rows.serial._cache._impl.locator)
    assert locator.__name__.startswith("RefimplPackage")
    assert _forward_rows.serial._cache._impl.locator.get_source_stamp()[1] == _cache.source_digest()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    before = _cache.source_digest(tmp_path)
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")  # a helper edited: every kernel recompiles
    assert _cache.source_digest(tmp_path) != before


@pytest.mark.parametrize("name", ["layer_norm", "householder_activation"])
def test_a_backward_summed_over_rows_has_the_same_bits_with_any_thread_count(name):
    import numba

    from refimpl_conformance import cases_for

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one Numba thread here: nothing to compare")
    # 300 rows: the partial sums used to be one per 1/(4·threads) of the rows (4 with one
    # thread, 8 with two: other bits); now 3 blocks of 128 rows whatever the threads
    sample = cases_for(name).random_sample(0, {"B": 300, "D": 7})
    backend = refimpl.backend("numba")
    before = numba.get_num_threads()
    grads = []
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            outputs, pullback = refimpl.vjp(name, *sample.args, backend=backend, **sample.kwargs)
            grads.append(pullback(np.random.default_rng(1).standard_normal(np.shape(outputs))))
    finally:
        numba.set_num_threads(before)
    for one, two in zip(*grads, strict=True):
        np.testing.assert_array_equal(one, two)
    assert _jit.reduction_chunks(300) == 3 and _jit.reduction_chunks(10_000) == 64
