"""Weight matching: a planted permutation recovered exactly, a non-decreasing objective, one
hidden layer solved in one sweep (against brute force), the official loop transcribed, the
permuted network computing the same function, and the interpolation's endpoints."""

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import refimpl
from refimpl.merging import (
    apply_permutation,
    interpolate_params,
    matching_objective,
    permute_mlp,
    weight_matching,
)


def _mlp(rng, widths):
    weights = [rng.standard_normal((widths[i + 1], widths[i])) for i in range(len(widths) - 1)]
    biases = [rng.standard_normal(widths[i + 1]) for i in range(len(widths) - 1)]
    return weights, biases


def _forward(weights, biases, x):
    for layer, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
        x = x @ weight.T + bias
        if layer < len(weights) - 1:
            x = np.maximum(x, 0.0)
    return x


def _random_permutation(rng, weights):
    return np.concatenate([rng.permutation(w.shape[0]) for w in weights[:-1]])


def test_planted_permutation_is_recovered_exactly():
    rng = np.random.default_rng(0)
    weights_a, biases_a = _mlp(rng, [5, 8, 7, 6, 3])
    planted = _random_permutation(rng, weights_a)
    weights_b, biases_b = permute_mlp(weights_a, biases_a, planted)  # B = π(A)
    order = np.array([rng.permutation(3) for _ in range(100)])
    permutation, objective = weight_matching(weights_a, biases_a, weights_b, biases_b, order)
    weights, biases = permute_mlp(weights_b, biases_b, permutation)
    for mine, theirs in zip(weights + biases, weights_a + biases_a, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    total = sum(float(np.sum(w * w)) for w in weights_a + biases_a)
    assert objective[-1] == pytest.approx(total, rel=1e-13)  # J = ‖θ_A‖² at the match


def test_objective_never_decreases_and_is_the_alignment_of_the_result():
    rng = np.random.default_rng(1)
    for trial in range(5):
        weights_a, biases_a = _mlp(rng, [4, 9, 9, 9, 2])
        weights_b, biases_b = _mlp(rng, [4, 9, 9, 9, 2])
        order = np.array([rng.permutation(3) for _ in range(3)])
        permutation, objective = weight_matching(weights_a, biases_a, weights_b, biases_b, order)
        assert np.all(np.diff(objective) >= -1e-12 * np.abs(objective).max())
        assert objective[-1] > objective[0]  # independent models: the identity is not optimal
        assert (objective.shape[0] - 1) % 3 == 0  # 1 + sweeps·H values
        final = matching_objective(weights_a, biases_a, weights_b, biases_b, permutation)
        assert objective[-1] == pytest.approx(final, rel=1e-14)
        # J = (‖θ_A‖² + ‖π(θ_B)‖² − ‖θ_A − π(θ_B)‖²)/2
        weights, biases = permute_mlp(weights_b, biases_b, permutation)
        distance = sum(
            float(np.sum((a - b) ** 2)) for a, b in zip(weights_a + biases_a, weights + biases, strict=True)
        )
        norms = sum(float(np.sum(v * v)) for v in weights_a + biases_a + weights_b + biases_b)
        assert final == pytest.approx((norms - distance) / 2, rel=1e-12)


def test_one_hidden_layer_converges_in_one_sweep_to_the_brute_force_optimum():
    rng = np.random.default_rng(2)
    weights_a, biases_a = _mlp(rng, [3, 6, 2])
    weights_b, biases_b = _mlp(rng, [3, 6, 2])
    permutation, objective = weight_matching(weights_a, biases_a, weights_b, biases_b, np.array([[0]]))
    assert objective.shape == (3,) and objective[1] == objective[2]  # the second sweep only confirms
    best = max(
        itertools.permutations(range(6)),
        key=lambda p: matching_objective(weights_a, biases_a, weights_b, biases_b, np.array(p)),
    )
    np.testing.assert_array_equal(permutation, best)


def test_max_iter_bounds_the_sweeps():
    rng = np.random.default_rng(3)
    weights_a, biases_a = _mlp(rng, [3, 7, 7, 7, 7, 2])
    weights_b, biases_b = _mlp(rng, [3, 7, 7, 7, 7, 2])
    order = np.array([[0, 1, 2, 3]])
    _, objective = weight_matching(weights_a, biases_a, weights_b, biases_b, order, max_iter=1)
    assert objective.shape == (5,)
    _, full = weight_matching(weights_a, biases_a, weights_b, biases_b, order)
    np.testing.assert_array_equal(full[:5], objective)


def _official_weight_matching(params_a, params_b, orders, max_iter=100):
    """samuela/git-re-basin's ``weight_matching`` for ``mlp_permutation_spec``, transcribed to NumPy
    (Flax layout: ``Dense_i/kernel`` is (in, out)); ``orders[i]`` replaces ``random.permutation``."""
    hidden = len(orders[0])
    perm_to_axes = {
        f"P_{i}": [(f"Dense_{i}/kernel", 1), (f"Dense_{i}/bias", 0), (f"Dense_{i + 1}/kernel", 0)]
        for i in range(hidden)
    }
    axes_to_perm = {"Dense_0/kernel": (None, "P_0"), f"Dense_{hidden}/kernel": (f"P_{hidden - 1}", None)}
    axes_to_perm.update({f"Dense_{i}/kernel": (f"P_{i - 1}", f"P_{i}") for i in range(1, hidden)})
    axes_to_perm.update({f"Dense_{i}/bias": (f"P_{i}",) for i in range(hidden)})
    axes_to_perm[f"Dense_{hidden}/bias"] = (None,)

    def get_permuted_param(perm, k, params, except_axis=None):
        w = params[k]
        for axis, p in enumerate(axes_to_perm[k]):
            if axis != except_axis and p is not None:
                w = np.take(w, perm[p], axis=axis)
        return w

    perm_sizes = {p: params_a[axes[0][0]].shape[axes[0][1]] for p, axes in perm_to_axes.items()}
    perm = {p: np.arange(n) for p, n in perm_sizes.items()}
    perm_names = list(perm.keys())
    for iteration in range(max_iter):
        progress = False
        for p_ix in orders[iteration % len(orders)]:
            p = perm_names[p_ix]
            n = perm_sizes[p]
            A = np.zeros((n, n))  # noqa: N806
            for wk, axis in perm_to_axes[p]:
                w_a = np.moveaxis(params_a[wk], axis, 0).reshape((n, -1))
                w_b = np.moveaxis(get_permuted_param(perm, wk, params_b, except_axis=axis), axis, 0).reshape(
                    (n, -1)
                )
                A += w_a @ w_b.T  # noqa: N806
            ri, ci = linear_sum_assignment(A, maximize=True)
            old_l = np.vdot(A, np.eye(n)[perm[p]])
            new_l = np.vdot(A, np.eye(n)[ci, :])
            progress = progress or new_l > old_l + 1e-12
            perm[p] = np.array(ci)
        if not progress:
            break
    return np.concatenate([perm[f"P_{i}"] for i in range(hidden)])


def test_the_permutations_equal_the_official_loop_with_the_same_sweep_orders():
    rng = np.random.default_rng(4)
    for trial in range(4):
        widths = [3, 6, 5, 6, 2]
        weights_a, biases_a = _mlp(rng, widths)
        weights_b, biases_b = _mlp(rng, widths)
        orders = np.array([rng.permutation(3) for _ in range(100)])

        def flax(weights, biases):
            params = {f"Dense_{i}/kernel": w.T for i, w in enumerate(weights)}
            params.update({f"Dense_{i}/bias": b for i, b in enumerate(biases)})
            return params

        official = _official_weight_matching(flax(weights_a, biases_a), flax(weights_b, biases_b), orders)
        permutation, _ = weight_matching(weights_a, biases_a, weights_b, biases_b, orders)
        np.testing.assert_array_equal(permutation, official)


def test_the_permuted_network_computes_the_same_function():
    rng = np.random.default_rng(5)
    weights, biases = _mlp(rng, [4, 10, 8, 3])
    permutation = _random_permutation(rng, weights)
    permuted_weights, permuted_biases = permute_mlp(weights, biases, permutation)
    assert not np.array_equal(permuted_weights[0], weights[0])
    x = rng.standard_normal((20, 4))
    np.testing.assert_allclose(
        _forward(permuted_weights, permuted_biases, x), _forward(weights, biases, x), rtol=1e-13, atol=1e-13
    )


def test_singular_values_are_permutation_invariant():
    rng = np.random.default_rng(6)
    weight, bias = rng.standard_normal((6, 4)), rng.standard_normal(6)
    permuted, _ = apply_permutation(weight, bias, rng.permutation(6), rng.permutation(4))
    np.testing.assert_allclose(
        np.linalg.svd(permuted, compute_uv=False), np.linalg.svd(weight, compute_uv=False), rtol=1e-13
    )


def test_apply_permutation_by_hand_and_without_permutations():
    weight, bias = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), np.array([7.0, 8.0])
    permuted_weight, permuted_bias = apply_permutation(weight, bias, np.array([1, 0]), np.array([2, 0, 1]))
    np.testing.assert_array_equal(permuted_weight, [[6.0, 4.0, 5.0], [3.0, 1.0, 2.0]])
    np.testing.assert_array_equal(permuted_bias, [8.0, 7.0])
    copy_weight, copy_bias = apply_permutation(weight, bias)
    np.testing.assert_array_equal(copy_weight, weight)
    assert copy_weight is not weight and not np.shares_memory(copy_weight, weight)
    with pytest.raises(refimpl.InputError, match="1 repeated"):
        apply_permutation(weight, bias, np.array([1, 1]))


