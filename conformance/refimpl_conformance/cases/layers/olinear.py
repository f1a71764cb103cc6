"""Conformance cases for `orthotrans_basis`, `orthotrans_transform` and `normlin` (OLinear)."""

from __future__ import annotations

import math

import numpy as np

from ..._cases import Bench, ErrorCase, Known, OpCases, Sample, register

BASIS_NOTES = {
    "SKIPPED_CHANNEL": "a constant channel (lag variance 0 < 1e-4) is skipped, not averaged in as NaN",
    "TAU_ONE": "τ = 1: the 1 × 1 correlation is 1 and Q = [[1]]",
    "OFFICIAL": "the official column normalization: an asymmetric matrix, eigh reads its lower triangle",
    "LONG_WINDOW": "τ = n − 1: two windows per lag, a rank-1 covariance",
}


def _series(rng, n, channels):
    t = np.arange(n)[:, None]
    periods = rng.uniform(3, 12, size=channels)
    return np.sin(2 * np.pi * t / periods) + 0.3 * rng.standard_normal((n, channels))


def _random_basis(rng, n, C, tau):  # noqa: N803
    kwargs = {"tau": min(tau, n - 1)}
    if rng.integers(0, 3) == 0:
        kwargs["official_column_normalization"] = True
    if rng.integers(0, 3) == 0:
        kwargs["min_variance"] = float(rng.choice([1e-8, 1e-2]))
    return Sample("random", (_series(rng, n, C),), kwargs)


def _basis_edges():
    rng = np.random.default_rng(221)
    series = _series(rng, 30, 3)
    with_constant = series.copy()
    with_constant[:, 1] = 2.5
    return [
        Sample("a constant channel is skipped", (with_constant,), {"tau": 5}, flags=("SKIPPED_CHANNEL",)),
        Sample("tau = 1", (series,), {"tau": 1}, flags=("TAU_ONE",)),
        Sample(
            "official column normalization",
            (series,),
            {"tau": 6, "official_column_normalization": True},
            flags=("OFFICIAL",),
        ),
        Sample("tau = n − 1", (series[:8],), {"tau": 7}, flags=("LONG_WINDOW",)),
        Sample(
            "min_variance 0.5 skips the quiet channel",
            (np.hstack([series, 0.1 * series[:, :1]]),),
            {"tau": 4, "min_variance": 0.05},
            flags=("SKIPPED_CHANNEL",),
        ),
    ]


def _basis_errors():
    constant = np.ones((10, 2))
    return [
        ErrorCase("every channel constant", (constant,), {"tau": 3}, match="at least one channel"),
        ErrorCase(
            "tau = n", (np.random.default_rng(0).standard_normal((5, 2)),), {"tau": 5}, match="tau <= n"
        ),
    ]


def _basis_known():
    r = 2.0 / math.sqrt(7.0)
    h = 1.0 / math.sqrt(2.0)
    return [
        Known(
            "series (0, 1, 0, 3), tau = 2",
            (np.array([[0.0], [1.0], [0.0], [3.0]]),),
            {"tau": 2},
            values={"eigenvalues": [1.0 + r, 1.0 - r], "q": [[h, -h], [h, h]]},
            source="by hand: lags (0, 1, 0), (1, 0, 3); cov [[1/3, −2/3], [−2/3, 7/3]]; Pearson −2/√7; "
            "eigenvectors (1, ∓1)/√2, first entry positive",
            rtol=1e-12,
        ),
        Known(
            "series (0, 1, 0, 3), tau = 2, official column normalization",
            (np.array([[0.0], [1.0], [0.0], [3.0]]),),
            {"tau": 2, "official_column_normalization": True},
            values={"eigenvalues": [3.0, -1.0]},
            source="by hand: columns divided by (1/3, 7/3): [[1, −2/7], [−2, 1]]; eigh's lower triangle "
            "[[1, −2], [−2, 1]] has eigenvalues 3 and −1",
            rtol=1e-12,
        ),
    ]


register(
    OpCases(
        "orthotrans_basis",
        dims={"n": (6, 24), "C": (1, 3), "tau": (1, 6)},
        random=_random_basis,
        edges=_basis_edges,
        errors=_basis_errors,
        known=_basis_known,
        notes=BASIS_NOTES,
        defaults={"min_variance": 1e-4, "official_column_normalization": False},
    )
)


