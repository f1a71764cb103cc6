"""Conformance cases for `energy_instance_weight` (the instance weights of WEAT)."""

from __future__ import annotations

import numpy as np

from ..._cases import Known, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "SOFTPLUS_OVERFLOW": "|E| > 88.7 (float32) or > 709.8 (float64): log(1 + exp(|E|)) overflows and gives "
    "w = 0 (the official code); |E| + log1p(exp(−|E|)) gives w ≈ 1/|E|",
    "LSE_OVERFLOW": "logits ~1e4: a log-sum-exp without the max shift overflows",
    "ZERO_ENERGY": "E = 0: w = 1/log 2, the maximum",
    "SIGN": "E and −E give the same weight",
    "ONE_CLASS": "K = 1: E = −z",
    "HUGE_ENERGY": "|E| ~ 1e30: w ~ 1e-30, still positive and finite",
}

LOG_E_MINUS_1 = float(np.log(np.e - 1))  # |E| = log(e − 1): softplus(|E|) = 1, w = 1


def _random(rng, B, K):
    scale = float(rng.choice([0.3, 3.0, 20.0]))
    offset = float(rng.choice([0.0, -5.0, 5.0, -150.0, 150.0]))  # |E| past float32's exp overflow
    return Sample("random", (rng.standard_normal((B, K)) * scale + offset,))


def _edges():
    rng = np.random.default_rng(89)
    return [
        Sample(
            "E = 0",
            (np.array([[0.0]]),),
            flags=("ZERO_ENERGY", "ONE_CLASS"),
            comment="1/log 2",
        ),
        Sample(
            "E = 0, two classes",
            (np.array([[np.log(0.5), np.log(0.5)], [np.log(0.25), np.log(0.75)]]),),
            flags=("ZERO_ENERGY",),
            comment="LSE = 0 in both rows: 1/log 2",
        ),
        Sample(
            "E = ∓log(e − 1)",
            (np.array([[LOG_E_MINUS_1], [-LOG_E_MINUS_1]]),),
            flags=("SIGN", "ONE_CLASS"),
            comment="softplus(|E|) = 1: w = 1 for both signs",
        ),
        Sample(
            "E = ∓3.7, K = 4",
            (np.stack([np.log(np.full(4, np.exp(3.7) / 4)), np.log(np.full(4, np.exp(-3.7) / 4))]),),
            flags=("SIGN",),
        ),
        Sample(
            "|E| = 100",
            (np.array([[100.0, 0.0], [-100.0, -100.0 - np.log(3.0)]]),),
            flags=("SOFTPLUS_OVERFLOW",),
            comment="float32 exp(100) = inf: the official weights are 0, here 1/100 and 1/(100 − log(4/3))",
        ),
        Sample(
            "|E| = 800",
            (np.array([[800.0, 799.0, -3.0], [-800.0, -801.0, -800.5]]),),
            flags=("SOFTPLUS_OVERFLOW",),
            comment="float64 exp(800) = inf too",
        ),
        Sample(
            "logits ~1e4",
            (1e4 + rng.standard_normal((3, 5)),),
            flags=("LSE_OVERFLOW", "SOFTPLUS_OVERFLOW"),
        ),
        Sample(
            "|E| ~ 1e30",
            (np.array([[1e30, 0.0], [-1e30, -2e30]]),),
            flags=("HUGE_ENERGY",),
            comment="w = 1e-30 in both rows",
        ),
        Sample("one row", (rng.standard_normal((1, 7)),)),
    ]


def _known():
    return [
        Known(
            "E = 0: w = 1/log 2",
            (np.array([[np.log(0.5), np.log(0.5)]]),),
            values={"weights": [1 / np.log(2.0)]},
            source="by hand: softplus(0) = log 2",
            rtol=1e-15,
        ),
        Known(
            "|E| = log(e − 1): w = 1, both signs",
            (np.array([[LOG_E_MINUS_1], [-LOG_E_MINUS_1]]),),
            values={"weights": [1.0, 1.0]},
            source="by hand: softplus(log(e − 1)) = log(e) = 1",
            rtol=1e-15,
        ),
        Known(
            "|E| = 100 + log1p(e^−100): w = 1/100 (the official code gives 0 in float32)",
            (np.array([[100.0, 0.0]], dtype=np.float32),),
            values={"weights": [0.01]},
            source="by hand: softplus(100) = 100 + 4e-44",
            rtol=1e-7,
        ),
    ]


register(
    OpCases(
        "energy_instance_weight",
        dims={"B": (1, 8), "K": (1, 10)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        known=_known,
        defaults={},
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
@transcribes("weat-weight-softplus-overflow", outputs=("weights",))
def _official_energy_instance_weight(z_nat, *, dtype):
    """``compute_weights`` of the official WEAT_loss.py in the input dtype: the energy by a
    (stable) log-sum-exp, then ``1/log(1 + exp(|E|))``, whose exp overflows to inf."""
    z = z_nat.astype(dtype)
    m = z.max(axis=-1, keepdims=True)
    energy = -(m[..., 0] + np.log(np.exp(z - m).sum(axis=-1)))
    with np.errstate(over="ignore"):
        return {"weights": 1 / np.log(1 + np.exp(np.abs(energy)))}
