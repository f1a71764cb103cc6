"""Conformance cases for ExcelFormer's layers (`tanh_glu`, `glu_tokenizer`, `semi_permeable_attention`)."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

# -- tanh_glu ------------------------------------------------------------------------------------
TANH_NOTES = {
    "SATURATED": "|b| ≫ 1: tanh(b) = ±1 and the gate's derivative 1 − t² underflows to 0 (not NaN)",
    "BATCH_DIMS": "x with several leading dimensions: the split is over the last only",
    "HALVES": "the first half is the value, the second the gate (a swap gives tanh(a) ⊙ b)",
}


def _tanh_random(rng, B, D):
    return Sample("random", (rng.standard_normal((B, 2 * D)) * rng.uniform(0.3, 3),))


def _tanh_edges():
    rng = np.random.default_rng(3)
    saturated = rng.standard_normal((3, 8))
    saturated[:, 4:] *= 40
    return [
        Sample(
            "saturated gate |b| ~ 40",
            (saturated,),
            flags=("SATURATED",),
            fd=False,
            comment="1 − tanh² is below 1e-30: finite differences see only rounding",
        ),
        Sample("batch dims (2, 3, 6)", (rng.standard_normal((2, 3, 6)),), flags=("BATCH_DIMS",)),
        Sample("single vector d = 1", (np.array([0.7, -1.3]),), flags=("HALVES",)),
    ]


def _tanh_errors():
    return [ErrorCase("odd last dimension", (np.ones((2, 3)),), match="even last dimension")]


def _tanh_known():
    # x = [2, 3, 0, log 2]: a = [2, 3], b = [0, log 2], tanh b = [0, 3/5] → out = [0, 9/5];
    # ḡ = 1: ā = [0, 3/5], b̄ = a (1 − t²) = [2, 3 · 16/25]
    return [
        Known(
            "by hand: tanh(log 2) = 3/5",
            (np.array([2.0, 3.0, 0.0, math.log(2.0)]),),
            values={"out": [0.0, 1.8], "cotangent of 'x'": [0.0, 0.6, 2.0, 1.92]},
            source="computed by hand",
            rtol=1e-14,
        )
    ]


def _tanh_torch(torch, args, kwargs, cotangent):
    """The official ``tanglu``: ``a, b = x.chunk(2, -1); a * tanh(b)``, autograd backward."""
    x = torch.from_numpy(args[0]).requires_grad_()
    g = torch.from_numpy(cotangent)

    def step():
        a, b = x.chunk(2, dim=-1)
        out = a * torch.tanh(b)
        x.grad = None
        out.backward(g)
        return out

    return step


register(
    OpCases(
        "tanh_glu",
        dims={"B": (1, 6), "D": (1, 8)},
        random=_tanh_random,
        edges=_tanh_edges,
        errors=_tanh_errors,
        known=_tanh_known,
        notes=TANH_NOTES,
        defaults={},
        bench=Bench(
            sizes={"B": "rows", "D": "cols"},
            torch=_tanh_torch,
            torch_label="official tanglu in torch: a * tanh(b), autograd backward",
            transcendentals=lambda args, kwargs: args[0].size // 2,  # one tanh per gate entry
        ),
    )
)


# -- glu_tokenizer -------------------------------------------------------------------------------
TOKEN_NOTES = {
    "SATURATED": "x W2 + b2 ≫ 1: the gate is ±1 and its derivative underflows to 0",
    "ZERO_FEATURE": "x_ij = 0: the token is b1 ⊙ tanh(b2) and W̄ gets nothing from that row",
    "ONE_FEATURE": "F = 1, d = 1: the sums over tokens and channels have one term",
}


def _token_params(rng, F, D, scale=1.0):  # noqa: N803 - dimension names as in the specs
    return tuple(rng.standard_normal((F, D)) * scale for _ in range(4))


def _token_random(rng, B, F, D):  # noqa: N803
    return Sample("random", (rng.standard_normal((B, F)) * rng.uniform(0.3, 3), *_token_params(rng, F, D)))


def _token_edges():
    rng = np.random.default_rng(5)
    W1, b1, W2, b2 = _token_params(rng, 3, 4)
    x = rng.standard_normal((4, 3))
    zeros = x.copy()
    zeros[1] = 0
    zeros[:, 2] = 0
    return [
        Sample(
            "saturated gate",
            (x, W1, b1, 30 * np.abs(W2) + 30, b2 + 100),
            flags=("SATURATED",),
            fd=False,
            comment="the gate derivative is below 1e-26: finite differences see only rounding",
        ),
        Sample("zero features", (zeros, W1, b1, W2, b2), flags=("ZERO_FEATURE",)),
        Sample(
            "F = 1, d = 1", (rng.standard_normal((3, 1)), *_token_params(rng, 1, 1)), flags=("ONE_FEATURE",)
        ),
    ]


def _token_known():
    # x = 2, W1 = b1 = 1, W2 = 1/2, b2 = 0: u = 3, v = 1, E = 3 tanh 1; ḡ = 1: ū = tanh 1,
    # v̄ = 3 (1 − tanh² 1); x̄ = ū + v̄/2; W̄1 = 2ū, b̄1 = ū, W̄2 = 2v̄, b̄2 = v̄
    t = math.tanh(1.0)
    g_v = 3 * (1 - t * t)
    one = np.ones((1, 1))
    return [
        Known(
            "by hand: u = 3, v = 1",
            (np.array([[2.0]]), one, one, one / 2, 0 * one),
            values={
                "tokens": [[[3 * t]]],
                "cotangent of 'x'": [[t + g_v / 2]],
                "cotangent of 'W1'": [[2 * t]],
                "cotangent of 'b1'": [[t]],
                "cotangent of 'W2'": [[2 * g_v]],
                "cotangent of 'b2'": [[g_v]],
            },
            source="computed by hand",
            rtol=1e-14,
        )
    ]


def _token_torch(torch, args, kwargs, cotangent):
    """The official ``Tokenizer.forward``: ``(W1 x + b1) * tanh(W2 x + b2)``, autograd backward."""
    x, W1, b1, W2, b2 = (torch.from_numpy(a).requires_grad_() for a in args)
    g = torch.from_numpy(cotangent)

    def step():
        x1 = W1[None] * x[:, :, None] + b1[None]
        x2 = W2[None] * x[:, :, None] + b2[None]
        out = x1 * torch.tanh(x2)
        for t in (x, W1, b1, W2, b2):
            t.grad = None
        out.backward(g)
        return out

    return step


def _token_bench(rng, rows, cols):
    """B = rows, F = 64 features, d = cols // 4 (the official d_token is 256)."""
    return _token_random(rng, rows, 64, max(1, cols // 4))


register(
    OpCases(
        "glu_tokenizer",
        dims={"B": (1, 5), "F": (1, 5), "D": (1, 5)},
        random=_token_random,
        edges=_token_edges,
        known=_token_known,
        notes=TOKEN_NOTES,
        defaults={},
        bench=Bench(
            make=_token_bench,
            torch=_token_torch,
            torch_label="official Tokenizer.forward in torch: (W1 x + b1) * tanh(W2 x + b2), autograd",
            transcendentals=lambda args, kwargs: args[0].size * args[1].shape[1],  # one tanh per token entry
        ),
    )
)


# -- semi_permeable_attention --------------------------------------------------------------------
SPA_NOTES = {
    "FIRST_TOKEN": "token 0 reads only itself: y_0 = v_0 and no gradient reaches k_0 through it",
    "MASKED_LARGE": "a masked (less informative) key with the largest score must stay out of the max and sum",
    "LARGE_SCORES": "scores ~ 1e3: exp overflows without subtracting the row max",
    "OFFICIAL_MASK": "mask_value = −1e4: the official additive mask (the same weights here)",
    "ONE_HEAD": "H = 1: the head width is d (scale 1/√d)",
    "ONE_FEATURE": "F = 1: a single token attends to itself, y = v",
    "KEY_BIAS": "|b_k| ≫ |x W_kᵀ|: q_i · b_k is constant per score row; adding b_k to K first swamps "
    "x W_kᵀ and multiplies the rounding of Σ_l s̄_il by b_k in Q̄; b̄_k = 0",
}


def _spa_params(rng, D, scale=1.0):  # noqa: N803
    W = [rng.standard_normal((D, D)) * scale / math.sqrt(D) for _ in range(3)]
    b = [rng.standard_normal(D) * 0.3 for _ in range(3)]
    return (W[0], b[0], W[1], b[1], W[2], b[2])


def _spa_random(rng, B, F, H, Dh):  # noqa: N803
    D = H * Dh
    x = rng.standard_normal((B, F, D))
    kwargs = {"n_heads": H} | ({"mask_value": -1e4} if rng.integers(0, 4) == 0 else {})
    return Sample("random", (x, *_spa_params(rng, D, rng.uniform(0.5, 2))), kwargs)


def _spa_edges():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 4, 4))
    params = _spa_params(rng, 4)
    W_q, b_q, W_k, b_k, W_v, b_v = params
    large_last = x.copy()
    large_last[:, 3] = 8.0  # the last (least informative) token's key dominates every query's scores
    return [
        Sample(
            "official mask −1e4", (x, *params), {"n_heads": 2, "mask_value": -1e4}, flags=("OFFICIAL_MASK",)
        ),
        Sample("one head", (x, *params), {"n_heads": 1}, flags=("ONE_HEAD", "FIRST_TOKEN")),
        Sample(
            "masked key with the largest score",
            (large_last, W_q, b_q, 5 * np.eye(4), b_k, W_v, b_v),
            {"n_heads": 2},
            flags=("MASKED_LARGE",),
        ),
        Sample(
            "scores ~ 1e3",
            (x * 5, W_q * 10, b_q, W_k * 10, b_k, W_v, b_v),
            {"n_heads": 4},
            flags=("LARGE_SCORES",),
            fd=False,
            comment="the softmax is saturated: finite differences of a step function",
        ),
        Sample("F = 1", (rng.standard_normal((3, 1, 4)), *params), {"n_heads": 2}, flags=("ONE_FEATURE",)),
        Sample(
            "key bias 1e8",
            (x, W_q, b_q, W_k, b_k * 1e8, W_v, b_v),
            {"n_heads": 2},
            flags=("KEY_BIAS",),
        ),
    ]


