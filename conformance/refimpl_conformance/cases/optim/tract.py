"""Conformance cases for `tract_linear` (custom VJP: checked against the stated formula)."""

from __future__ import annotations

import numpy as np

from ..._cases import Bench, OpCases, Sample, register

NOTES = {
    "BRANCH": "b < n takes the (b, b) system, b ≥ n the (n, n) one: the same weight gradient; a port "
    "that inverts only one of them (or mixes XᵀX with XXᵀ) fails on the other",
    "SQUARE": "b = n: the branch boundary",
    "ONE_ROW": "b = 1: a 1×1 system, W̄ = gᵀx/(‖x‖² + λ)",
    "LARGE_LAMBDA": "λ = 1e6: W̄ ≈ GᵀX/λ, the ordinary gradient scaled down",
    "SMALL_LAMBDA": "λ = 1e-8 with b ≫ n: the input-whitened GᵀX(XᵀX/b)⁻¹; a port that drops the "
    "1/b (XᵀX + λI) is off by the factor b",
    "RANK_DEFICIENT": "repeated input columns: XᵀX is singular, only λ makes the system definite",
    "IM2COL": "the im2col rows of a 3×3 convolution with stride 2 and padding 1: b counts patches",
}


def stated_weight_gradient(args, kwargs, cotangents):
    """The paper's formula, evaluated independently: X̄ = G W, W̄ = Gᵀ X (XᵀX/b + λI)⁻¹ by
    ``np.linalg.solve`` (valid for every b: λ > 0), b̄ = Σ_rows G; float64."""
    x, W, _ = (np.asarray(a, dtype=np.float64) for a in args)
    lam = float(kwargs.get("lam", 0.1))
    (g_y,) = (np.asarray(c, dtype=np.float64) for c in cotangents)
    rows, features = x.shape
    system = x.T @ x / rows + lam * np.eye(features)
    g_W = np.linalg.solve(system, x.T @ g_y).T  # (Gᵀ X M⁻¹)ᵀ = M⁻¹ Xᵀ G, M symmetric
    return [g_y @ W, g_W, g_y.sum(axis=0)]


def _random(rng, B, N, M):
    x = rng.standard_normal((B, N)) * float(rng.choice([0.1, 1.0, 4.0])) + float(rng.choice([0.0, 0.5]))
    W = rng.standard_normal((M, N)) / np.sqrt(N)
    bias = rng.standard_normal(M) * 0.1
    kwargs = {"lam": float(rng.choice([0.1, 1e-2, 1.0, 10.0, 10 ** rng.uniform(-3, 2)]))}
    return Sample("random", (x, W, bias), kwargs)


def im2col(images, kernel, stride, padding):
    """(B, C, H, W) images → ((B·H_out·W_out), C·k·k) patch rows, channel-major like
    ``torch.nn.Unfold`` (then transposed): the X of a convolution as a linear layer."""
    batch, channels, height, width = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out_h = (height + 2 * padding - kernel) // stride + 1
    out_w = (width + 2 * padding - kernel) // stride + 1
    rows = []
    for b in range(batch):
        for i in range(out_h):
            for j in range(out_w):
                patch = padded[b, :, i * stride : i * stride + kernel, j * stride : j * stride + kernel]
                rows.append(patch.reshape(-1))
    return np.array(rows), (out_h, out_w)