TRANSFORM_NOTES = {
    "BATCH_DIMS": "x (B, C, T): the basis acts on the last axis only, δ̄ sums over every leading axis",
    "INVERSE": "the inverse map uses Qᵀ: a forward and an inverse with δ = 0 give back x",
    "VECTOR": "a single window (T,)",
}


def _basis_matrix(rng, t):
    q, _ = np.linalg.qr(rng.standard_normal((t, t)))
    return q


def _random_transform(rng, B, T):  # noqa: N803
    shape = [(B, T), (2, B, T), (T,)][int(rng.integers(0, 3))]
    kwargs = {"inverse": bool(rng.integers(0, 2))}
    return Sample(
        "random", (rng.standard_normal(shape), _basis_matrix(rng, T), rng.standard_normal(T)), kwargs
    )


def _transform_edges():
    rng = np.random.default_rng(7)
    q = _basis_matrix(rng, 6)
    return [
        Sample(
            "batch dims (2, 3, T)",
            (rng.standard_normal((2, 3, 6)), q, rng.standard_normal(6)),
            flags=("BATCH_DIMS",),
        ),
        Sample(
            "inverse", (rng.standard_normal((4, 6)), q, np.zeros(6)), {"inverse": True}, flags=("INVERSE",)
        ),
        Sample("single window", (rng.standard_normal(6), q, rng.standard_normal(6)), flags=("VECTOR",)),
        Sample(
            "T = 1", (rng.standard_normal((3, 1)), np.array([[-1.0]]), np.array([0.5])), flags=("VECTOR",)
        ),
    ]


def _transform_known():
    q = np.array([[0.6, 0.8], [-0.8, 0.6]])
    return [
        Known(
            "2 × 2 rotation, forward",
            (np.array([1.0, 2.0]), q, np.array([0.0, 1.0])),
            values={"y": [2.2, 1.4], "cotangent of 'x'": [-0.2, 1.4], "cotangent of 'offset'": [1.0, 1.0]},
            source="by hand: Q x = (0.6 + 1.6, −0.8 + 1.2) = (2.2, 0.4), + δ; x̄ = Qᵀ 1 = (−0.2, 1.4)",
            rtol=1e-12,
        ),
        Known(
            "2 × 2 rotation, inverse",
            (np.array([2.2, 0.4]), q, np.zeros(2)),
            {"inverse": True},
            values={"y": [1.0, 2.0], "cotangent of 'x'": [1.4, -0.2]},
            source="by hand: Qᵀ (2.2, 0.4) = (1.32 − 0.32, 1.76 + 0.24); x̄ = Q 1 = (1.4, −0.2)",
            rtol=1e-12,
        ),
    ]


def _transform_torch(torch, args, kwargs, cotangent):
    """x @ Qᵀ + δ (x @ Q + δ for the inverse), autograd."""
    x = torch.from_numpy(args[0]).requires_grad_()
    q = torch.from_numpy(args[1])
    offset = torch.from_numpy(args[2]).requires_grad_()
    g = torch.from_numpy(cotangent)
    basis_map = q if kwargs.get("inverse", False) else q.T

    def step():
        x.grad = offset.grad = None
        y = x @ basis_map + offset
        y.backward(g)
        return y

    return step


def _transform_blas(args, kwargs):
    x, q = args[0], args[1]

    def step():
        return (x @ q.T) @ q

    return step


def _transform_bench(rng, rows, cols):
    return Sample(
        "bench", (rng.standard_normal((rows, cols)), _basis_matrix(rng, cols), rng.standard_normal(cols))
    )


register(
    OpCases(
        "orthotrans_transform",
        dims={"B": (1, 6), "T": (1, 8)},
        random=_random_transform,
        edges=_transform_edges,
        known=_transform_known,
        notes=TRANSFORM_NOTES,
        defaults={"inverse": False},
        bench=Bench(
            make=lambda rng, rows, cols: _transform_bench(rng, rows, min(cols, 720)),
            torch=_transform_torch,
            torch_label="x @ Qᵀ + δ, autograd",
            blas=_transform_blas,
        ),
    )
)


NORMLIN_NOTES = {
    "LARGE_WEIGHTS": "W ~ ±40: softplus(W) = W (exp cannot overflow), sigmoid saturates; A row-stochastic",
    "CLAMPED_ROW": "a row of W ≈ −60: Σ softplus ≈ 1e-26 < 1e-12, the L1 clamp is active",
    "BATCH_DIMS": "v (B, N, D): one A for every leading index; Ḡ_A sums over them",
    "ONE_VARIATE": "N = 1: A = [[1]] whatever W, so W̄ = 0",
}


