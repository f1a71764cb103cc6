"""Layer-adaptive pruning by dynamic programming: brute force, the tie rule, monotonicity in the
target, one-layer exactness and the additivity the dynamic program relies on."""

import itertools

import numpy as np
import pytest

import refimpl
from refimpl.quantization_sparsity import layer_adaptive_pruning_dp, multiple_choice_knapsack


def _brute_force(distortion, levels, target):
    """Every allocation: the least distortion (summed in layer order), then the smallest total,
    then the lowest index in the last layer, the one before, and so on."""
    layers, options = distortion.shape
    best = None
    for choice in itertools.product(range(options), repeat=layers):
        if any(np.isinf(distortion[l, k]) for l, k in enumerate(choice)):
            continue
        total = sum(int(levels[l, k]) for l, k in enumerate(choice))
        if total < target:
            continue
        cost = 0.0
        for l, k in enumerate(choice):
            cost = cost + float(distortion[l, k])
        key = (cost, total, tuple(reversed(choice)))
        if best is None or key < best[0]:
            best = (key, list(choice))
    (cost, total, _), choice = best
    return choice, cost, total


@pytest.mark.parametrize("seed", range(16))
def test_dynamic_program_equals_brute_force(seed):
    rng = np.random.default_rng(100 + seed)
    layers, options = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    levels = np.sort(rng.integers(0, 7, size=(layers, options)), axis=1)
    if seed % 3 == 0:  # integer distortions: exact ties everywhere
        distortion = rng.integers(0, 3, size=(layers, options)).astype(float)
    else:
        distortion = np.cumsum(rng.exponential(size=(layers, options)), axis=1)
    if seed % 4 == 1 and options > 1:  # a padded (missing) option
        distortion[0, -1] = np.inf
    finite_max = np.where(np.isfinite(distortion), levels, 0).max(axis=1).sum()
    target = int(rng.integers(0, finite_max + 1))
    choice, total, pruned = layer_adaptive_pruning_dp(distortion, levels, target=target)
    expected_choice, expected_cost, expected_total = _brute_force(distortion, levels, target)
    assert choice.tolist() == expected_choice
    assert float(total) == expected_cost
    assert int(pruned) == expected_total >= target
    assert choice.dtype == np.int64 and total.dtype == distortion.dtype


def test_known_value_and_ties():
    distortion = np.array([[0.0, 1.0, 5.0], [0.0, 2.0, 3.0]])
    levels = np.array([[0, 1, 2], [0, 1, 2]])
    # (1, 1) and (0, 2) cost 3: the lowest index in the last layer, 1
    choice, total, pruned = layer_adaptive_pruning_dp(distortion, levels, target=2)
    assert choice.tolist() == [1, 1] and float(total) == 3.0 and int(pruned) == 2
    # target 3: (1, 2) costs 4, (2, 1) 7, (2, 2) 8
    choice, total, pruned = layer_adaptive_pruning_dp(distortion, levels, target=3)
    assert choice.tolist() == [1, 2] and float(total) == 4.0 and int(pruned) == 3
    # equal cost at totals 2 and 3: the smaller total
    choice, total, pruned = layer_adaptive_pruning_dp(np.zeros((2, 2)), np.array([[0, 1], [0, 2]]), target=2)
    assert choice.tolist() == [0, 1] and int(pruned) == 2


def test_optimum_is_monotone_in_the_target():
    rng = np.random.default_rng(1)
    levels = np.cumsum(rng.integers(1, 4, size=(6, 5)), axis=1)  # strictly increasing menus
    distortion = np.cumsum(rng.exponential(size=(6, 5)), axis=1)
    totals = [
        float(layer_adaptive_pruning_dp(distortion, levels, target=t)[1])
        for t in range(levels[:, -1].sum() + 1)
    ]
    assert totals == sorted(totals)
    assert totals[0] == float(distortion[:, 0].sum())  # T = 0: the least distortion per layer
    assert totals[-1] == pytest.approx(float(distortion[:, -1].sum()), rel=1e-15)  # T = max: all pruned


def test_one_layer_is_the_least_distortion_among_levels_reaching_the_target():
    distortion = np.array([[0.0, 0.3, 0.2, 0.9]])
    levels = np.array([[0, 2, 3, 5]])
    for target, expected in ((0, 0), (1, 2), (3, 2), (4, 3), (5, 3)):
        choice, total, _ = layer_adaptive_pruning_dp(distortion, levels, target=target)
        assert choice.tolist() == [expected] and float(total) == distortion[0, expected]


