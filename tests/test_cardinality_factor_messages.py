"""Counting-factor messages: the dynamic program against brute-force enumeration, the official
bag potential, saturation and normalization."""

import itertools

import numpy as np
import pytest

import refimpl
from refimpl.solvers import cardinality_factor_messages


def _enumerated(phi, incoming):
    size = incoming.shape[0]
    out = np.zeros((size, 2))
    for i in range(size):
        for y_i in (0, 1):
            terms = []
            for others in itertools.product([0, 1], repeat=size - 1):
                y = list(others[:i]) + [y_i] + list(others[i:])
                terms.append(phi[sum(y)] + sum(incoming[j, y[j]] for j in range(size) if j != i))
            out[i, y_i] = np.logaddexp.reduce(terms)
        out[i] -= np.logaddexp(*out[i])
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_messages_match_enumeration(size):
    rng = np.random.default_rng(size)
    phi, incoming = rng.standard_normal((3, size + 1)) * 2, rng.standard_normal((3, size, 2))
    messages = cardinality_factor_messages(phi, incoming)
    for b in range(3):
        np.testing.assert_allclose(messages[b], _enumerated(phi[b], incoming[b]), rtol=1e-12, atol=1e-13)


def test_official_bag_potential_on_a_bag_of_eight():
    # φ(c) = −λ_bag (c − k)² with λ_bag = 10, k = 3, uniform incoming messages
    phi = -10.0 * (np.arange(9) - 3.0) ** 2
    messages = cardinality_factor_messages(phi[None], np.zeros((1, 8, 2)))
    # others (7 variables) uniform: m(y) ∝ Σ_c C(7, c) exp(φ(c + y)) — dominated by c + y = 3
    from math import comb

    expected = np.array(
        [np.logaddexp.reduce([np.log(comb(7, c)) + phi[c + y] for c in range(8)]) for y in (0, 1)]
    )
    expected -= np.logaddexp(*expected)
    np.testing.assert_allclose(messages[0], np.tile(expected, (8, 1)), rtol=1e-12)
    # P(y = 1) ≈ 3/8: C(7,2)/(C(7,3) + C(7,2)) = 21/56
    np.testing.assert_allclose(np.exp(messages[0, 0, 1]), 21 / 56, rtol=1e-3)


def test_a_forced_count_forces_the_last_label():
    # exactly one positive in a bag of 3; the other two are confidently 0 → the message says 1
    phi = np.where(np.arange(4) == 1, 0.0, -1e4)[None]
    incoming = np.array([[[0.0, 0.0], [50.0, -50.0], [50.0, -50.0]]])
    messages = cardinality_factor_messages(phi, incoming)
    np.testing.assert_allclose(np.exp(messages[0, 0]), [0.0, 1.0], atol=1e-40)


def test_unnormalized_incoming_messages_give_the_same_result():
    rng = np.random.default_rng(4)
    phi, incoming = rng.standard_normal((1, 5)), rng.standard_normal((1, 4, 2))
    shifted = incoming + rng.standard_normal((1, 4, 1)) * 100
    np.testing.assert_allclose(
        cardinality_factor_messages(phi, shifted),
        cardinality_factor_messages(phi, incoming),
        rtol=1e-11,
        atol=1e-12,
    )


def test_potential_of_the_wrong_length_is_refused():
    with pytest.raises(refimpl.InputError, match="K \\+ 1"):
        cardinality_factor_messages(np.zeros((1, 3)), np.zeros((1, 3, 2)))
