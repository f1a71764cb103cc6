"""PPL-p% bisection: the crossing of a known perplexity curve, tolerances and the record."""

import numpy as np

import refimpl

qs = refimpl.quantization_sparsity


def test_result_is_within_tol_below_the_exact_crossing():
    # PPL(c) = 10·exp(0.05 c²): the budget 1 + p/100 is crossed at c* = sqrt(log(1.02)/0.05)
    crossing = np.sqrt(np.log(1.02) / 0.05)
    c, sparsity, history, iterations, converged = qs.ppl_target_bisection(
        lambda c: (10.0 * np.exp(0.05 * c * c), 0.8 * c), p=2.0
    )
    assert bool(converged) and int(iterations) == 10
    assert crossing - 1e-3 <= float(c) < crossing
    assert float(sparsity) == 0.8 * float(c)
    # the record: every step's c, its ratio, and the lower end after the step
    assert history.shape == (10, 3)
    np.testing.assert_allclose(history[:, 1], np.exp(0.05 * history[:, 0] ** 2), rtol=1e-15)
    assert history[-1, 2] == float(c)
    assert np.all((history[:, 1] < 1.02) == (history[:, 2] == history[:, 0]))


def test_released_tolerance_takes_twenty_steps():
    c, _, _, iterations, converged = qs.ppl_target_bisection(lambda c: (10.0 * (1 + 0.03 * c), c), tol=1e-6)
    assert int(iterations) == 20 and bool(converged)
    assert 1 / 3 - 1e-6 <= float(c) < 1 / 3


def test_budget_never_met_gives_zero_and_always_met_tends_to_one():
    c, *_ = qs.ppl_target_bisection(lambda c: (10.0 + 5.0 * (c > 0), c))
    assert float(c) == 0.0
    c, *_ = qs.ppl_target_bisection(lambda c: (7.0, c))
    assert float(c) == 1 - 2.0**-10


def test_max_iter_caps_the_steps_and_reports_not_converged():
    c, _, history, iterations, converged = qs.ppl_target_bisection(
        lambda c: (10.0 * (1 + 0.03 * c), c), max_iter=3
    )
    assert int(iterations) == 3 and not bool(converged)
    assert float(c) == 0.25 and history[:, 0].tolist() == [0.5, 0.25, 0.375]