def test_float32_input_gives_float32_total_from_a_float64_sum():
    distortion = np.array([[0.1, 0.2], [0.3, 0.7]], dtype=np.float32)
    choice, total, _ = layer_adaptive_pruning_dp(distortion, np.array([[0, 1], [0, 1]]), target=1)
    assert total.dtype == np.float32 and choice.tolist() == [1, 0]
    np.testing.assert_allclose(total, np.float64(np.float32(0.2)) + np.float64(np.float32(0.3)), rtol=1e-7)


def test_refuses_unreachable_targets_and_layers_without_levels():
    distortion, levels = np.array([[0.0, 1.0], [0.0, 2.0]]), np.array([[0, 2], [0, 3]])
    with pytest.raises(refimpl.InputError, match="at most .* = 5"):
        layer_adaptive_pruning_dp(distortion, levels, target=6)
    with pytest.raises(refimpl.InputError, match="none in layer 1"):
        layer_adaptive_pruning_dp(np.array([[0.0, 1.0], [np.inf, np.inf]]), levels, target=0)
    with pytest.raises(refimpl.InputError, match="'levels'"):
        layer_adaptive_pruning_dp(distortion, -levels, target=0)


def _prune_smallest(weight, count):
    """The weight with its ``count`` smallest-magnitude entries set to 0 (stable order)."""
    order = np.argsort(np.abs(weight), axis=None, kind="stable")
    pruned = weight.copy().reshape(-1)
    pruned[order[:count]] = 0.0
    return pruned.reshape(weight.shape)


def test_measured_distortions_of_one_layer_are_exact_and_add_up_for_small_pruning():
    """The paper's additivity on a deep linear net f(x) = W3 W2 W1 x: pruning one layer alone
    gives exactly its measured δ_l; pruning several, the cross terms are of higher order or
    average out, so the summed δ_l predict the joint distortion to within a few percent."""
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal((32, 32)) / np.sqrt(32) for _ in range(3)]
    x = rng.standard_normal((32, 2000))

    def output(ws):
        return ws[2] @ ws[1] @ ws[0] @ x

    full = output(weights)

    def distortion_of(ws):
        return float(np.mean(np.sum((full - output(ws)) ** 2, axis=0)))

    levels = np.array([[0, 16, 32, 48]] * 3)  # up to 5% of each layer's 1024 weights
    menus = np.array(
        [
            [
                distortion_of([_prune_smallest(w, s) if m == l else w for m, w in enumerate(weights)])
                for s in levels[l]
            ]
            for l in range(3)
        ]
    )
    choice, predicted, pruned = layer_adaptive_pruning_dp(menus, levels, target=64)
    joint = distortion_of([_prune_smallest(w, int(levels[l, choice[l]])) for l, w in enumerate(weights)])
    assert int(pruned) >= 64
    np.testing.assert_allclose(joint, float(predicted), rtol=0.1)
    one_layer, total, _ = layer_adaptive_pruning_dp(menus[:1], levels[:1], target=20)
    alone = [_prune_smallest(weights[0], int(levels[0, one_layer[0]])), weights[1], weights[2]]
    assert int(levels[0, one_layer[0]]) >= 20 and float(total) == distortion_of(alone)


def test_the_shared_program_is_the_ops_dynamic_program():
    distortion = np.array([[0.0, 0.4, 0.6], [0.0, 0.1, 0.9]])
    levels = np.array([[0, 1, 3], [0, 2, 3]])
    choice, total, pruned = multiple_choice_knapsack(distortion, levels, 3)
    op_choice, op_total, op_pruned = layer_adaptive_pruning_dp(distortion, levels, target=3)
    assert choice.tolist() == op_choice.tolist() == [1, 1]
    assert total == float(op_total) == 0.5 and pruned == int(op_pruned) == 3


def test_a_budget_grid_too_large_for_the_dynamic_program_is_refused_not_allocated():
    import refimpl

    distortion = np.array([[0.0, 1.0], [0.0, 2.0]])
    levels = np.array([[0, 2**30], [0, 1]])
    with pytest.raises(refimpl.InputError, match=r"argument 'levels'.*coarser grid"):
        refimpl.get("layer_adaptive_pruning_dp")(distortion, levels, target=1)
