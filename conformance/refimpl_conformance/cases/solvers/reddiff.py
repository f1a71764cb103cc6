"""Conformance cases for `reddiff_loss`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

WEIGHTINGS = ("linear", "sqrt", "square", "log", "trunc_linear", "power2over3", "const")

NOTES = {
    "MEANS": "the two means are over B·M and B·D elements (a sum or a per-row mean scales the VJP)",
    "LAMBDA_OUTSIDE": "λ multiplies g(s), not s inside g (sqrt(λ s) ≠ λ sqrt(s))",
    "SMALL_ALPHA": "ᾱ = 1e-4: s ≈ 100, w = 25 (linear) and 2500 (square)",
    "ALPHA_ONE": "ᾱ = 1: s = 0, only 'const' keeps the denoiser term",
    "SIGMA_X0": "σ_x0 > 0: x0 = μ + σ_x0 ε_x0 enters both terms",
}


def _inputs(rng, B, D, M):  # noqa: N803
    mu = rng.standard_normal((B, D))
    H = rng.standard_normal((M, D)) / math.sqrt(D)  # noqa: N806
    y = rng.standard_normal((B, M))
    eps = rng.standard_normal((B, D))
    e_hat = eps + 0.3 * rng.standard_normal((B, D))
    return mu, y, H, eps, e_hat


def _random(rng, B, D, M):  # noqa: N803
    mu, y, H, eps, e_hat = _inputs(rng, B, D, M)  # noqa: N806
    kwargs = {
        "alpha_bar": float(rng.uniform(0.05, 1.0)),
        "obs_weight": float(rng.choice([1.0, 0.5, 2.0])),
        "grad_term_weight": float(rng.choice([0.25, 1.0])),
        "weighting": str(rng.choice(WEIGHTINGS)),
        "sigma_x0": float(rng.choice([0.0, 0.0, 0.1])),
    }
    eps_x0 = rng.standard_normal((B, D)) if kwargs["sigma_x0"] > 0 else None
    return Sample("random", (mu, y, H, eps, e_hat, eps_x0), kwargs)


def _edges():
    rng = np.random.default_rng(11)
    mu, y, H, eps, e_hat = _inputs(rng, 3, 5, 2)  # noqa: N806
    samples = [
        Sample(
            f"weighting {w}, ᾱ = 0.3",
            (mu, y, H, eps, e_hat),
            {"alpha_bar": 0.3, "weighting": w},
            flags=("LAMBDA_OUTSIDE",),
        )
        for w in WEIGHTINGS
    ]
    samples += [
        Sample("ᾱ = 1e-4, linear", (mu, y, H, eps, e_hat), {"alpha_bar": 1e-4}, flags=("SMALL_ALPHA",)),
        Sample(
            "ᾱ = 1e-4, square",
            (mu, y, H, eps, e_hat),
            {"alpha_bar": 1e-4, "weighting": "square"},
            flags=("SMALL_ALPHA",),
        ),
        Sample("ᾱ = 1, linear", (mu, y, H, eps, e_hat), {"alpha_bar": 1.0}, flags=("ALPHA_ONE",)),
        Sample(
            "ᾱ = 1, const",
            (mu, y, H, eps, e_hat),
            {"alpha_bar": 1.0, "weighting": "const"},
            flags=("ALPHA_ONE",),
        ),
        Sample(
            "σ_x0 = 0.5",
            (mu, y, H, eps, e_hat, rng.standard_normal((3, 5))),
            {"alpha_bar": 0.6, "sigma_x0": 0.5},
            flags=("SIGMA_X0",),
        ),
        Sample(
            "one pixel, one measurement (B = D = M = 1)",
            (np.array([[0.7]]), np.array([[0.2]]), np.array([[2.0]]), np.array([[0.1]]), np.array([[-0.4]])),
            {"alpha_bar": 0.8},
            flags=("MEANS",),
        ),
    ]
    return samples


def _errors():
    rng = np.random.default_rng(0)
    mu, y, H, eps, e_hat = _inputs(rng, 2, 3, 2)  # noqa: N806
    return [
        ErrorCase(
            "σ_x0 > 0 without ε_x0",
            (mu, y, H, eps, e_hat),
            {"alpha_bar": 0.5, "sigma_x0": 0.1},
            match=r"'eps_x0'.*sigma_x0 > 0",
        ),
    ]


def _known():
    mu, y, H = np.array([[1.0, 2.0]]), np.array([[0.0]]), np.array([[1.0, 1.0]])  # noqa: N806
    eps, e_hat = np.zeros((1, 2)), np.array([[1.0, 0.0]])
    # r = −3, L_obs = 9/2, L_noise = (1·1 + 0·2)/2 = 1/2; ᾱ = 1/2 → s = 1
    two_rows = (
        np.array([[1.0, 0.0], [0.0, 1.0]]),
        np.array([[1.0, 0.0], [0.0, 0.0]]),
        np.eye(2),
        np.zeros((2, 2)),
        np.array([[2.0, 0.0], [0.0, 0.0]]),
    )
    # ᾱ = 0.2 → s = 2; r = y − μ = [[0, 0], [0, −1]]: L_obs = 1/8; L_noise = 2/4 = 1/2
    return [
        Known(
            "one row, ᾱ = 1/2 (s = 1), defaults",
            (mu, y, H, eps, e_hat),
            {"alpha_bar": 0.5},
            values={"loss": 0.25 * 0.5 + 4.5, "cotangent of 'mu'": [[0.25 * 0.5 + 3.0, 3.0]]},
            source="by hand: μ̄ = w(ê − ε)/n_μ − v rH/n_y = 0.25·[1, 0]/2 + 3·[1, 1]",
            rtol=1e-12,
        ),
        Known(
            "two rows, ᾱ = 0.2 (s = 2), sqrt weighting, λ = 1, v = 2",
            two_rows,
            {"alpha_bar": 0.2, "weighting": "sqrt", "grad_term_weight": 1.0, "obs_weight": 2.0},
            values={
                "loss": math.sqrt(2.0) * 0.5 + 2.0 * 0.125,
                "cotangent of 'mu'": [[math.sqrt(2.0) * 0.5, 0.0], [0.0, 2.0 * 0.25]],
            },
            source="by hand: λ·g(s) = √2 (λ outside g), n_y = n_μ = 4",
            rtol=1e-12,
        ),
        Known(
            "two rows, ᾱ = 0.2 (s = 2), trunc_linear: min(2, 1) = 1",
            two_rows,
            {"alpha_bar": 0.2, "weighting": "trunc_linear"},
            values={"loss": 0.25 * 0.5 + 0.125},
            source="by hand",
            rtol=1e-12,
        ),
    ]


def _reddiff_torch(torch, args, kwargs, cotangent):
    """The official loss: ``(e_obs**2).mean()/2`` and ``((et - noise).detach() * x0).mean()``."""
    mu_np, y_np, h_np, eps_np, e_hat_np = args[:5]
    eps_x0_np = args[5] if len(args) > 5 else None
    mu = torch.from_numpy(mu_np).requires_grad_()
    y, h, eps, e_hat = (torch.from_numpy(a) for a in (y_np, h_np, eps_np, e_hat_np))
    eps_x0 = None if eps_x0_np is None else torch.from_numpy(eps_x0_np)
    g = torch.as_tensor(np.asarray(cotangent))
    alpha = kwargs["alpha_bar"]
    sigma_x0 = kwargs.get("sigma_x0", 0.0)
    weighting = kwargs.get("weighting", "linear")
    s = math.sqrt(1 - alpha) / math.sqrt(alpha)
    g_s = {
        "linear": s,
        "sqrt": math.sqrt(s),
        "square": s * s,
        "log": math.log(s + 1.0),
        "trunc_linear": min(s, 1.0),
        "power2over3": s ** (2 / 3),
        "const": 1.0,
    }[weighting]
    w = kwargs.get("grad_term_weight", 0.25) * g_s
    v = kwargs.get("obs_weight", 1.0)

    def step():
        mu.grad = None
        x0 = mu if sigma_x0 == 0 else mu + sigma_x0 * eps_x0
        e_obs = y - x0 @ h.T
        loss = w * torch.mul((e_hat - eps).detach(), x0).mean() + v * (e_obs**2).mean() / 2
        loss.backward(g)
        return loss

    return step


def _bench_sample(rng, rows, cols):
    mu, y, H, eps, e_hat = _inputs(rng, rows, cols, max(cols // 4, 1))  # noqa: N806
    return Sample("bench", (mu, y, H, eps, e_hat), {"alpha_bar": 0.5})


def _blas(args, kwargs):
    mu, H = args[0], args[2]  # noqa: N806

    def step():
        residual = mu @ H.T
        return residual @ H

    return step


register(
    OpCases(
        "reddiff_loss",
        dims={"B": (1, 4), "D": (1, 7), "M": (1, 5)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={
            "eps_x0": None,
            "obs_weight": 1.0,
            "grad_term_weight": 0.25,
            "weighting": "linear",
            "sigma_x0": 0.0,
        },
        bench=Bench(
            make=_bench_sample,
            torch=_reddiff_torch,
            torch_label="the official loss (means of r² and of sg[ê − ε]·x0); autograd backward",
            blas=_blas,
        ),
    )
)
