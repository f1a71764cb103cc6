"""Conformance cases for `cosine_infonce`, `sampled_softmax_logq` and `correlated_feature_masking`."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NOTES = {
    "SMALL_TEMPERATURE": "τ = 1e-3: logits up to 1e3, exp overflows in float32 without the max shift",
    "ZERO_NORM": "a zero embedding with eps > 0: ẑ = 0, finite gradient 1/sqrt(eps)",
    "ONE_ITEM": "N = 1: the only candidate is the positive; loss and gradient are 0",
    "SYMMETRIC": "symmetric=True: both directions averaged",
    "LARGE_SCORES": "scores ±1e4: a softmax without the max shift overflows",
    "TIES": "equal mutual information: lowest field index first",
}


def _rows_away_from_zero(x, smallest=0.1):
    """Rows of norm < ``smallest`` scaled up to it: the curvature of z/sqrt(‖z‖² + eps)
    grows like 1/‖z‖² near 0, where central differences lose their digits (the zero row
    is an edge case of its own)."""
    norm = np.sqrt((x * x).sum(axis=-1, keepdims=True))
    return np.where(norm < smallest, x * (smallest / np.maximum(norm, 1e-300)), x)


def _infonce_random(rng, N, D):  # noqa: N803
    z = _rows_away_from_zero(rng.standard_normal((N, D)))
    z_prime = _rows_away_from_zero(z + rng.standard_normal((N, D)) * float(rng.choice([0.1, 1.0])))
    kwargs = {
        "temperature": float(rng.choice([0.05, 0.1, 0.5, 1.0])),
        "alpha": float(rng.choice([0.1, 1.0, 3.0])),
        "eps": float(rng.choice([0.0, 1e-6])),
        "symmetric": bool(rng.integers(0, 2)),
    }
    return Sample("random", (z, z_prime), kwargs)


def _infonce_edges():
    rng = np.random.default_rng(7)
    z = rng.standard_normal((4, 3))
    zero = z.copy()
    zero[1] = 0.0
    return [
        Sample(
            "known value: identical orthogonal views, τ = 1",
            (np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[1.0, 0.0], [0.0, 2.0]])),
            {"temperature": 1.0, "alpha": 1.0},
            comment="L = log(e + 1) − 1 = 0.3132617",
        ),
        Sample(
            "τ = 1e-3",
            (z, z + 0.1 * rng.standard_normal((4, 3))),
            {"temperature": 1e-3, "alpha": 1.0},
            flags=("SMALL_TEMPERATURE",),
            fd_step=1e-8,
        ),
        Sample(
            "zero embedding, eps = 1e-4",
            (zero, z[::-1].copy()),
            {"temperature": 0.5, "alpha": 0.5, "eps": 1e-4},
            flags=("ZERO_NORM",),
        ),
        Sample("one item", (z[:1], z[1:2]), {"temperature": 0.1, "alpha": 1.0}, flags=("ONE_ITEM",)),
        Sample(
            "symmetric",
            (z, rng.standard_normal((4, 3))),
            {"temperature": 0.2, "alpha": 2.0, "symmetric": True},
            flags=("SYMMETRIC",),
        ),
    ]


def _infonce_errors():
    z = np.ones((2, 3))
    zero = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    kw = {"temperature": 0.1, "alpha": 1.0}
    return [
        ErrorCase("zero row with eps = 0", (zero, z), kw, match="nonzero norm"),
        ErrorCase("zero row in the second view", (z, zero), kw, match="'z_prime'"),
    ]


def _infonce_torch(torch, args, kwargs, cotangent):
    """α·CE(normalize(z) normalize(z')ᵀ/τ, diagonal) with PyTorch's own functions."""
    z, z_prime = (torch.from_numpy(a).requires_grad_() for a in args)
    F, labels = torch.nn.functional, torch.arange(args[0].shape[0])
    g, eps = torch.from_numpy(np.asarray(cotangent)), kwargs.get("eps", 0.0)

    def normalize(v):
        if eps == 0.0:
            return F.normalize(v, dim=-1)
        return v / torch.sqrt((v * v).sum(-1, keepdim=True) + eps)

    def step():
        z.grad = z_prime.grad = None
        logits = normalize(z) @ normalize(z_prime).T / kwargs["temperature"]
        loss = F.cross_entropy(logits, labels)
        if kwargs.get("symmetric", False):
            loss = (loss + F.cross_entropy(logits.T, labels)) / 2
        loss = kwargs["alpha"] * loss
        loss.backward(g)
        return loss

    return step


def _infonce_blas(args, kwargs):
    """The products of S = ẐẐ'ᵀ/τ: forward ``Ẑ Ẑ'ᵀ``; backward ``S̄ Ẑ'`` and ``S̄ᵀ Ẑ``."""
    z, z_prime = args
    g_s = np.ones((z.shape[0], z_prime.shape[0]), dtype=z.dtype)

    def step():
        return z @ z_prime.T, g_s @ z_prime, g_s.T @ z

    return step


def _logq_torch(torch, args, kwargs, cotangent):
    """CE(s − log p) over the in-batch items with PyTorch's cross-entropy."""
    scores = torch.from_numpy(args[0]).requires_grad_()
    log_p, labels = torch.from_numpy(args[1]), torch.arange(args[0].shape[0])
    g, reduction = torch.from_numpy(np.asarray(cotangent)), kwargs.get("reduction", "mean")

    def step():
        scores.grad = None
        loss = torch.nn.functional.cross_entropy(scores - log_p, labels, reduction=reduction)
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "cosine_infonce",
        dims={"N": (1, 6), "D": (1, 5)},
        random=_infonce_random,
        edges=_infonce_edges,
        errors=_infonce_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"N": 2048, "D": 256},
            torch=_infonce_torch,
            torch_label="F.normalize, a matmul and F.cross_entropy; autograd backward",
            # the row softmax of S (N, N): one exp per entry and one log per row, twice with
            # symmetric=True (the softmax of Sᵀ); the backward reuses them
            transcendentals=lambda args, kwargs: (
                (2 if kwargs.get("symmetric", False) else 1) * (args[0].shape[0] ** 2 + args[0].shape[0])
            ),
            blas=_infonce_blas,
        ),
    )
)