def _edges():
    rng = np.random.default_rng(52)
    wide = rng.standard_normal((3, 7))
    tall = rng.standard_normal((12, 4))
    W7, W4 = rng.standard_normal((2, 7)), rng.standard_normal((3, 4))
    repeated = np.repeat(rng.standard_normal((10, 2)), 2, axis=1)  # columns 0 = 1 and 2 = 3
    images = rng.standard_normal((2, 2, 5, 5))
    patches, _ = im2col(images, kernel=3, stride=2, padding=1)  # (2·3·3, 18)
    square = rng.standard_normal((5, 5))
    return [
        Sample(
            "known value: X = 2I, λ = 1",
            (np.array([[2.0, 0.0], [0.0, 2.0]]), np.eye(2), np.zeros(2)),
            {"lam": 1.0},
            comment="XᵀX/b = 2I: W̄ = GᵀX/3",
        ),
        Sample("b < n (dual system)", (wide, W7, np.zeros(2)), flags=("BRANCH",)),
        Sample("b ≥ n (primal system)", (tall, W4, rng.standard_normal(3)), flags=("BRANCH",)),
        Sample("b = n", (square, rng.standard_normal((3, 5)), np.zeros(3)), {"lam": 0.5}, flags=("SQUARE",)),
        Sample("b = 1", (rng.standard_normal((1, 4)), W4, np.zeros(3)), flags=("ONE_ROW",)),
        Sample("λ = 1e6", (tall, W4, np.zeros(3)), {"lam": 1e6}, flags=("LARGE_LAMBDA",)),
        Sample(
            "λ = 1e-8, b ≫ n",
            (rng.standard_normal((64, 3)), rng.standard_normal((2, 3)), np.zeros(2)),
            {"lam": 1e-8},
            flags=("SMALL_LAMBDA",),
        ),
        Sample(
            "repeated input columns",
            (repeated, rng.standard_normal((2, 4)), np.zeros(2)),
            {"lam": 1e-3},
            flags=("RANK_DEFICIENT",),
            comment="XᵀX/b has rank 2 of 4; λ = 1e-3 bounds the condition number near 1e3",
        ),
        Sample(
            "im2col of a 3×3 convolution, stride 2, padding 1",
            (patches, rng.standard_normal((4, 18)) / 4, rng.standard_normal(4)),
            flags=("IM2COL", "BRANCH"),
            comment="18 patches of 18 features (C = 2, 3×3): b = n, the boundary",
        ),
    ]


def _tract_torch(torch, args, kwargs, cotangent):
    """The same layer in PyTorch, as the official code builds it: a torch.autograd.Function with
    F.linear forward and a backward of G W, Σ G and the TrAct weight gradient
    (torch.linalg.cholesky, torch.cholesky_solve in float64)."""
    x, W, bias = (torch.from_numpy(a).requires_grad_() for a in args)
    g_y = torch.from_numpy(np.asarray(cotangent))
    lam = kwargs.get("lam", 0.1)

    class TrActLinear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, W, bias):
            ctx.save_for_backward(x, W)
            return torch.nn.functional.linear(x, W, bias)

        @staticmethod
        def backward(ctx, g_y):
            x, W = ctx.saved_tensors
            rows, features = x.shape
            x64, g64 = x.double(), g_y.double()
            if rows >= features:
                system = x64.T @ x64 / rows + lam * torch.eye(features, dtype=torch.float64)
                g_W = torch.cholesky_solve(x64.T @ g64, torch.linalg.cholesky(system)).T
            else:
                system = x64 @ x64.T / rows + lam * torch.eye(rows, dtype=torch.float64)
                g_W = torch.cholesky_solve(g64, torch.linalg.cholesky(system)).T @ x64
            return g_y @ W, g_W.to(x.dtype), g_y.sum(0)

    def step():
        x.grad = W.grad = bias.grad = None
        y = TrActLinear.apply(x, W, bias)
        y.backward(g_y)
        return y

    return step


def _tract_blas(args, kwargs):
    """Forward X Wᵀ; backward G W, then in float64 the Gram and right-hand side of the smaller
    system: XᵀX and XᵀG (b ≥ n), or XXᵀ and the (m, b)·(b, n) product with X (b < n)."""
    x, W = args[0], args[1]
    rows, features = x.shape
    g_y = np.ones((rows, W.shape[0]), dtype=x.dtype)
    x64, g64 = x.astype(np.float64), g_y.astype(np.float64)

    def step():
        x @ W.T
        g_y @ W
        if rows >= features:
            x64.T @ x64
            x64.T @ g64
        else:
            x64 @ x64.T
            g64.T @ x64

    return step


register(
    OpCases(
        "tract_linear",
        dims={"B": (1, 9), "N": (1, 6), "M": (1, 4)},
        random=_random,
        edges=_edges,
        notes=NOTES,
        defaults={"lam": 0.1},
        stated_vjp=stated_weight_gradient,
        bench=Bench(
            sizes={"B": "rows", "N": 147, "M": 64},
            torch=_tract_torch,
            torch_label="autograd.Function: F.linear; backward G W, Σ G, TrAct cholesky_solve (float64)",
            blas=_tract_blas,
        ),
    )
)
