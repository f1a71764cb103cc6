"""The Poincaré ResNet example: hand-chained gradients are right, finite, and SGD learns."""

import numpy as np
import pytest

from refimpl.examples import poincare_resnet as example


@pytest.fixture(scope="module")
def results():
    return example.run()


def test_sgd_lowers_the_cross_entropy_from_chance_by_a_wide_margin(results):
    losses = results["losses"]
    assert losses[0] == pytest.approx(np.log(2), abs=0.05)  # near chance at initialization
    assert losses[-1] < 0.1 * losses[0]  # at least a tenfold decrease in 25 steps
    assert losses[-1] < losses[5] < losses[0]
    assert results["accuracies"][-1] == 1.0


def test_gradients_stay_finite_and_bounded_and_the_bn_scales_positive(results):
    assert np.isfinite(results["largest_gradient"]) and results["largest_gradient"] < 10
    assert all(gamma > 0 for gamma in results["gammas"])


def test_chained_gradient_matches_finite_differences_of_the_objective():
    images, labels = example.make_images(0)
    params = example.init_params(1)
    _, grads, _ = example.objective_and_gradient(params, images, labels)
    assert set(grads) == set(params)
    rng = np.random.default_rng(2)
    direction = {name: rng.standard_normal(np.shape(value)) for name, value in params.items()}
    step = 1e-6

    def shifted(sign):
        moved = {name: value + sign * step * direction[name] for name, value in params.items()}
        return example.objective_and_gradient(moved, images, labels)[0]

    by_differences = (shifted(1) - shifted(-1)) / (2 * step)
    analytic = sum(float(np.sum(grads[name] * direction[name])) for name in params)
    assert by_differences == pytest.approx(analytic, rel=1e-6)


def test_every_parameter_group_receives_gradient():
    images, labels = example.make_images(0)
    _, grads, _ = example.objective_and_gradient(example.init_params(1), images, labels)
    for name, grad in grads.items():
        assert np.abs(grad).max() > 1e-6, name  # offsets included: BN does not remove them on the ball
