"""Order-search loss: −max over candidate orders, the gradient to the best order only."""

import numpy as np

import refimpl
from refimpl.layers import order_search_loss


def test_order_search_loss_is_the_negative_best_log_likelihood():
    ll = np.array([[-3.0, -1.0, -2.0], [-0.5, -7.0, -0.75]])
    np.testing.assert_array_equal(order_search_loss(ll), [1.0, 0.5])


def test_order_search_loss_gradient_goes_to_the_best_order_only():
    ll = np.array([[-3.0, -1.0, -2.0], [-0.5, -7.0, -0.75]])
    _, pullback = refimpl.vjp(order_search_loss, ll)
    (g,) = pullback(np.array([2.0, 0.5]))
    np.testing.assert_array_equal(g, [[0.0, -2.0, 0.0], [-0.5, 0.0, 0.0]])


def test_order_search_loss_ties_send_the_gradient_to_the_first_maximum():
    ll = np.array([[-2.0, -1.0, -1.0]])
    _, pullback = refimpl.vjp(order_search_loss, ll)
    np.testing.assert_array_equal(pullback(np.ones(1))[0], [[0.0, -1.0, 0.0]])


def test_order_search_loss_is_invariant_to_permuting_the_candidates_and_bounds_every_order():
    rng = np.random.default_rng(0)
    ll = rng.standard_normal((5, 6)) * 4 - 10
    loss = order_search_loss(ll)
    np.testing.assert_array_equal(order_search_loss(ll[:, rng.permutation(6)]), loss)
    assert np.all(loss[:, None] <= -ll)  # the best order has the smallest NLL of all candidates
    np.testing.assert_array_equal(loss, (-ll).min(axis=1))
