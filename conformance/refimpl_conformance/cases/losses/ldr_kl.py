"""Conformance cases for `ldr_kl_loss`, `aldr_kl_loss` and `aldr_lambda_update`."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, OpCases, Sample, register

NORMALIZATIONS = ("none", "softplus_mean", "l1")

NOTES = {
    "CE_IDENTITY": "c = 0, λ = 1, no normalization: L = CE(z, y) − log K",
    "LARGE_LOGITS": "|z| up to 1e4: an LSE without the max shift overflows",
    "SMALL_LAMBDA": "λ → 0: the Crammer–Singer limit max_k b_k; b/λ is huge",
    "LARGE_LAMBDA": "λ → ∞: the mean limit; LSE(b/λ) − log K cancels unless written as log1p(mean expm1)",
    "ONE_CLASS": "K = 1: b = 0, so the loss and its gradient are 0",
    "OFFICIAL_NORMALIZATION": "the official logit normalizations (softplus/mean: LDR, K z/‖z‖₁: ALDR)",
    "STATE": "only the batch's ids change; λ stays in [λ0(1 − 1/α), λ0]",
    "MARGIN_FREE": "the official λ update drops the margin c from the softmax",
}


def _logits(rng, B, K):
    return rng.standard_normal((B, K)) * float(rng.choice([0.5, 3.0, 30.0]))


def _ldr_random(rng, B, K):
    kwargs = {
        "c": float(rng.choice([0.0, 0.1, 1.0])),
        "lam": float(rng.choice([0.1, 1.0, 10.0, 1e3])),
        "normalize": str(rng.choice(NORMALIZATIONS)),
        "reduction": str(rng.choice(["mean", "sum", "none"])),
    }
    return Sample("random", (_logits(rng, B, K), rng.integers(0, K, size=B)), kwargs)


def _ldr_edges():
    rng = np.random.default_rng(7)
    z = rng.standard_normal((4, 5)) * 2
    y = np.array([0, 3, 4, 1])
    return [
        Sample(
            "CE identity: c = 0, λ = 1",
            (np.array([[2.0, 0.0, -1.0]]), np.array([0])),
            {"c": 0.0, "lam": 1.0},
            flags=("CE_IDENTITY",),
            comment="CE − log 3 = −0.9287663",
        ),
        Sample(
            "logits ±1e4",
            (np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]]), np.array([1, 0])),
            {"lam": 1.0, "reduction": "none"},
            flags=("LARGE_LOGITS",),
            fd=False,
            comment="the relative FD step 1e-6·|z| is 1e-2 here, where the loss is far from linear",
        ),
        Sample("λ = 1e-3", (z, y), {"lam": 1e-3, "reduction": "sum"}, flags=("SMALL_LAMBDA",), fd_step=1e-9),
        Sample("λ = 1e6", (z, y), {"lam": 1e6}, flags=("LARGE_LAMBDA",)),
        Sample("one class", (np.array([[2.5], [-1.0]]), np.array([0, 0])), flags=("ONE_CLASS",)),
        Sample(
            "official LDR: softplus_mean, λ = 10, c = 0.1",
            (z, y),
            {"normalize": "softplus_mean"},
            flags=("OFFICIAL_NORMALIZATION",),
        ),
        Sample(
            "softplus_mean with very negative logits",
            (np.array([[-700.0, -20.0, 3.0], [-50.0, -60.0, -70.0]]), np.array([0, 2])),
            {"normalize": "softplus_mean", "lam": 1.0},
            flags=("OFFICIAL_NORMALIZATION",),
            dtypes=("float64",),
            comment="softplus(−700) ≈ 1e−304 is still positive in float64; float32 underflows it",
        ),
        Sample(
            "softplus_mean, every logit near −57 (float32 too)",
            (
                np.array([[-57.0, -58.0, -56.5], [-50.0, -60.0, -55.0], [-57.2, -57.2, -57.2]]),
                np.array([0, 2, 1]),
            ),
            {"normalize": "softplus_mean", "lam": 1.0, "reduction": "none"},
            flags=("OFFICIAL_NORMALIZATION",),
            comment="mean softplus ≈ 1e-25 is a normal float32 but its square underflows: a backward "
            "written with m² gives 0/0",
        ),
        Sample(
            "official ALDR normalization l1",
            (z, y),
            {"normalize": "l1", "lam": 1.0, "reduction": "none"},
            flags=("OFFICIAL_NORMALIZATION",),
        ),
    ]


def _ldr_errors():
    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    y = np.array([0, 1])
    return [
        ErrorCase("l1 with an all-zero row", (z, y), {"normalize": "l1"}, match="nonzero logit"),
        ErrorCase(
            "softplus underflow",
            (np.full((1, 3), -1e4), np.array([0])),
            {"normalize": "softplus_mean"},
            match="softplus",
        ),
    ]


# -- PyTorch baselines ------------------------------------------------------------------------
def _torch_margins(torch, z, y, c, normalize):
    """b_k = c·1[k≠y] + z̃_k − z̃_y (b_y = 0), z̃ the normalized logits."""
    K = z.shape[-1]  # noqa: N806
    if normalize == "softplus_mean":
        u = torch.nn.functional.softplus(z)
        z = u / u.mean(-1, keepdim=True)
    elif normalize == "l1":
        z = K * z / z.abs().sum(-1, keepdim=True)
    b = z - z.gather(1, y[:, None]) + c
    return b.scatter(1, y[:, None], 0.0)


def _reduce_torch(per_row, reduction):
    if reduction == "mean":
        return per_row.mean()
    return per_row.sum() if reduction == "sum" else per_row


def _ldr_torch(torch, args, kwargs, cotangent):
    """λ·(torch.logsumexp(b/λ) − log K) over the margins; autograd backward."""
    z = torch.from_numpy(args[0]).requires_grad_()
    y = torch.from_numpy(args[1]).long()
    g = torch.from_numpy(cotangent)
    c, lam = kwargs.get("c", 0.1), kwargs.get("lam", 10.0)
    normalize, reduction = kwargs.get("normalize", "none"), kwargs.get("reduction", "mean")
    log_k = math.log(z.shape[-1])

    def step():
        z.grad = None
        b = _torch_margins(torch, z, y, c, normalize)
        loss = _reduce_torch(lam * (torch.logsumexp(b / lam, -1) - log_k), reduction)
        loss.backward(g)
        return loss

    return step


def _aldr_torch(torch, args, kwargs, cotangent):
    """λ_i·(torch.logsumexp(b/λ_i) − log K) − α log K (λ_i − λ0)²/(2λ0); autograd backward."""
    z = torch.from_numpy(args[0]).requires_grad_()
    y, lam = torch.from_numpy(args[1]).long(), torch.from_numpy(args[2])
    ids = torch.from_numpy(args[3]).long()
    g = torch.from_numpy(cotangent)
    c, lam0, alpha = kwargs.get("c", 0.1), kwargs.get("lam0", 10.0), kwargs.get("alpha", 2.0)
    normalize, reduction = kwargs.get("normalize", "none"), kwargs.get("reduction", "mean")
    log_k = math.log(z.shape[-1])

    def step():
        z.grad = None
        lam_rows = lam[ids]
        b = _torch_margins(torch, z, y, c, normalize)
        penalty = alpha * log_k / (2 * lam0) * (lam_rows - lam0) ** 2
        per_row = lam_rows * (torch.logsumexp(b / lam_rows[:, None], -1) - log_k) - penalty
        loss = _reduce_torch(per_row, reduction)
        loss.backward(g)
        return loss

    return step


register(
    OpCases(
        "ldr_kl_loss",
        dims={"B": (1, 6), "K": (1, 9)},
        random=_ldr_random,
        edges=_ldr_edges,
        errors=_ldr_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "K": "cols"},
            torch=_ldr_torch,
            torch_label="margins (gather, scatter), λ·(torch.logsumexp(b/λ) − log K), mean; autograd",
            # one exp per logit (exp(b/λ − max); the backward's softmax reuses it), one log per row;
            # normalize="softplus_mean" adds exp(−|z|) and log1p per logit (the backward's σ reuses the exp)
            transcendentals=lambda args, kwargs: (
                args[0].size
                + args[0].shape[0]
                + (2 * args[0].size if kwargs.get("normalize", "none") == "softplus_mean" else 0)
            ),
        ),
    )
)


# -- ALDR-KL ----------------------------------------------------------------------------
def _aldr_state(rng, N, lam0, alpha):
    return rng.uniform(lam0 * (1 - 1 / alpha), lam0, size=N)


def _aldr_args(rng, B, K, N):
    lam0 = float(rng.choice([1.0, 10.0]))
    alpha = float(rng.choice([1.5, 2.0, 5.0]))
    kwargs = {
        "c": float(rng.choice([0.0, 0.1, 1.0])),
        "lam0": lam0,
        "alpha": alpha,
        "normalize": str(rng.choice(NORMALIZATIONS)),
    }
    z = _logits(rng, B, K)
    args = (
        z,
        rng.integers(0, K, size=B),
        _aldr_state(rng, N, lam0, alpha),
        rng.choice(N, size=B, replace=False),
    )
    return args, kwargs


def _aldr_random(rng, B, K, N):
    args, kwargs = _aldr_args(rng, B, K, N)
    kwargs["reduction"] = str(rng.choice(["mean", "sum", "none"]))
    return Sample("random", args, kwargs)


def _aldr_edges():
    rng = np.random.default_rng(11)
    z = rng.standard_normal((4, 5)) * 2
    y = np.array([0, 3, 4, 1])
    lam = np.array([10.0, 6.0, 8.0, 5.5, 9.0, 7.0])
    ids = np.array([5, 0, 2, 3])
    return [
        Sample(
            "λ_i = λ0: LDR-KL",
            (np.array([[2.0, 0.0, -1.0]]), np.array([0]), np.array([10.0]), np.array([0])),
            comment="the penalty vanishes: equals ldr_kl_loss(c=0.1, λ=10) = −1.5267627",
        ),
        Sample(
            "official ALDR: l1 normalization, α = 2",
            (z, y, lam, ids),
            {"normalize": "l1", "reduction": "none"},
            flags=("OFFICIAL_NORMALIZATION",),
        ),
        Sample(
            "official ALDR CIFAR-100: softplus, then l1",
            (z, y, lam, ids),
            {"normalize": "softplus_mean"},
            flags=("OFFICIAL_NORMALIZATION",),
        ),
        Sample(
            "repeated ids in the loss",
            (z, y, lam, np.array([1, 1, 4, 1])),
            {"reduction": "sum"},
            comment="reading λ twice is fine for the loss (the update refuses repeated ids)",
        ),
        Sample(
            "logits ±1e4",
            (np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]]), np.array([1, 0]), lam, np.array([3, 1])),
            {"lam0": 10.0},
            flags=("LARGE_LOGITS",),
            fd=False,
            comment="the relative FD step 1e-6·|z| is 1e-2 here, where the loss is far from linear",
        ),
    ]


def _aldr_errors():
    z = np.array([[1.0, 2.0, 3.0], [0.5, 0.0, 1.0]])
    y = np.array([0, 1])
    lam = np.array([10.0, 9.0, 8.0])
    ids = np.array([0, 2])
    return [
        ErrorCase("λ_i = 0 at an id", (z, y, np.array([10.0, 9.0, 0.0]), ids), match=r"'lam'.*λ_i > 0"),
        ErrorCase("one class", (np.ones((2, 1)), np.array([0, 0]), lam, ids), match="K >= 2"),
        ErrorCase(
            "l1 with an all-zero row", (np.zeros((2, 3)), y, lam, ids), {"normalize": "l1"}, match="nonzero"
        ),
    ]


register(
    OpCases(
        "aldr_kl_loss",
        dims={"B": (1, 6), "K": (2, 9), "N": (6, 10)},
        random=_aldr_random,
        edges=_aldr_edges,
        errors=_aldr_errors,
        notes=NOTES,
        bench=Bench(
            sizes={"B": "rows", "K": "cols", "N": "rows"},
            torch=_aldr_torch,
            torch_label="margins (gather, scatter), λ_i·(torch.logsumexp(b/λ_i) − log K) − penalty, mean; "
            "autograd backward",
            # one exp per logit (exp(b/λ − max); the backward's softmax reuses it), one log per row;
            # normalize="softplus_mean" adds exp(−|z|) and log1p per logit (the backward's σ reuses the exp)
            transcendentals=lambda args, kwargs: (
                args[0].size
                + args[0].shape[0]
                + (2 * args[0].size if kwargs.get("normalize", "none") == "softplus_mean" else 0)
            ),
        ),
    )
)


def _update_random(rng, B, K, N):
    args, kwargs = _aldr_args(rng, B, K, N)
    kwargs["update_without_margin"] = bool(rng.integers(0, 2))
    return Sample("random", args, kwargs)


def _update_edges():
    rng = np.random.default_rng(13)
    z = rng.standard_normal((4, 5)) * 2
    y = np.array([0, 3, 4, 1])
    lam = np.full(7, 10.0)
    ids = np.array([6, 0, 2, 3])
    return [
        Sample(
            "uniform logits, c = 0: KL = 0 keeps λ0",
            (np.zeros((2, 4)), np.array([1, 2]), lam, np.array([1, 4])),
            {"c": 0.0},
            flags=("STATE",),
        ),
        Sample(
            "one-hot-like logits: λ near λ0(1 − 1/α)",
            (np.array([[1e3, 0.0, 0.0], [0.0, -1e3, 0.0]]), np.array([0, 2]), lam, np.array([2, 5])),
            {"lam0": 10.0, "alpha": 2.0},
            flags=("STATE", "LARGE_LOGITS"),
            comment="p ≈ one-hot + the 1e-5 floor: KL just under log K",
        ),
        Sample(
            "official margin-free update",
            (z, y, lam, ids),
            {"update_without_margin": True, "normalize": "l1"},
            flags=("MARGIN_FREE", "OFFICIAL_NORMALIZATION"),
        ),
        Sample("margins in the update (default)", (z, y, lam, ids), {"c": 1.0}, flags=("STATE",)),
    ]


def _update_errors():
    z = np.array([[1.0, 2.0, 3.0], [0.5, 0.0, 1.0]])
    y = np.array([0, 1])
    lam = np.array([10.0, 9.0, 8.0])
    return [
        ErrorCase("repeated ids", (z, y, lam, np.array([1, 1])), match="distinct sample ids"),
        ErrorCase("one class", (np.ones((2, 1)), np.array([0, 0]), lam, np.array([0, 1])), match="K >= 2"),
    ]


register(
    OpCases(
        "aldr_lambda_update",
        dims={"B": (1, 6), "K": (2, 9), "N": (6, 10)},
        random=_update_random,
        edges=_update_edges,
        errors=_update_errors,
        notes=NOTES,
    )
)