def _spa_errors():
    x = np.ones((1, 2, 6))
    params = _spa_params(np.random.default_rng(0), 6)
    return [
        ErrorCase("H does not divide d", (x, *params), {"n_heads": 4}, match="divisor of the token width")
    ]


def _spa_known():
    # x = [1, 3] (d = 1), W_q = 0: equal scores. Token 0 reads itself: y_0 = 1; token 1 the mean
    # y_1 = 2. ḡ = 1: v̄ = Aᵀ 1 = [1 + 1/2, 1/2]; Ā_1 = v = [1, 3], Σ A Ā = 2, s̄_1 = [−1/2, 1/2],
    # s̄_0 = 0. q̄_1 = s̄_1 · k = −1/2 · 1 + 1/2 · 3 = 1, k̄ = s̄ᵀ q = 0 (q = 0).
    # x̄ = q̄ W_q + k̄ W_k + v̄ W_v = [0 + 0 + 1.5, 0 + 0 + 0.5]; W̄_q = Σ q̄ x = 1 · 3 = 3, b̄_q = 1;
    # W̄_k = 0, b̄_k = 0; W̄_v = Σ v̄ x = 1.5 + 1.5 = 3, b̄_v = 2.
    one, zero = np.ones((1, 1)), np.zeros(1)
    return [
        Known(
            "by hand: equal scores, two tokens",
            (np.array([[[1.0], [3.0]]]), 0 * one, zero, one, zero, one, zero),
            {"n_heads": 1},
            values={
                "y": [[[1.0], [2.0]]],
                "cotangent of 'x'": [[[1.5], [0.5]]],
                "cotangent of 'W_q'": [[3.0]],
                "cotangent of 'b_q'": [1.0],
                "cotangent of 'W_k'": [[0.0]],
                "cotangent of 'b_k'": [0.0],
                "cotangent of 'W_v'": [[3.0]],
                "cotangent of 'b_v'": [2.0],
            },
            source="computed by hand",
            rtol=1e-14,
            atol=1e-15,
        )
    ]


