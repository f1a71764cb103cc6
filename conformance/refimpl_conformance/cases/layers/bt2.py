"""Conformance cases for `cayley_orthogonal` and `bct_compatibility_loss` (BT²)."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

CAYLEY_NOTES = {
    "ZERO": "S = 0 (or symmetric S): A = 0 and R = I exactly; the gradient is −2·skew(G) (Cayley)",
    "NEAR_MINUS_ONE": "‖A‖ = 50: R rotates by ~π; I + A is well conditioned, R + I nearly singular",
    "BASE": "an orthogonal base: R = base·Q, the cotangent reaches Q as baseᵀ G",
    "EXPM": "the official map (PyTorch's orthogonal default): only tril(S) enters, the diagonal cancels",
    "ONE_BY_ONE": "n = 1: A = 0, R = [[1]], gradient 0",
}


def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))  # the sign-fixed QR factor, as PyTorch's base


def _random_cayley(rng, n):
    s = rng.standard_normal((n, n)) * float(rng.choice([0.1, 0.5, 2.0]))
    kwargs = {"orthogonal_map": str(rng.choice(["cayley", "expm"]))}
    if rng.integers(0, 3) == 0:
        kwargs["base"] = _orthogonal(rng, n)
    return Sample("random", (s,), kwargs)


def _cayley_edges():
    rng = np.random.default_rng(201)
    s = rng.standard_normal((5, 5))
    big = np.zeros((4, 4))
    big[0, 1], big[2, 3] = 25.0, -25.0
    return [
        Sample("S = 0", (np.zeros((4, 4)),), flags=("ZERO",)),
        Sample("symmetric S", (s + s.T,), flags=("ZERO",)),
        Sample("n = 1", (np.array([[3.0]]),), flags=("ONE_BY_ONE",)),
        Sample("n = 1, expm", (np.array([[3.0]]),), {"orthogonal_map": "expm"}, flags=("ONE_BY_ONE",)),
        Sample("rotation by ≈ π (‖A‖ = 50)", (big,), flags=("NEAR_MINUS_ONE",), fd_step=1e-7),
        Sample("base, cayley", (s,), {"base": _orthogonal(rng, 5)}, flags=("BASE",)),
        Sample(
            "base, expm",
            (0.3 * s,),
            {"base": _orthogonal(rng, 5), "orthogonal_map": "expm"},
            flags=("BASE", "EXPM"),
        ),
        Sample(
            "expm, large ‖A‖ = 8 (scaling and squaring)",
            (2.0 * s,),
            {"orthogonal_map": "expm"},
            flags=("EXPM",),
        ),
    ]


def _cayley_errors():
    return [ErrorCase("non-square S", (np.zeros((2, 3)),), match="square")]


def _cayley_known():
    s = np.array([[0.0, 0.5], [0.0, 0.0]])  # A = [[0, t], [−t, 0]], t = 0.5: rotation by θ = 2 atan t
    g = np.array([[0.0, 0.0], [1.0, 0.0]])  # picks R₁₀ = sin θ; ∂θ/∂t = 2/(1 + t²) = 1.6
    return [
        Known(
            "2 × 2 Cayley rotation, t = 1/2",
            (s,),
            values={"r": [[0.6, -0.8], [0.8, 0.6]], "cotangent of 's'": [[0.0, 0.96], [-0.96, 0.0]]},
            cotangent=g,
            source="by hand: R = (I + A)⁻¹(I − A) = [[1 − t², −2t], [2t, 1 − t²]]/(1 + t²); "
            "∂R₁₀/∂t = cos θ · 1.6 = 0.96, t = S₀₁ − S₁₀",
            rtol=1e-12,
        ),
        Known(
            "2 × 2 exponential map: rotation by S₁₀",
            (np.array([[0.0, 7.0], [0.3, 0.0]]),),
            {"orthogonal_map": "expm"},
            values={
                "r": [[math.cos(0.3), -math.sin(0.3)], [math.sin(0.3), math.cos(0.3)]],
                "cotangent of 's'": [[0.0, 0.0], [math.cos(0.3), 0.0]],
            },
            cotangent=g,
            source="by hand: A = tril(S) − tril(S)ᵀ = [[0, −a], [a, 0]] with a = S₁₀ = 0.3, exp(A) = "
            "[[cos a, −sin a], [sin a, cos a]]; S₀₁ does not enter; ∂R₁₀/∂a = cos a",
            rtol=1e-12,
        ),
        Known(
            "rotation by θ from the Cayley map: t = tan(θ/2)",
            (np.array([[0.0, math.tan(0.6)], [0.0, 0.0]]),),
            values={"r": [[math.cos(1.2), -math.sin(1.2)], [math.sin(1.2), math.cos(1.2)]]},
            source="by hand (the Cayley map of a 2 × 2 skew matrix is a rotation by 2 atan t)",
            rtol=1e-12,
        ),
    ]


def _cayley_torch(torch, args, kwargs, cotangent):
    """A = S − Sᵀ, R = torch.linalg.solve(I + A, I − A) (or torch.matrix_exp of tril(S) − tril(S)ᵀ)."""
    s = torch.from_numpy(args[0]).requires_grad_()
    base = kwargs.get("base")
    base = None if base is None else torch.from_numpy(base)
    g = torch.from_numpy(cotangent)
    eye = torch.eye(s.shape[0], dtype=s.dtype)

    def step():
        s.grad = None
        if kwargs.get("orthogonal_map", "cayley") == "cayley":
            a = s - s.T
            r = torch.linalg.solve(eye + a, eye - a)
        else:
            lower = torch.tril(s)
            r = torch.matrix_exp(lower - lower.T)
        if base is not None:
            r = base @ r
        r.backward(g)
        return r

    return step


def _cayley_blas(args, kwargs):
    s = args[0]
    eye = np.eye(s.shape[0], dtype=s.dtype)
    a = s - s.T

    def step():  # the forward solve and the backward's two solves
        i_plus_a = eye + a
        r = np.linalg.solve(i_plus_a, eye - a)
        y = np.linalg.solve(i_plus_a.T, r)
        return np.linalg.solve(i_plus_a, y.T)

    return step


register(
    OpCases(
        "cayley_orthogonal",
        dims={"n": (1, 7)},
        random=_random_cayley,
        edges=_cayley_edges,
        errors=_cayley_errors,
        known=_cayley_known,
        notes=CAYLEY_NOTES,
        defaults={"base": None, "orthogonal_map": "cayley"},
        bench=Bench(
            sizes={"n": 512},
            torch=_cayley_torch,
            torch_label="torch.linalg.solve(I + A, I − A), autograd",
            blas=_cayley_blas,
        ),
    )
)


BCT_NOTES = {
    "SHIFT": "logits shifted by 1e4 via the bias: the log-sum-exp must subtract the row max",
    "D_EQUALS_d": "Δ = 0: every coordinate of z reaches the old classifier",
    "EXTRA_COORDINATES": "the added Δ coordinates get exactly zero gradient",
}


def _random_bct(rng, B, K, d, extra):
    z = rng.standard_normal((B, d + extra)) * float(rng.choice([0.3, 1.0, 3.0]))
    weight = rng.standard_normal((K, d))
    kwargs = {"reduction": str(rng.choice(["mean", "sum", "none"]))}
    if rng.integers(0, 2):
        kwargs["bias"] = rng.standard_normal(K)
    return Sample("random", (z, rng.integers(0, K, size=B), weight), kwargs)


def _bct_edges():
    rng = np.random.default_rng(2211)
    z, weight = rng.standard_normal((3, 6)), rng.standard_normal((4, 4))
    y = np.array([0, 3, 1])
    return [
        Sample(
            "bias shifts logits by 1e4",
            (z, y, weight),
            {"bias": np.full(4, 1e4) + np.arange(4.0)},
            flags=("SHIFT",),
        ),
        Sample("D = d", (z[:, :4], y, weight), flags=("D_EQUALS_d",)),
        Sample(
            "Δ = 2 added coordinates, sum", (z, y, weight), {"reduction": "sum"}, flags=("EXTRA_COORDINATES",)
        ),
        Sample("one class", (z, np.zeros(3, dtype=np.int64), weight[:1]), {"reduction": "none"}),
    ]


def _bct_errors():
    return [ErrorCase("d > D", (np.zeros((2, 2)), np.array([0, 1]), np.zeros((2, 3))), match="d = 3")]


def _bct_known():
    return [
        Known(
            "logits [1, 0], label 0, an ignored third coordinate",
            (np.array([[1.0, 0.0, 5.0]]), np.array([0]), np.eye(2)),
            values={
                "loss": math.log1p(math.exp(-1.0)),
                "cotangent of 'z'": [[-1 / (1 + math.e), 1 / (1 + math.e), 0.0]],
            },
            source="by hand: −log softmax([1, 0])₀ = log(1 + e⁻¹); z̄ = (p − e₀)W, p = (e, 1)/(e + 1)",
            rtol=1e-12,
        ),
    ]


def _bct_torch(torch, args, kwargs, cotangent):
    """F.cross_entropy(z[:, :d] @ Wᵀ + b, y), autograd."""
    z = torch.from_numpy(args[0]).requires_grad_()
    y = torch.from_numpy(np.asarray(args[1], dtype=np.int64))
    weight = torch.from_numpy(args[2])
    bias = kwargs.get("bias")
    bias = None if bias is None else torch.from_numpy(bias)
    g = torch.from_numpy(np.asarray(cotangent))
    reduction = kwargs.get("reduction", "mean")

    def step():
        z.grad = None
        logits = torch.nn.functional.linear(z[:, : weight.shape[1]], weight, bias)
        loss = torch.nn.functional.cross_entropy(logits, y, reduction=reduction)
        loss.backward(g)
        return loss

    return step


def _bct_blas(args, kwargs):
    z, _, weight = args[:3]
    d = weight.shape[1]

    def step():
        logits = z[:, :d] @ weight.T
        return logits @ weight

    return step


register(
    OpCases(
        "bct_compatibility_loss",
        dims={"B": (1, 6), "K": (1, 6), "d": (1, 5), "extra": (0, 3)},
        random=_random_bct,
        edges=_bct_edges,
        errors=_bct_errors,
        known=_bct_known,
        notes=BCT_NOTES,
        defaults={"bias": None, "reduction": "mean"},
        bench=Bench(
            sizes={"B": "rows", "K": 1000, "d": "cols", "extra": 128},
            torch=_bct_torch,
            torch_label="torch.nn.functional.cross_entropy of F.linear(z[:, :d], W, b)",
            transcendentals=lambda args, kwargs: args[0].shape[0] * args[2].shape[0],  # one exp per logit
            blas=_bct_blas,
        ),
    )
)
