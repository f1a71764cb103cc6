"""Conformance cases for `lpn_potential`, `lpn_prox` and `lpn_weight_clip`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

NOTES = {
    "ONE_LAYER": "L = 1: W is (0, H, H), no hidden-to-hidden map (an off-by-one in the layer loop)",
    "LARGE_PREACTIVATION": "|βa| ≈ 60: log(1 + e^{βa}) overflows unless evaluated as max + log1p(e^{−|βa|})",
    "SHARP_SOFTPLUS": "β = 20: σ'' = β·s(1 − s) is large; a dropped β in σ'' or in σ shows",
    "NEGATIVE_WEIGHTS": "W, w with negative entries (ψ not convex): the maps are still smooth and defined",
    "STRONG_CONVEXITY": "α > 0: the 2αy term in f and 2α·v in the Hessian-vector product",
}

DEFAULTS = {"alpha": 0.0, "beta": 1.0}


def lpn_network(rng, B, D, H, L, *, scale=1.0, nonnegative=True):
    y = rng.standard_normal((B, D)) * scale
    A = rng.standard_normal((L, H, D)) / math.sqrt(D)
    b = rng.standard_normal((L, H)) * 0.5
    W = rng.standard_normal((L - 1, H, H)) / math.sqrt(H)
    w = rng.standard_normal(H)
    if nonnegative:
        W, w = np.abs(W), np.abs(w)
    return y, A, b, W, w


def _random(rng, B, D, H, L):
    args = lpn_network(rng, B, D, H, L, scale=rng.uniform(0.3, 3.0))
    return Sample(
        "random",
        args,
        {"alpha": float(rng.choice([0.0, 0.1, 1.0])), "beta": float(rng.choice([0.5, 1.0, 3.0]))},
    )


def _edges():
    rng = np.random.default_rng(11)
    one_layer = lpn_network(rng, 3, 4, 5, 1)
    y, A, b, W, w = lpn_network(rng, 2, 3, 4, 2)
    large = (y, A, b + np.array([[60.0, -60.0, 55.0, -58.0], [0.0, 0.0, 0.0, 0.0]]), W, w)
    return [
        Sample("one layer (L = 1)", one_layer, {"alpha": 0.1}, flags=("ONE_LAYER",)),
        Sample(
            "pre-activations ±60",
            large,
            flags=("LARGE_PREACTIVATION",),
            comment="log1p(exp(60)) overflows nothing in float64 but exp(60·β) does for β ≥ 12; "
            "the naive form loses all digits of log(1 + e^{−60}) either way",
        ),
        Sample(
            "sharp softplus β = 20",
            lpn_network(rng, 3, 2, 3, 3, scale=0.2),
            {"beta": 20.0},
            flags=("SHARP_SOFTPLUS",),
            fd_step=1e-7,
        ),
        Sample(
            "negative weights", lpn_network(rng, 3, 3, 4, 3, nonnegative=False), flags=("NEGATIVE_WEIGHTS",)
        ),
        Sample(
            "alpha = 2, one row", lpn_network(rng, 1, 5, 3, 2), {"alpha": 2.0}, flags=("STRONG_CONVEXITY",)
        ),
    ]


def _errors():
    y, A, b, W, w = lpn_network(np.random.default_rng(0), 2, 3, 4, 3)
    return [
        ErrorCase(
            "W with L layers instead of L − 1",
            (y, A, b, np.abs(A[:, :, :1].repeat(4, axis=2)), w),
            match="L - 1",
        )
    ]


def _known_potential():
    zero = np.zeros((1, 1))
    one_layer = (zero, np.ones((1, 1, 1)), zero, np.zeros((0, 1, 1)), np.ones(1))
    two_layers = (zero, np.array([[[1.0]], [[0.0]]]), np.zeros((2, 1)), np.ones((1, 1, 1)), np.ones(1))
    return [
        Known(
            "one unit at y = 0",
            one_layer,
            values={"psi": [math.log(2.0)], "cotangent of 'y'": [[0.5]]},
            source="softplus(0) = log 2, σ'(0) = 1/2",
        ),
        Known(
            "two units at y = 0: z1 = log 2, z2 = log 3",
            two_layers,
            values={"psi": [math.log(3.0)], "cotangent of 'y'": [[1.0 / 3.0]]},
            source="ψ = softplus(log 2) = log 3; ∂ψ/∂y = σ'(log 2)·σ'(0) = (2/3)(1/2)",
        ),
        Known(
            "one unit at y = 2, α = 0.25",
            (np.array([[2.0]]), *one_layer[1:]),
            {"alpha": 0.25},
            values={"psi": [math.log1p(math.exp(2.0)) + 1.0]},
            source="softplus(2) + α·4",
        ),
    ]


def _known_prox():
    zero = np.zeros((1, 1))
    one_layer = (zero, np.ones((1, 1, 1)), zero, np.zeros((0, 1, 1)), np.ones(1))
    two_layers = (zero, np.array([[[1.0]], [[0.0]]]), np.zeros((2, 1)), np.ones((1, 1, 1)), np.ones(1))
    s2 = 1.0 / (1.0 + math.exp(-2.0))
    return [
        Known(
            "one unit at y = 0, α = 0.5",
            one_layer,
            {"alpha": 0.5},
            values={"f": [[0.5]], "cotangent of 'y'": [[1.25]]},
            source="f = σ'(0) + 2α·0 = 1/2; f' = ψ'' = σ''(0) + 2α = 1/4 + 1",
        ),
        Known(
            "two units at y = 0",
            two_layers,
            values={"f": [[1.0 / 3.0]]},
            source="σ'(log 2)·σ'(0) = (2/3)(1/2)",
        ),
        Known(
            "one unit at y = 2, α = 0.25",
            (np.array([[2.0]]), *one_layer[1:]),
            {"alpha": 0.25},
            values={"f": [[s2 + 1.0]], "cotangent of 'y'": [[s2 * (1.0 - s2) + 0.5]]},
            source="f = sigmoid(2) + 2α·2; f' = sigmoid'(2) + 2α",
        ),
    ]


def _torchlpn_network(torch, args, kwargs):
    y, A, b, W, w = (torch.from_numpy(a).requires_grad_() for a in args)
    alpha, beta = kwargs.get("alpha", 0.0), kwargs.get("beta", 1.0)

    def psi():
        z = None
        for layer in range(A.shape[0]):
            a = y @ A[layer].T + b[layer]
            if layer > 0:
                a = a + z @ W[layer - 1].T
            z = torch.logaddexp(beta * a, torch.zeros((), dtype=a.dtype)) / beta  # exact softplus_β
        return z @ w + alpha * (y * y).sum(dim=1)

    return (y, A, b, W, w), psi


def _potential_torch(torch, args, kwargs, cotangent):
    leaves, psi = _torchlpn_network(torch, args, kwargs)
    g = torch.from_numpy(cotangent)

    def step():
        out = psi()
        for leaf in leaves:
            leaf.grad = None
        out.backward(g)
        return out

    return step


def _prox_torch(torch, args, kwargs, cotangent):
    leaves, psi = _torchlpn_network(torch, args, kwargs)
    g = torch.from_numpy(cotangent)

    def step():
        f = torch.autograd.grad(psi().sum(), leaves[0], create_graph=True)[0]
        for leaf in leaves:
            leaf.grad = None
        f.backward(g)
        return f

    return step


def _transcendentals(args, kwargs):
    y, A = args[0], args[1]
    return 2 * A.shape[0] * y.shape[0] * A.shape[1]  # exp(−|βa|) and log1p per unit


def _potential_blas(args, kwargs):
    """Per layer: y A_lᵀ, z W_lᵀ forward; ā A_l, āᵀ y, āᵀ z, ā W_l backward."""
    y, A, _, W, _ = args
    z = np.ones((y.shape[0], A.shape[1]), dtype=y.dtype)

    def step():
        for layer in range(A.shape[0]):
            y @ A[layer].T
            z.T @ y
            z @ A[layer]
            if layer > 0:
                z @ W[layer - 1].T
                z.T @ z
                z @ W[layer - 1]

    return step


def _prox_blas(args, kwargs):
    """Twice the potential's products (the reverse pass, then the tangent and second reverse pass)."""
    once = _potential_blas(args, kwargs)

    def step():
        once()
        once()

    return step


