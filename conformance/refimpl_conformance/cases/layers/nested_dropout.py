"""Conformance cases for `nested_dropout` and `nested_dropout_prefix_probs`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "IDENTITY": "k = D: every feature kept, h̃ = h and h̄ = ȳ",
    "ONE_KEPT": "k = 1: only the first feature survives (the official mask index 0)",
    "BATCH_DIMS": "leading dims (2, 3): the same prefix for every row",
}

PROBS_NOTES = {
    "UNDERFLOW": "μ far below 1, small σ: every exp(−((k − μ)/σ)²) underflows; dist/sum(dist) is 0/0",
    "OVERFLOW": "σ ~ 1e-300: ((k − μ)/σ)² overflows to inf; the shifted log-weights stay finite or −inf",
    "ONE_LENGTH": "D = 1: p = (1,)",
    "CENTRED": "μ inside 1..D: the mode at the nearest length, not at 1",
}


def _random(rng, B, D):  # noqa: N803
    h = rng.standard_normal((B, D)) * rng.uniform(0.1, 10)
    return Sample("random", (h,), {"k": int(rng.integers(1, D + 1))})


def _edges():
    rng = np.random.default_rng(3)
    return [
        Sample("k = D: identity", (rng.standard_normal((3, 6)),), {"k": 6}, flags=("IDENTITY",)),
        Sample("k = 1", (rng.standard_normal((3, 6)),), {"k": 1}, flags=("ONE_KEPT",)),
        Sample("D = 1", (rng.standard_normal((4, 1)),), {"k": 1}, flags=("IDENTITY",)),
        Sample("batch dims (2, 3, D)", (rng.standard_normal((2, 3, 5)),), {"k": 3}, flags=("BATCH_DIMS",)),
        Sample("a single feature vector", (rng.standard_normal(7),), {"k": 4}),
    ]


def _errors():
    return [ErrorCase("k > D", (np.ones((2, 3)),), {"k": 4}, match="at most the number of features")]


def _known():
    h = np.array([[1.0, -2.0, 3.0, 4.0]])
    return [
        Known(
            "k = 2 of 4",
            (h,),
            {"k": 2},
            values={"h_masked": [[1.0, -2.0, 0.0, 0.0]], "cotangent of 'h'": [[1.0, 1.0, 0.0, 0.0]]},
            source="by hand: mask = [1]*k + [0]*(D − k)",
            rtol=0.0,
        )
    ]


def _bench_sample(rng, rows, cols):
    return Sample("bench", (rng.standard_normal((rows, cols)),), {"k": cols // 2})


def _nested_dropout_torch(torch, args, kwargs, cotangent):
    """The official masking, ``feature * mask_k`` with a 0/1 prefix mask; autograd backward."""
    (h,) = (torch.from_numpy(a).requires_grad_() for a in args)
    g = torch.from_numpy(cotangent)
    mask = torch.zeros(h.shape[-1], dtype=h.dtype)
    mask[: kwargs["k"]] = 1

    def step():
        h_masked = h * mask
        h.grad = None
        h_masked.backward(g)
        return h_masked

    return step


register(
    OpCases(
        "nested_dropout",
        dims={"B": (1, 6), "D": (1, 10)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_bench_sample,
            torch=_nested_dropout_torch,
            torch_label="h * mask_k (the official feature_masked); autograd backward",
        ),
    )
)


#: the op takes only integers and reals and returns float64 probabilities: no float32 call
FLOAT64 = ("float64",)


def _probs_random(rng, D):  # noqa: N803
    sigma = float(rng.choice([0.5, 3.0, 100.0, rng.uniform(0.1, 2 * D)]))
    mu = float(rng.choice([0.0, 0.0, rng.uniform(-D, 2 * D)]))
    return Sample("random", (), {"D": D, "sigma": sigma, "mu": mu}, dtypes=FLOAT64)


def _probs_edges():
    return [
        Sample(
            "μ = −40, σ = 1", (), {"D": 4, "sigma": 1.0, "mu": -40.0}, flags=("UNDERFLOW",), dtypes=FLOAT64
        ),
        Sample("σ = 1e-300", (), {"D": 3, "sigma": 1e-300}, flags=("OVERFLOW",), dtypes=FLOAT64),
        Sample("D = 1", (), {"D": 1, "sigma": 2.0}, flags=("ONE_LENGTH",), dtypes=FLOAT64),
        Sample(
            "μ = 3.5 inside 1..6", (), {"D": 6, "sigma": 1.5, "mu": 3.5}, flags=("CENTRED",), dtypes=FLOAT64
        ),
        Sample("official CIFAR width σ = 100, D = 512", (), {"D": 512, "sigma": 100.0}, dtypes=FLOAT64),
    ]


def _probs_known():
    z = 1 + math.exp(-3.0)
    return [
        Known(
            "D = 2, σ = 1: ∝ (e^−1, e^−4)",
            (),
            {"D": 2, "sigma": 1.0},
            values={"probs": [1 / z, math.exp(-3.0) / z]},
            source="by hand (GaussianDist(0, 1, 2))",
            rtol=1e-14,
        ),
        Known(
            "D = 3, μ = 2, σ = 1: ∝ (e^−1, 1, e^−1)",
            (),
            {"D": 3, "sigma": 1.0, "mu": 2.0},
            values={
                "probs": [1 / (1 + 2 / math.e) / math.e, 1 / (1 + 2 / math.e), 1 / (1 + 2 / math.e) / math.e]
            },
            source="by hand (GaussianDist(2, 1, 3))",
            rtol=1e-14,
        ),
    ]


register(
    OpCases(
        "nested_dropout_prefix_probs",
        dims={"D": (1, 12)},
        random=_probs_random,
        edges=_probs_edges,
        known=_probs_known,
        notes=PROBS_NOTES,
        defaults={"mu": 0.0},
    )
)
