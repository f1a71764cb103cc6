"""Conformance cases for the rehearsal-free continual-learning regularizers: `l2_anchor_regularizer`,
`ewc_penalty`, `feature_distillation_loss`, `empirical_fisher_diagonal`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "AT_ANCHOR": "θ = θ* (h_new = h_old): exactly 0 and a zero gradient",
    "ZERO_WEIGHT": "λ = 0 (F = 0): exactly 0, whatever the distance",
    "OFFSET": "weights ~1e4 that differ by O(1e-3): Δ is formed before squaring, never θ² − 2θθ* + θ*²",
    "LARGE_SUM": "many O(1) squares: a float32 running sum drifts; the float64 accumulator does not",
    "SCALAR": "0-d weights: one parameter",
    "PARTIAL_FISHER": "F zero on some weights: those weights get no gradient",
    "TOKENS": "features (B, T, D): 'batchmean' divides by B only, 'mean' by B·T·D",
    "ONE_SAMPLE": "N = 1 (B = 1): the Fisher is g², the batch mean is the row",
    "CANCELLING": "per-sample gradients whose mean is 0: the Fisher is not",
}


def _shape(rng, R, P):  # noqa: N803
    return [(P,), (R, P), (2, R, P), (R, P)][int(rng.integers(0, 4))]


def _weights(rng, shape):
    scale = float(rng.choice([0.01, 1.0, 10.0]))
    theta_star = rng.standard_normal(shape) * scale
    return theta_star + rng.standard_normal(shape) * scale * float(rng.choice([0.01, 0.5, 2.0])), theta_star


def _lam(rng):
    return float(rng.choice([1.0, 0.1, 5e3, 0.37]))


# ---------------------------------------------------------------- l2_anchor_regularizer


def _l2_random(rng, R, P):  # noqa: N803
    theta, theta_star = _weights(rng, _shape(rng, R, P))
    return Sample("random", (theta, theta_star), {"lam": _lam(rng)})


def _l2_edges():
    rng = np.random.default_rng(11)
    theta_star = rng.standard_normal((3, 5))
    large = 1e4 + rng.standard_normal(64)
    return [
        Sample("θ = θ*", (theta_star, theta_star.copy()), {"lam": 2.0}, flags=("AT_ANCHOR",)),
        Sample("λ = 0", (theta_star + 1.0, theta_star), {"lam": 0.0}, flags=("ZERO_WEIGHT",)),
        Sample(
            "weights ~1e4, Δ ~ 1e-3",
            (large + 1e-3 * rng.standard_normal(64), large),
            {"lam": 1.0},
            flags=("OFFSET",),
            dtypes=("float64",),
            comment="float32 holds 1e4 to ~1e-3: the difference itself is not representable there",
        ),
        Sample(
            "50 000 squares",
            (rng.standard_normal(50_000), rng.standard_normal(50_000)),
            {"lam": 0.5},
            flags=("LARGE_SUM",),
            fd=False,
            comment="the sum is a quadratic: finite differences add nothing here",
        ),
        Sample("0-d weights", (np.array(1.5), np.array(-0.5)), {"lam": 3.0}, flags=("SCALAR",)),
    ]


def _l2_known():
    theta, theta_star = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 4.0])
    return [
        Known(
            "Δ = (0, 2, −1), λ = 0.5",
            (theta, theta_star),
            {"lam": 0.5},
            values={"penalty": 0.25 * (0 + 4 + 1), "cotangent of 'theta'": [0.0, 1.0, -0.5]},
            source="by hand: (λ/2)ΣΔ², VJP λΔ",
            rtol=1e-15,
        ),
        Known(
            "Δ = (3, −4), λ = 2, cotangent 0.5",
            (np.array([[3.0, -4.0]]), np.zeros((1, 2))),
            {"lam": 2.0},
            values={"penalty": 25.0, "cotangent of 'theta'": [[3.0, -4.0]]},
            cotangent=np.array(0.5),
            source="by hand: (2/2)·25; 0.5·2·Δ",
            rtol=1e-15,
        ),
    ]


def _l2_torch(torch, args, kwargs, cotangent):
    """(λ/2)·((θ − θ*)²).sum(); autograd backward."""
    theta = torch.from_numpy(args[0]).requires_grad_()
    theta_star = torch.from_numpy(args[1])
    g = torch.from_numpy(np.asarray(cotangent))
    lam = kwargs["lam"]

    def step():
        theta.grad = None
        penalty = 0.5 * lam * ((theta - theta_star) ** 2).sum()
        penalty.backward(g)
        return penalty

    return step


def _weights_bench(rng, rows, cols):
    theta_star = rng.standard_normal((rows, cols)) * 0.02
    return theta_star + rng.standard_normal((rows, cols)) * 1e-3, theta_star


def _l2_bench(rng, rows, cols):
    return Sample("bench", _weights_bench(rng, rows, cols), {"lam": 0.1})


register(
    OpCases(
        "l2_anchor_regularizer",
        dims={"R": (1, 4), "P": (1, 9)},
        random=_l2_random,
        edges=_l2_edges,
        known=_l2_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_l2_bench,
            torch=_l2_torch,
            torch_label="(λ/2)·((θ − θ*)²).sum() in PyTorch; autograd backward",
        ),
    )
)


# ---------------------------------------------------------------- ewc_penalty


def _fisher(rng, shape):
    fisher = rng.gamma(0.5, 1.0, size=shape) * float(rng.choice([1e-4, 1.0, 100.0]))
    if rng.integers(0, 3) == 0:
        fisher[rng.random(shape) < 0.3] = 0.0
    return fisher


def _ewc_random(rng, R, P):  # noqa: N803
    shape = _shape(rng, R, P)
    theta, theta_star = _weights(rng, shape)
    return Sample("random", (theta, theta_star, _fisher(rng, shape)), {"lam": _lam(rng)})


def _ewc_edges():
    rng = np.random.default_rng(12)
    theta_star = rng.standard_normal((3, 5))
    theta = theta_star + rng.standard_normal((3, 5))
    fisher = rng.gamma(0.5, 1.0, size=(3, 5))
    partial = fisher.copy()
    partial[:, ::2] = 0.0
    large = 1e4 + rng.standard_normal(64)
    return [
        Sample("θ = θ*", (theta_star, theta_star.copy(), fisher), {"lam": 2.0}, flags=("AT_ANCHOR",)),
        Sample("F = 0", (theta, theta_star, np.zeros((3, 5))), {"lam": 2.0}, flags=("ZERO_WEIGHT",)),
        Sample("λ = 0", (theta, theta_star, fisher), {"lam": 0.0}, flags=("ZERO_WEIGHT",)),
        Sample(
            "F zero on every other column",
            (theta, theta_star, partial),
            {"lam": 1.0},
            flags=("PARTIAL_FISHER",),
        ),
        Sample(
            "weights ~1e4, Δ ~ 1e-3",
            (large + 1e-3 * rng.standard_normal(64), large, rng.gamma(0.5, 1.0, size=64)),
            {"lam": 1.0},
            flags=("OFFSET",),
            dtypes=("float64",),
        ),
        Sample(
            "50 000 weighted squares",
            (rng.standard_normal(50_000), rng.standard_normal(50_000), rng.gamma(0.5, 1.0, size=50_000)),
            {"lam": 0.5},
            flags=("LARGE_SUM",),
            fd=False,
        ),
        Sample(
            "0-d weights", (np.array(1.5), np.array(-0.5), np.array(0.3)), {"lam": 3.0}, flags=("SCALAR",)
        ),
    ]


def _ewc_errors():
    fisher = np.ones((2, 3))
    fisher[1, 2] = -0.5
    return [
        ErrorCase(
            "negative Fisher",
            (np.zeros((2, 3)), np.ones((2, 3)), fisher),
            {"lam": 1.0},
            match=r"'fisher'.*F ≥ 0.*-0.5 at index \(1, 2\)",
        )
    ]


def _ewc_known():
    theta, theta_star = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 4.0])
    fisher = np.array([5.0, 0.25, 2.0])
    return [
        Known(
            "Δ = (0, 2, −1), F = (5, ¼, 2), λ = 2",
            (theta, theta_star, fisher),
            {"lam": 2.0},
            values={"penalty": 0.0 + 1.0 + 2.0, "cotangent of 'theta'": [0.0, 1.0, -4.0]},
            source="by hand: (λ/2)ΣFΔ², VJP λF⊙Δ",
            rtol=1e-15,
        ),
    ]


def _ewc_torch(torch, args, kwargs, cotangent):
    """(λ/2)·(F·(θ − θ*)²).sum(); autograd backward."""
    theta = torch.from_numpy(args[0]).requires_grad_()
    theta_star, fisher = torch.from_numpy(args[1]), torch.from_numpy(args[2])
    g = torch.from_numpy(np.asarray(cotangent))
    lam = kwargs["lam"]

    def step():
        theta.grad = None
        penalty = 0.5 * lam * (fisher * (theta - theta_star) ** 2).sum()
        penalty.backward(g)
        return penalty

    return step


def _ewc_bench(rng, rows, cols):
    theta, theta_star = _weights_bench(rng, rows, cols)
    return Sample("bench", (theta, theta_star, rng.gamma(0.5, 1e-3, size=(rows, cols))), {"lam": 100.0})


register(
    OpCases(
        "ewc_penalty",
        dims={"R": (1, 4), "P": (1, 9)},
        random=_ewc_random,
        edges=_ewc_edges,
        errors=_ewc_errors,
        known=_ewc_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_ewc_bench,
            torch=_ewc_torch,
            torch_label="(λ/2)·(F·(θ − θ*)²).sum() in PyTorch; autograd backward",
        ),
    )
)


# ---------------------------------------------------------------- feature_distillation_loss


def _features_random(rng, B, D):  # noqa: N803
    shape = [(B, D), (B, D), (B, 2, D)][int(rng.integers(0, 3))]
    scale = float(rng.choice([0.1, 1.0, 30.0]))
    h_old = rng.standard_normal(shape) * scale
    h_new = h_old + rng.standard_normal(shape) * scale * float(rng.choice([0.05, 1.0]))
    return Sample("random", (h_new, h_old), {"reduction": str(rng.choice(["batchmean", "mean"]))})


def _features_edges():
    rng = np.random.default_rng(13)
    h_old = rng.standard_normal((4, 6))
    tokens_new, tokens_old = rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 3, 5))
    return [
        Sample("h_new = h_old", (h_old, h_old.copy()), flags=("AT_ANCHOR",)),
        Sample("B = 1", (rng.standard_normal((1, 5)), rng.standard_normal((1, 5))), flags=("ONE_SAMPLE",)),
        Sample("tokens (B, T, D), batchmean", (tokens_new, tokens_old), flags=("TOKENS",)),
        Sample("tokens (B, T, D), mean", (tokens_new, tokens_old), {"reduction": "mean"}, flags=("TOKENS",)),
        Sample("1-D features, mean", (rng.standard_normal(7), rng.standard_normal(7)), {"reduction": "mean"}),
        Sample(
            "features ~1e4, Δ ~ 1e-3",
            (1e4 + h_old + 1e-3 * rng.standard_normal((4, 6)), 1e4 + h_old),
            flags=("OFFSET",),
            dtypes=("float64",),
        ),
    ]


def _features_errors():
    return [
        ErrorCase(
            "batchmean on 1-D features",
            (np.zeros(3), np.ones(3)),
            {"reduction": "batchmean"},
            match=r"'reduction'.*batch axis.*\(3,\)",
        )
    ]


def _features_known():
    h_new, h_old = np.array([[1.0, 2.0], [0.0, 0.0]]), np.array([[1.0, 0.0], [3.0, 0.0]])
    return [
        Known(
            "two samples, batchmean",
            (h_new, h_old),
            values={"loss": 6.5, "cotangent of 'h_new'": [[0.0, 2.0], [-3.0, 0.0]]},
            source="by hand: (4 + 9)/2; 2Δ/B",
            rtol=1e-15,
        ),
        Known(
            "two samples, mean over the 4 elements",
            (h_new, h_old),
            {"reduction": "mean"},
            values={"loss": 13.0 / 4.0, "cotangent of 'h_new'": [[0.0, 1.0], [-1.5, 0.0]]},
            source="by hand: 13/4; 2Δ/4",
            rtol=1e-15,
        ),
    ]


def _features_torch(torch, args, kwargs, cotangent):
    """‖h_new − h_old‖² summed and divided by B ('batchmean') or torch.nn.functional.mse_loss."""
    h_new = torch.from_numpy(args[0]).requires_grad_()
    h_old = torch.from_numpy(args[1])
    g = torch.from_numpy(np.asarray(cotangent))
    batchmean = kwargs.get("reduction", "batchmean") == "batchmean"

    def step():
        h_new.grad = None
        if batchmean:
            loss = ((h_new - h_old) ** 2).sum() / h_new.shape[0]
        else:
            loss = torch.nn.functional.mse_loss(h_new, h_old)
        loss.backward(g)
        return loss

    return step


def _features_bench(rng, rows, cols):
    h_old = rng.standard_normal((rows, cols))
    return Sample("bench", (h_old + 0.1 * rng.standard_normal((rows, cols)), h_old))


register(
    OpCases(
        "feature_distillation_loss",
        dims={"B": (1, 6), "D": (1, 8)},
        random=_features_random,
        edges=_features_edges,
        errors=_features_errors,
        known=_features_known,
        notes=NOTES,
        defaults={"reduction": "batchmean"},
        bench=Bench(
            make=_features_bench,
            torch=_features_torch,
            torch_label="((h_new − h_old)²).sum()/B in PyTorch; autograd backward",
        ),
    )
)


# ---------------------------------------------------------------- empirical_fisher_diagonal


def _fisher_random(rng, N, P):  # noqa: N803
    scale = float(rng.choice([1e-3, 1.0, 50.0]))
    mean = rng.standard_normal(P) * scale * float(rng.choice([0.0, 1.0]))
    return Sample("random", (mean + rng.standard_normal((N, P)) * scale,))


def _fisher_edges():
    rng = np.random.default_rng(14)
    row = rng.standard_normal((1, 6))
    half = rng.standard_normal((3, 5))
    return [
        Sample("N = 1", (row,), flags=("ONE_SAMPLE",)),
        Sample("rows ±g: mean gradient 0", (np.concatenate([half, -half]),), flags=("CANCELLING",)),
        Sample("zero gradients", (np.zeros((4, 3)),), flags=("ZERO_WEIGHT",)),
        Sample("20 000 samples", (rng.standard_normal((20_000, 3)),), flags=("LARGE_SUM",)),
    ]


def _fisher_known():
    return [
        Known(
            "g = [[1, −2], [−1, 2]]: F = (1, 4) where the squared mean gradient is 0",
            (np.array([[1.0, -2.0], [-1.0, 2.0]]),),
            values={"fisher": [1.0, 4.0]},
            source="by hand: (1/N)Σ g²",
            rtol=1e-15,
        ),
        Known(
            "three samples",
            (np.array([[1.0, 0.0, 3.0], [2.0, 0.0, -3.0], [2.0, 0.0, 0.0]]),),
            values={"fisher": [3.0, 0.0, 6.0]},
            source="by hand: (1 + 4 + 4)/3, 0, (9 + 9)/3",
            rtol=1e-15,
        ),
    ]


def _fisher_torch(torch, args, kwargs, cotangent):
    """(g²).mean(0) in PyTorch (forward only: a statistic)."""
    g = torch.from_numpy(args[0])

    def step():
        with torch.no_grad():
            return (g * g).mean(0)

    return step


def _fisher_bench(rng, rows, cols):
    return Sample("bench", (rng.standard_normal((rows, cols)) * 1e-2,))


register(
    OpCases(
        "empirical_fisher_diagonal",
        dims={"N": (1, 7), "P": (1, 8)},
        random=_fisher_random,
        edges=_fisher_edges,
        known=_fisher_known,
        notes=NOTES,
        defaults={},
        bench=Bench(
            make=_fisher_bench,
            torch=_fisher_torch,
            torch_label="(g²).mean(0) in PyTorch (forward only)",
        ),
    )
)
