"""PFN bar distribution: known values, bucket conventions, normalization, tails, borders, errors."""

import math

import numpy as np
import pytest
from scipy import special, stats

import refimpl
from refimpl.losses import (
    bar_borders_from_quantiles,
    bar_distribution_mean,
    bar_distribution_nll,
    full_support_bar_distribution_nll,
)
from refimpl.losses.bar_distribution import HALF_NORMAL_MEDIAN, bucket_index

BORDERS = np.array([-1.0, 0.0, 1.0, 3.0])  # widths 1, 1, 2: the two tails have different scales
LOGITS = np.array([0.4, -1.1, 0.9])


def _density(nll_op, z, borders, y):
    return np.exp(-nll_op(np.broadcast_to(z, (*y.shape, z.size)).copy(), borders, y, reduction="none"))


def test_half_normal_median_matches_the_catalog_and_erfinv():
    assert abs(HALF_NORMAL_MEDIAN - 0.6744897502) < 5e-11
    np.testing.assert_allclose(HALF_NORMAL_MEDIAN, math.sqrt(2) * special.erfinv(0.5), rtol=1e-15)
    np.testing.assert_allclose(stats.halfnorm.cdf(HALF_NORMAL_MEDIAN), 0.5, rtol=1e-15)


def test_bar_nll_known_value_and_softmax_gradient():
    z, b = np.log(np.array([0.25, 0.75])), np.array([0.0, 1.0, 3.0])
    loss, pullback = refimpl.vjp(bar_distribution_nll, z, b, np.array(2.0))
    np.testing.assert_allclose(loss, -math.log(0.75 / 2), rtol=1e-15)
    (g_z,) = pullback(np.array(1.0))
    np.testing.assert_allclose(g_z, [0.25, -0.25], atol=1e-15)  # softmax(z) − onehot(1)


def test_buckets_are_right_closed_with_the_lowest_border_in_bucket_zero():
    y = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(bucket_index(BORDERS, y), [0, 0, 0, 1, 1, 2, 2])
    # the loss uses the same buckets: y = b_1 = 0 pays bucket 0's log-probability
    rows = np.tile(LOGITS, (2, 1))
    per_row = bar_distribution_nll(rows, BORDERS, np.array([0.0, 1e-9]), reduction="none")
    log_p = LOGITS - special.logsumexp(LOGITS)
    np.testing.assert_allclose(per_row, [-log_p[0] + 0.0, -log_p[1] + 0.0], rtol=1e-14)


def test_bar_density_integrates_to_one_over_the_support():
    edges = np.linspace(BORDERS[0], BORDERS[-1], 300001)
    mids = (edges[:-1] + edges[1:]) / 2  # never on a border
    mass = (_density(bar_distribution_nll, LOGITS, BORDERS, mids) * np.diff(edges)).sum()
    np.testing.assert_allclose(mass, 1.0, rtol=1e-9)


def test_full_support_density_integrates_to_one_over_the_real_line():
    q = HALF_NORMAL_MEDIAN
    s_left, s_right = 1 / q, 2 / q
    pieces = [
        (BORDERS[1] - 40 * s_left, BORDERS[1]),
        (BORDERS[1], BORDERS[2]),
        (BORDERS[2], BORDERS[2] + 40 * s_right),
    ]
    mass = 0.0
    for low, high in pieces:
        edges = np.linspace(low, high, 400001)
        mids = (edges[:-1] + edges[1:]) / 2
        mass += (_density(full_support_bar_distribution_nll, LOGITS, BORDERS, mids) * np.diff(edges)).sum()
    np.testing.assert_allclose(mass, 1.0, rtol=1e-8)


def test_half_of_each_tail_lies_inside_its_outer_bucket():
    p = special.softmax(LOGITS)
    edges = np.linspace(BORDERS[0], BORDERS[1], 200001)
    mids = (edges[:-1] + edges[1:]) / 2
    inside = (_density(full_support_bar_distribution_nll, LOGITS, BORDERS, mids) * np.diff(edges)).sum()
    np.testing.assert_allclose(inside, p[0] / 2, rtol=1e-9)
    edges = np.linspace(BORDERS[2], BORDERS[3], 200001)
    mids = (edges[:-1] + edges[1:]) / 2
    inside = (_density(full_support_bar_distribution_nll, LOGITS, BORDERS, mids) * np.diff(edges)).sum()
    np.testing.assert_allclose(inside, p[2] / 2, rtol=1e-9)


def test_full_support_tails_match_scipy_half_normal_log_pdf():
    z = np.tile(LOGITS, (4, 1))
    y = np.array([-0.4, -7.0, 2.5, 11.0])
    per_row = full_support_bar_distribution_nll(z, BORDERS, y, reduction="none")
    log_p = LOGITS - special.logsumexp(LOGITS)
    q = HALF_NORMAL_MEDIAN
    expected = [
        -(log_p[0] + stats.halfnorm.logpdf(0.0 - y[0], scale=1 / q)),
        -(log_p[0] + stats.halfnorm.logpdf(0.0 - y[1], scale=1 / q)),
        -(log_p[2] + stats.halfnorm.logpdf(y[2] - 1.0, scale=2 / q)),
        -(log_p[2] + stats.halfnorm.logpdf(y[3] - 1.0, scale=2 / q)),
    ]
    np.testing.assert_allclose(per_row, expected, rtol=1e-14)


