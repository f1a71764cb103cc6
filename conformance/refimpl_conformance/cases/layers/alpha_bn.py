"""Conformance cases for `alpha_batch_norm`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "BATCH_OF_ONE": "N·H·W = 1: the batch variance is 0 (biased) and the unbiased one undefined",
    "ZERO_VARIANCE": "a constant channel with σ_s² = 0: σ̂² = 0 and only ε keeps r finite",
    "ALPHA_ENDS": "α = 0 or 1: plain batch norm (train or eval mode); a swapped side shows here",
    "DETACHED": "detach_stats: the backward drops the batch-statistics terms (not the forward's derivative)",
    "LARGE_OFFSET": "channel mean 1e4 ≫ spread: E[x²] − μ² cancels; the two-pass variance does not",
    "UNBIASED": "the batch variance divided by N·H·W − 1 (third-party convention)",
}


def _source_stats(rng, C):
    return rng.standard_normal(C), rng.uniform(0.2, 3.0, C)


def _random(rng, N, C, H, W):
    x = rng.standard_normal((N, C, H, W)) * rng.uniform(0.3, 3.0, (1, C, 1, 1)) + rng.uniform(
        -2, 2, (1, C, 1, 1)
    )
    mean_source, var_source = _source_stats(rng, C)
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    unbiased = bool(N * H * W >= 2 and rng.random() < 0.5)
    kwargs = {
        "alpha": float(rng.uniform(0, 1)),
        "alpha_weights": str(rng.choice(["source", "target"])),
        "eps": float(rng.choice([1e-5, 1e-3, 0.1])),
        "unbiased": unbiased,
    }
    if rng.integers(0, 4) == 0:  # detached statistics: by design not the forward's derivative
        kwargs["detach_stats"] = True
        return Sample("random", (x, mean_source, var_source, gamma, beta), kwargs, fd=False)
    return Sample("random", (x, mean_source, var_source, gamma, beta), kwargs)


def _edges():
    rng = np.random.default_rng(11)
    C = 3
    mean_source, var_source = _source_stats(rng, C)
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    x = rng.standard_normal((4, C, 2, 3))
    constant = x.copy()
    constant[:, 1] = 2.5
    zero_var_source = var_source.copy()
    zero_var_source[1] = 0.0
    base = {"alpha": 0.3, "alpha_weights": "source"}
    return [
        Sample(
            "batch of one (N = H = W = 1)",
            (rng.standard_normal((1, C, 1, 1)), mean_source, var_source, gamma, beta),
            base,
            flags=("BATCH_OF_ONE",),
        ),
        Sample(
            "zero-variance channel, σ_s² = 0",
            (constant, mean_source, zero_var_source, gamma, beta),
            {**base, "alpha": 0.0, "eps": 1e-3},
            flags=("ZERO_VARIANCE",),
        ),
        Sample(
            "α = 0, source side: batch norm in training mode",
            (x, mean_source, var_source, gamma, beta),
            {"alpha": 0.0, "alpha_weights": "source"},
            flags=("ALPHA_ENDS",),
        ),
        Sample(
            "α = 1, source side: evaluation mode",
            (x, mean_source, var_source, gamma, beta),
            {"alpha": 1.0, "alpha_weights": "source"},
            flags=("ALPHA_ENDS",),
        ),
        Sample(
            "α = 1, target side: batch norm in training mode",
            (x, mean_source, var_source, gamma, beta),
            {"alpha": 1.0, "alpha_weights": "target", "unbiased": True},
            flags=("ALPHA_ENDS", "UNBIASED"),
        ),
        Sample(
            "third-party conventions: target side, unbiased, detached",
            (x, mean_source, var_source, gamma, beta),
            {"alpha": 0.1, "alpha_weights": "target", "unbiased": True, "detach_stats": True},
            flags=("DETACHED", "UNBIASED"),
            fd=False,
            comment="the detached backward is by design not the forward's derivative",
        ),
        Sample(
            "large channel offset 1e4",
            (1e4 + x, mean_source + 1e4, var_source, gamma, beta),
            {"alpha": 0.5, "alpha_weights": "target"},
            flags=("LARGE_OFFSET",),
            fd_step=1e-10,
            dtypes=("float64",),
        ),
    ]


def _errors():
    x = np.ones((1, 2, 1, 1))
    c = np.ones(2)
    return [
        ErrorCase(
            "negative source variance",
            (np.ones((2, 2, 1, 1)), c, np.array([1.0, -0.5]), c, c),
            {"alpha": 0.5, "alpha_weights": "source"},
            match="var_source",
        ),
        ErrorCase(
            "unbiased with N·H·W = 1",
            (x, c, c, c, c),
            {"alpha": 0.5, "alpha_weights": "source", "unbiased": True},
            match="N·H·W >= 2",
        ),
    ]


def _known():
    x = np.array([1.0, 3.0]).reshape(2, 1, 1, 1)  # μ_b = 2, v_b = 1 (biased)
    one, zero = np.ones(1), np.zeros(1)
    s2 = math.sqrt(2.0)
    return [
        Known(
            "α = 0.5 on the source side: μ̂ = 1, σ̂² = 2",
            (x, zero, np.full(1, 3.0), one, zero),
            {"alpha": 0.5, "alpha_weights": "source", "eps": 1e-12},
            values={
                "y": np.array([0.0, s2]).reshape(2, 1, 1, 1),
                # x̄ = r[1 − w_b − w_b r (x − μ_b) mean x̂], r = 1/√2, w_b = 1/2, mean x̂ = 1/√2
                "cotangent of 'x'": np.array([0.75 / s2, 0.25 / s2]).reshape(2, 1, 1, 1),
                "cotangent of 'gamma'": np.array([s2]),
                "cotangent of 'beta'": np.array([2.0]),
            },
            source="hand computation",
            rtol=1e-9,
        ),
        Known(
            "α = 0.25 on the target side: μ̂ = 0.5, σ̂² = 2.5",
            (x, zero, np.full(1, 3.0), one, zero),
            {"alpha": 0.25, "alpha_weights": "target", "eps": 1e-12},
            values={"y": (np.array([0.5, 2.5]) / math.sqrt(2.5)).reshape(2, 1, 1, 1)},
            source="hand computation",
            rtol=1e-9,
        ),
    ]


def _alpha_batch_norm_torch(torch, args, kwargs, cotangent):
    """The same function written with torch ops; autograd differentiates the batch statistics."""
    x, mean_source, var_source, gamma, beta = (torch.from_numpy(a) for a in args)
    x.requires_grad_()
    gamma.requires_grad_()
    beta.requires_grad_()
    g_y = torch.from_numpy(cotangent)
    alpha = kwargs["alpha"]
    w_b = 1.0 - alpha if kwargs["alpha_weights"] == "source" else alpha
    eps = kwargs.get("eps", 1e-5)
    unbiased = kwargs.get("unbiased", False)
    detach = kwargs.get("detach_stats", False)

    def channel(v):
        return v[None, :, None, None]

    def step():
        var_b, mean_b = torch.var_mean(x, dim=(0, 2, 3), correction=1 if unbiased else 0)
        if detach:
            var_b, mean_b = var_b.detach(), mean_b.detach()
        mean_hat = (1 - w_b) * mean_source + w_b * mean_b
        var_hat = (1 - w_b) * var_source + w_b * var_b
        y = channel(gamma) * (x - channel(mean_hat)) * torch.rsqrt(channel(var_hat) + eps) + channel(beta)
        x.grad = gamma.grad = beta.grad = None
        y.backward(g_y)
        return y

    return step


register(
    OpCases(
        "alpha_batch_norm",
        dims={"N": (1, 5), "C": (1, 4), "H": (1, 3), "W": (1, 3)},
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        known=_known,
        defaults={"eps": 1e-5, "unbiased": False, "detach_stats": False},
        bench=Bench(
            sizes={"N": 32, "C": 64, "H": 32, "W": 32},
            torch=_alpha_batch_norm_torch,
            torch_label="torch.var_mean over (N, H, W), mixed with the source statistics, autograd",
            # one rsqrt per channel, no matrix products: the roofline is the bytes
        ),
    )
)
