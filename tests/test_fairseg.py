"""Equity-scaled metrics: known values, the official functions, equal groups, ES-M ≤ M_all."""

import statistics

import numpy as np
import pytest

import refimpl
from refimpl.other import equity_scaled_metric


def _official_es(identity_wise_perf, overall_perf, no_of_attr, alpha=1.0):
    """FairSeg's ``equity_scaled_perf`` (SAMed/utils.py), transcribed."""
    tmp = 0
    for i in range(no_of_attr):
        tmp += np.abs(np.mean(identity_wise_perf[i]) - overall_perf)
    return overall_perf / (alpha * tmp + 1)


def _official_es_std(identity_wise_perf, overall_perf, no_of_attr, alpha=1.0):
    """FairSeg's ``equity_scaled_std_perf`` (SAMed/utils.py), transcribed."""
    group_wise_perf = [np.mean(identity_wise_perf[i]) for i in range(no_of_attr)]
    return overall_perf / (alpha * statistics.stdev(group_wise_perf) + 1)


def _official_loop(metric, groups, num_groups):
    """The evaluation loop of SAMed/test.py: M_all over every image, −1 kept out of the groups."""
    by_attr = [[] for _ in range(num_groups)]
    for value, label in zip(metric, groups, strict=True):
        if label != -1:
            by_attr[label].append(value)
    return by_attr, sum(metric) / len(metric)


def test_equity_scaled_metric_known_values():
    es, overall, group_metrics = equity_scaled_metric(np.array([0.9, 0.7]), np.array([0, 1]), num_groups=2)
    np.testing.assert_allclose([es, overall], [0.8 / 1.2, 0.8], rtol=1e-15)
    np.testing.assert_allclose(group_metrics, [0.9, 0.7])
    # std variant: stdev(0.9, 0.7) = √0.02 (ddof = 1); α = 2
    es, _, _ = equity_scaled_metric(
        np.array([0.9, 0.7]), np.array([0, 1]), num_groups=2, alpha=2.0, variant="std"
    )
    np.testing.assert_allclose(es, 0.8 / (1 + 2 * np.sqrt(0.02)), rtol=1e-15)


@pytest.mark.parametrize("variant", ["sum", "std"])
def test_equity_scaled_metric_matches_the_official_functions(variant):
    rng = np.random.default_rng(3)
    metric = rng.uniform(0.3, 0.95, size=40)
    groups = rng.integers(-1, 3, size=40)
    by_attr, overall = _official_loop(metric.tolist(), groups.tolist(), 3)
    official = (_official_es if variant == "sum" else _official_es_std)(by_attr, overall, 3, alpha=1.0)
    es, m_all, group_metrics = equity_scaled_metric(metric, groups, num_groups=3, variant=variant)
    np.testing.assert_allclose(es, official, rtol=1e-13)
    np.testing.assert_allclose(m_all, overall, rtol=1e-14)
    np.testing.assert_allclose(group_metrics, [np.mean(v) for v in by_attr], rtol=1e-14)


def test_equity_scaled_metric_equal_groups_give_the_overall_value_and_never_exceed_it():
    metric = np.array([0.9, 0.7, 0.6, 1.0, 0.8])
    groups = np.array([0, 0, 1, 1, 2])
    es, overall, _ = equity_scaled_metric(metric, groups, num_groups=3)
    np.testing.assert_allclose(es, overall, rtol=1e-15)  # every group mean is 0.8
    rng = np.random.default_rng(1)
    for _ in range(20):
        metric = rng.uniform(0, 1, size=12)
        groups = np.concatenate([np.arange(3), rng.integers(0, 3, size=9)])
        for variant in ("sum", "std"):
            es, overall, _ = equity_scaled_metric(metric, groups, num_groups=3, variant=variant)
            assert es <= overall


def test_equity_scaled_metric_with_a_given_overall_value_and_alpha_zero():
    metric, groups = np.array([0.5, 0.9]), np.array([0, 1])
    es, overall, _ = equity_scaled_metric(metric, groups, np.asarray(0.6), num_groups=2)
    np.testing.assert_allclose([es, overall], [0.6 / (1 + 0.1 + 0.3), 0.6], rtol=1e-15)
    es, _, _ = equity_scaled_metric(metric, groups, num_groups=2, alpha=0.0)
    np.testing.assert_allclose(es, 0.7, rtol=1e-15)  # α = 0: the overall value


def test_equity_scaled_metric_refuses_empty_groups_and_std_of_one_group():
    with pytest.raises(refimpl.InputError, match="no image in group 1"):
        equity_scaled_metric(np.array([0.5, 0.9, 0.1]), np.array([0, 2, 2]), num_groups=3)
    with pytest.raises(refimpl.InputError, match="at most as many groups as images"):
        equity_scaled_metric(np.array([0.5, 0.9]), np.array([0, 1]), num_groups=2**40)
    with pytest.raises(refimpl.InputError, match="at least 2 groups"):
        equity_scaled_metric(np.array([0.5, 0.9]), np.array([0, 0]), num_groups=1, variant="std")
    with pytest.raises(refimpl.InputError, match="'num_groups'"):
        equity_scaled_metric(np.array([0.5, 0.9]), np.array([0, 0]))
