"""The Expert Merging example: the hand-chained gradient is right and the learned merge beats averaging."""

import numpy as np
import pytest

from refimpl.examples import expert_merging as example


@pytest.fixture(scope="module")
def results():
    return example.main()


@pytest.fixture(scope="module")
def setup():
    base, experts, calibration, _ = example.make_setup(0)
    return base, example.stacked_task_vectors(base, experts), experts, calibration


def test_chained_gradient_matches_finite_differences_of_the_objective(setup):
    base, taus, experts, calibration = setup
    rng = np.random.default_rng(5)
    a = {name: rng.standard_normal((2, example.CHUNKS[name])) for name in example.NAMES}
    _, gradient, _ = example.objective_and_gradient(a, base, taus, experts, calibration)
    direction = {name: rng.standard_normal(a[name].shape) for name in example.NAMES}

    def objective(t):
        shifted = {name: a[name] + t * direction[name] for name in example.NAMES}
        return example.objective_and_gradient(shifted, base, taus, experts, calibration)[0]

    step = 1e-6
    directional = sum(float((gradient[name] * direction[name]).sum()) for name in example.NAMES)
    assert (objective(step) - objective(-step)) / (2 * step) == pytest.approx(directional, rel=1e-7)


def test_all_coefficients_at_one_reproduce_task_arithmetic_and_each_expert_alone_is_exact(setup):
    base, taus, experts, calibration = setup
    only_a = {
        name: np.array([[40.0] * example.CHUNKS[name], [-40.0] * example.CHUNKS[name]])
        for name in example.NAMES
    }
    losses = example.alignment_losses(only_a, base, taus, experts, calibration)
    assert losses[0] < 1e-12  # α_A = 1, α_B = 0: the merged model is expert A (up to e^-40)
    assert losses[1] > 1.0


def test_the_objective_decreases_during_learning(results):
    assert results["objective_last"] < results["objective_first"] - 5  # 22.60 → 16.93
    assert results["largest_objective_increase"] < 1e-9


def test_learned_coefficients_beat_uniform_averaging_on_both_tasks(results):
    for split in ("calibration", "held_out"):
        for task in "AB":
            learned = results[f"learned_{split}_task_{task}"]
            uniform = results[f"uniform_{split}_task_{task}"]
            assert learned < 0.35 * uniform, (split, task)  # measured ratios 0.12 to 0.29


def test_learned_coefficients_also_beat_the_best_single_alpha_tuned_on_the_calibration_set(results):
    """Task arithmetic with one α for everything, the best of a grid: learned wins on the sum.

    (Per task it also wins at this seed, by 0.44 to 0.65×; the objective is the SUM over the
    tasks, so at other seeds one task can end slightly above the tuned single α.)
    """
    assert 0.5 < results["best_equal_alpha"] < 1.0  # 0.85: averaging (0.5) under-uses both experts
    for split in ("calibration", "held_out"):
        learned = results[f"learned_{split}_task_A"] + results[f"learned_{split}_task_B"]
        tuned = results[f"tuned_{split}_task_A"] + results[f"tuned_{split}_task_B"]
        assert learned < 0.75 * tuned  # measured 0.55 (calibration), 0.55 (held out)
    assert results["learned_held_out_task_A"] < 0.8 * results["tuned_held_out_task_A"]  # 0.65
    assert results["learned_held_out_task_B"] < 0.8 * results["tuned_held_out_task_B"]  # 0.44


def test_learned_alphas_stay_in_the_unit_interval_and_move_from_the_init(results):
    assert 0 < results["learned_alpha_min"] and results["learned_alpha_max"] < 1
    assert results["learned_alpha_max"] > 0.9  # from the official init 0.1