def test_full_support_equals_bar_nll_on_interior_buckets():
    b = np.array([-2.0, -1.0, 0.0, 1.5, 3.0])
    z = np.random.default_rng(0).standard_normal((3, 4))
    y = np.array([-0.5, 0.7, 1.5])  # buckets 1, 2, 2
    np.testing.assert_allclose(
        full_support_bar_distribution_nll(z, b, y, reduction="none"),
        bar_distribution_nll(z, b, y, reduction="none"),
        rtol=1e-15,
    )


def test_target_gradient_is_the_tail_slope_and_zero_inside():
    q = HALF_NORMAL_MEDIAN
    z = np.tile(LOGITS, (4, 1))
    y = np.array([-0.4, 0.5, 2.5, 0.0])  # left tail, interior, right tail, y = b_1 (clamp)
    _, pullback = refimpl.vjp(full_support_bar_distribution_nll, z, BORDERS, y, reduction="none")
    g_z, g_y = pullback(np.ones(4))
    s_left, s_right = 1 / q, 2 / q
    np.testing.assert_allclose(g_y, [-0.4 / s_left**2, 0.0, 1.5 / s_right**2, 0.0], rtol=1e-14)
    np.testing.assert_allclose(g_z.sum(axis=-1), 0.0, atol=1e-15)


def test_targets_outside_the_borders_join_the_outer_buckets():
    z = np.tile(LOGITS, (2, 1))
    _, pullback = refimpl.vjp(
        full_support_bar_distribution_nll, z, BORDERS, np.array([-50.0, 50.0]), reduction="none"
    )
    g_z, _ = pullback(np.ones(2))
    p = special.softmax(LOGITS)
    np.testing.assert_allclose(g_z, [p - [1, 0, 0], p - [0, 0, 1]], atol=1e-15)