def _random_normlin(rng, B, N, D):  # noqa: N803
    w = np.eye(N) + rng.standard_normal((N, N))  # OLinear's initialization I + N(0, 1)
    shape = [(N, D), (B, N, D)][int(rng.integers(0, 2))]
    return Sample("random", (w * float(rng.choice([0.5, 1.0, 3.0])), rng.standard_normal(shape)))


def _normlin_edges():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((4, 4))
    v = rng.standard_normal((2, 4, 3))
    clamped = w.copy()
    clamped[2] = -60.0 + rng.standard_normal(4)
    return [
        Sample("weights ±40", (40.0 * np.sign(w), v), flags=("LARGE_WEIGHTS",)),
        Sample(
            "a row with Σ softplus < 1e-12",
            (clamped, v),
            flags=("CLAMPED_ROW",),
            dtypes=("float64",),
            comment="A = S/1e-12 on that row; W̄ has no normalization term there",
        ),
        Sample("batch dims (2, 2, N, D)", (w, rng.standard_normal((2, 2, 4, 3))), flags=("BATCH_DIMS",)),
        Sample("N = 1", (np.array([[0.3]]), rng.standard_normal((2, 1, 5))), flags=("ONE_VARIATE",)),
    ]


def _normlin_known():
    return [
        Known(
            "W = 0: A = ½·ones",
            (np.zeros((2, 2)), np.array([[1.0, 3.0], [5.0, 7.0]])),
            values={
                "y": [[3.0, 5.0], [3.0, 5.0]],
                "cotangent of 'v'": [[1.0, 1.0], [1.0, 1.0]],
                # G_A = 1·Vᵀ rows (4, 12); S̄ = (G_A − ⟨G_A, A⟩_row)/log 2; W̄ = S̄/2
                "cotangent of 'w'": [
                    [-1.0 / math.log(2.0), 1.0 / math.log(2.0)],
                    [-1.0 / math.log(2.0), 1.0 / math.log(2.0)],
                ],
            },
            source="by hand: softplus(0) = log 2, r = 2 log 2; G_A,ij = Σ_d V_jd = (4, 12) per row, mean 8: "
            "S̄ = (∓4)/(2 log 2), times sigmoid(0) = ½",
            rtol=1e-12,
        ),
    ]


def _normlin_torch(torch, args, kwargs, cotangent):
    """F.normalize(F.softplus(W), p=1, dim=-1) @ V, autograd."""
    w = torch.from_numpy(args[0]).requires_grad_()
    v = torch.from_numpy(args[1]).requires_grad_()
    g = torch.from_numpy(cotangent)

    def step():
        w.grad = v.grad = None
        a = torch.nn.functional.normalize(torch.nn.functional.softplus(w, threshold=1e9), p=1, dim=-1)
        y = torch.matmul(a, v)
        y.backward(g)
        return y

    return step


def _normlin_blas(args, kwargs):
    w, v = args
    n = w.shape[0]
    v_rows = np.moveaxis(v.reshape(-1, n, v.shape[-1]), 1, 0).reshape(n, -1)

    def step():  # Y = A V, V̄ = Aᵀ G, G_A = G Vᵀ
        y = w @ v_rows
        return w.T @ y, y @ v_rows.T

    return step


def _normlin_bench(rng, rows, cols):
    n = 321  # the Electricity data set's variate count
    return Sample(
        "bench", (np.eye(n) + rng.standard_normal((n, n)), rng.standard_normal((max(rows // n, 1), n, cols)))
    )


register(
    OpCases(
        "normlin",
        dims={"B": (1, 3), "N": (1, 6), "D": (1, 5)},
        random=_random_normlin,
        edges=_normlin_edges,
        known=_normlin_known,
        notes=NORMLIN_NOTES,
        bench=Bench(
            make=_normlin_bench,
            torch=_normlin_torch,
            torch_label="F.normalize(F.softplus(W), p=1, dim=-1) @ V, autograd",
            transcendentals=lambda args, kwargs: 2 * args[0].size,  # softplus' exp/log1p (sigmoid reuses exp)
            blas=_normlin_blas,
        ),
    )
)