def _logq_random(rng, N):  # noqa: N803
    scores = rng.standard_normal((N, N)) * float(rng.choice([0.5, 3.0, 10.0]))
    p = rng.uniform(1e-4, 1.0, N)
    reduction = str(rng.choice(["mean", "sum", "none"]))
    return Sample("random", (scores, np.log(p)), {"reduction": reduction})


def _logq_edges():
    return [
        Sample(
            "known value: uniform",
            (np.zeros((2, 2)), np.log(np.array([0.5, 0.5]))),
            comment="ℓ = log 2 per row",
        ),
        Sample(
            "scores ±1e4",
            (
                np.array([[1e4, -1e4, 0.0], [0.0, 1e4, -1e4], [-1e4, 1e4, 1e4]]),
                np.log(np.array([0.1, 0.5, 0.9])),
            ),
            {"reduction": "none"},
            flags=("LARGE_SCORES",),
            fd=False,
            comment="the relative FD step 1e-6·|s| = 1e-2 crosses the tie in the last row; in float32 "
            "s − log p near 1e4 is rounded to ~5e-4, which moves the probabilities of the near-tie by ~1e-4",
        ),
        Sample("one item", (np.array([[2.5]]), np.array([-3.0])), flags=("ONE_ITEM",)),
        Sample(
            "rare items dominate after the correction",
            (np.zeros((3, 3)), np.log(np.array([1e-6, 0.5, 0.9]))),
            {"reduction": "sum"},
        ),
    ]


register(
    OpCases(
        "sampled_softmax_logq",
        dims={"N": (1, 7)},
        random=_logq_random,
        edges=_logq_edges,
        notes=NOTES,
        bench=Bench(
            sizes={"N": 4096},
            torch=_logq_torch,
            torch_label="F.cross_entropy(scores − log p, arange); autograd backward",
            # the row softmax of u: one exp per score and one log per row (the backward reuses p)
            transcendentals=lambda args, kwargs: args[0].size + args[0].shape[0],
        ),
    )
)


def _cfm_random(rng, F):  # noqa: N803
    upper = np.triu(rng.uniform(0, 2, (F, F)), 1)
    mi = upper + upper.T + np.diag(rng.uniform(2, 3, F))
    return Sample("random", (mi,), {"seed_field": int(rng.integers(0, F))})


def _cfm_edges():
    mi = np.array([[0, 0.1, 0.9, 0.2], [0.1, 0, 0.3, 0.4], [0.9, 0.3, 0, 0.5], [0.2, 0.4, 0.5, 0]])
    return [
        Sample("known example", (mi,), {"seed_field": 0}, comment="view 1 masks fields {0, 2}"),
        Sample(
            "ties: all MI equal", (np.ones((5, 5)),), {"seed_field": 3}, flags=("TIES",), comment="{0, 1, 3}"
        ),
        Sample("one field", (np.array([[1.0]]),), {"seed_field": 0}),
        Sample("two fields, seed 1", (np.array([[1.0, 0.5], [0.5, 1.0]]),), {"seed_field": 1}),
    ]


def _cfm_errors():
    return [
        ErrorCase(
            "asymmetric MI", (np.array([[0.0, 1.0], [0.5, 0.0]]),), {"seed_field": 0}, match="symmetric"
        ),
        ErrorCase("seed out of range", (np.eye(3),), {"seed_field": 3}, match=r"\[0, 3\)"),
        ErrorCase(
            "NaN in MI", (np.array([[0.0, np.nan], [np.nan, 0.0]]),), {"seed_field": 0}, match="finite"
        ),
    ]


register(
    OpCases(
        "correlated_feature_masking",
        dims={"F": (1, 9)},
        random=_cfm_random,
        edges=_cfm_edges,
        errors=_cfm_errors,
        notes=NOTES,
    )
)
