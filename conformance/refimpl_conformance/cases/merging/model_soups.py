"""Conformance cases for model soups: `uniform_soup`, `greedy_soup` and `learned_soup`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register
from ...deviations import transcribes

NOTES = {
    "ONE_MODEL": "K = 1: the soup is the model itself (no division by a wrong count)",
    "IDENTICAL": "identical ingredients: the soup is the model (idempotence)",
    "SCALAR_PARAMETER": "a 0-d parameter tensor",
    "FLOAT32_OVERFLOW": "ingredients near float32's largest value: a float32 running sum overflows, "
    "the mean does not",
    "OFFSET": "ingredients 1e4 + O(1e-3): the mean of nearly equal numbers",
    "STRICT": "a candidate scored exactly the best accuracy so far is rejected (strict >)",
    "TIE_ORDER": "equal held-out accuracies: the paper keeps the lower index first, the official "
    "code the higher",
    "EVALUATE_ONCE": "K = 1: evaluate is never called",
    "SATURATED": "logits ±50: softmax is one-hot in float32; exp must not overflow",
}


def _shape_with(rng, n):
    """A random shape holding n elements: (), (n,), (n//d, d) or (d, 1, n//d) for a small divisor d."""
    divisors = [d for d in range(1, min(n, 64) + 1) if n % d == 0]
    d = int(rng.choice(divisors))
    shapes = [(n,), (n // d, d), (d, 1, n // d)] + ([()] if n == 1 else [])
    return shapes[int(rng.integers(0, len(shapes)))]


def _ingredients(rng, shape, K):  # noqa: N803
    """K fine-tuned models around a common point, at varied spreads: stacked on the last axis."""
    center = rng.standard_normal(shape) * float(rng.choice([1.0, 10.0]))
    spread = float(rng.choice([0.01, 0.1, 1.0]))
    return np.stack([center + spread * rng.standard_normal(shape) for _ in range(K)], axis=-1)


# -- uniform_soup ----------------------------------------------------------------------------------
def _uniform_random(rng, n, K):  # noqa: N803
    return Sample("random", (_ingredients(rng, _shape_with(rng, n), K),))


def _uniform_edges():
    rng = np.random.default_rng(21)
    model = rng.standard_normal((3, 4))
    return [
        Sample("K = 1: the model", (model[..., None],), flags=("ONE_MODEL",)),
        Sample("three identical models", (np.stack([model] * 3, axis=-1),), flags=("IDENTICAL",)),
        Sample("0-d parameter, K = 3", (np.array([0.5, -1.0, 2.0]),), flags=("SCALAR_PARAMETER",)),
        Sample(
            "four models near float32's largest value",
            (np.full((2, 4), 3.0e38) * np.array([1.0, 0.99, 0.98, 0.97]),),
            flags=("FLOAT32_OVERFLOW",),
            comment="the sum is 1.2e39 > 3.4e38: summed in float32 it is inf, the mean is 2.9e38",
        ),
        Sample(
            "offset 1e4, spread 1e-3",
            (1e4 + 1e-3 * rng.standard_normal((5, 6)),),
            flags=("OFFSET",),
        ),
    ]


def _uniform_torch(torch, args, kwargs, cotangent):
    """torch.mean over the stacked models: the same function."""
    thetas = torch.from_numpy(args[0])

    def step():
        with torch.no_grad():
            return thetas.mean(dim=-1)

    return step


register(
    OpCases(
        "uniform_soup",
        dims={"n": (1, 12), "K": (1, 5)},
        random=_uniform_random,
        edges=_uniform_edges,
        errors=lambda: [],
        notes=NOTES,
        defaults={},
        bench=Bench(sizes={"n": 2**21, "K": 4}, torch=_uniform_torch, torch_label="thetas.mean(dim=-1)"),
    )
)


# -- greedy_soup -----------------------------------------------------------------------------------
def _negative_distance(target):
    """A held-out "accuracy": −‖θ − target‖² (higher is better), in float64."""

    def evaluate(theta):
        difference = np.asarray(theta, dtype=np.float64) - target
        return -float(np.sum(difference * difference))

    return evaluate


def _constant(value):
    def evaluate(theta):
        return value

    return evaluate


def _greedy_random(rng, N, K):  # noqa: N803
    target = rng.standard_normal(N)
    # each model: the target plus its own error, at varied sizes (some help the soup, some do not)
    spreads = rng.choice([0.1, 0.3, 1.0, 3.0], size=K)
    thetas = target[:, None] + spreads * rng.standard_normal((N, K))
    evaluate = _negative_distance(target)
    accuracies = np.array([evaluate(thetas[:, k]) for k in range(K)])
    return Sample(
        "random",
        (thetas, accuracies, evaluate),
        {"official_tie_order": bool(rng.integers(0, 2))},
    )


def _greedy_edges():
    rng = np.random.default_rng(22)
    thetas = rng.standard_normal((4, 3))
    evaluate_doc = _negative_distance(np.array([1.0]))
    doc_thetas = np.array([[0.5, 2.0, 10.0]])
    tied = np.array([[1.0, 3.0, 2.0]])
    return [
        Sample(
            "documented example: 2 kept, 10 rejected",
            (doc_thetas, np.array([evaluate_doc(t) for t in doc_thetas.T]), evaluate_doc),
        ),
        Sample(
            "an equal held-out accuracy is rejected",
            (thetas, np.array([0.7, 0.9, 0.8]), _constant(0.9)),
            flags=("STRICT",),
            comment="every candidate scores 0.9 = the best model's accuracy: the soup is model 1 alone",
        ),
        Sample(
            "tied accuracies, paper order (lower index first)",
            (tied, np.array([0.5, 0.5, 0.5]), _constant(0.5)),
            {"official_tie_order": False},
            flags=("TIE_ORDER", "STRICT"),
        ),
        Sample(
            "tied accuracies, official order (higher index first)",
            (tied, np.array([0.5, 0.5, 0.5]), _constant(0.5)),
            {"official_tie_order": True},
            flags=("TIE_ORDER", "STRICT"),
        ),
        Sample(
            "K = 1: the model, evaluate never called",
            (thetas[:, :1], np.array([0.3]), _constant(float("nan"))),
            flags=("ONE_MODEL", "EVALUATE_ONCE"),
        ),
        Sample(
            "identical models: the model",
            (np.repeat(thetas[:, :1], 4, axis=1), np.full(4, -1.0), _constant(-1.0)),
            flags=("IDENTICAL", "STRICT"),
        ),
    ]


def _greedy_errors():
    thetas = np.array([[0.0, 1.0]])
    return [
        ErrorCase(
            "evaluate returns NaN",
            (thetas, np.array([0.5, 0.4]), _constant(float("nan"))),
            match="finite held-out accuracy",
        ),
        ErrorCase(
            "evaluate returns a string",
            (thetas, np.array([0.5, 0.4]), _constant("high")),
            match="returning a real number",
        ),
    ]


register(
    OpCases(
        "greedy_soup",
        dims={"N": (1, 8), "K": (1, 5)},
        random=_greedy_random,
        edges=_greedy_edges,
        errors=_greedy_errors,
        notes=NOTES,
        defaults={"official_tie_order": False},
    )
)


# -- learned_soup ----------------------------------------------------------------------------------
def _learned_random(rng, n, K):  # noqa: N803
    thetas = _ingredients(rng, _shape_with(rng, n), K)
    alpha = rng.standard_normal(K) * float(rng.choice([0.1, 1.0, 4.0]))
    return Sample("random", (thetas, alpha))


def _learned_edges():
    rng = np.random.default_rng(23)
    thetas = _ingredients(rng, (3, 4), 3)
    return [
        Sample("K = 1: p = 1, ᾱ = 0", (thetas[..., :1], np.array([0.7])), flags=("ONE_MODEL",)),
        Sample("equal logits: the uniform soup", (thetas, np.ones(3))),
        Sample(
            "saturated logits ±50",
            (thetas, np.array([50.0, -50.0, 0.0])),
            flags=("SATURATED",),
        ),
        Sample(
            "identical models",
            (np.stack([thetas[..., 0]] * 3, axis=-1), np.array([0.3, -1.0, 2.0])),
            flags=("IDENTICAL",),
        ),
        Sample(
            "0-d parameter, K = 2",
            (np.array([1.0, -3.0]), np.array([0.2, -0.4])),
            flags=("SCALAR_PARAMETER",),
        ),
    ]


def _learned_torch(torch, args, kwargs, cotangent):
    """softmax(α) then the weighted sum over the stacked models, autograd for ᾱ: the same function."""
    thetas = torch.from_numpy(args[0])
    alpha = torch.from_numpy(args[1]).requires_grad_()
    g_theta = torch.from_numpy(cotangent)

    def step():
        alpha.grad = None
        theta = thetas @ torch.softmax(alpha, dim=0)
        theta.backward(g_theta)
        return theta

    return step


register(
    OpCases(
        "learned_soup",
        dims={"n": (1, 12), "K": (1, 5)},
        random=_learned_random,
        edges=_learned_edges,
        errors=lambda: [],
        notes=NOTES,
        defaults={},
        bench=Bench(
            sizes={"n": 2**21, "K": 4},
            torch=_learned_torch,
            torch_label="thetas @ torch.softmax(alpha), autograd",
        ),
    )
)


# -- transcriptions of the official code's deviations (``refimpl deviations``) ------------------------
@transcribes("model-soups-uniform-running-sum", outputs=("theta",))
def _official_uniform_soup(thetas, *, dtype):
    """The official running sum ``soup = θ_k·(1/K) + soup``, model by model, in the models' dtype."""
    thetas = thetas.astype(dtype)
    weight = thetas.dtype.type(1.0 / thetas.shape[-1])
    soup = thetas[..., 0] * weight
    for k in range(1, thetas.shape[-1]):
        soup = thetas[..., k] * weight + soup
    return {"theta": soup}