def test_interpolation_endpoints_are_exact_and_the_midpoint_is_the_mean():
    rng = np.random.default_rng(7)
    theta_a, theta_b = (
        rng.standard_normal((4, 5)).astype(np.float32),
        rng.standard_normal((4, 5)).astype(np.float32),
    )
    np.testing.assert_array_equal(interpolate_params(theta_a, theta_b, lam=0.0), theta_a)
    np.testing.assert_array_equal(interpolate_params(theta_a, theta_b, lam=1.0), theta_b)
    np.testing.assert_array_equal(
        interpolate_params(theta_a, theta_b), np.float32(0.5) * theta_a + np.float32(0.5) * theta_b
    )
    with pytest.raises(refimpl.InputError, match="argument 'lam'"):
        interpolate_params(theta_a, theta_b, lam=1.5)


def test_matched_midpoint_is_closer_to_both_models_than_the_naive_one():
    rng = np.random.default_rng(8)
    weights_a, biases_a = _mlp(rng, [4, 12, 3])
    noise = [0.1 * rng.standard_normal(w.shape) for w in weights_a + biases_a]
    shifted = [v + e for v, e in zip(weights_a + biases_a, noise, strict=True)]
    weights_b, biases_b = permute_mlp(shifted[:2], shifted[2:], _random_permutation(rng, weights_a))
    permutation, _ = weight_matching(weights_a, biases_a, weights_b, biases_b, np.array([[0]]))
    aligned_weights, aligned_biases = permute_mlp(weights_b, biases_b, permutation)
    for mine, expected in zip(aligned_weights + aligned_biases, shifted, strict=True):
        np.testing.assert_array_equal(mine, expected)  # the shuffle is undone despite the noise
    merged = [
        interpolate_params(a, b)
        for a, b in zip(weights_a + biases_a, aligned_weights + aligned_biases, strict=True)
    ]
    naive = [
        interpolate_params(a, b) for a, b in zip(weights_a + biases_a, weights_b + biases_b, strict=True)
    ]
    x = rng.standard_normal((50, 4))
    target = _forward(weights_a, biases_a, x)
    error = lambda params: float(np.mean((_forward(params[:2], params[2:], x) - target) ** 2))  # noqa: E731
    assert error(merged) < 0.1 * error(naive)
    # the matching aligns the top singular vectors of the hidden layer's weights
    top = lambda w: np.linalg.svd(w)[0][:, 0]  # noqa: E731
    assert abs(top(weights_a[0]) @ top(aligned_weights[0])) > 0.95  # 0.987 here
    assert abs(top(weights_a[0]) @ top(weights_b[0])) < 0.9


def test_bad_sweep_orders_are_refused():
    rng = np.random.default_rng(9)
    weights, biases = _mlp(rng, [2, 3, 3, 1])
    with pytest.raises(refimpl.InputError, match="one per hidden layer"):
        weight_matching(weights, biases, weights, biases, np.array([[0]]))
    with pytest.raises(refimpl.InputError, match=r"row 0 = \[0, 0\]"):
        weight_matching(weights, biases, weights, biases, np.array([[0, 0]]))
    with pytest.raises(refimpl.InputError, match="at least 2 layers"):
        weight_matching(weights[:1], biases[:1], weights[:1], biases[:1], np.zeros((1, 1), dtype=np.int64))
