"""Conformance cases for `a2pr_value_target`."""

from __future__ import annotations

import numpy as np

from ..._cases import ErrorCase, Known, OpCases, Sample, register

VALUE_TARGET_NOTES = {
    "TERMINAL": "not_done = 0: the target is the reward alone, whatever the critics say",
    "NO_DISCOUNT": "γ = 0: the target is the reward alone",
    "UNDISCOUNTED": "γ = 1: r + min of the four critic heads",
    "ONLINE_LOWER": "the online critic is the pessimistic one: its TD target wins the min",
    "TARGET_LOWER": "the target critic is the pessimistic one: TD3's critic target wins the min",
    "SECOND_HEAD": "the second head of each critic is the smaller one (a port reading Q1 only fails)",
    "TIES": "equal heads and equal critics: the min of equal values is that value",
    "NEGATIVE_Q": "negative rewards and values (costs): the min picks the most negative, not |·|",
    "LARGE_VALUES": "returns of 1e6 with rewards of O(1): r + γQ rounds once, nothing cancels",
    "PARTIAL_MASK": "not_done in (0, 1): a soft continuation weight scales the bootstrap",
}


def _random(rng, B):
    scale = float(rng.choice([1.0, 30.0, 300.0]))
    reward = rng.standard_normal(B) * float(rng.choice([0.1, 1.0, 5.0]))
    not_done = (rng.random(B) > 0.2).astype(float)  # some terminal transitions
    heads = rng.standard_normal((4, B)) * scale + scale * float(rng.uniform(-1.0, 2.0))
    return Sample(
        "random",
        (reward, not_done, heads[0], heads[1], heads[2], heads[3]),
        {"discount": float(rng.choice([0.9, 0.99, 0.995, float(rng.uniform(0.0, 1.0))]))},
    )


def _edges():
    reward = np.array([1.0, -0.5, 2.0])
    ones = np.ones(3)
    low, high = np.array([3.0, -2.0, 10.0]), np.array([4.0, 5.0, 11.0])
    return [
        Sample(
            "terminal transitions",
            (reward, np.zeros(3), low, high, high, low),
            {"discount": 0.99},
            flags=("TERMINAL",),
            comment="= reward: [1, −0.5, 2]",
        ),
        Sample("γ = 0", (reward, ones, low, high, low, high), {"discount": 0.0}, flags=("NO_DISCOUNT",)),
        Sample(
            "γ = 1",
            (reward, ones, high, high + 1.0, low, high),
            {"discount": 1.0},
            flags=("UNDISCOUNTED", "ONLINE_LOWER"),
            comment="r + low: [4, −2.5, 12]",
        ),
        Sample(
            "target critic lower",
            (reward, ones, low, high, high, high + 2.0),
            {"discount": 0.9},
            flags=("TARGET_LOWER",),
        ),
        Sample(
            "second heads lower",
            (reward, ones, high, low, high + 1.0, low - 1.0),
            {"discount": 0.99},
            flags=("SECOND_HEAD", "ONLINE_LOWER"),
        ),
        Sample(
            "all heads equal",
            (reward, ones, low, low.copy(), low.copy(), low.copy()),
            {"discount": 0.99},
            flags=("TIES",),
        ),
        Sample(
            "negative rewards and values",
            (
                np.array([-1.0, -3.0]),
                np.ones(2),
                np.array([-50.0, -2.0]),
                np.array([-40.0, -9.0]),
                np.array([-45.0, -1.0]),
                np.array([-60.0, -8.0]),
            ),
            {"discount": 0.99},
            flags=("NEGATIVE_Q",),
            comment="r + 0.99·[−60, −9] = [−60.4, −11.91]",
        ),
        Sample(
            "returns of 1e6",
            (
                np.array([0.25, 1.0]),
                np.ones(2),
                np.array([1e6, 2e6]),
                np.array([1e6 + 3.0, 2e6 - 1.0]),
                np.array([1e6 + 1.0, 2e6 + 5.0]),
                np.array([1e6 - 2.0, 2e6]),
            ),
            {"discount": 0.99},
            flags=("LARGE_VALUES",),
        ),
        Sample(
            "soft continuation weights",
            (reward, np.array([0.0, 0.5, 1.0]), low, high, high, low),
            {"discount": 0.99},
            flags=("PARTIAL_MASK",),
        ),
        Sample(
            "one transition",
            (np.array([0.3]), np.ones(1), np.array([2.0]), np.array([1.5]), np.array([1.7]), np.array([2.2])),
            {"discount": 0.99},
        ),
    ]


def _errors():
    x = np.array([1.0, 2.0])
    return [
        ErrorCase(
            "not_done negative",
            (x, np.array([1.0, -1.0]), x, x, x, x),
            {"discount": 0.99},
            match=r"'not_done'.*\[0, 1\].*index 1",
        ),
        ErrorCase(
            "not_done above 1",
            (x, np.array([2.0, 1.0]), x, x, x, x),
            {"discount": 0.99},
            match=r"'not_done'.*\[0, 1\].*index 0",
        ),
    ]


def _known():
    return [
        Known(
            "one of each: online lower, target lower, terminal",
            (
                np.array([1.0, 0.5, 2.0]),
                np.array([1.0, 1.0, 0.0]),
                np.array([10.0, 4.0, 7.0]),
                np.array([12.0, 3.0, 8.0]),
                np.array([11.0, 6.0, 1.0]),
                np.array([9.0, 5.0, 1.0]),
            ),
            {"discount": 0.5},
            values={"value_target": [5.5, 2.0, 2.0]},
            source="by hand: row 0 min(1 + 0.5·10, 1 + 0.5·9) = 5.5; row 1 min(0.5 + 0.5·3, "
            "0.5 + 0.5·5) = 2; row 2 terminal: r = 2",
            rtol=0.0,
        ),
        Known(
            "the default γ = 0.99",
            (
                np.array([1.0]),
                np.array([1.0]),
                np.array([100.0]),
                np.array([200.0]),
                np.array([150.0]),
                np.array([120.0]),
            ),
            values={"value_target": [100.0]},
            source="by hand: 1 + 0.99·min(100, 200, 150, 120) = 100",
            rtol=1e-15,
        ),
    ]


register(
    OpCases(
        "a2pr_value_target",
        dims={"B": (1, 12)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=VALUE_TARGET_NOTES,
        defaults={"discount": 0.99},
    )
)
