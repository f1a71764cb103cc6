"""Conformance cases for `mixture_of_gaussians_nll`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, Known, OpCases, Sample, register

NOTES = {
    "SINGLE_COMPONENT": "M = 1: the Gaussian NLL; γ = π = 1 and the logits' gradient is exactly 0",
    "FAR_COMPONENT": "one component at |e − μ|/σ ~ 1e4 with tiny σ beside a near one: γ = 0 exactly, "
    "its gradients 0 (not 0·inf)",
    "ALL_FAR": "every component at |t| ≈ 40: Σ π N underflows to 0 (ℓ = inf); the log-sum-exp keeps ℓ ≈ 800",
    "TINY_SIGMA": "σ = e^−250 in 3 dimensions: log N ≈ +750, exp(a) overflows; the log-sum-exp does not",
    "EQUAL_COMPONENTS": "identical components: γ = π, the logits' gradient is 0",
    "LARGE_LOGITS": "logits offset by 1e3: log π needs the row max subtracted",
}

HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _random(rng, N, M, C):  # noqa: N803
    spread = float(rng.choice([0.3, 1.0, 3.0]))
    e = rng.standard_normal((N, C)) * spread
    mu = e[:, None, :] + rng.standard_normal((N, M, C)) * float(rng.choice([0.5, 1.0, 2.0])) * spread
    log_sigma = rng.standard_normal((N, M, C)) * 0.4 + math.log(spread)
    logits = rng.standard_normal((N, M)) * float(rng.choice([0.5, 2.0])) + float(rng.choice([0.0, 0.0, 5.0]))
    kwargs = {"reduction": str(rng.choice(["mean", "sum", "none"]))}
    return Sample("random", (e, logits, mu, log_sigma), kwargs)


def _edges():
    rng = np.random.default_rng(11)
    e = rng.standard_normal((3, 4))
    logits = rng.standard_normal((3, 3))
    near = e[:, None, :] + 0.01 * rng.standard_normal((3, 1, 4))
    far = e[:, None, :] + 50.0 + rng.standard_normal((3, 1, 4))
    middle = e[:, None, :] + rng.standard_normal((3, 1, 4))
    tiny_near_far = np.concatenate([near, far, middle], axis=1)
    log_sigma_tiny = np.concatenate(
        [np.full((3, 1, 4), math.log(1e-2)), np.full((3, 1, 4), math.log(5e-3)), np.zeros((3, 1, 4))], axis=1
    )
    all_far_mu = e[:, None, :] + np.array([40.0, -40.0, 41.0])[None, :, None] / 2.0  # t = ±20 per dim, C = 4
    duplicate_mu = np.repeat(rng.standard_normal((3, 1, 4)), 3, axis=1)
    duplicate_log_sigma = np.repeat(rng.standard_normal((3, 1, 4)) * 0.3, 3, axis=1)
    return [
        Sample(
            "known value: two copies of N(0, 1) at e = 0",
            (np.zeros((1, 1)), np.zeros((1, 2)), np.zeros((1, 2, 1)), np.zeros((1, 2, 1))),
            flags=("EQUAL_COMPONENTS",),
            comment="ℓ = ½log(2π); ∂ℓ/∂log σ = γ = ½ per component",
        ),
        Sample(
            "M = 1: the Gaussian NLL",
            (e, np.zeros((3, 1)), near, rng.standard_normal((3, 1, 4)) * 0.5),
            {"reduction": "none"},
            flags=("SINGLE_COMPONENT",),
        ),
        Sample(
            "far component (|t| ~ 1e4) and tiny σ = 1e-2 beside a near one",
            (e, logits, tiny_near_far, log_sigma_tiny),
            {"reduction": "sum"},
            flags=("FAR_COMPONENT",),
            fd_step=1e-8,
            comment="the near component's curvature is 1/σ² = 1e4: a smaller difference step",
        ),
        Sample(
            "every component far: |t| = 20 in each of 4 dimensions",
            (e, logits, all_far_mu, np.zeros((3, 3, 4))),
            flags=("ALL_FAR",),
            comment="log N ≈ −800: exp underflows even in float64; γ is the softmax of a",
        ),
        Sample(
            "σ = e^−250: log N ≈ +750",
            (
                np.array([[0.0, 1.0, -1.0]]),
                np.array([[0.0, 1.0]]),
                np.array([[[1e-109, 1.0, -1.0], [0.0, 1.0 + 3e-109, -1.0 - 1e-109]]]),
                np.full((1, 2, 3), -250.0),
            ),
            flags=("TINY_SIGMA",),
            dtypes=("float64",),
            fd=False,
            comment="σ = e^−250 does not exist in float32; a difference step of 1e-6 moves μ by 1e102 σ",
        ),
        Sample(
            "identical components",
            (e, logits, duplicate_mu, duplicate_log_sigma),
            {"reduction": "none"},
            flags=("EQUAL_COMPONENTS",),
        ),
        Sample(
            "logits offset 1e3",
            (e, logits + 1e3, middle.repeat(3, axis=1) + rng.standard_normal((3, 3, 4)), np.zeros((3, 3, 4))),
            flags=("LARGE_LOGITS",),
            dtypes=("float64",),
            fd_step=1e-9,
            comment="float32 rounds 1e3 + O(1) to 6e-5: the logits lose their digits; the relative FD step "
            "1e-6·1e3 would be the size of the logits' spread",
        ),
    ]


def _known():
    gamma_0 = 1.0 / (1.0 + math.exp(-0.5))  # N(0; 0, 1)/(N(0; 0, 1) + N(0; 1, 1)) with π = ½, ½
    gamma_1 = 1.0 - gamma_0
    return [
        Known(
            "two copies of N(0, 1) at e = 0",
            (np.zeros((1, 1)), np.zeros((1, 2)), np.zeros((1, 2, 1)), np.zeros((1, 2, 1))),
            values={
                "loss": HALF_LOG_2PI,
                "cotangent of 'e'": [[0.0]],
                "cotangent of 'logits'": [[0.0, 0.0]],
                "cotangent of 'mu'": [[[0.0], [0.0]]],
                "cotangent of 'log_sigma'": [[[0.5], [0.5]]],  # −γ(t² − 1) with t = 0
            },
            source="by hand: log(½φ(0) + ½φ(0)) = −½log(2π)",
            rtol=1e-12,
        ),
        Known(
            "M = 1, C = 2: N([1, 0]; 0, diag(1, 4))",
            (
                np.array([[1.0, 0.0]]),
                np.zeros((1, 1)),
                np.zeros((1, 1, 2)),
                np.array([[[0.0, math.log(2.0)]]]),
            ),
            values={
                "loss": 0.5 + math.log(2.0) + 2 * HALF_LOG_2PI,
                "cotangent of 'e'": [[1.0, 0.0]],  # t/σ
                "cotangent of 'logits'": [[0.0]],
                "cotangent of 'mu'": [[[-1.0, 0.0]]],
                "cotangent of 'log_sigma'": [[[0.0, 1.0]]],  # −(t² − 1) with t = [1, 0]
            },
            source="by hand: ½t² + log σ + ½log(2π) per dimension",
            rtol=1e-12,
        ),
        Known(
            "½N(0, 1) + ½N(1, 1) at e = 0",
            (np.zeros((1, 1)), np.zeros((1, 2)), np.array([[[0.0], [1.0]]]), np.zeros((1, 2, 1))),
            values={
                "loss": HALF_LOG_2PI + math.log(2.0) - math.log1p(math.exp(-0.5)),
                "cotangent of 'e'": [[-gamma_1]],  # Σ γ_m (e − μ_m)/σ²
                "cotangent of 'logits'": [[0.5 - gamma_0, 0.5 - gamma_1]],  # π − γ
                "cotangent of 'mu'": [[[0.0], [gamma_1]]],  # −γ_m (e − μ_m)/σ²
                "cotangent of 'log_sigma'": [[[gamma_0], [0.0]]],  # −γ_m (t² − 1)
            },
            source="by hand: γ_0 = 1/(1 + e^−½)",
            rtol=1e-12,
        ),
    ]


def _mixture_of_gaussians_nll_torch(torch, args, kwargs, cotangent):
    """log_softmax, z-scores (e − μ)·exp(−log σ), torch.logsumexp over components; autograd backward."""
    e, logits, mu, log_sigma = (torch.from_numpy(a).requires_grad_() for a in args)
    g = torch.from_numpy(np.asarray(cotangent))
    reduction = kwargs.get("reduction", "mean")
    normalizer = args[0].shape[-1] * HALF_LOG_2PI

    def step():
        for tensor in (e, logits, mu, log_sigma):
            tensor.grad = None
        t = (e[:, None, :] - mu) * torch.exp(-log_sigma)
        log_joint = torch.log_softmax(logits, -1) - (0.5 * t * t + log_sigma).sum(-1) - normalizer
        per_row = -torch.logsumexp(log_joint, -1)
        loss = per_row.mean() if reduction == "mean" else per_row.sum() if reduction == "sum" else per_row
        loss.backward(g)
        return loss

    return step


NUM_COMPONENTS_BENCH = 8


def _bench_sample(rng, rows, cols):
    num_dims = max(cols // NUM_COMPONENTS_BENCH, 1)  # N·M·C = rows·cols elements
    e = rng.standard_normal((rows, num_dims))
    mu = e[:, None, :] + rng.standard_normal((rows, NUM_COMPONENTS_BENCH, num_dims))
    log_sigma = rng.standard_normal((rows, NUM_COMPONENTS_BENCH, num_dims)) * 0.3
    return Sample("bench", (e, rng.standard_normal((rows, NUM_COMPONENTS_BENCH)), mu, log_sigma))


def _transcendentals(args, kwargs):
    # exp(−log σ) per element (the backward recomputes it, counted once), exp for π and γ per
    # component, the logs of the two log-sum-exps per row
    batch, num_components = args[1].shape
    return args[2].size + 2 * batch * num_components + 2 * batch


register(
    OpCases(
        "mixture_of_gaussians_nll",
        dims={"N": (1, 5), "M": (1, 4), "C": (1, 5)},
        random=_random,
        edges=_edges,
        known=_known,
        notes=NOTES,
        defaults={"reduction": "mean"},
        bench=Bench(
            make=_bench_sample,
            torch=_mixture_of_gaussians_nll_torch,
            torch_label="log_softmax(logits) − Σ_c(½t² + log σ) − C·½log 2π, −torch.logsumexp over "
            "components, mean; autograd backward",
            transcendentals=_transcendentals,
        ),
    )
)
