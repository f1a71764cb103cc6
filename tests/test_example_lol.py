"""The LoL example: the hand-chained gradient is right and a few steps lower the objective."""

import numpy as np
import pytest

from refimpl.examples import lol as example


@pytest.fixture(scope="module")
def results():
    return example.main()


def test_gradient_steps_decrease_the_objective_at_every_step(results):
    assert results["largest_objective_increase"] < 0
    assert results["objective_last"] < results["objective_first"] - 0.3


def test_comparative_term_starts_violated_and_is_driven_to_zero(results):
    assert results["lol_first"] > 0.1 and results["violated_pairs_first"] >= 6
    assert results["lol_last"] < 1e-3 and results["violated_pairs_last"] == 0


def test_chained_gradient_matches_finite_differences_of_the_objective():
    queries, corpus, positives = example.make_batch(0)
    _, g_queries, _, _ = example.objective_and_gradient(queries, corpus, positives)
    direction = np.random.default_rng(1).standard_normal(queries.shape)
    step = 1e-6
    plus = example.objective_and_gradient(queries + step * direction, corpus, positives)[0]
    minus = example.objective_and_gradient(queries - step * direction, corpus, positives)[0]
    assert (plus - minus) / (2 * step) == pytest.approx(float((g_queries * direction).sum()), rel=1e-7)


def test_without_the_comparative_term_the_gradient_is_the_mean_passage_loss_gradient():
    queries, corpus, positives = example.make_batch(0)
    objective, g_queries, pr, lol = example.objective_and_gradient(queries, corpus, positives, lambda_cr=0.0)
    assert objective == pytest.approx(float(pr.mean()), rel=1e-15) and lol > 0
    _, g_with, _, _ = example.objective_and_gradient(queries, corpus, positives)
    assert np.abs(g_with - g_queries).max() > 1e-3  # LoL changes the direction
