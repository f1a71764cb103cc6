"""Conformance cases for `lion_init` and `lion_step`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register

NOTES = {
    "SIGN_ZERO": "c = 0 exactly (m = g = 0): sign(0) = 0, the coordinate only decays; "
    "a `c >= 0 ? 1 : -1` sign moves it by η",
    "DECAY_ORDER": "large η·λ: θ·(1 − ηλ) − η·sign(c) (the official order) and θ − η(sign(c) + λθ) "
    "(optax) round differently in float64; both are correct and must pass, while a decay applied "
    "after the step is off by η²λ and must fail",
    "FMA": "thousands of coordinates: a kernel that contracts β·m + (1 − β)·g into one fused "
    "multiply-add (nvcc/NVRTC's default --fmad=true, PyTorch's add_(alpha=)) is one ulp off on a "
    "few percent of them: correct, and must pass",
    "FIRST_STEP": "m = 0: θ' = θ(1 − ηλ) − η·sign(g), m' = (1 − β2)·g (no bias correction)",
    "EMPTY": "a parameter tensor with no elements: nothing to update, no crash",
}


def _shape(rng, rank, size):
    return tuple(int(d) for d in rng.integers(1, size + 1, size=rank))


def _away_from_sign_ties(rng, grads, momentum, beta1):
    """Redraw g wherever |c| = |β1·m + (1 − β1)·g| is below 1e-3 of |β1·m| + |(1 − β1)·g|.

    There the sign of c would depend on rounding (float32 against float64), a legitimate
    difference between backends that the samples must not contain.
    """
    for _ in range(100):
        c = beta1 * momentum + (1 - beta1) * grads
        near_zero = np.abs(c) <= 1e-3 * (np.abs(beta1 * momentum) + np.abs((1 - beta1) * grads))
        if not near_zero.any():
            return grads
        grads = np.where(near_zero, rng.standard_normal(grads.shape) * np.abs(grads).max(initial=1), grads)
    raise RuntimeError("could not draw a gradient away from sign ties")


def _hyperparameters(rng):
    return {
        "lr": float(10 ** rng.uniform(-5, -1)),
        "beta1": float(rng.choice([0.9, 0.95, 0.0, rng.uniform(0, 0.999)])),
        "beta2": float(rng.choice([0.99, 0.98, rng.uniform(0, 0.9999)])),
        "weight_decay": float(rng.choice([0.0, 0.01, 0.1, 1.0, rng.uniform(0, 3)])),
    }


def _step_random(rng, rank, size):
    shape = _shape(rng, rank, size)
    kwargs = _hyperparameters(rng)
    scale = float(10 ** rng.uniform(-3, 1))
    params = np.asarray(rng.standard_normal(shape) * float(rng.choice([0.02, 1.0, 5.0])))
    momentum = np.asarray(rng.standard_normal(shape) * scale * float(rng.choice([0.0, 1.0])))
    grads = _away_from_sign_ties(
        rng, np.asarray(rng.standard_normal(shape) * scale), momentum, kwargs["beta1"]
    )
    return Sample("random", (params, grads, momentum), kwargs)


def _step_edges():
    rng = np.random.default_rng(11)
    many = 4096
    momentum_many = rng.standard_normal(many)
    grads_many = _away_from_sign_ties(rng, rng.standard_normal(many), momentum_many, 0.9)
    params_decay = rng.standard_normal(64) * 3
    momentum_decay = rng.standard_normal(64)
    grads_decay = _away_from_sign_ties(rng, rng.standard_normal(64), momentum_decay, 0.9)
    return [
        Sample(
            "first step from m = 0",
            (rng.standard_normal((3, 4)), rng.standard_normal((3, 4)) * 1e-3, np.zeros((3, 4))),
            {"lr": 1e-3},
            flags=("FIRST_STEP",),
            comment="θ' = θ − η·sign(g); m' = (1 − β2)·g",
        ),
        Sample(
            "c = 0 exactly: decay only",
            (
                np.array([1.5, -2.0, 0.25, 3.0]),
                np.array([0.0, 0.0, 0.7, -0.2]),
                np.array([0.0, 0.0, 0.1, 0.4]),
            ),
            {"lr": 0.01, "weight_decay": 0.5},
            flags=("SIGN_ZERO",),
            comment="the first two coordinates become θ·(1 − 0.005) exactly",
        ),
        Sample(
            "large η·λ",
            (params_decay, grads_decay, momentum_decay),
            {"lr": 0.03, "weight_decay": 7.0},
            flags=("DECAY_ORDER",),
            comment="1 − ηλ = 0.79: the two-step and the algebraic decay forms round differently",
        ),
        Sample(
            "4096 coordinates",
            (rng.standard_normal(many), grads_many, momentum_many),
            {"lr": 1e-4, "weight_decay": 0.1},
            flags=("FMA",),
        ),
        Sample(
            "scalar parameter",
            (np.array(0.75), np.array(-0.3), np.array(0.2)),
            {"lr": 0.1, "beta1": 0.5, "beta2": 0.5, "weight_decay": 0.2},
        ),
        Sample(
            "empty parameter tensor",
            (np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3))),
            flags=("EMPTY",),
        ),
        Sample(
            "β1 = β2 = 0 (sign descent)",
            (np.array([[0.5, -0.5], [2.0, 1e-3]]), np.array([[1.0, -3.0], [-0.5, 2.0]]), np.ones((2, 2))),
            {"lr": 0.05, "beta1": 0.0, "beta2": 0.0},
            comment="c = g and m' = g: the momentum plays no part",
        ),
    ]


def _lion_bench_sample(rng, rows, cols):
    """A (rows, cols) parameter tensor with its gradient and momentum (the sampler draws small ones)."""
    shape = (rows, cols)
    return Sample(
        "bench", (rng.standard_normal(shape), rng.standard_normal(shape), rng.standard_normal(shape))
    )


def _lion_torch(torch, args, kwargs, cotangent):
    """The official update written functionally (new tensors, the inputs untouched)."""
    params, grads, momentum = (torch.from_numpy(a) for a in args)
    lr, wd = kwargs.get("lr", 1e-4), kwargs.get("weight_decay", 0.0)
    beta1, beta2 = kwargs.get("beta1", 0.9), kwargs.get("beta2", 0.99)

    def step():
        with torch.no_grad():
            c = momentum * beta1 + grads * (1 - beta1)
            new_params = params * (1 - lr * wd) - torch.sign(c) * lr
            new_momentum = momentum * beta2 + grads * (1 - beta2)
            return new_params, new_momentum

    return step


register(
    OpCases(
        "lion_step",
        dims={"rank": (0, 3), "size": (1, 6)},
        random=_step_random,
        edges=_step_edges,
        notes=NOTES,
        bench=Bench(
            make=_lion_bench_sample,
            kwargs={"lr": 1e-4, "weight_decay": 0.1},
            torch=_lion_torch,
            torch_label="c = β1·m + (1 − β1)·g; θ(1 − ηλ) − η·torch.sign(c); β2·m + (1 − β2)·g (no in-place)",
        ),
    )
)


def _init_random(rng, rank, size):
    return Sample("random", (np.asarray(rng.standard_normal(_shape(rng, rank, size))),))


def _init_edges():
    return [
        Sample("scalar parameter", (np.array(2.5),)),
        Sample("empty parameter tensor", (np.zeros((4, 0)),), flags=("EMPTY",)),
    ]


def _lion_init_torch(torch, args, kwargs, cotangent):
    """torch.zeros_like, as the official code initializes the state."""
    params = torch.from_numpy(args[0])

    def step():
        with torch.no_grad():
            return torch.zeros_like(params)

    return step


register(
    OpCases(
        "lion_init",
        dims={"rank": (0, 3), "size": (1, 6)},
        random=_init_random,
        edges=_init_edges,
        notes=NOTES,
        bench=Bench(
            make=lambda rng, rows, cols: Sample("bench", (rng.standard_normal((rows, cols)),)),
            torch=_lion_init_torch,
            torch_label="torch.zeros_like(params) (the official state init)",
        ),
    )
)
