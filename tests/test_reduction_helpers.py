"""``reduce_rows`` and ``row_weights``: the mean/sum/none reduction shared by the losses."""

import numpy as np
import pytest

from refimpl.authoring import reduce_rows, row_weights

PER_ROW = np.array([1.0, 2.0, 4.5, -0.5])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("reduction", "expected"), [("mean", 1.75), ("sum", 7.0)])
def test_reduce_rows_mean_and_sum_are_0d_arrays_in_dtype(dtype, reduction, expected):
    loss = reduce_rows(PER_ROW, reduction, dtype)
    assert isinstance(loss, np.ndarray)
    assert loss.shape == ()
    assert loss.dtype == dtype
    assert float(loss) == expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reduce_rows_none_keeps_the_rows(dtype):
    loss = reduce_rows(PER_ROW, "none", dtype)
    assert loss.shape == (4,)
    assert loss.dtype == dtype
    np.testing.assert_array_equal(loss, PER_ROW.astype(dtype))


def test_reduce_rows_runs_over_every_entry_and_casts_after_reducing():
    per_entry = np.array([[1.0, 2.0], [3.0, 1e-9]])
    np.testing.assert_array_equal(reduce_rows(per_entry, "sum", np.float32), np.float32(6.000000001))
    assert reduce_rows(per_entry, "mean", np.float64) == per_entry.mean()
    assert reduce_rows(per_entry, "none", np.float32).shape == (2, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_weights(dtype):
    g = np.asarray(3.0, dtype=dtype)
    mean = row_weights(g, "mean", 4)
    total = row_weights(g, "sum", 4)
    for w in (mean, total):
        assert w.shape == (4,)
        assert w.dtype == dtype
    np.testing.assert_array_equal(mean, np.full(4, g / dtype(4), dtype=dtype))
    np.testing.assert_array_equal(total, np.full(4, 3.0, dtype=dtype))
    g_rows = np.array([1.0, -2.0, 0.5, 4.0], dtype=dtype)
    none = row_weights(g_rows, "none", 4)
    assert none.shape == (4,)
    assert none.dtype == dtype
    assert none.flags.c_contiguous
    np.testing.assert_array_equal(none, g_rows)


def test_row_weights_reshapes_a_row_cotangent_to_batch():
    g = np.arange(6.0).reshape(2, 3)  # reduction="none" over a (2, 3) loss: one weight per entry
    np.testing.assert_array_equal(row_weights(g, "none", 6), np.arange(6.0))
    np.testing.assert_array_equal(row_weights(np.float64(2.0), "sum", 3), [2.0, 2.0, 2.0])
