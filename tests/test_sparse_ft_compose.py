"""Composable sparse fine-tunings: hand values, commutativity, additivity, removal, nnz
bookkeeping, whole models, and the official in-place apply/revert."""

import numpy as np

from refimpl.merging import sparse_ft_compose


def sparse(rng, shape, density, dtype=np.float64):
    values = rng.standard_normal(shape)
    return np.where(rng.random(shape) < density, values, 0.0).astype(dtype)


def test_language_plus_task_by_hand():
    theta0 = np.array([[1.0, 2.0], [3.0, 4.0]])
    language = np.array([[0.5, 0.0], [0.0, 0.0]])
    task = np.array([[0.25, 0.0], [0.0, -4.0]])
    np.testing.assert_array_equal(
        sparse_ft_compose(theta0, np.stack([language, task], axis=-1)), [[1.75, 2.0], [3.0, 0.0]]
    )


def test_commutative_and_additive():
    rng = np.random.default_rng(0)
    theta0 = rng.standard_normal((20, 30))
    a, b = sparse(rng, theta0.shape, 0.2), sparse(rng, theta0.shape, 0.2)
    ab = sparse_ft_compose(theta0, np.stack([a, b], axis=-1))
    ba = sparse_ft_compose(theta0, np.stack([b, a], axis=-1))
    np.testing.assert_allclose(ab, ba, rtol=0, atol=4e-16 * np.abs(ab).max())
    one_then_other = sparse_ft_compose(sparse_ft_compose(theta0, a[..., None]), b[..., None])
    np.testing.assert_array_equal(ab, one_then_other)  # the same order of additions: exact
    np.testing.assert_allclose(ab, theta0 + a + b, rtol=1e-15)


def test_disjoint_supports_commute_exactly():
    rng = np.random.default_rng(1)
    theta0 = rng.standard_normal(100).astype(np.float32)
    support = rng.random(100) < 0.5
    a = np.where(support, rng.standard_normal(100), 0).astype(np.float32)
    b = np.where(~support, rng.standard_normal(100), 0).astype(np.float32)
    np.testing.assert_array_equal(
        sparse_ft_compose(theta0, np.stack([a, b], -1)), sparse_ft_compose(theta0, np.stack([b, a], -1))
    )


def test_subtracting_an_sft_removes_it_up_to_rounding_and_untouched_entries_are_exact():
    rng = np.random.default_rng(2)
    theta0 = rng.standard_normal(500)
    language, task = sparse(rng, 500, 0.05), sparse(rng, 500, 0.05)
    both = sparse_ft_compose(theta0, np.stack([language, task], -1))
    removed = sparse_ft_compose(both, -language[..., None])  # the official SFT.revert
    only_task = sparse_ft_compose(theta0, task[..., None])
    np.testing.assert_allclose(removed, only_task, rtol=0, atol=1e-15 * 8)
    untouched = (language == 0) & (task == 0)
    np.testing.assert_array_equal(both[untouched], theta0[untouched])
    # nnz bookkeeping: θ − θ₀ is non-zero at most on the union of the supports
    assert np.count_nonzero(both - theta0) <= np.count_nonzero((language != 0) | (task != 0))


def test_whole_models_as_state_dicts_and_the_official_in_place_apply():
    rng = np.random.default_rng(3)
    theta0 = {
        "w": rng.standard_normal((4, 3)).astype(np.float32),
        "b": rng.standard_normal(3).astype(np.float32),
        "steps": np.array(7),
    }
    sfts = [
        {k: (sparse(rng, v.shape, 0.4, np.float32) if v.dtype.kind == "f" else v) for k, v in theta0.items()}
        for _ in range(2)
    ]
    composed = sparse_ft_compose(theta0, sfts)
    for name in ("w", "b"):
        official = theta0[name].copy()
        for sft in sfts:  # SFT.apply: param_tensor += diff, one SFT after the other
            official += sft[name]
        np.testing.assert_array_equal(composed[name], official)
        assert composed[name].dtype == np.float32
    assert int(composed["steps"]) == 7  # integer buffers copied from θ₀