def test_full_support_matches_torch_autograd_of_half_normal_tails():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 3))
    y = np.array([-3.0, -0.2, 0.5, 1.7, 6.0])
    loss, pullback = refimpl.vjp(full_support_bar_distribution_nll, z, BORDERS, y)
    g_z, g_y = pullback(np.array(1.0))

    zt = torch.tensor(z, requires_grad=True)
    yt = torch.tensor(y, requires_grad=True)
    log_p = torch.log_softmax(zt, -1)
    q = torch.distributions.HalfNormal(torch.tensor(1.0, dtype=torch.float64)).icdf(torch.tensor(0.5))
    left = torch.distributions.HalfNormal(1.0 / q)
    right = torch.distributions.HalfNormal(2.0 / q)
    terms = [
        log_p[0, 0] + left.log_prob(0.0 - yt[0]),
        log_p[1, 0] + left.log_prob(0.0 - yt[1]),
        log_p[2, 1] - math.log(1.0),
        log_p[3, 2] + right.log_prob(yt[3] - 1.0),
        log_p[4, 2] + right.log_prob(yt[4] - 1.0),
    ]
    torch_loss = -torch.stack(terms).mean()
    torch_loss.backward()
    np.testing.assert_allclose(loss, torch_loss.item(), rtol=1e-7)  # torch's icdf is float32
    np.testing.assert_allclose(g_z, zt.grad.numpy(), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(g_y, yt.grad.numpy(), rtol=1e-6, atol=1e-12)


def test_one_bucket_loss_is_log_width_with_zero_gradient():
    loss, pullback = refimpl.vjp(
        bar_distribution_nll, np.array([[0.7], [-3.0]]), np.array([1.0, 4.0]), np.array([2.0, 4.0])
    )
    np.testing.assert_allclose(loss, math.log(3.0), rtol=1e-15)
    np.testing.assert_array_equal(pullback(np.array(1.0))[0], 0.0)


def test_reductions_agree():
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((6, 3)), rng.uniform(-1, 3, 6)
    for op in (bar_distribution_nll, full_support_bar_distribution_nll):
        per_row = op(z, BORDERS, y, reduction="none")
        np.testing.assert_allclose(op(z, BORDERS, y, reduction="sum"), per_row.sum(), rtol=1e-14)
        np.testing.assert_allclose(op(z, BORDERS, y), per_row.mean(), rtol=1e-14)


def test_mean_uses_midpoints_and_half_normal_tail_means():
    q, c = HALF_NORMAL_MEDIAN, math.sqrt(2 / math.pi)
    eye = np.eye(3) * 60.0  # each row puts (almost) all mass on one bucket
    np.testing.assert_allclose(
        bar_distribution_mean(eye, BORDERS), [0.0 - c / q, 0.5, 1.0 + 2 * c / q], rtol=1e-12
    )
    np.testing.assert_allclose(
        bar_distribution_mean(eye, BORDERS, full_support=False), [-0.5, 0.5, 2.0], rtol=1e-12
    )


def test_mean_equals_the_integral_of_y_times_the_full_support_density():
    q = HALF_NORMAL_MEDIAN
    pieces = [(BORDERS[1] - 40 / q, BORDERS[1]), (BORDERS[1], BORDERS[2]), (BORDERS[2], BORDERS[2] + 80 / q)]
    first_moment = 0.0
    for low, high in pieces:
        edges = np.linspace(low, high, 400001)
        mids = (edges[:-1] + edges[1:]) / 2
        first_moment += (
            mids * _density(full_support_bar_distribution_nll, LOGITS, BORDERS, mids) * np.diff(edges)
        ).sum()
    np.testing.assert_allclose(bar_distribution_mean(LOGITS, BORDERS), first_moment, rtol=1e-8)


def test_mean_gradient_is_p_times_centered_bucket_means():
    mean, pullback = refimpl.vjp(bar_distribution_mean, LOGITS, BORDERS, full_support=False)
    p, m = special.softmax(LOGITS), np.array([-0.5, 0.5, 2.0])
    np.testing.assert_allclose(pullback(np.array(2.0))[0], 2.0 * p * (m - mean), rtol=1e-14)


def test_float32_in_float32_out():
    z, b, y = LOGITS.astype(np.float32), BORDERS.astype(np.float32), np.array(2.5, np.float32)
    for op in (bar_distribution_nll, full_support_bar_distribution_nll):
        loss, pullback = refimpl.vjp(op, z, b, y)
        assert loss.dtype == np.float32
        assert all(g.dtype == np.float32 for g in pullback(np.array(1.0, np.float32)))
    assert bar_distribution_mean(z, b).dtype == np.float32
    assert (
        bar_borders_from_quantiles(np.array([3.0, 1.0, 2.0], np.float32), num_buckets=2).dtype == np.float32
    )


def test_quantile_borders_known_value_drops_the_unsorted_remainder():
    # 5 values, 2 buckets: the last value of the unsorted input (9) is dropped, as officially
    borders = bar_borders_from_quantiles(np.array([4.0, 0.0, 3.0, 1.0, 9.0]), num_buckets=2)
    np.testing.assert_array_equal(borders, [0.0, 2.0, 4.0])


def test_quantile_borders_put_equal_counts_in_each_bucket():
    ys = np.random.default_rng(5).standard_normal(1200)
    borders = bar_borders_from_quantiles(ys, num_buckets=12)
    counts = np.bincount(bucket_index(borders, ys), minlength=12)
    np.testing.assert_array_equal(counts, np.full(12, 100))


def test_quantile_borders_with_a_given_range():
    ys = np.array([[0.1, 0.4, 0.2], [0.9, 0.3, 0.6]])
    borders = bar_borders_from_quantiles(ys, num_buckets=3, full_range=np.array([0.0, 1.0]))
    np.testing.assert_allclose(borders, [0.0, 0.25, 0.5, 1.0], rtol=1e-15)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bar_distribution_nll(LOGITS, BORDERS, np.array(3.5)), r"'y'.*support"),
        (lambda: bar_distribution_nll(LOGITS, np.array([0.0, 1.0, 1.0, 2.0]), np.array(0.5)), "zero-width"),
        (
            lambda: full_support_bar_distribution_nll(np.zeros(1), np.array([0.0, 1.0]), np.array(0.5)),
            "at least 2",
        ),
        (lambda: full_support_bar_distribution_nll(LOGITS, BORDERS, np.array(np.inf)), "'y'.*finite"),
        (lambda: bar_distribution_mean(LOGITS, BORDERS[:3]), r"M \+ 1"),
        (
            lambda: bar_borders_from_quantiles(np.array([0.0, 1.0, 1.0, 1.0, 1.0, 2.0]), num_buckets=3),
            "zero-width",
        ),
        (lambda: bar_borders_from_quantiles(np.array([0.0, 1.0]), num_buckets=3), "at least num_buckets"),
    ],
)
def test_bad_input_raises_a_clear_input_error(call, message):
    with pytest.raises(refimpl.InputError, match=message):
        call()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_backends_agree_on_tails_and_target_gradient_in_float32(backend):
    q = HALF_NORMAL_MEDIAN
    z = np.tile(LOGITS, (3, 1)).astype(np.float32)
    y = np.array([-0.4, 0.5, 2.5], np.float32)
    loss, pullback = refimpl.vjp(
        "full_support_bar_distribution_nll",
        z,
        BORDERS.astype(np.float32),
        y,
        reduction="none",
        backend=backend,
    )
    g_z, g_y = pullback(np.ones(3, np.float32))
    assert loss.dtype == g_z.dtype == g_y.dtype == np.float32
    expected = full_support_bar_distribution_nll(
        z.astype(np.float64), BORDERS, y.astype(np.float64), reduction="none"
    )
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(g_y, [-0.4 * q**2, 0.0, 1.5 * q**2 / 4], rtol=1e-6)
