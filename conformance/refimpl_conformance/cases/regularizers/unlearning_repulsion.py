"""Conformance cases for `unlearning_repulsion_regularizer` (Adapt-then-Unlearn)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "AT_ADAPTED": "θ = θ_N for every model: d = 0, R = 0 (l2) or 100 (exp), gradient from R'(0) times 0",
    "ONE_MODEL": "n_models = 1: the official and the intended scaling agree (c = 1/(2T))",
    "OFFSET": "parameters ~1e4 that differ by O(1e-2): θ − θ_N is formed before squaring",
    "FAR": "d ≈ 700 with γ = 1: e^{−d} is ~1e-304 (float64) and 0 in float32, no NaN",
    "NEAR": "reci with d ~ 1e-8: R = 1/(d f) large, R' = −1/(f d²) larger, still finite",
    "MANY_TENSORS": "T = 40 tensors of different sizes: the 1/n_p weights per tensor",
}


def _random(rng, M, T, N):  # noqa: N803
    sizes = rng.integers(1, N + 1, size=T)
    p = int(sizes.sum())
    scale = float(rng.choice([0.02, 1.0, 10.0]))
    theta = rng.standard_normal(p) * scale
    theta_adapted = theta + rng.standard_normal((M, p)) * scale * float(rng.choice([0.05, 0.5, 2.0]))
    kwargs = {
        "form": str(rng.choice(["l2", "reci", "exp"])),
        "gamma": float(rng.choice([1.0, 0.5, 3.0])),
        "official_scaling": bool(rng.random() < 0.6),
    }
    return Sample("random", (theta, theta_adapted, sizes), kwargs)


def _edges():
    rng = np.random.default_rng(21)
    sizes = np.array([3, 5, 1, 4])
    theta = rng.standard_normal(13)
    adapted = theta + 0.3 * rng.standard_normal((3, 13))
    many = rng.integers(1, 12, size=40)
    theta_many = rng.standard_normal(int(many.sum()))
    far = theta + np.sqrt(1400.0) * np.ones((1, 13))  # c = (1/2)/4, MSE = 1400 per tensor: d = 700
    return [
        Sample(
            "θ = θ_N, l2", (theta, np.stack([theta, theta]), sizes), {"form": "l2"}, flags=("AT_ADAPTED",)
        ),
        Sample(
            "θ = θ_N, exp",
            (theta, np.stack([theta]), sizes),
            {"form": "exp", "gamma": 2.0},
            flags=("AT_ADAPTED",),
        ),
        Sample(
            "one adapted model, reci", (theta, adapted[:1], sizes), {"form": "reci"}, flags=("ONE_MODEL",)
        ),
        Sample(
            "intended scaling, exp",
            (theta, adapted, sizes),
            {"form": "exp", "official_scaling": False},
            flags=("ONE_MODEL",),
        ),
        Sample(
            "parameters ~1e4",
            (theta + 1e4, adapted + 1e4, sizes),
            {"form": "exp", "gamma": 0.7},
            flags=("OFFSET",),
            dtypes=("float64",),
            fd_step=1e-10,
            comment="float32 holds 1e4 to ~1e-3: the differences themselves lose their digits there; "
            "the FD step is 1e-6 absolute (the relative 1e-6·|θ| = 1e-2 is not small beside θ − θ_N)",
        ),
        Sample("d ≈ 700, exp", (theta, far, sizes), {"form": "exp"}, flags=("FAR",)),
        Sample(
            "d ~ 1e-8, reci",
            (theta, theta + 1e-4 * rng.standard_normal((2, 13)), sizes),
            {"form": "reci", "gamma": 1e-3},
            flags=("NEAR",),
            dtypes=("float64",),
            fd_step=1e-9,
            comment="float32 differences of 1e-4 on O(1) parameters keep 3 digits; the step must stay "
            "well below the 1e-4 distances",
        ),
        Sample(
            "40 tensors",
            (theta_many, theta_many + rng.standard_normal((2, theta_many.size)), many),
            {"form": "l2", "gamma": 2.0},
            flags=("MANY_TENSORS",),
        ),
    ]


def _known():
    theta, adapted = np.array([1.0, 2.0, 3.0]), np.array([[0.0, 0.0, 3.0], [1.0, 0.0, 1.0]])
    sizes = np.array([2, 1])
    # MSEs: model 1: tensor 1 (1 + 4)/2 = 2.5, tensor 2 0; model 2: (0 + 4)/2 = 2, (2)²/1 = 4
    total = 2.5 + 0.0 + 2.0 + 4.0
    official, intended = (2 / 2) / 2 * total, 1 / (2 * 2 * 2) * total  # c = (M/2)/T, 1/(2 M T)
    return [
        Known(
            "one model, one tensor, l2",
            (np.array([1.0, 2.0]), np.array([[0.0, 0.0]]), np.array([2])),
            {"form": "l2"},
            values={"loss": -1.25, "cotangent of 'theta'": [-0.5, -1.0]},
            source="by hand: d = (1/2)·(1 + 4)/2 = 1.25, ∂d/∂θ = (c/n_p)·2θ = θ/2, R' = −1",
        ),
        Known(
            "two models, two tensors, l2 (official c)",
            (theta, adapted, sizes),
            {"form": "l2", "gamma": 2.0},
            values={"loss": -2.0 * official},
            source="by hand: MSE sum 8.5, c = (2/2)/2 = 1/2, R = −γ d",
        ),
        Known(
            "two models, two tensors, reci (intended c)",
            (theta, adapted, sizes),
            {"form": "reci", "official_scaling": False},
            values={"loss": 1.0 / intended},
            source="by hand: c = 1/(2·2·2) = 1/8, d = 8.5/8, R = 1/(d f) with f = 1",
        ),
        Known(
            "θ = θ_N, exp",
            (theta, np.stack([theta]), sizes),
            {"form": "exp"},
            values={"loss": 100.0, "cotangent of 'theta'": [0.0, 0.0, 0.0]},
            source="by hand: d = 0, R = 100 e⁰, ∂d/∂θ = 0",
        ),
    ]


def _errors():
    theta = np.array([1.0, 2.0, 3.0])
    return [
        ErrorCase(
            "sizes add up to 2 ≠ 3",
            (theta, theta[None, :] + 1.0, np.array([2])),
            {"form": "l2"},
            match="add up to the length of theta",
        ),
        ErrorCase(
            "reci at d = 0",
            (theta, np.stack([theta, theta]), np.array([3])),
            {"form": "reci"},
            match="d = 0",
        ),
    ]


def _bench(rng, rows, cols):
    layers = 16
    n = max(1, rows * cols // layers)
    theta = rng.standard_normal(layers * n) * 0.05
    adapted = theta + rng.standard_normal((2, layers * n)) * 1e-3
    return Sample("bench", (theta, adapted, np.full(layers, n)), {"form": "exp", "gamma": 1.0})


def _repulsion_torch(torch, args, kwargs, cotangent):
    """torch.split per tensor, F.mse_loss per tensor and model, summed, × c; R(d); autograd backward."""
    F = torch.nn.functional
    theta = torch.from_numpy(args[0]).requires_grad_()
    adapted = torch.from_numpy(args[1])
    sizes = [int(n) for n in args[2]]
    g = torch.from_numpy(np.asarray(cotangent))
    form, gamma = kwargs["form"], kwargs.get("gamma", 1.0)
    n_models, n_tensors = adapted.shape[0], len(sizes)
    c = (n_models / 2) / n_tensors if kwargs.get("official_scaling", True) else 1 / (2 * n_models * n_tensors)
    targets = [torch.split(adapted[m], sizes) for m in range(n_models)]

    def step():
        theta.grad = None
        pieces = torch.split(theta, sizes)
        d = c * sum(F.mse_loss(target[p], pieces[p]) for target in targets for p in range(n_tensors))
        f = 1 / gamma
        loss = -d / f if form == "l2" else 1 / (d * f) if form == "reci" else 100 * torch.exp(-d / f)
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "unlearning_repulsion_regularizer",
        dims={"M": (1, 3), "T": (1, 4), "N": (1, 6)},
        random=_random,
        edges=_edges,
        errors=_errors,
        known=_known,
        notes=NOTES,
        defaults={"gamma": 1.0, "official_scaling": True},
        bench=Bench(
            make=_bench,
            torch=_repulsion_torch,
            torch_label="torch.split, F.mse_loss per tensor and model (a Python loop, as the official code), "
            "× c, 100·exp(−d/f); autograd backward",
            transcendentals=lambda args, kwargs: 1,
        ),
    )
)
