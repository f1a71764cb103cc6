"""Conformance cases for weight matching: `weight_matching`, `apply_permutation`, `interpolate_params`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "PLANTED": "B is A with its hidden units shuffled: the permutation must undo it exactly",
    "ONE_HIDDEN": "one hidden layer: its cost matrix does not depend on another permutation, so the "
    "first sweep is optimal and the second confirms it",
    "IDENTICAL": "identical models: the identity permutation, J = ‖θ‖²",
    "WIDTH_ONE": "hidden width 1: the only permutation is the identity",
    "CYCLED_ORDERS": "several sweep orders: iteration i uses row i mod S",
    "MAX_ITER": "max_iter reached before convergence: the record stops there",
    "IDENTITY": "no permutation given: a copy of the layer",
    "ENDPOINTS": "λ = 0 and λ = 1 return θ_A and θ_B exactly",
    "SCALAR_PARAMETER": "a 0-d parameter tensor",
}


def _mlp(rng, widths):
    """Weights (d_l, d_{l−1}) and biases (d_l,) of an MLP with the given layer widths."""
    weights = [rng.standard_normal((widths[i + 1], widths[i])) for i in range(len(widths) - 1)]
    biases = [rng.standard_normal(widths[i + 1]) * 0.5 for i in range(len(widths) - 1)]
    return weights, biases


def _shuffle(rng, weights, biases):
    """π(θ) for random hidden permutations π (so that weight matching of A and π(A) undoes π)."""
    layers = len(weights)
    perms = [rng.permutation(w.shape[0]) for w in weights[:-1]]
    new_weights, new_biases = [], []
    for layer in range(layers):
        weight, bias = weights[layer], biases[layer]
        if layer < layers - 1:
            weight, bias = weight[perms[layer]], bias[perms[layer]]
        if layer > 0:
            weight = weight[:, perms[layer - 1]]
        new_weights.append(weight)
        new_biases.append(bias)
    return new_weights, new_biases


def _orders(rng, hidden, rows):
    return np.array([rng.permutation(hidden) for _ in range(rows)], dtype=np.int64)


# -- weight_matching --------------------------------------------------------------------------------
def _matching_random(rng, L, W):  # noqa: N803
    widths = [int(rng.integers(1, W + 1)) for _ in range(L + 1)]
    weights_a, biases_a = _mlp(rng, widths)
    if rng.integers(0, 2):  # B: A's units shuffled, plus noise of a drawn size
        weights_b, biases_b = _shuffle(rng, weights_a, biases_a)
        noise = float(rng.choice([0.0, 0.1, 1.0]))
        weights_b = [w + noise * rng.standard_normal(w.shape) for w in weights_b]
        biases_b = [b + noise * rng.standard_normal(b.shape) for b in biases_b]
    else:  # an independent model
        weights_b, biases_b = _mlp(rng, widths)
    order = _orders(rng, L - 1, int(rng.integers(1, 4)))
    kwargs = {"max_iter": int(rng.choice([100, 1, 2, 5]))}
    return Sample("random", (weights_a, biases_a, weights_b, biases_b, order), kwargs)


def _matching_edges():
    rng = np.random.default_rng(41)
    weights_a, biases_a = _mlp(rng, [3, 6, 5, 2])
    weights_b, biases_b = _shuffle(rng, weights_a, biases_a)
    one_a, one_b = _mlp(rng, [4, 7, 3]), _mlp(rng, [4, 7, 3])
    independent = _mlp(rng, [3, 6, 5, 2])
    narrow_a, narrow_b = _mlp(rng, [2, 1, 3]), _mlp(rng, [2, 1, 3])
    return [
        Sample(
            "planted permutation, 2 hidden layers",
            (weights_a, biases_a, weights_b, biases_b, np.array([[1, 0]])),
            flags=("PLANTED",),
        ),
        Sample(
            "one hidden layer: one sweep",
            (*one_a, *one_b, np.array([[0]])),
            flags=("ONE_HIDDEN",),
        ),
        Sample(
            "identical models",
            (weights_a, biases_a, weights_a, biases_a, np.array([[0, 1]])),
            flags=("IDENTICAL",),
        ),
        Sample("hidden width 1", (*narrow_a, *narrow_b, np.array([[0]])), flags=("WIDTH_ONE",)),
        Sample(
            "independent models, two sweep orders cycled",
            (*independent, weights_a, biases_a, np.array([[0, 1], [1, 0]])),
            flags=("CYCLED_ORDERS",),
        ),
        Sample(
            "independent models, max_iter = 1",
            (*independent, weights_a, biases_a, np.array([[1, 0]])),
            {"max_iter": 1},
            flags=("MAX_ITER",),
        ),
    ]


def _matching_errors():
    rng = np.random.default_rng(42)
    weights, biases = _mlp(rng, [3, 4, 2])
    order = np.array([[0]])
    bad_chain = [weights[0], rng.standard_normal((2, 5))]
    return [
        ErrorCase(
            "one layer: nothing to permute",
            ([weights[0]], [biases[0]], [weights[0]], [biases[0]], np.zeros((1, 1), dtype=np.int64)),
            match="at least 2 layers",
        ),
        ErrorCase(
            "W_2's columns are not W_1's rows",
            (bad_chain, biases, bad_chain, biases, order),
            match=r"weights_a\[1\]",
        ),
        ErrorCase(
            "a bias of the wrong length",
            (weights, [biases[0][:3], biases[1]], weights, biases, order),
            match=r"biases_a\[0\]",
        ),
        ErrorCase(
            "B has another architecture",
            (weights, biases, [weights[0][:, :2], weights[1]], biases, order),
            match=r"weights_b\[0\]",
        ),
        ErrorCase(
            "sweep order with a column per layer, not per hidden layer",
            (weights, biases, weights, biases, np.array([[0, 1]])),
            match="one per hidden layer",
        ),
        ErrorCase(
            "a sweep order that repeats a layer",
            (*_mlp(rng, [2, 3, 3, 1]), *_mlp(rng, [2, 3, 3, 1]), np.array([[0, 1], [1, 1]])),
            match=r"row 1 = \[1, 1\]",
        ),
    ]


register(
    OpCases(
        "weight_matching",
        dims={"L": (2, 4), "W": (1, 5)},
        random=_matching_random,
        edges=_matching_edges,
        errors=_matching_errors,
        notes=NOTES,
        defaults={"max_iter": 100},
    )
)


# -- apply_permutation ------------------------------------------------------------------------------
def _apply_random(rng, O, I):  # noqa: N803, E741
    rows = rng.permutation(O) if rng.integers(0, 3) else None
    columns = rng.permutation(I) if rng.integers(0, 3) else None
    return Sample("random", (rng.standard_normal((O, I)), rng.standard_normal(O), rows, columns))


def _apply_edges():
    rng = np.random.default_rng(43)
    weight, bias = rng.standard_normal((4, 3)), rng.standard_normal(4)
    return [
        Sample("no permutation: a copy", (weight, bias), flags=("IDENTITY",)),
        Sample("identity permutations", (weight, bias, np.arange(4), np.arange(3)), flags=("IDENTITY",)),
        Sample("first layer: rows only", (weight, bias, np.array([3, 1, 0, 2]), None)),
        Sample("last layer: columns only", (weight, bias, None, np.array([2, 0, 1]))),
        Sample("1 × 1 layer", (np.array([[2.0]]), np.array([-1.0]), np.array([0]), np.array([0]))),
    ]


def _apply_errors():
    weight, bias = np.ones((3, 2)), np.zeros(3)
    return [
        ErrorCase(
            "row permutation repeats an index",
            (weight, bias, np.array([0, 2, 2]), None),
            match="2 repeated",
        ),
        ErrorCase(
            "column permutation repeats an index",
            (weight, bias, None, np.array([1, 1])),
            match="column_permutation",
        ),
    ]


register(
    OpCases(
        "apply_permutation",
        dims={"O": (1, 6), "I": (1, 6)},
        random=_apply_random,
        edges=_apply_edges,
        errors=_apply_errors,
        notes=NOTES,
        defaults={"row_permutation": None, "column_permutation": None},
    )
)


# -- interpolate_params -----------------------------------------------------------------------------
def _shape_with(rng, n):
    divisors = [d for d in range(1, min(n, 64) + 1) if n % d == 0]
    d = int(rng.choice(divisors))
    return [(n,), (n // d, d), (d, 1, n // d)][int(rng.integers(0, 3))]


def _interpolate_random(rng, n):
    shape = _shape_with(rng, n)
    theta_a = rng.standard_normal(shape)
    theta_b = theta_a + rng.standard_normal(shape) * float(rng.choice([0.01, 1.0]))
    return Sample("random", (theta_a, theta_b), {"lam": float(rng.choice([0.5, 0.25, 0.9, 0.0, 1.0]))})


def _interpolate_edges():
    rng = np.random.default_rng(44)
    theta_a, theta_b = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    return [
        Sample("λ = 0: θ_A", (theta_a, theta_b), {"lam": 0.0}, flags=("ENDPOINTS",)),
        Sample("λ = 1: θ_B", (theta_a, theta_b), {"lam": 1.0}, flags=("ENDPOINTS",)),
        Sample("the midpoint (default)", (theta_a, theta_b)),
        Sample("equal models", (theta_a, theta_a.copy()), {"lam": 0.3}, flags=("IDENTICAL",)),
        Sample("0-d parameter", (np.array(1.0), np.array(3.0)), {"lam": 0.75}, flags=("SCALAR_PARAMETER",)),
    ]


def _interpolate_torch(torch, args, kwargs, cotangent):
    """torch.lerp(θ_A, θ_B, λ): the same function."""
    theta_a, theta_b = (torch.from_numpy(a) for a in args)
    lam = kwargs.get("lam", 0.5)

    def step():
        with torch.no_grad():
            return torch.lerp(theta_a, theta_b, lam)

    return step


register(
    OpCases(
        "interpolate_params",
        dims={"n": (1, 12)},
        random=_interpolate_random,
        edges=_interpolate_edges,
        errors=lambda: [],
        notes=NOTES,
        defaults={"lam": 0.5},
        bench=Bench(
            sizes={"n": 2**22}, torch=_interpolate_torch, torch_label="torch.lerp(theta_a, theta_b, lam)"
        ),
    )
)