def _spa_torch(torch, args, kwargs, cotangent):
    """The official ``MultiheadAttention.forward`` without W_out and dropout: linear maps, heads,
    ``softmax(Q Kᵀ/√d_h + M)`` with ``M = −inf`` above the diagonal (or ``mask_value``)."""
    x, W_q, b_q, W_k, b_k, W_v, b_v = (torch.from_numpy(a).requires_grad_() for a in args)
    heads = kwargs["n_heads"]
    mask_value = kwargs.get("mask_value")
    g = torch.from_numpy(cotangent)
    batch, features, width = x.shape
    ids = torch.arange(features)
    blocked = ids[None, :] > ids[:, None]
    additive = torch.zeros((features, features), dtype=x.dtype).masked_fill(
        blocked, float("-inf") if mask_value is None else mask_value
    )

    def split(z):
        return z.reshape(batch, features, heads, width // heads).transpose(1, 2)

    def step():
        q = split(torch.nn.functional.linear(x, W_q, b_q))
        k = split(torch.nn.functional.linear(x, W_k, b_k))
        v = split(torch.nn.functional.linear(x, W_v, b_v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(width // heads)
        out = (torch.softmax(scores + additive, dim=-1) @ v).transpose(1, 2).reshape(batch, features, width)
        for t in (x, W_q, b_q, W_k, b_k, W_v, b_v):
            t.grad = None
        out.backward(g)
        return out

    return step


def _spa_blas(args, kwargs):
    """Three projections and Q Kᵀ, A V forward; the attention's four products and the projections'
    six (x̄ and W̄ per projection) backward."""
    x, W = args[0], args[1]
    heads = kwargs["n_heads"]
    batch, features, width = x.shape
    q = np.ones((batch, heads, features, width // heads), dtype=x.dtype)
    A = np.ones((batch, heads, features, features), dtype=x.dtype)
    rows = x.reshape(-1, width)

    def step():
        out = [rows @ W.T for _ in range(3)]
        out += [q @ np.swapaxes(q, -1, -2), A @ q, np.swapaxes(A, -1, -2) @ q, q @ np.swapaxes(q, -1, -2)]
        out += [A @ q, np.swapaxes(A, -1, -2) @ q]
        out += [rows @ W for _ in range(3)] + [rows.T @ rows for _ in range(3)]
        return out

    return step


def _spa_bench(rng, rows, cols):
    """B = 64 rows of a table, F = 64 features, d = 256, 32 heads (the official default config)."""
    x = rng.standard_normal((64, 64, 256))
    return Sample("bench", (x, *_spa_params(rng, 256)), {"n_heads": 32})


register(
    OpCases(
        "semi_permeable_attention",
        dims={"B": (1, 2), "F": (1, 6), "H": (1, 3), "Dh": (1, 3)},
        random=_spa_random,
        edges=_spa_edges,
        errors=_spa_errors,
        known=_spa_known,
        notes=SPA_NOTES,
        defaults={"mask_value": None},
        bench=Bench(
            make=_spa_bench,
            torch=_spa_torch,
            torch_label="official MultiheadAttention (no W_out, no dropout) in torch: "
            "softmax(Q Kᵀ/√d_h + M) V, "
            "M = −inf above the diagonal, autograd backward",
            # one exp per score (the reference evaluates every entry of each F × F matrix)
            transcendentals=lambda args, kwargs: args[0].shape[0] * kwargs["n_heads"] * args[0].shape[1] ** 2,
            blas=_spa_blas,
        ),
    )
)