_SIZES = {"B": "rows", "D": "cols", "H": 256, "L": 3}
_DIMS = {"B": (1, 5), "D": (1, 5), "H": (1, 5), "L": (1, 3)}

register(
    OpCases(
        "lpn_potential",
        dims=_DIMS,
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        defaults=DEFAULTS,
        known=_known_potential,
        bench=Bench(
            sizes=_SIZES,
            torch=_potential_torch,
            torch_label="ICNN with torch.logaddexp(βa, 0)/β (exact softplus_β); autograd backward",
            transcendentals=_transcendentals,
            blas=_potential_blas,
        ),
    )
)

register(
    OpCases(
        "lpn_prox",
        dims=_DIMS,
        random=_random,
        edges=_edges,
        errors=_errors,
        notes=NOTES,
        defaults=DEFAULTS,
        known=_known_prox,
        bench=Bench(
            sizes=_SIZES,
            torch=_prox_torch,
            torch_label="f = autograd.grad(ψ.sum(), y, create_graph=True) (official LPN.forward); f.backward",
            transcendentals=_transcendentals,
            blas=_prox_blas,
        ),
    )
)


def _clip_random(rng, H, M):
    return Sample("random", (rng.standard_normal((M, H, H)), rng.standard_normal(H)))


def _clip_edges():
    rng = np.random.default_rng(3)
    return [
        Sample(
            "one layer: W empty (0, H, H)",
            (np.zeros((0, 3, 3)), rng.standard_normal(3)),
            flags=("ONE_LAYER",),
        ),
        Sample(
            "all nonnegative: unchanged",
            (np.abs(rng.standard_normal((2, 3, 3))), np.abs(rng.standard_normal(3))),
        ),
    ]


def _known_clip():
    return [
        Known(
            "mixed signs",
            (np.array([[[-1.0, 2.0], [0.5, -3.0]]]), np.array([-3.0, 4.0])),
            values={"W_clipped": [[[0.0, 2.0], [0.5, 0.0]]], "w_clipped": [0.0, 4.0]},
            source="max(·, 0) elementwise",
        )
    ]


register(
    OpCases(
        "lpn_weight_clip",
        dims={"H": (1, 5), "M": (0, 3)},
        random=_clip_random,
        edges=_clip_edges,
        notes={"ONE_LAYER": NOTES["ONE_LAYER"]},
        defaults={},
        known=_known_clip,
    )
)
