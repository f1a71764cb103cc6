"""Conformance cases for `diag_gaussian_kl`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "Q_EQUALS_P": "q = p: KL exactly 0 and every gradient 0 (no ½ − ½ residue)",
    "PRIOR": "p = N(0, I) (Mult-VAE): ½Σ(−ℓ + e^ℓ + μ² − 1)",
    "NEAR_EQUAL": "σ_q²/σ_p² = 1 + 1e-6: (r − 1) formed as r − 1 loses the digits expm1(v) keeps",
    "LARGE_LOG_SCALES": "log-variances ±100: exp(ℓ_q)/exp(ℓ_p) is inf/inf or 0/0 in float32; the ratio is e",
    "EXTREME_STD": "σ ~ 1e±20: σ² underflows/overflows float32; the ratio σ_q/σ_p does not",
    "ONE_DIM": "d = 1 and normalize_by_dim: the division is by 1",
    "BATCH_DIMS": "leading dims (2, 3): one KL per leading index",
}

#: Each parameterization's value of the scale of N(0, 1): log σ² = 0, log σ = 0, σ = 1.
UNIT_SCALE = {"log_var": 0.0, "log_std": 0.0, "std": 1.0}


def _scales(log_std, parameterization):
    """The scales with log σ = ``log_std`` in the given parameterization."""
    if parameterization == "log_var":
        return 2.0 * log_std
    if parameterization == "log_std":
        return log_std
    return np.exp(log_std)


def _random(rng, B, d):  # noqa: N803
    shape = [(B, d), (B, d), (d,), (2, B, d)][int(rng.integers(0, 4))]
    parameterization = str(rng.choice(["log_var", "log_std", "std"]))
    spread = float(rng.choice([0.1, 1.0, 5.0]))
    mu_q = rng.standard_normal(shape) * spread
    scale_q = _scales(rng.standard_normal(shape) * float(rng.choice([0.2, 1.0])), parameterization)
    if rng.integers(0, 4):
        mu_p = rng.standard_normal(shape) * spread
        scale_p = _scales(rng.standard_normal(shape) * float(rng.choice([0.2, 1.0])), parameterization)
    else:  # the prior N(0, I)
        mu_p, scale_p = np.zeros(shape), np.full(shape, UNIT_SCALE[parameterization])
    kwargs = {
        "parameterization": parameterization,
        "weight": float(rng.choice([1.0, 1.0, 0.2, 3.0])),
        "normalize_by_dim": bool(rng.integers(0, 2)),
    }
    return Sample("random", (mu_q, scale_q, mu_p, scale_p), kwargs)


def _edges():
    rng = np.random.default_rng(5)
    mu, log_std = rng.standard_normal((3, 4)), rng.standard_normal((3, 4)) * 0.5
    samples = [
        Sample(
            "known value: N(1, 1) and N(0, 4) against N(0, I)",
            (np.array([[1.0, 0.0]]), np.array([[0.0, math.log(4.0)]]), np.zeros((1, 2)), np.zeros((1, 2))),
            flags=("PRIOR",),
            comment="½ + (3/2 − log 2) = 1.3068528",
        ),
        Sample(
            "prior N(0, I), log-variances",
            (mu, 2 * log_std, np.zeros((3, 4)), np.zeros((3, 4))),
            {"weight": 0.2},
            flags=("PRIOR",),
        ),
        Sample(
            "near-equal: σ_q²/σ_p² = 1 + 1e-6, Δ = 1e-4",
            (np.array([[0.5, 1e-4]]), np.array([[1e-6, 0.0]]), np.array([[0.5, 0.0]]), np.zeros((1, 2))),
            flags=("NEAR_EQUAL",),
            dtypes=("float64",),
            fd_step=1e-9,
            comment="float32 holds 1 + 1e-6 to one digit; the KL is ~5e-9",
        ),
        Sample(
            "log-variances ±100 differing by O(1)",
            (
                np.array([[1e-22, 3e-22], [5.0, -2e22]]),
                np.array([[-100.0, -99.5], [101.0, 99.0]]),
                np.array([[-2e-22, 0.0], [3e21, 1e22]]),
                np.array([[-101.0, -100.0], [100.0, 100.5]]),
            ),
            flags=("LARGE_LOG_SCALES",),
            fd=False,
            comment="σ_p ~ e^±50: a difference step of 1e-6 on a mean of size 1e-22 moves it by 1e16 σ_p",
        ),
        Sample(
            "std scales 1e±20",
            (
                np.array([[1e-20, 0.0], [3e20, -1e20]]),
                np.array([[1e-20, 3e-20], [1e20, 2e20]]),
                np.array([[-1e-20, 2e-20], [0.0, 1e20]]),
                np.array([[2e-20, 1e-20], [2e20, 1e20]]),
            ),
            {"parameterization": "std"},
            flags=("EXTREME_STD",),
            fd=False,
            comment="σ ~ 1e-20: a difference step of 1e-6 makes σ negative",
        ),
        Sample(
            "d = 1, log σ, normalize_by_dim",
            (
                np.array([[3.0], [0.0]]),
                np.array([[0.0], [1.0]]),
                np.array([[1.0], [0.0]]),
                np.array([[0.5], [-1.0]]),
            ),
            {"parameterization": "log_std", "normalize_by_dim": True, "weight": 0.5},
            flags=("ONE_DIM",),
        ),
        Sample(
            "batch dims (2, 3, d), std",
            (
                np.linspace(-2, 2, 24).reshape(2, 3, 4),
                np.linspace(0.2, 3, 24).reshape(2, 3, 4),
                np.linspace(1, -1, 24).reshape(2, 3, 4),
                np.linspace(2, 0.5, 24).reshape(2, 3, 4),
            ),
            {"parameterization": "std"},
            flags=("BATCH_DIMS",),
        ),
    ]
    for parameterization in ("log_var", "log_std", "std"):
        scale = _scales(log_std, parameterization)
        samples.append(
            Sample(
                f"q = p ({parameterization})",
                (mu, scale, mu.copy(), scale.copy()),
                {"parameterization": parameterization},
                flags=("Q_EQUALS_P",),
            )
        )
    return samples


def _errors():
    mu = np.zeros((2, 3))
    sigma = np.ones((2, 3))
    zero_scale = sigma.copy()
    zero_scale[1, 2] = 0.0
    negative_scale = sigma.copy()
    negative_scale[0, 1] = -0.5
    std = {"parameterization": "std"}
    return [
        ErrorCase(
            "σ_q = 0 with std", (mu, zero_scale, mu, sigma), std, match=r"'scale_q'.*σ > 0.*index \(1, 2\)"
        ),
        ErrorCase("σ_p < 0 with std", (mu, sigma, mu, negative_scale), std, match=r"'scale_p'.*σ > 0.*-0.5"),
    ]


def _known():
    log4 = math.log(4.0)
    zeros = np.zeros((1, 2))
    return [
        Known(
            "N(1, 1) and N(0, σ² = 4) against N(0, I), log-variances",
            (np.array([[1.0, 0.0]]), np.array([[0.0, log4]]), zeros, zeros),
            values={
                "kl": [0.5 + 1.5 - math.log(2.0)],
                "cotangent of 'mu_q'": [[1.0, 0.0]],
                "cotangent of 'scale_q'": [[0.0, 1.5]],  # ½(σ_q²/σ_p² − 1)
                "cotangent of 'mu_p'": [[-1.0, 0.0]],
                "cotangent of 'scale_p'": [[-0.5, -1.5]],  # ½(1 − (σ_q² + Δ²)/σ_p²)
            },
            source="by hand: KL = log σ_p − log σ_q + (σ_q² + Δ²)/(2σ_p²) − ½ per dimension",
            rtol=1e-12,
        ),
        Known(
            "N(3, 1) against N(1, 2²), standard deviations",
            (np.array([3.0]), np.array([1.0]), np.array([1.0]), np.array([2.0])),
            {"parameterization": "std"},
            values={
                "kl": math.log(2.0) + 5.0 / 8.0 - 0.5,
                "cotangent of 'mu_q'": [0.5],  # Δ/σ_p²
                "cotangent of 'scale_q'": [-0.75],  # σ_q/σ_p² − 1/σ_q
                "cotangent of 'mu_p'": [-0.5],
                "cotangent of 'scale_p'": [-0.125],  # 1/σ_p − (σ_q² + Δ²)/σ_p³
            },
            source="by hand (the catalog's std VJP)",
            rtol=1e-12,
        ),
        Known(
            "N(3, 1) against N(1, 2²), log σ, weight 3",
            (np.array([3.0]), np.array([0.0]), np.array([1.0]), np.array([math.log(2.0)])),
            {"parameterization": "log_std", "weight": 3.0},
            values={
                "kl": 3.0 * (math.log(2.0) + 5.0 / 8.0 - 0.5),
                "cotangent of 'scale_q'": [3.0 * -0.75],  # σ_q²/σ_p² − 1
                "cotangent of 'scale_p'": [3.0 * -0.25],  # 1 − (σ_q² + Δ²)/σ_p²
            },
            source="by hand (the catalog's log-std VJP)",
            rtol=1e-12,
        ),
        Known(
            "PV-RNN weighting: (w/d)·KL with w = 0.5, d = 2",
            (np.array([[1.0, 0.0]]), np.array([[0.0, log4]]), zeros, zeros),
            {"weight": 0.5, "normalize_by_dim": True},
            values={"kl": [0.25 * (2.0 - math.log(2.0))]},
            source="by hand",
            rtol=1e-12,
        ),
    ]


def _diag_gaussian_kl_torch(torch, args, kwargs, cotangent):
    """The textbook closed form with σ² = exp(ℓ) (or exp(2s), σ²); autograd backward."""
    mu_q, scale_q, mu_p, scale_p = (torch.from_numpy(a).requires_grad_() for a in args)
    g = torch.from_numpy(np.asarray(cotangent))
    parameterization = kwargs.get("parameterization", "log_var")
    weight = kwargs.get("weight", 1.0)
    if kwargs.get("normalize_by_dim", False):
        weight = weight / args[0].shape[-1]

    def step():
        for tensor in (mu_q, scale_q, mu_p, scale_p):
            tensor.grad = None
        if parameterization == "log_var":
            log_var_q, log_var_p = scale_q, scale_p
        elif parameterization == "log_std":
            log_var_q, log_var_p = 2 * scale_q, 2 * scale_p
        else:
            log_var_q, log_var_p = 2 * torch.log(scale_q), 2 * torch.log(scale_p)
        delta = mu_q - mu_p
        terms = 0.5 * (
            log_var_p - log_var_q + (torch.exp(log_var_q) + delta * delta) / torch.exp(log_var_p) - 1
        )
        kl = weight * terms.sum(-1)
        kl.backward(g)
        return kl

    return step


def _bench_sample(rng, rows, cols):
    shape = (rows, cols)
    args = (
        rng.standard_normal(shape),
        rng.standard_normal(shape) * 0.5,
        rng.standard_normal(shape),
        rng.standard_normal(shape) * 0.5,
    )
    return Sample("bench", args)


def _transcendentals(args, kwargs):
    # log_var/log_std: exp for 1/σ_p and expm1 of the log-ratio per element (the backward
    # reuses both); std: one log of σ_q/σ_p per element
    per_element = 1 if kwargs.get("parameterization", "log_var") == "std" else 2
    return per_element * args[0].size


register(
    OpCases(
        "diag_gaussian_kl",
        dims={"B": (1, 5), "d": (1, 6)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={"parameterization": "log_var", "weight": 1.0, "normalize_by_dim": False},
        bench=Bench(
            make=_bench_sample,
            torch=_diag_gaussian_kl_torch,
            torch_label="½Σ(ℓ_p − ℓ_q + (exp(ℓ_q) + Δ²)/exp(ℓ_p) − 1) over the last axis; autograd backward",
            transcendentals=_transcendentals,
        ),
    )
)
